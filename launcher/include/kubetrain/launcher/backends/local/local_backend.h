// The local backend: "pods as processes". Each instance of a gang is one `kubetrain-worker` process
// on this machine, started from an InstanceLaunch plan file, in
//   - its own PID and mount namespaces where the host allows (the agent is PID 1 of the instance,
//     so when it dies the kernel kills every process of the instance; mounts stay private to it),
//     else its own session and process group;
//   - a memory cgroup limited to the instance type's memory limit where the host lets us create
//     one, else a one-line warning;
//   - PR_SET_PDEATHSIG(SIGKILL), so an instance never outlives the supervisor that started it.
// cpu affinity and CUDA_VISIBLE_DEVICES come from the placement; the agent applies them to ranks.
//
// Ownership: LocalBackend borrows nothing; Gangs own their processes and cgroups.
// Thread-safety: a LocalBackend may launch from one thread at a time.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_LOCAL_BACKEND_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_LOCAL_BACKEND_H_

#include <functional>
#include <memory>
#include <string>

#include "kubetrain/launcher/backends/backend.h"

namespace kubetrain::backends::local {

struct LocalBackendOptions {
  std::string worker_binary;      // path of kubetrain-worker (required)
  bool use_namespaces = true;     // PID + mount namespaces when permitted
  bool use_memory_limits = true;  // cgroup memory limit when permitted
  // Called once per launch with a one-line warning (namespaces or cgroups unavailable).
  std::function<void(const std::string&)> warn;
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(LocalBackendOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<Gang>> Launch(const LaunchRequest& request) override;

 private:
  LocalBackendOptions options_;
};

// A free TCP port on 127.0.0.1 (bound then released), for MASTER_PORT.
absl::StatusOr<int> PickFreePort();

}  // namespace kubetrain::backends::local

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_LOCAL_BACKEND_H_
