// Test support: a real Azurite blob service (npm `azurite`, installed into .deps/ by
// scripts/setup-deps.sh), started on a free loopback port with its data in a temporary folder,
// and stopped (SIGTERM, then SIGKILL) when the object is destroyed.
//
// Start() returns Unavailable when the azurite-blob binary is missing or the service does not
// answer within the timeout; tests then GTEST_SKIP with that message.
//
// Also here: FreeLoopbackPort, and CuttingProxy — a TCP proxy on loopback that forwards to a
// target port and, for the first `cuts` connections, closes both sides after forwarding
// `cut_after` bytes of the response (a connection dropped mid-body).
//
// Thread-safety: one thread drives an Azurite object; CuttingProxy serves on its own thread.
#ifndef KUBETRAIN_TESTS_STORAGE_AZURITE_H_
#define KUBETRAIN_TESTS_STORAGE_AZURITE_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "kubetrain/storage/blob_client.h"

namespace kubetrain::testing {

// The well-known development account of Azurite (documented by Microsoft).
inline constexpr char kAzuriteAccount[] = "devstoreaccount1";
inline constexpr char kAzuriteKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

int FreeLoopbackPort();

class Azurite {
 public:
  Azurite() = default;
  ~Azurite();
  absl::Status Start(int timeout_seconds = 30);
  void Stop();
  int port() const { return port_; }
  std::string endpoint() const;  // http://127.0.0.1:PORT/devstoreaccount1
  storage::BlobAccount Account(const std::string& container) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

class CuttingProxy {
 public:
  // `busy` more connections (before the cut ones) are answered at once with "503 Server Busy"
  // (odd ones) or "429 Too Many Requests" (even ones).
  CuttingProxy(int target_port, int64_t cut_after, int cuts, int busy = 0);
  ~CuttingProxy();
  int port() const { return port_; }
  int cuts_done() const { return cuts_done_.load(); }

 private:
  void Serve();
  void Pipe(int client);
  int target_port_;
  int64_t cut_after_;
  int cuts_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> cuts_left_;
  std::atomic<int> cuts_done_{0};
  std::atomic<int> busy_left_{0};
  std::thread thread_;
};

}  // namespace kubetrain::testing

#endif  // KUBETRAIN_TESTS_STORAGE_AZURITE_H_
