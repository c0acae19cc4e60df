#include "nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "../rendezvous.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace kubetrain::collective_internal {
namespace {

using collective::Backend;
using collective::CommunicatorOptions;
using collective::DataType;
using collective::MakeCompletedWork;
using collective::MemoryKind;
using collective::ReduceOp;
using collective::Work;

absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, " failed: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

absl::Status NcclStatus(ncclResult_t r, const char* what, ncclComm_t comm = nullptr) {
  if (r == ncclSuccess) return absl::OkStatus();
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  const absl::StatusCode code = r == ncclRemoteError ? absl::StatusCode::kUnavailable
                                : r == ncclInvalidArgument || r == ncclInvalidUsage
                                    ? absl::StatusCode::kInvalidArgument
                                    : absl::StatusCode::kInternal;
  return absl::Status(code,
                      absl::StrCat(what, " failed: ", ncclGetErrorString(r),
                                   last != nullptr && *last ? absl::StrCat(" (", last, ")") : ""));
}

ncclDataType_t ToNccl(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kBFloat16:
      return ncclBfloat16;
    case DataType::kFloat16:
      return ncclFloat16;
    case DataType::kFloat64:
      return ncclFloat64;
    case DataType::kInt32:
      return ncclInt32;
    case DataType::kInt64:
      return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

// State shared by the communicator, its Works and the watchdog.
struct Shared {
  ncclComm_t comm = nullptr;
  int device = 0;
  int rank = 0;
  absl::Duration timeout;
  std::mutex mu;
  absl::Status broken;  // sticky
  bool aborted = false;

  // Marks the communicator broken and aborts NCCL once. Returns the sticky status.
  absl::Status Fail(const absl::Status& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (broken.ok()) {
      broken = absl::Status(why.code(), absl::StrCat("rank ", rank,
                                                     ": nccl communicator is "
                                                     "broken: ",
                                                     why.message()));
      spdlog::error("{}; calling ncclCommAbort", broken.ToString());
    }
    if (!aborted && comm != nullptr) {
      aborted = true;
      ncclCommAbort(comm);
    }
    return broken;
  }
  absl::Status Health() {
    std::lock_guard<std::mutex> lock(mu);
    if (!broken.ok() || aborted || comm == nullptr) return broken;
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      return absl::Status(absl::StatusCode::kUnavailable,
                          absl::StrCat("async NCCL error: ", ncclGetErrorString(async)));
    }
    return absl::OkStatus();
  }
};

class NcclWork : public Work, public std::enable_shared_from_this<NcclWork> {
 public:
  NcclWork(std::shared_ptr<Shared> shared, cudaEvent_t event)
      : shared_(std::move(shared)), event_(event), started_(absl::Now()) {}
  ~NcclWork() override { cudaEventDestroy(event_); }

  bool Test() override {
    std::lock_guard<std::mutex> lock(mu_);
    return TestLocked();
  }

  absl::Status Wait(absl::Duration timeout) override {
    const absl::Time bound = started_ + shared_->timeout;
    const absl::Time until =
        timeout == absl::InfiniteDuration() ? bound : std::min(bound, absl::Now() + timeout);
    while (!Test()) {
      sched_yield();
      if (absl::Now() >= until) {
        if (until == bound) {
          Finish(shared_->Fail(absl::DeadlineExceededError(absl::StrCat(
              "collective did not complete within ", absl::FormatDuration(shared_->timeout),
              " (a peer rank is dead or stuck)"))));
          break;
        }
        return absl::DeadlineExceededError("NCCL collective still running");
      }
    }
    return status();
  }

  absl::Status status() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) return absl::UnavailableError("NCCL collective still running");
    return status_;
  }

  absl::Time started() const { return started_; }
  void Finish(absl::Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) {
      done_ = true;
      status_ = std::move(s);
    }
  }

 private:
  bool TestLocked() {
    if (done_) return true;
    cudaError_t e = cudaEventQuery(event_);
    if (e == cudaSuccess) {
      done_ = true;
      return true;
    }
    if (e != cudaErrorNotReady) {
      done_ = true;
      status_ = shared_->Fail(CudaStatus(e, "cudaEventQuery"));
      return true;
    }
    absl::Status health = shared_->Health();
    if (!health.ok()) {
      done_ = true;
      status_ = shared_->Fail(health);
      return true;
    }
    return false;
  }

  std::shared_ptr<Shared> shared_;
  cudaEvent_t event_;
  const absl::Time started_;
  std::mutex mu_;
  bool done_ = false;
  absl::Status status_;
};

class NcclCommunicator : public collective::Communicator {
 public:
  NcclCommunicator(const CommunicatorOptions& options, Rendezvous rv, std::shared_ptr<Shared> s,
                   cudaStream_t stream, void* barrier_buf)
      : options_(options),
        rv_(std::move(rv)),
        shared_(std::move(s)),
        stream_(stream),
        barrier_buf_(barrier_buf) {
    watchdog_ = std::thread([this] { Watchdog(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(wd_mu_);
      stopping_ = true;
    }
    wd_cv_.notify_all();
    watchdog_.join();
    cudaSetDevice(shared_->device);
    bool aborted;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      aborted = shared_->aborted;
    }
    if (!aborted) {
      cudaStreamSynchronize(stream_);
      ncclCommFinalize(shared_->comm);
      ncclResult_t state = ncclInProgress;
      const absl::Time until = absl::Now() + options_.timeout;
      while (state == ncclInProgress && absl::Now() < until) {
        ncclCommGetAsyncError(shared_->comm, &state);
        if (state == ncclInProgress) sched_yield();
      }
      if (state == ncclSuccess) {
        ncclCommDestroy(shared_->comm);
      } else {
        ncclCommAbort(shared_->comm);
      }
    }
    cudaFree(barrier_buf_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  Backend backend() const override { return Backend::kNccl; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }
  absl::Status health() const override { return shared_->Health(); }

  std::shared_ptr<Work> AllReduce(const void* send, void* recv, size_t count, DataType type,
                                  ReduceOp op) override {
    return Launch("ncclAllReduce", [&] {
      return ncclAllReduce(send, recv, count, ToNccl(type), ToNccl(op), shared_->comm, stream_);
    });
  }
  std::shared_ptr<Work> Broadcast(const void* send, void* recv, size_t count, DataType type,
                                  int root) override {
    if (root < 0 || root >= world_size()) {
      return MakeCompletedWork(absl::InvalidArgumentError(
          absl::StrCat("Broadcast root ", root, " is outside [0, ", world_size(), ")")));
    }
    return Launch("ncclBroadcast", [&] {
      return ncclBroadcast(send, recv, count, ToNccl(type), root, shared_->comm, stream_);
    });
  }
  std::shared_ptr<Work> AllGather(const void* send, void* recv, size_t send_count,
                                  DataType type) override {
    return Launch("ncclAllGather", [&] {
      return ncclAllGather(send, recv, send_count, ToNccl(type), shared_->comm, stream_);
    });
  }
  std::shared_ptr<Work> ReduceScatter(const void* send, void* recv, size_t recv_count,
                                      DataType type, ReduceOp op) override {
    return Launch("ncclReduceScatter", [&] {
      return ncclReduceScatter(send, recv, recv_count, ToNccl(type), ToNccl(op), shared_->comm,
                               stream_);
    });
  }
  std::shared_ptr<Work> Barrier() override {
    return Launch("ncclAllReduce(barrier)", [&] {
      return ncclAllReduce(barrier_buf_, barrier_buf_, 1, ncclFloat32, ncclSum, shared_->comm,
                           stream_);
    });
  }

 private:
  template <typename Call>
  std::shared_ptr<Work> Launch(const char* what, Call call) {
    // NCCL calls on one communicator must not race; callers may share the communicator.
    std::lock_guard<std::mutex> launch(launch_mu_);
    absl::Status health = shared_->Health();
    if (!health.ok()) return MakeCompletedWork(shared_->Fail(health));
    cudaSetDevice(shared_->device);
    ncclResult_t r = call();
    // Non-blocking communicators may return ncclInProgress while the call is being enqueued.
    const absl::Time until = absl::Now() + options_.timeout;
    while (r == ncclInProgress) {
      if (absl::Now() >= until) {
        return MakeCompletedWork(
            shared_->Fail(absl::DeadlineExceededError(absl::StrCat(what, " did not enqueue"))));
      }
      sched_yield();
      ncclCommGetAsyncError(shared_->comm, &r);
    }
    if (r != ncclSuccess)
      return MakeCompletedWork(shared_->Fail(NcclStatus(r, what, shared_->comm)));
    cudaEvent_t event;
    absl::Status s =
        CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
    if (s.ok()) s = CudaStatus(cudaEventRecord(event, stream_), "cudaEventRecord");
    if (!s.ok()) return MakeCompletedWork(shared_->Fail(s));
    auto work = std::make_shared<NcclWork>(shared_, event);
    std::lock_guard<std::mutex> lock(wd_mu_);
    pending_.push_back(work);
    return work;
  }

  // Polls for async errors and overdue operations; aborts NCCL so blocked ranks return.
  void Watchdog() {
    std::unique_lock<std::mutex> lock(wd_mu_);
    while (!wd_cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.nccl_watchdog_interval),
                            [&] { return stopping_; })) {
      for (auto it = pending_.begin(); it != pending_.end();) {
        std::shared_ptr<NcclWork> w = it->lock();
        if (w == nullptr || w->Test()) {
          it = pending_.erase(it);
          continue;
        }
        if (absl::Now() - w->started() > options_.timeout) {
          absl::Status s = shared_->Fail(absl::DeadlineExceededError(absl::StrCat(
              "watchdog: a collective exceeded the timeout of ",
              absl::FormatDuration(options_.timeout), " (a peer rank is dead or stuck)")));
          w->Finish(s);
        }
        ++it;
      }
    }
  }

  const CommunicatorOptions options_;
  Rendezvous rv_;
  std::shared_ptr<Shared> shared_;
  cudaStream_t stream_;
  void* barrier_buf_;
  std::mutex launch_mu_;
  std::mutex wd_mu_;
  std::condition_variable wd_cv_;
  bool stopping_ = false;
  std::list<std::weak_ptr<NcclWork>> pending_;
  std::thread watchdog_;
};

}  // namespace

int CudaDeviceCount(std::string* why) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) *why = absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorString(e));
    return 0;
  }
  if (count == 0 && why) *why = "no CUDA device visible";
  return count;
}

absl::StatusOr<std::unique_ptr<collective::Communicator>> CreateNcclCommunicator(
    const CommunicatorOptions& options) {
  KT_RETURN_IF_ERROR(ValidateOptions(options));
  std::string why;
  const int devices = CudaDeviceCount(&why);
  if (devices == 0) {
    return absl::FailedPreconditionError(absl::StrCat("NCCL backend needs a GPU: ", why));
  }
  auto shared = std::make_shared<Shared>();
  shared->device = options.cuda_device >= 0 ? options.cuda_device : options.local_rank % devices;
  shared->rank = options.rank;
  shared->timeout = options.timeout;
  KT_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(shared->device), "cudaSetDevice"));

  const absl::Time deadline = absl::Now() + options.timeout;
  ncclUniqueId id;
  Rendezvous rv;
  if (options.world_size == 1) {
    KT_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  } else {
    KT_ASSIGN_OR_RETURN(rv, StartRendezvous(options));
    const std::string key = absl::StrCat(options.store_prefix, "/nccl/unique_id");
    if (options.rank == 0) {
      KT_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
      KT_RETURN_IF_ERROR(rv.client->Set(key, std::string(id.internal, sizeof(id.internal))));
    } else {
      KT_ASSIGN_OR_RETURN(std::string bytes,
                          rv.client->Get(key, /*wait=*/true, deadline - absl::Now()));
      if (bytes.size() != sizeof(id.internal)) {
        return absl::InternalError("malformed NCCL unique id in the rendezvous store");
      }
      std::memcpy(id.internal, bytes.data(), bytes.size());
    }
  }

  // Non-blocking init so a missing peer cannot hang us: poll until ready or the deadline.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, options.world_size, id, options.rank, &config);
  while (r == ncclInProgress) {
    if (absl::Now() >= deadline) {
      ncclCommAbort(comm);
      return absl::DeadlineExceededError(
          absl::StrCat("ncclCommInitRank on rank ", options.rank, " did not finish within ",
                       absl::FormatDuration(options.timeout), " (did every rank start?)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ncclCommGetAsyncError(comm, &r);
  }
  if (r != ncclSuccess) {
    absl::Status s = NcclStatus(r, "ncclCommInitRankConfig", comm);
    if (comm != nullptr) ncclCommAbort(comm);
    return s;
  }
  shared->comm = comm;
  cudaStream_t stream;
  KT_RETURN_IF_ERROR(
      CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  void* barrier_buf = nullptr;
  KT_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&barrier_buf, sizeof(float)), "cudaMalloc"));
  KT_RETURN_IF_ERROR(CudaStatus(cudaMemset(barrier_buf, 0, sizeof(float)), "cudaMemset"));
  return std::make_unique<NcclCommunicator>(options, std::move(rv), std::move(shared), stream,
                                            barrier_buf);
}

}  // namespace kubetrain::collective_internal
