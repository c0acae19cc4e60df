#include "tcp_transport.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "../net.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective_internal {
namespace {

class TcpTransport : public CpuTransportImpl {
 public:
  TcpTransport(const TcpTransportOptions& options, collective::TcpStoreClient* store, int next_fd,
               int prev_fd)
      : rank_(options.rank),
        world_(options.world_size),
        chunk_bytes_(std::max<size_t>(options.chunk_bytes, 4096)),
        prefix_(options.key_prefix),
        store_(store),
        next_fd_(next_fd),
        prev_fd_(prev_fd),
        global_(options.global_ranks) {
    if (global_.empty()) {
      for (int i = 0; i < world_; ++i) global_.push_back(i);
    }
    const int next = (rank_ + 1) % world_, prev = (rank_ + world_ - 1) % world_;
    next_name_ = absl::StrCat("rank ", global_[next], " (", options.peers[next].address, ":",
                              options.peers[next].port, ")");
    prev_name_ = absl::StrCat("rank ", global_[prev], " (", options.peers[prev].address, ":",
                              options.peers[prev].port, ")");
  }
  ~TcpTransport() override {
    CloseFd(next_fd_);
    CloseFd(prev_fd_);
  }

  const char* name() const override { return "tcp"; }

  // Segment i of `count` elements split world_ ways.
  size_t SegLo(size_t count, int i) const { return count * i / world_; }
  size_t SegLen(size_t count, int i) const { return SegLo(count, i + 1) - SegLo(count, i); }

  absl::Status Exchange(const char* send, size_t send_len, char* recv, size_t recv_len,
                        absl::Time deadline) {
    absl::Status s = SendRecv(next_fd_, send, send_len, next_name_, prev_fd_, recv, recv_len,
                              prev_name_, deadline);
    return Explain(std::move(s));
  }

  // Adds what other ranks reported to a link failure (see the file comment).
  absl::Status Explain(absl::Status s) {
    if (s.ok()) return s;
    if (s.code() == absl::StatusCode::kDeadlineExceeded) return ExplainTimeout(s);
    // A neighbour that failed first records why before closing its links; give it a moment
    // (longer after a timeout, since every stuck rank times out at about the same time).
    const absl::Duration grace = s.code() == absl::StatusCode::kDeadlineExceeded
                                     ? absl::Seconds(1)
                                     : absl::Milliseconds(200);
    absl::StatusOr<std::string> abort =
        store_->Get(absl::StrCat(prefix_, "/abort"), /*wait=*/true, grace);
    if (!abort.ok()) {
      return absl::Status(s.code(), absl::StrCat("rank ", global_[rank_], ": ", s.message()));
    }
    return absl::Status(s.code(), absl::StrCat("rank ", global_[rank_], ": ", s.message(),
                                               "; first failure: ", *abort));
  }

  // Every rank that times out publishes whom it was waiting for; following that chain from
  // our own wait leads to the rank that is not progressing (it never times out itself because
  // it is not inside this collective).
  absl::Status ExplainTimeout(const absl::Status& s) {
    const int prev = (rank_ + world_ - 1) % world_, next = (rank_ + 1) % world_;
    const int waiting_for = absl::StrContains(s.message(), "timed out receiving") ? prev : next;
    (void)store_->Set(absl::StrCat(prefix_, "/waiting/", rank_), absl::StrCat(waiting_for));
    absl::SleepFor(absl::Seconds(1));  // let the other stuck ranks publish theirs
    std::vector<bool> seen(world_, false);
    seen[rank_] = true;
    int cur = waiting_for;
    std::string chain = absl::StrCat("rank ", global_[rank_], " -> rank ", global_[cur]);
    while (!seen[cur]) {
      seen[cur] = true;
      absl::StatusOr<std::string> v =
          store_->Get(absl::StrCat(prefix_, "/waiting/", cur), /*wait=*/false);
      int nxt = -1;
      if (!v.ok() || !absl::SimpleAtoi(*v, &nxt) || nxt < 0 || nxt >= world_) break;
      absl::StrAppend(&chain, " -> rank ", global_[nxt]);
      cur = nxt;
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "rank ", global_[rank_], ": ", s.message(), "; waiting chain ", chain, ": rank ",
        global_[cur],
        " is not progressing (stuck outside the collective, or calling a different one)"));
  }

  // In place on `buf`: afterwards segment `rank_` holds the reduction over all ranks.
  absl::Status RingReduceScatter(char* buf, size_t count, DataType type, ReduceOp op,
                                 absl::Time deadline) {
    const size_t es = collective::DataTypeSize(type);
    const size_t chunk = chunk_bytes_ / es;
    scratch_.resize(chunk * es);
    for (int s = 0; s < world_ - 1; ++s) {
      const int send_seg = (rank_ - s - 1 + 2 * world_) % world_;
      const int recv_seg = (rank_ - s - 2 + 2 * world_) % world_;
      char* send = buf + SegLo(count, send_seg) * es;
      char* recv = buf + SegLo(count, recv_seg) * es;
      const size_t send_n = SegLen(count, send_seg), recv_n = SegLen(count, recv_seg);
      for (size_t off = 0; off < std::max(send_n, recv_n); off += chunk) {
        const size_t sn = off < send_n ? std::min(chunk, send_n - off) : 0;
        const size_t rn = off < recv_n ? std::min(chunk, recv_n - off) : 0;
        KT_RETURN_IF_ERROR(Exchange(send + off * es, sn * es, scratch_.data(), rn * es, deadline));
        const void* srcs[2] = {recv + off * es, scratch_.data()};
        collective::ReduceHost(type, op == ReduceOp::kAvg ? ReduceOp::kSum : op, recv + off * es,
                               srcs, 2, rn, 0);
      }
    }
    if (op == ReduceOp::kAvg) {
      collective::DivideHost(type, buf + SegLo(count, rank_) * es, SegLen(count, rank_), world_);
    }
    return absl::OkStatus();
  }

  // In place on `buf`: segment `rank_` is final here; afterwards all segments are.
  absl::Status RingAllGather(char* buf, size_t count, size_t es, absl::Time deadline) {
    std::vector<size_t> offsets(world_ + 1);
    for (int i = 0; i <= world_; ++i) offsets[i] = SegLo(count, i) * es;
    return AllGatherV(buf, offsets, deadline);
  }

  absl::Status AllGatherV(char* buf, const std::vector<size_t>& offsets,
                          absl::Time deadline) override {
    const size_t chunk = chunk_bytes_;
    for (int s = 0; s < world_ - 1; ++s) {
      const int send_seg = (rank_ - s + world_) % world_;
      const int recv_seg = (rank_ - s - 1 + world_) % world_;
      char* send = buf + offsets[send_seg];
      char* recv = buf + offsets[recv_seg];
      const size_t send_n = offsets[send_seg + 1] - offsets[send_seg];
      const size_t recv_n = offsets[recv_seg + 1] - offsets[recv_seg];
      for (size_t off = 0; off < std::max(send_n, recv_n); off += chunk) {
        const size_t sn = off < send_n ? std::min(chunk, send_n - off) : 0;
        const size_t rn = off < recv_n ? std::min(chunk, recv_n - off) : 0;
        KT_RETURN_IF_ERROR(Exchange(send + off, sn, recv + off, rn, deadline));
      }
    }
    return absl::OkStatus();
  }

  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    if (send != recv) std::memcpy(recv, send, count * es);
    KT_RETURN_IF_ERROR(RingReduceScatter(static_cast<char*>(recv), count, type, op, deadline));
    return RingAllGather(static_cast<char*>(recv), count, es, deadline);
  }

  absl::Status Broadcast(const void* send, void* recv, size_t count, DataType type, int root,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    const size_t bytes = count * es, chunk = chunk_bytes_;
    char* buf = static_cast<char*>(recv);
    if (rank_ == root && send != recv) std::memcpy(recv, send, bytes);
    const int pos = (rank_ - root + world_) % world_;
    const bool first = pos == 0, last = pos == world_ - 1;
    // Pipeline: receive piece i while forwarding piece i-1.
    const size_t pieces = (bytes + chunk - 1) / chunk;
    auto len = [&](size_t i) { return std::min(chunk, bytes - i * chunk); };
    for (size_t i = 0; i <= pieces; ++i) {
      const bool do_send = !last && i >= 1 && i - 1 < pieces;
      const bool do_recv = !first && i < pieces;
      if (first) {
        if (i < pieces) KT_RETURN_IF_ERROR(Exchange(buf + i * chunk, len(i), nullptr, 0, deadline));
        continue;
      }
      KT_RETURN_IF_ERROR(Exchange(do_send ? buf + (i - 1) * chunk : nullptr,
                                  do_send ? len(i - 1) : 0, do_recv ? buf + i * chunk : nullptr,
                                  do_recv ? len(i) : 0, deadline));
    }
    return absl::OkStatus();
  }

  absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    char* out = static_cast<char*>(recv);
    char* mine = out + rank_ * send_count * es;
    if (mine != send) std::memcpy(mine, send, send_count * es);
    // Equal segments: the ring all-gather on world_ * send_count elements.
    return RingAllGather(out, send_count * world_, es, deadline);
  }

  absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                             ReduceOp op, absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    work_.resize(recv_count * world_ * es);
    std::memcpy(work_.data(), send, work_.size());
    KT_RETURN_IF_ERROR(RingReduceScatter(work_.data(), recv_count * world_, type, op, deadline));
    std::memcpy(recv, work_.data() + rank_ * recv_count * es, recv_count * es);
    return absl::OkStatus();
  }

  absl::Status Barrier(absl::Time deadline) override {
    // After world-1 token rounds every rank has (transitively) heard from every other rank.
    char out = 1, in = 0;
    for (int s = 0; s < world_ - 1; ++s) {
      KT_RETURN_IF_ERROR(Exchange(&out, 1, &in, 1, deadline));
    }
    return absl::OkStatus();
  }

  void Abort(const absl::Status& status) override {
    // First writer wins; the store may be gone if rank 0 died, which is fine.
    const std::string key = absl::StrCat(prefix_, "/abort");
    if (!store_->Get(key, /*wait=*/false).ok()) {
      (void)store_->Set(key, std::string(status.message()));
    }
    shutdown(next_fd_, SHUT_RDWR);
    shutdown(prev_fd_, SHUT_RDWR);
  }

 private:
  const int rank_, world_;
  const size_t chunk_bytes_;
  const std::string prefix_;
  collective::TcpStoreClient* store_;
  int next_fd_, prev_fd_;
  std::string next_name_, prev_name_;
  std::vector<char> scratch_;
  std::vector<char> work_;
  std::vector<int> global_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CpuTransportImpl>> CreateTcpTransport(
    const TcpTransportOptions& options, collective::TcpStoreClient* store, absl::Time deadline) {
  const int rank = options.rank, world = options.world_size;
  const int next = (rank + 1) % world;
  auto global = [&](int i) { return options.global_ranks.empty() ? i : options.global_ranks[i]; };
  const TcpPeer& peer = options.peers[next];
  absl::StatusOr<int> next_fd = Connect(peer.address, peer.port, deadline);
  if (!next_fd.ok()) {
    CloseFd(options.listen_fd);
    return absl::Status(next_fd.status().code(),
                        absl::StrCat("rank ", global(rank), " connecting to rank ", global(next),
                                     ": ", next_fd.status().message()));
  }
  int32_t me = rank;
  absl::Status hello = SendAll(*next_fd, &me, sizeof(me), deadline, "next rank");
  absl::StatusOr<int> prev_fd = Accept(options.listen_fd, deadline);
  CloseFd(options.listen_fd);
  if (!hello.ok() || !prev_fd.ok()) {
    CloseFd(*next_fd);
    if (prev_fd.ok()) CloseFd(*prev_fd);
    return hello.ok() ? prev_fd.status() : hello;
  }
  int32_t who = -1;
  absl::Status got = RecvAll(*prev_fd, &who, sizeof(who), deadline, "previous rank");
  const int prev = (rank + world - 1) % world;
  if (!got.ok() || who != prev) {
    CloseFd(*next_fd);
    CloseFd(*prev_fd);
    return got.ok()
               ? absl::InternalError(absl::StrCat("rank ", global(rank), " expected rank ",
                                                  global(prev), " to connect, got member ", who))
               : got;
  }
  return std::make_unique<TcpTransport>(options, store, *next_fd, *prev_fd);
}

}  // namespace kubetrain::collective_internal
