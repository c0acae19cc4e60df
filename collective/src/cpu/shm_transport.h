// Shared-memory transport of the CPU backend, for ranks on one node.
//
// Rank 0 creates one POSIX shared-memory segment (shm_open, named per job / store port / pid),
// every rank maps it, and rank 0 unlinks the name once all have mapped it, so nothing is left in
// /dev/shm even if ranks crash. Layout: a header, one control cache line per rank (a monotonic
// arrival counter + pid), then two staging slots per rank (double buffering).
//
// Collectives are chunked through the slots. AllReduce of a chunk (two-shot): every rank
// copies its input
// into its slot; sync; rank r reduces part r of the chunk across all slots in place (the
// reduce-scatter); sync; every rank copies all reduced parts out (the all-gather). While the
// next chunk uses the other slot, nobody can still be reading this one (two syncs separate any
// reuse; the chunk counter runs on across operations), so no extra flags are needed. Up to
// CommunicatorOptions::cpu_shm_one_shot_bytes, AllReduce is one-shot instead: copy in; sync; every
// rank reduces the whole chunk from all slots into its output (in rank order, so results are
// identical).
//
// Waiting spins briefly, then yields, checks the deadline, peers' pids (kill(pid, 0) and
// /proc/<pid>/stat for zombies) and an abort word that a failing rank sets with its reason.
#ifndef KUBETRAIN_COLLECTIVE_SRC_CPU_SHM_TRANSPORT_H_
#define KUBETRAIN_COLLECTIVE_SRC_CPU_SHM_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/collective/store.h"
#include "transport.h"

namespace kubetrain::collective_internal {

struct ShmTransportOptions {
  int rank = 0;
  int world_size = 1;
  size_t slot_bytes = 256 * 1024;
  std::string segment_name;       // "/kubetrain-..." chosen by the caller, same on all ranks
  std::string key_prefix;         // store key prefix for this communicator
  std::vector<int> global_ranks;  // member index -> communicator rank, for messages (empty: same)
  size_t one_shot_bytes = 8 * 1024;  // AllReduce up to this size is one-shot
};

absl::StatusOr<std::unique_ptr<CpuTransportImpl>> CreateShmTransport(
    const ShmTransportOptions& options, collective::TcpStoreClient* store, absl::Time deadline);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_CPU_SHM_TRANSPORT_H_
