// Small TCP helpers shared by the rendezvous store and the CPU backend's TCP ring. Every blocking
// call takes a deadline and names the peer in its errors. Private to the collective library.
#ifndef KUBETRAIN_COLLECTIVE_SRC_NET_H_
#define KUBETRAIN_COLLECTIVE_SRC_NET_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kubetrain::collective_internal {

// Listens on all interfaces at `port` (0 = any free port); returns the fd, sets *bound_port.
absl::StatusOr<int> Listen(int port, int* bound_port);
// Accepts one connection before `deadline`.
absl::StatusOr<int> Accept(int listen_fd, absl::Time deadline);
// Connects to host:port, retrying refused connections until `deadline`.
absl::StatusOr<int> Connect(absl::string_view host, int port, absl::Time deadline);
// Local IP address of a connected socket, e.g. "10.0.0.4".
std::string LocalAddress(int fd);
void SetNoDelay(int fd);
void CloseFd(int fd);

// Send / receive exactly `len` bytes. A closed connection or a deadline yields an error that
// names `peer` (e.g. "rank 2 (10.0.0.5:41234)").
absl::Status SendAll(int fd, const void* data, size_t len, absl::Time deadline,
                     absl::string_view peer);
absl::Status RecvAll(int fd, void* data, size_t len, absl::Time deadline, absl::string_view peer);
// Full duplex: sends `send_len` bytes on send_fd while receiving `recv_len` on recv_fd.
absl::Status SendRecv(int send_fd, const void* send_data, size_t send_len,
                      absl::string_view send_peer, int recv_fd, void* recv_data, size_t recv_len,
                      absl::string_view recv_peer, absl::Time deadline);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_NET_H_
