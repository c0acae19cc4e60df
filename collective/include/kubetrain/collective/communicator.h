// Communicator: the one interface C++ training programs use to talk between ranks.
//
//   auto comm = CreateCommunicatorFromEnv(Backend::kCpu);   // RANK, WORLD_SIZE, MASTER_ADDR, ...
//   if (!comm.ok()) return comm.status();
//   std::shared_ptr<Work> w = (*comm)->AllReduce(grad.data(), grad.size(), DataType::kFloat32,
//                                                ReduceOp::kAvg);
//   ... overlap other work ...
//   KT_RETURN_IF_ERROR(w->Wait());
//
// Backends (one file set each under collective/src/):
//   kCpu  — kubetrain's own host-memory backend: a shared-memory reduce-scatter + all-gather
//           between ranks on one node, a TCP ring between nodes (hierarchical: shared memory
//           inside each node, the ring between one leader per node) (cpu/).
//   kMpi  — host buffers through OpenMPI nonblocking collectives (mpi/; built with MPI only).
//   kNccl — device buffers through NCCL on a CUDA stream per communicator (nccl/; built with
//           CUDA only).
//
// Semantics shared by all backends:
//   * Every rank calls the same collectives in the same order (as in MPI / NCCL).
//   * Calls return immediately with a Work; operations of one communicator run in call order.
//   * In-place and out-of-place: pass the same pointer for send and recv (see each method for the
//     in-place layout of AllGather / ReduceScatter, which follows NCCL).
//   * A count of zero is valid and completes without touching memory.
//   * A dead or stuck peer never hangs a rank: pending and later operations fail within
//     CommunicatorOptions::timeout with a Status naming the peer ("rank 2 (pid 4242) ...").
//     After a failure the communicator is broken: every later call fails with the same status.
//
// Ownership: the caller owns the Communicator and all buffers; buffers must outlive the Work.
// Destroying a communicator waits for its queued operations to finish (or fail).
// Thread-safety: a Communicator may be called from several threads, but the program must issue
// collectives in the same order on every rank, so in practice one thread issues them.
#ifndef KUBETRAIN_COLLECTIVE_COMMUNICATOR_H_
#define KUBETRAIN_COLLECTIVE_COMMUNICATOR_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kubetrain/collective/types.h"
#include "kubetrain/collective/work.h"

namespace kubetrain::collective {

enum class Backend : int { kCpu, kMpi, kNccl };
absl::string_view BackendName(Backend backend);  // "cpu", "mpi", "nccl"
absl::StatusOr<Backend> ParseBackend(absl::string_view name);
// Whether this build contains the backend (MPI and NCCL are optional at build time).
bool BackendCompiled(Backend backend);

// Where a communicator's buffers must live.
enum class MemoryKind : int { kHost, kDevice };

// How the CPU backend moves bytes between ranks.
enum class CpuTransport : int {
  kAuto,  // shared memory within a node; across nodes, shared memory inside each node and a
          // TCP ring between the nodes' leaders (hierarchical)
  kShm,   // shared memory only (fails if ranks are on different nodes)
  kTcp,   // TCP ring even on one node (tests, debugging)
};

struct CommunicatorOptions {
  // This rank in [0, world_size).
  int rank = 0;
  // Number of ranks in the job.
  int world_size = 1;
  // Rank index on this node; picks the GPU for NCCL (LOCAL_RANK).
  int local_rank = 0;
  // Address of rank 0's rendezvous store (MASTER_ADDR); rank 0 listens on all interfaces.
  std::string master_addr = "127.0.0.1";
  // Port of the rendezvous store (MASTER_PORT). 0 is only valid for world_size 1.
  int master_port = 0;
  // Bound on every wait: rendezvous, each collective, peer liveness. Ops fail after this.
  absl::Duration timeout = absl::Seconds(30);
  // Job name used in log lines and shared-memory segment names (KUBETRAIN_JOB).
  std::string job = "kubetrain";
  // Key prefix inside the store, so several communicators can share one store.
  std::string store_prefix = "default";

  // --- CPU backend ---
  // Transport between ranks.
  CpuTransport cpu_transport = CpuTransport::kAuto;
  // Bytes each rank stages per pipeline step in shared memory (two such slots per rank).
  size_t cpu_shm_slot_bytes = 256 * 1024;
  // AllReduce messages up to this size use the one-shot shared-memory algorithm (every rank
  // reduces the whole message: one sync per chunk); larger ones use reduce-scatter + all-gather.
  size_t cpu_shm_one_shot_bytes = 8 * 1024;
  // Bytes per pipelined piece on the TCP ring.
  size_t cpu_tcp_chunk_bytes = 256 * 1024;
  // Identity of this rank's node: ranks with the same id share memory. Empty means the host
  // name plus the PID namespace (a Kubernetes pod has its own host name; each instance of the
  // local backend its own PID namespace). Tests set it to simulate several nodes on one host.
  std::string cpu_node_id;

  // --- NCCL backend ---
  // CUDA device ordinal; -1 means local_rank % device count.
  int cuda_device = -1;
  // How often the NCCL watchdog checks for async errors and overdue operations.
  absl::Duration nccl_watchdog_interval = absl::Milliseconds(100);
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual Backend backend() const = 0;
  virtual MemoryKind memory_kind() const = 0;
  // OK while healthy; the sticky error once an operation failed.
  virtual absl::Status health() const = 0;

  // recv[i] = op over ranks of send[i], for i < count. In place when send == recv.
  virtual std::shared_ptr<Work> AllReduce(const void* send, void* recv, size_t count, DataType type,
                                          ReduceOp op) = 0;
  std::shared_ptr<Work> AllReduce(void* buffer, size_t count, DataType type, ReduceOp op) {
    return AllReduce(buffer, buffer, count, type, op);
  }

  // recv = root's send on every rank (send is read on root only). In place when send == recv.
  virtual std::shared_ptr<Work> Broadcast(const void* send, void* recv, size_t count, DataType type,
                                          int root) = 0;
  std::shared_ptr<Work> Broadcast(void* buffer, size_t count, DataType type, int root) {
    return Broadcast(buffer, buffer, count, type, root);
  }

  // recv (world_size * send_count elements) = concatenation of every rank's send, in rank order.
  // In place when send == recv + rank * send_count elements.
  virtual std::shared_ptr<Work> AllGather(const void* send, void* recv, size_t send_count,
                                          DataType type) = 0;

  // send holds world_size * recv_count elements; recv = op over ranks of send's block `rank`.
  // In place when recv == send + rank * recv_count elements.
  virtual std::shared_ptr<Work> ReduceScatter(const void* send, void* recv, size_t recv_count,
                                              DataType type, ReduceOp op) = 0;

  // Completes once every rank has called Barrier.
  virtual std::shared_ptr<Work> Barrier() = 0;
};

// Creates a communicator of `backend` with explicit options. Blocks for the rendezvous (bounded
// by options.timeout). kMpi uses MPI_COMM_WORLD (initializing MPI if needed); see mpi.h for
// communicators built on a given MPI communicator.
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    Backend backend, const CommunicatorOptions& options);

// Same, with options from the rank environment (see env.h for the variables read).
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicatorFromEnv(Backend backend);

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_COMMUNICATOR_H_
