#include "worker/workspace_sink.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::worker {

absl::StatusOr<std::unique_ptr<WorkspaceSink>> OpenWorkspaceSink(const std::string& location,
                                                                 const std::string& job) {
  std::string path = location.empty() ? storage::DefaultWorkspacePath() : location;
  if (absl::StartsWith(path, "grpc://")) {
    return absl::UnimplementedError(absl::StrCat(
        "workspace '", path, "': the gRPC workspace client is not built yet; give a directory"));
  }
  if (absl::StartsWith(path, "file://")) path = path.substr(7);
  absl::StatusOr<std::unique_ptr<storage::Workspace>> ws = storage::OpenEmbeddedWorkspace(path);
  if (!ws.ok()) {
    return absl::Status(ws.status().code(), absl::StrCat("cannot open the workspace '", path,
                                                         "': ", ws.status().message()));
  }
  return std::make_unique<WorkspaceSink>(std::move(*ws), job);
}

}  // namespace kubetrain::worker
