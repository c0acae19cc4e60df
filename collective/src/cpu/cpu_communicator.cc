#include "cpu_communicator.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "../net.h"
#include "../rendezvous.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "hierarchical_transport.h"
#include "kubetrain/common/status_macros.h"
#include "shm_transport.h"
#include "spdlog/spdlog.h"
#include "tcp_transport.h"

namespace kubetrain::collective_internal {
namespace {

// Ranks share memory when they run on the same host and in the same PID namespace: the peer
// liveness checks use pids, and kubetrain's local backend runs each instance in its own PID
// namespace on one host (a Kubernetes pod has its own host name anyway).
std::string DefaultNodeId() {
  char hostname[256] = {0};
  gethostname(hostname, sizeof(hostname) - 1);
  char ns[128] = {0};
  ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
  return n > 0 ? absl::StrCat(hostname, "/", std::string(ns, n)) : std::string(hostname);
}

using collective::Backend;
using collective::CommunicatorOptions;
using collective::CompletionWork;
using collective::CpuTransport;
using collective::MakeCompletedWork;
using collective::MemoryKind;
using collective::Work;

// World size 1: every collective is a local copy.
class LocalTransport : public CpuTransportImpl {
 public:
  const char* name() const override { return "local"; }
  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                         absl::Time) override {
    if (send != recv) std::memcpy(recv, send, count * collective::DataTypeSize(type));
    return absl::OkStatus();
  }
  absl::Status Broadcast(const void* send, void* recv, size_t count, DataType type, int,
                         absl::Time) override {
    if (send != recv) std::memcpy(recv, send, count * collective::DataTypeSize(type));
    return absl::OkStatus();
  }
  absl::Status AllGather(const void* send, void* recv, size_t count, DataType type,
                         absl::Time) override {
    if (send != recv) std::memcpy(recv, send, count * collective::DataTypeSize(type));
    return absl::OkStatus();
  }
  absl::Status ReduceScatter(const void* send, void* recv, size_t count, DataType type, ReduceOp,
                             absl::Time) override {
    if (send != recv) std::memcpy(recv, send, count * collective::DataTypeSize(type));
    return absl::OkStatus();
  }
  absl::Status Barrier(absl::Time) override { return absl::OkStatus(); }
  void Abort(const absl::Status&) override {}
};

std::string Sanitize(absl::string_view s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out.substr(0, 64);
}

// The communicator's execution stream: a FIFO of operations run one at a time, by the worker
// thread or, when a caller waits on an operation that has not started yet and nothing is
// running, inline by the waiting thread (saves two thread hand-offs per synchronous call,
// which dominate small messages). Order is preserved either way.
struct Stream {
  struct Task {
    std::function<absl::Status(absl::Time)> fn;
    std::shared_ptr<CompletionWork> work;
  };

  CommunicatorOptions options;
  std::unique_ptr<CpuTransportImpl> transport;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Task> queue;
  bool executing = false;
  bool stopping = false;
  absl::Status broken;

  absl::Status Health() {
    std::lock_guard<std::mutex> lock(mu);
    return broken;
  }

  // Runs one task; `lock` is held on entry and exit, released while running.
  void RunLocked(std::unique_lock<std::mutex>& lock) {
    Task task = std::move(queue.front());
    queue.pop_front();
    executing = true;
    absl::Status sticky = broken;
    lock.unlock();
    absl::Status status = sticky;
    if (sticky.ok()) {
      status = task.fn(absl::Now() + options.timeout);
      if (!status.ok()) {
        spdlog::error("[job={} rank={}] cpu collective failed: {}", options.job, options.rank,
                      status.ToString());
        transport->Abort(status);
      }
    }
    task.work->Complete(status);
    lock.lock();
    if (sticky.ok() && !status.ok() && broken.ok()) {
      broken =
          absl::Status(status.code(), absl::StrCat("communicator is broken: ", status.message()));
    }
    executing = false;
    cv.notify_all();
  }

  void WorkerLoop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return (stopping && !executing) || (!queue.empty() && !executing); });
      if (queue.empty()) return;  // stopping and drained
      RunLocked(lock);
    }
  }

  // Runs queued tasks on the calling thread until `work` is done, as long as nobody else is
  // running one.
  void HelpUntilDone(const CompletionWork* work) {
    std::unique_lock<std::mutex> lock(mu);
    while (!executing && !queue.empty()) {
      bool mine_queued = false;
      for (const Task& t : queue) mine_queued |= t.work.get() == work;
      if (!mine_queued) return;
      RunLocked(lock);
    }
  }
};

class CpuWork : public CompletionWork {
 public:
  explicit CpuWork(std::weak_ptr<Stream> stream) : stream_(std::move(stream)) {}
  absl::Status Wait(absl::Duration timeout) override {
    if (!Test()) {
      // Running inline may take up to the communicator timeout, so only when the caller is
      // prepared to wait that long anyway.
      std::shared_ptr<Stream> s = stream_.lock();
      if (s != nullptr && timeout >= s->options.timeout) s->HelpUntilDone(this);
    }
    return CompletionWork::Wait(timeout);
  }

 private:
  std::weak_ptr<Stream> stream_;
};

class CpuCommunicator : public collective::Communicator {
 public:
  CpuCommunicator(const CommunicatorOptions& options, Rendezvous rendezvous,
                  std::unique_ptr<CpuTransportImpl> transport)
      : options_(options), rendezvous_(std::move(rendezvous)), stream_(std::make_shared<Stream>()) {
    stream_->options = options;
    stream_->transport = std::move(transport);
    worker_ = std::thread([s = stream_] { s->WorkerLoop(); });
  }

  ~CpuCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(stream_->mu);
      stream_->stopping = true;
    }
    stream_->cv.notify_all();
    worker_.join();
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  Backend backend() const override { return Backend::kCpu; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  absl::Status health() const override { return stream_->Health(); }

  std::shared_ptr<Work> AllReduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op) override {
    if (count > 0 && (send == nullptr || recv == nullptr)) return NullBuffer("AllReduce");
    return Enqueue([=, t = transport()](absl::Time deadline) {
      if (count == 0) return absl::OkStatus();  // in order, but nothing to move
      return t->AllReduce(send, recv, count, type, op, deadline);
    });
  }

  std::shared_ptr<Work> Broadcast(const void* send, void* recv, size_t count, DataType type,
                                  int root) override {
    if (root < 0 || root >= world_size()) {
      return MakeCompletedWork(absl::InvalidArgumentError(
          absl::StrCat("Broadcast root ", root, " is outside [0, ", world_size(), ")")));
    }
    if (count > 0 && (recv == nullptr || (rank() == root && send == nullptr))) {
      return NullBuffer("Broadcast");
    }
    return Enqueue([=, t = transport()](absl::Time deadline) {
      if (count == 0) return absl::OkStatus();
      return t->Broadcast(send, recv, count, type, root, deadline);
    });
  }

  std::shared_ptr<Work> AllGather(const void* send, void* recv, size_t send_count,
                                  DataType type) override {
    if (send_count > 0 && (send == nullptr || recv == nullptr)) return NullBuffer("AllGather");
    return Enqueue([=, t = transport()](absl::Time deadline) {
      if (send_count == 0) return absl::OkStatus();
      return t->AllGather(send, recv, send_count, type, deadline);
    });
  }

  std::shared_ptr<Work> ReduceScatter(const void* send, void* recv, size_t recv_count,
                                      DataType type, ReduceOp op) override {
    if (recv_count > 0 && (send == nullptr || recv == nullptr)) return NullBuffer("ReduceScatter");
    return Enqueue([=, t = transport()](absl::Time deadline) {
      if (recv_count == 0) return absl::OkStatus();
      return t->ReduceScatter(send, recv, recv_count, type, op, deadline);
    });
  }

  std::shared_ptr<Work> Barrier() override {
    return Enqueue([t = transport()](absl::Time deadline) { return t->Barrier(deadline); });
  }

 private:
  CpuTransportImpl* transport() const { return stream_->transport.get(); }

  std::shared_ptr<Work> NullBuffer(absl::string_view op) {
    return MakeCompletedWork(
        absl::InvalidArgumentError(absl::StrCat(op, ": null buffer with a non-zero count")));
  }

  std::shared_ptr<Work> Enqueue(std::function<absl::Status(absl::Time)> fn) {
    auto work = std::make_shared<CpuWork>(stream_);
    {
      std::lock_guard<std::mutex> lock(stream_->mu);
      stream_->queue.push_back(Stream::Task{std::move(fn), work});
    }
    stream_->cv.notify_all();
    return work;
  }

  const CommunicatorOptions options_;
  Rendezvous rendezvous_;
  std::shared_ptr<Stream> stream_;
  std::thread worker_;
};

struct PeerInfo {
  std::string host;
  std::string address;
  int port = 0;
  int pid = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<collective::Communicator>> CreateCpuCommunicator(
    const CommunicatorOptions& options) {
  KT_RETURN_IF_ERROR(ValidateOptions(options));
  const int rank = options.rank, world = options.world_size;
  if (world == 1) {
    return std::make_unique<CpuCommunicator>(options, Rendezvous{},
                                             std::make_unique<LocalTransport>());
  }
  const absl::Time deadline = absl::Now() + options.timeout;
  KT_ASSIGN_OR_RETURN(Rendezvous rv, StartRendezvous(options));
  collective::TcpStoreClient* store = rv.client.get();
  const std::string prefix = absl::StrCat(options.store_prefix, "/cpu");

  int listen_port = 0;
  KT_ASSIGN_OR_RETURN(int listen_fd, Listen(0, &listen_port));
  const std::string node_id = options.cpu_node_id.empty() ? DefaultNodeId() : options.cpu_node_id;
  const std::string my_address = rank == 0 ? options.master_addr : store->local_address();
  absl::Status set =
      store->Set(absl::StrCat(prefix, "/rank/", rank),
                 absl::StrCat(node_id, "\t", my_address, "\t", listen_port, "\t", getpid()));
  if (!set.ok()) {
    CloseFd(listen_fd);
    return set;
  }
  std::vector<PeerInfo> peers(world);
  for (int r = 0; r < world; ++r) {
    absl::StatusOr<std::string> v =
        store->Get(absl::StrCat(prefix, "/rank/", r), /*wait=*/true, deadline - absl::Now());
    if (!v.ok()) {
      CloseFd(listen_fd);
      return absl::Status(v.status().code(), absl::StrCat("rank ", rank, " waiting for rank ", r,
                                                          " to join: ", v.status().message()));
    }
    std::vector<std::string> parts = absl::StrSplit(*v, '\t');
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[2], &peers[r].port) ||
        !absl::SimpleAtoi(parts[3], &peers[r].pid)) {
      CloseFd(listen_fd);
      return absl::InternalError(absl::StrCat("malformed rendezvous entry for rank ", r));
    }
    peers[r].host = parts[0];
    peers[r].address = parts[1];
  }

  // Group ranks by node, nodes numbered by their lowest rank.
  Topology topo;
  topo.rank = rank;
  topo.world_size = world;
  topo.node_of.resize(world);
  topo.local_index.resize(world);
  std::map<std::string, int> node_index;
  for (int r = 0; r < world; ++r) {
    auto [it, inserted] = node_index.emplace(peers[r].host, static_cast<int>(node_index.size()));
    if (inserted) topo.node_ranks.emplace_back();
    topo.node_of[r] = it->second;
    topo.local_index[r] = static_cast<int>(topo.node_ranks[it->second].size());
    topo.node_ranks[it->second].push_back(r);
  }
  const int nodes = static_cast<int>(topo.node_ranks.size());
  const bool one_rank_per_node = nodes == world;
  if (options.cpu_transport == CpuTransport::kShm && nodes > 1) {
    CloseFd(listen_fd);
    return absl::FailedPreconditionError(
        "cpu_transport=shm but the ranks are on different nodes; use auto or tcp");
  }
  auto make_shm = [&](int node) -> absl::StatusOr<std::unique_ptr<CpuTransportImpl>> {
    const std::vector<int>& members = topo.node_ranks[node];
    if (members.size() == 1) return std::unique_ptr<CpuTransportImpl>(new LocalTransport());
    ShmTransportOptions so;
    so.rank = topo.local_index[rank];
    so.world_size = static_cast<int>(members.size());
    so.slot_bytes = options.cpu_shm_slot_bytes / 64 * 64;
    so.one_shot_bytes = options.cpu_shm_one_shot_bytes;
    so.key_prefix = absl::StrCat(prefix, "/node", node);
    so.global_ranks = members;
    so.segment_name =
        absl::StrCat("/kubetrain-", Sanitize(options.job), "-", options.master_port, "-",
                     peers[members[0]].pid, "-", Sanitize(options.store_prefix), "-n", node);
    return CreateShmTransport(so, store, deadline);
  };
  auto make_tcp = [&](const std::vector<int>& members, int index, int fd,
                      const std::string& key) -> absl::StatusOr<std::unique_ptr<CpuTransportImpl>> {
    TcpTransportOptions to;
    to.rank = index;
    to.world_size = static_cast<int>(members.size());
    to.chunk_bytes = options.cpu_tcp_chunk_bytes;
    to.key_prefix = absl::StrCat(prefix, key);
    to.listen_fd = fd;
    to.global_ranks = members;
    for (int r : members) to.peers.push_back(TcpPeer{peers[r].address, peers[r].port});
    return CreateTcpTransport(to, store, deadline);
  };

  std::unique_ptr<CpuTransportImpl> transport;
  std::vector<int> everyone(world);
  for (int r = 0; r < world; ++r) everyone[r] = r;
  if (options.cpu_transport == CpuTransport::kTcp || one_rank_per_node) {
    KT_ASSIGN_OR_RETURN(transport, make_tcp(everyone, rank, listen_fd, ""));
  } else if (nodes == 1) {
    CloseFd(listen_fd);
    KT_ASSIGN_OR_RETURN(transport, make_shm(0));
  } else {
    const int node = topo.node_of[rank];
    const bool leader = topo.local_index[rank] == 0;
    absl::StatusOr<std::unique_ptr<CpuTransportImpl>> intra = make_shm(node);
    if (!intra.ok()) {
      CloseFd(listen_fd);
      return intra.status();
    }
    std::unique_ptr<CpuTransportImpl> inter;
    if (leader) {
      std::vector<int> leaders;
      for (const auto& members : topo.node_ranks) leaders.push_back(members[0]);
      KT_ASSIGN_OR_RETURN(inter, make_tcp(leaders, node, listen_fd, "/leaders"));
    } else {
      CloseFd(listen_fd);
    }
    transport = CreateHierarchicalTransport(std::move(topo), *std::move(intra), std::move(inter));
  }
  KT_RETURN_IF_ERROR(store->Barrier(absl::StrCat(prefix, "/ready"), world, deadline - absl::Now()));
  if (rank == 0) {
    spdlog::info("[job={} rank=0] cpu communicator up: {} ranks on {} node(s), transport {}",
                 options.job, world, nodes, transport->name());
  }
  return std::make_unique<CpuCommunicator>(options, std::move(rv), std::move(transport));
}

}  // namespace kubetrain::collective_internal
