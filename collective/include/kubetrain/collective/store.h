// Rendezvous store: a small TCP key-value store hosted by rank 0.
//
// Rank 0 runs a TcpStoreServer on MASTER_PORT (all interfaces); every rank, rank 0 included,
// talks to it through a TcpStoreClient. It carries the bootstrap data of the backends (the NCCL
// unique id, the CPU backend's listen addresses and shared-memory segment name).
//
// Protocol (private to this library): length-prefixed frames over one TCP connection per client.
// A Get with wait=true is parked on the server until the key is set or the request's timeout
// passes, so waiting costs no polling.
//
// Ownership: the server owns its listening socket and one thread per connection; destroying it
// closes every connection (pending client calls then fail with Unavailable).
// Thread-safety: TcpStoreServer is thread-safe. TcpStoreClient serializes calls on an internal
// mutex, so it may be shared between threads.
#ifndef KUBETRAIN_COLLECTIVE_STORE_H_
#define KUBETRAIN_COLLECTIVE_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kubetrain::collective {

class TcpStoreServer {
 public:
  // Listens on `port` (0 picks a free port; see port()) on all interfaces.
  static absl::StatusOr<std::unique_ptr<TcpStoreServer>> Start(int port);
  ~TcpStoreServer();

  int port() const { return port_; }

 private:
  struct State;
  TcpStoreServer() = default;
  int port_ = 0;
  std::unique_ptr<State> state_;
};

class TcpStoreClient {
 public:
  // Connects to host:port, retrying until `timeout` (rank 0 may not be listening yet).
  // `timeout` is also the default bound of every later call.
  static absl::StatusOr<std::unique_ptr<TcpStoreClient>> Connect(absl::string_view host, int port,
                                                                 absl::Duration timeout);
  ~TcpStoreClient();

  absl::Status Set(absl::string_view key, absl::string_view value);
  // With wait=true blocks until the key exists (DeadlineExceeded after `timeout`, default: the
  // connect timeout); with wait=false returns NotFound for a missing key.
  absl::StatusOr<std::string> Get(absl::string_view key, bool wait = true,
                                  absl::Duration timeout = absl::ZeroDuration());
  // Atomically adds `delta` to the integer stored at key (missing = 0); returns the new value.
  absl::StatusOr<int64_t> Add(absl::string_view key, int64_t delta);
  // Blocks until `world_size` callers have entered the barrier named `name` (names must be fresh
  // per use). DeadlineExceeded names how many arrived.
  absl::Status Barrier(absl::string_view name, int world_size,
                       absl::Duration timeout = absl::ZeroDuration());

  // Local address of the connection to the store: the address peers can reach this host at.
  const std::string& local_address() const { return local_address_; }

 private:
  TcpStoreClient() = default;
  absl::StatusOr<std::string> Call(char op, absl::string_view key, absl::string_view value,
                                   absl::Duration wait);
  std::mutex mu_;
  int fd_ = -1;
  std::string peer_;
  std::string local_address_;
  absl::Duration timeout_;
};

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_STORE_H_
