// Test support: run the Workspace contract tests against both implementations.
//
//   Backend::kEmbedded  OpenEmbeddedWorkspace(dir)
//   Backend::kGrpc      the gRPC client (OpenGrpcWorkspace) of an in-process WorkspaceServer that
//                       serves the embedded workspace in `dir`, with a server token
//
// Open() returns a new, independent Workspace each time (for kGrpc a new client of the same
// server: its own connection). Restart() closes what the harness itself holds and opens it again
// (kGrpc: the server and its embedded workspace), as a process restart would.
//
// Thread-safety: Open may be called from several threads; Restart from one, with no call running.
#ifndef KUBETRAIN_TESTS_STORAGE_BACKENDS_H_
#define KUBETRAIN_TESTS_STORAGE_BACKENDS_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/storage/tokens.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/storage/workspace_server.h"

namespace kubetrain::storage::testing {

enum class Backend { kEmbedded, kGrpc };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kEmbedded ? "Embedded" : "Grpc";
}

class BackendHarness {
 public:
  BackendHarness(Backend backend, std::string dir) : backend_(backend), dir_(std::move(dir)) {}
  ~BackendHarness() { Stop(); }

  Backend backend() const { return backend_; }

  absl::StatusOr<std::unique_ptr<Workspace>> Open() {
    if (backend_ == Backend::kEmbedded) return OpenEmbeddedWorkspace(dir_);
    std::lock_guard<std::mutex> lock(mu_);
    if (server_ == nullptr) {
      absl::Status started = StartLocked();
      if (!started.ok()) return started;
    }
    WorkspaceConnectOptions options;
    options.token = token_;
    options.connect_timeout = absl::Seconds(5);
    return OpenGrpcWorkspace(server_->location(), options);
  }

  void Restart() {
    if (backend_ == Backend::kEmbedded) return;
    std::lock_guard<std::mutex> lock(mu_);
    StopLocked();
    absl::Status started = StartLocked();
    EXPECT_TRUE(started.ok()) << started;
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    StopLocked();
  }

  WorkspaceServer* server() { return server_.get(); }
  const std::string& token() const { return token_; }

 private:
  absl::Status StartLocked() {
    absl::StatusOr<std::unique_ptr<Workspace>> embedded = OpenEmbeddedWorkspace(dir_);
    if (!embedded.ok()) return embedded.status();
    served_ = std::move(*embedded);
    if (token_.empty()) {
      absl::StatusOr<std::string> token = GenerateServerToken();
      if (!token.ok()) return token.status();
      token_ = *token;
    }
    WorkspaceServerOptions options;
    options.listen = port_ == 0 ? "127.0.0.1:0" : "127.0.0.1:" + std::to_string(port_);
    options.token = token_;
    absl::StatusOr<std::unique_ptr<WorkspaceServer>> server =
        StartWorkspaceServer(served_.get(), options);
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    port_ = server_->port();
    return absl::OkStatus();
  }
  void StopLocked() {
    if (server_ != nullptr) server_->Shutdown(absl::Milliseconds(200));
    server_.reset();
    served_.reset();
  }

  Backend backend_;
  std::string dir_;
  std::mutex mu_;
  std::string token_;
  int port_ = 0;  // kept across restarts: clients reconnect to the same address
  std::unique_ptr<Workspace> served_;
  std::unique_ptr<WorkspaceServer> server_;
};

}  // namespace kubetrain::storage::testing

#endif  // KUBETRAIN_TESTS_STORAGE_BACKENDS_H_
