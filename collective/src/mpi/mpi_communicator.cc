#include <sched.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "../net.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/collective/env.h"
#include "kubetrain/collective/mpi.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective {
namespace {

std::mutex& MpiMutex() {
  static std::mutex mu;
  return mu;
}

template <DataType T, ReduceOp O>
void HalfOp(void* in, void* inout, int* len, MPI_Datatype*) {
  const void* srcs[2] = {inout, in};
  ReduceHost(T, O, inout, srcs, 2, static_cast<size_t>(*len), 0);
}

// Process-wide MPI handles for the 2-byte float types and their ops, created once.
struct HalfTypes {
  MPI_Datatype bf16 = MPI_DATATYPE_NULL, fp16 = MPI_DATATYPE_NULL;
  MPI_Op ops[2][3];  // [bf16, fp16][sum, max, min]
};

const HalfTypes& Halves() {
  static HalfTypes* h = [] {
    auto* t = new HalfTypes();
    MPI_Type_contiguous(2, MPI_BYTE, &t->bf16);
    MPI_Type_commit(&t->bf16);
    MPI_Type_contiguous(2, MPI_BYTE, &t->fp16);
    MPI_Type_commit(&t->fp16);
    MPI_Op_create(&HalfOp<DataType::kBFloat16, ReduceOp::kSum>, 1, &t->ops[0][0]);
    MPI_Op_create(&HalfOp<DataType::kBFloat16, ReduceOp::kMax>, 1, &t->ops[0][1]);
    MPI_Op_create(&HalfOp<DataType::kBFloat16, ReduceOp::kMin>, 1, &t->ops[0][2]);
    MPI_Op_create(&HalfOp<DataType::kFloat16, ReduceOp::kSum>, 1, &t->ops[1][0]);
    MPI_Op_create(&HalfOp<DataType::kFloat16, ReduceOp::kMax>, 1, &t->ops[1][1]);
    MPI_Op_create(&HalfOp<DataType::kFloat16, ReduceOp::kMin>, 1, &t->ops[1][2]);
    return t;
  }();
  return *h;
}

MPI_Datatype ToMpi(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return MPI_FLOAT;
    case DataType::kFloat64:
      return MPI_DOUBLE;
    case DataType::kInt32:
      return MPI_INT32_T;
    case DataType::kInt64:
      return MPI_INT64_T;
    case DataType::kBFloat16:
      return Halves().bf16;
    case DataType::kFloat16:
      return Halves().fp16;
  }
  return MPI_BYTE;
}

MPI_Op ToMpi(DataType t, ReduceOp op) {
  const int idx = op == ReduceOp::kMax ? 1 : op == ReduceOp::kMin ? 2 : 0;  // avg = sum + divide
  if (t == DataType::kBFloat16) return Halves().ops[0][idx];
  if (t == DataType::kFloat16) return Halves().ops[1][idx];
  return idx == 1 ? MPI_MAX : idx == 2 ? MPI_MIN : MPI_SUM;
}

class MpiWork : public Work {
 public:
  MpiWork(MPI_Request request, absl::Duration bound, std::function<void()> finish)
      : request_(request), bound_(absl::Now() + bound), finish_(std::move(finish)) {}

  absl::Status Wait(absl::Duration timeout) override {
    const absl::Time until =
        timeout == absl::InfiniteDuration() ? bound_ : std::min(bound_, absl::Now() + timeout);
    uint64_t spins = 0;
    while (!Test()) {
      if (++spins > 64) sched_yield();
      if ((spins & 255) == 0 && absl::Now() >= until) {
        if (until == bound_) {
          return absl::DeadlineExceededError(
              "MPI collective did not complete within the communicator timeout (a peer rank is "
              "stuck or dead; MPI cannot cancel the operation)");
        }
        return absl::DeadlineExceededError(absl::StrCat(
            "MPI collective still running after waiting ", absl::FormatDuration(timeout)));
      }
    }
    return status();
  }

  bool Test() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return true;
    int flag = 0;
    int rc;
    {
      std::lock_guard<std::mutex> mpi(MpiMutex());
      rc = MPI_Test(&request_, &flag, MPI_STATUS_IGNORE);
    }
    if (rc != MPI_SUCCESS) {
      status_ = MpiStatus(rc, "MPI_Test");
      done_ = true;
      return true;
    }
    if (flag) {
      if (finish_) finish_();
      done_ = true;
    }
    return done_;
  }

  absl::Status status() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) return absl::UnavailableError("MPI collective still running");
    return status_;
  }

 private:
  std::mutex mu_;
  MPI_Request request_;
  const absl::Time bound_;
  std::function<void()> finish_;
  bool done_ = false;
  absl::Status status_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int world, const CommunicatorOptions& options)
      : comm_(comm), rank_(rank), world_(world), options_(options) {}
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      std::lock_guard<std::mutex> mpi(MpiMutex());
      MPI_Comm_free(&comm_);
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  Backend backend() const override { return Backend::kMpi; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  absl::Status health() const override { return absl::OkStatus(); }

  std::shared_ptr<Work> AllReduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op) override {
    if (auto bad = Check(count, "AllReduce")) return bad;
    std::function<void()> finish;
    if (op == ReduceOp::kAvg) {
      finish = [recv, count, type, w = world_] { DivideHost(type, recv, count, w); };
    }
    return Launch("MPI_Iallreduce", std::move(finish), [&](MPI_Request* req) {
      return MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, static_cast<int>(count),
                            ToMpi(type), ToMpi(type, op), comm_, req);
    });
  }

  std::shared_ptr<Work> Broadcast(const void* send, void* recv, size_t count, DataType type,
                                  int root) override {
    if (root < 0 || root >= world_) {
      return MakeCompletedWork(absl::InvalidArgumentError(
          absl::StrCat("Broadcast root ", root, " is outside [0, ", world_, ")")));
    }
    if (auto bad = Check(count, "Broadcast")) return bad;
    if (rank_ == root && send != recv) std::memcpy(recv, send, count * DataTypeSize(type));
    return Launch("MPI_Ibcast", nullptr, [&](MPI_Request* req) {
      return MPI_Ibcast(recv, static_cast<int>(count), ToMpi(type), root, comm_, req);
    });
  }

  std::shared_ptr<Work> AllGather(const void* send, void* recv, size_t send_count,
                                  DataType type) override {
    if (auto bad = Check(send_count * world_, "AllGather")) return bad;
    const bool in_place =
        static_cast<const char*>(recv) + rank_ * send_count * DataTypeSize(type) == send;
    return Launch("MPI_Iallgather", nullptr, [&](MPI_Request* req) {
      return MPI_Iallgather(in_place ? MPI_IN_PLACE : send, static_cast<int>(send_count),
                            ToMpi(type), recv, static_cast<int>(send_count), ToMpi(type), comm_,
                            req);
    });
  }

  std::shared_ptr<Work> ReduceScatter(const void* send, void* recv, size_t recv_count,
                                      DataType type, ReduceOp op) override {
    if (auto bad = Check(recv_count * world_, "ReduceScatter")) return bad;
    const size_t es = DataTypeSize(type);
    // MPI's in-place layout differs from ours (NCCL's), so results go through a scratch buffer
    // whenever recv lies inside send.
    const char* s = static_cast<const char*>(send);
    const char* r = static_cast<const char*>(recv);
    const bool overlaps = r >= s && r < s + recv_count * world_ * es;
    auto scratch = overlaps ? std::make_shared<std::vector<char>>(recv_count * es) : nullptr;
    void* target = overlaps ? scratch->data() : recv;
    std::function<void()> finish = [=, w = world_] {
      if (op == ReduceOp::kAvg) DivideHost(type, target, recv_count, w);
      if (scratch) std::memcpy(recv, scratch->data(), scratch->size());
    };
    return Launch("MPI_Ireduce_scatter_block", std::move(finish), [&](MPI_Request* req) {
      return MPI_Ireduce_scatter_block(send, target, static_cast<int>(recv_count), ToMpi(type),
                                       ToMpi(type, op), comm_, req);
    });
  }

  std::shared_ptr<Work> Barrier() override {
    return Launch("MPI_Ibarrier", nullptr,
                  [&](MPI_Request* req) { return MPI_Ibarrier(comm_, req); });
  }

 private:
  std::shared_ptr<Work> Check(size_t count, const char* op) {
    if (count > static_cast<size_t>(INT_MAX)) {
      return MakeCompletedWork(absl::InvalidArgumentError(
          absl::StrCat(op, ": ", count, " elements exceed MPI's int count; split the buffer")));
    }
    return nullptr;
  }

  template <typename Start>
  std::shared_ptr<Work> Launch(const char* what, std::function<void()> finish, Start start) {
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
    {
      std::lock_guard<std::mutex> mpi(MpiMutex());
      rc = start(&req);
    }
    if (rc != MPI_SUCCESS) return MakeCompletedWork(MpiStatus(rc, what));
    return std::make_shared<MpiWork>(req, options_.timeout, std::move(finish));
  }

  MPI_Comm comm_;
  const int rank_, world_;
  const CommunicatorOptions options_;
};

absl::Status EnsureMpiInitialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return absl::OkStatus();
  int provided = 0;
  return MpiStatus(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided),
                   "MPI_Init_thread");
}

}  // namespace

absl::Status MpiStatus(int code, const char* what) {
  if (code == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return absl::InternalError(
      absl::StrCat(what, " failed: ", std::string(text, len), " (code ", code, ")"));
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(
    MPI_Comm comm, const CommunicatorOptions& options) {
  KT_RETURN_IF_ERROR(EnsureMpiInitialized());
  std::lock_guard<std::mutex> mpi(MpiMutex());
  (void)Halves();
  MPI_Comm dup = MPI_COMM_NULL;
  KT_RETURN_IF_ERROR(MpiStatus(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup"));
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  int rank = 0, world = 1;
  MPI_Comm_rank(dup, &rank);
  MPI_Comm_size(dup, &world);
  CommunicatorOptions o = options;
  o.rank = rank;
  o.world_size = world;
  return std::make_unique<MpiCommunicator>(dup, rank, world, o);
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicatorFromMpi(
    Backend backend, MPI_Comm comm, CommunicatorOptions options) {
  if (backend == Backend::kMpi) return CreateMpiCommunicator(comm, options);
  KT_RETURN_IF_ERROR(EnsureMpiInitialized());
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  options.rank = rank;
  options.world_size = world;
  if (options.local_rank == 0) {
    absl::StatusOr<CommunicatorOptions> env = OptionsFromEnvironment();
    if (env.ok()) options.local_rank = env->local_rank;
  }
  // Rank 0 picks a free port and its host name; everyone learns them over MPI.
  struct {
    int port;
    char host[256];
  } addr{};
  if (rank == 0) {
    int port = 0;
    absl::StatusOr<int> fd = collective_internal::Listen(0, &port);
    if (fd.ok()) collective_internal::CloseFd(*fd);
    addr.port = fd.ok() ? port : -1;
    if (world == 1) {
      std::strncpy(addr.host, "127.0.0.1", sizeof(addr.host) - 1);
    } else {
      gethostname(addr.host, sizeof(addr.host) - 1);
    }
  }
  KT_RETURN_IF_ERROR(MpiStatus(MPI_Bcast(&addr, sizeof(addr), MPI_BYTE, 0, comm), "MPI_Bcast"));
  if (addr.port <= 0) return absl::UnavailableError("rank 0 could not pick a rendezvous port");
  options.master_port = addr.port;
  options.master_addr = addr.host;
  return CreateCommunicator(backend, options);
}

}  // namespace kubetrain::collective
