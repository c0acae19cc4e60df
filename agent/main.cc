// kubetrain-worker: the per-instance agent. See agent/agent.h for what it does and its exit codes.
//
//   kubetrain-worker --plan FILE        binary kubetrain.v1.InstanceLaunch
//   kubetrain-worker --plan-text FILE   the same in protobuf text format
//   kubetrain-worker rsh HOST COMMAND... mpirun's remote-shell agent between pods (rsh_agent.h)
//   options: --workspace PATH|grpc://HOST:PORT (overrides the plan's workspace), --no-workspace
//            (stderr only), --log-level LEVEL (spdlog level; default info), --quiet (no
//            "[rank N]" echo), --output text|json (json: one v1.LogLine per line, see
//            kubetrain/agent/output.h; what pods use)
//   environment: a workspace server's token in KUBETRAIN_WORKSPACE_TOKEN (the launcher sets the
//            job's token there; see kubetrain/storage/grpc_workspace.h); never passed to ranks
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"
#include "kubetrain/agent/agent.h"
#include "kubetrain/agent/metrics/mlflow_endpoint.h"
#include "kubetrain/agent/mpi/rsh_agent.h"
#include "kubetrain/agent/output.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/common/logging.h"
#include "kubetrain/v1/launch.pb.h"
#include "spdlog/spdlog.h"
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
#include "kubetrain/agent/workspace_sink.h"
#endif

namespace {

using namespace kubetrain::agent;  // NOLINT: a main file

CancelToken* g_cancel = nullptr;

void OnSignal(int sig) {
  if (g_cancel != nullptr) g_cancel->Request(sig);
}

int Usage(const std::string& error) {
  std::fprintf(stderr,
               "kubetrain-worker: %s\n"
               "usage: kubetrain-worker (--plan FILE | --plan-text FILE) [--workspace PATH | "
               "--no-workspace] [--log-level LEVEL] [--quiet] [--output text|json]\n",
               error.c_str());
  return kExitInvalidPlan;
}

// Ranks find the programs installed beside kubetrain-worker (build/bin; /opt/kubetrain/bin in the
// worker image) by name: that directory goes first on PATH, which the ranks inherit.
void PutOwnDirectoryFirstOnPath() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return;
  self[n] = '\0';
  std::string dir(self);
  dir.resize(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  if (dir.empty()) return;
  const char* path = std::getenv("PATH");
  setenv("PATH",
         (path != nullptr && *path != '\0' ? dir + ":" + path : dir + ":/usr/bin:/bin").c_str(), 1);
}

}  // namespace

int main(int argc, char** argv) {
  // `kubetrain-worker rsh HOST COMMAND...`: OpenMPI's remote-shell agent between pods.
  if (argc >= 2 && std::string(argv[1]) == "rsh") {
    return kubetrain::agent::RunRshClient(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::string plan_file, workspace, level = "info", output = "text";
  bool text = false, no_workspace = false, workspace_given = false, quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--plan" || arg == "--plan-text") {
      text = arg == "--plan-text";
      if (!value(&plan_file)) return Usage(arg + " needs a file");
    } else if (arg == "--workspace") {
      if (!value(&workspace)) return Usage("--workspace needs a path");
      workspace_given = true;
    } else if (arg == "--no-workspace") {
      no_workspace = true;
    } else if (arg == "--log-level") {
      if (!value(&level)) return Usage("--log-level needs a level");
    } else if (arg == "--output") {
      if (!value(&output)) return Usage("--output needs text or json");
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      Usage("runs one instance of a kubetrain job");
      return 0;
    } else {
      return Usage("unknown argument '" + arg + "'");
    }
  }
  if (plan_file.empty()) return Usage("--plan or --plan-text is required");

  absl::StatusOr<kubetrain::agent::OutputFormat> format =
      kubetrain::agent::ParseOutputFormat(output);
  if (!format.ok()) return Usage(std::string(format.status().message()));
  kubetrain::common::InitLogging({}, level);
  kubetrain::agent::SetOutputFormat(*format);
  kubetrain::v1::InstanceLaunch launch;
  {
    std::ifstream in(plan_file, std::ios::binary);
    if (!in)
      return Usage(absl::StrCat("cannot read the plan '", plan_file, "': ", strerror(errno)));
    std::stringstream buffer;
    buffer << in.rdbuf();
    const bool parsed = text ? google::protobuf::TextFormat::ParseFromString(buffer.str(), &launch)
                             : launch.ParseFromString(buffer.str());
    if (!parsed) {
      return Usage(absl::StrCat("'", plan_file, "' is not a ", text ? "text-format " : "binary ",
                                "kubetrain.v1.InstanceLaunch"));
    }
  }
  if (workspace_given) launch.set_workspace(workspace);
  kubetrain::common::SetLogContext({launch.job().name(), launch.instance_index(), -1});

  // Cancel on SIGTERM / SIGINT / SIGHUP: stop every rank (SIGTERM, then SIGKILL after the grace).
  static CancelToken cancel;
  g_cancel = &cancel;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<AgentSink> null_sink = std::make_unique<NullSink>();
  AgentSink* sink = null_sink.get();
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
  std::unique_ptr<AgentWorkspace> agent_workspace;
  // The workspace server's credentials (the job's token, from the launcher) are read once, here,
  // and removed from the environment the ranks inherit.
  auto connect = kubetrain::storage::ConnectOptionsFromEnvironment();
  unsetenv(kubetrain::storage::kWorkspaceTokenEnv);
  unsetenv(kubetrain::storage::kWorkspaceTokenFileEnv);
  if (!no_workspace) {
    if (!connect.ok()) {
      spdlog::error("{}", std::string(connect.status().message()));
      return kExitSetupFailed;
    }
    auto opened = OpenAgentWorkspace(launch, *connect);
    if (!opened.ok()) {
      spdlog::error("{}", std::string(opened.status().message()));
      return kExitSetupFailed;
    }
    agent_workspace = std::move(*opened);
    sink = agent_workspace->sink();
  }
#else
  if (!no_workspace) {
    spdlog::warn(
        "this kubetrain-worker was built without the workspace store; logs and status "
        "go to stderr only");
  }
#endif

  // The MLflow-compatible endpoint the ranks log to (MLFLOW_TRACKING_URI); its points go to the
  // workspace over a connection of their own, so metric batches never wait behind log batches.
  MlflowEndpointOptions mlflow;
  mlflow.job = launch.job().name();
  mlflow.run_name = launch.job().display_name();
  mlflow.experiment_name = launch.job().experiment_name();
  mlflow.source = absl::StrCat("instance-", launch.instance_index(), "-attempt-", launch.attempt(),
                               "-pid-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
  if (agent_workspace != nullptr) {
    mlflow.history_reader = [&agent_workspace](const std::string& key) {
      return agent_workspace->MetricHistory(key);
    };
  }
#endif
  MlflowEndpoint endpoint(mlflow, [&](const kubetrain::v1::MetricBatch& batch) -> absl::Status {
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
    if (agent_workspace != nullptr) return agent_workspace->ShipMetrics(batch);
#endif
    return absl::OkStatus();  // --no-workspace: accepted and discarded
  });
  AgentOptions options;
  options.echo_to_stderr = !quiet;
  if (absl::Status s = endpoint.Start(); s.ok()) {
    options.env.mlflow_tracking_uri = endpoint.uri();
    spdlog::info("MLflow tracking endpoint at {}", endpoint.uri());
  } else {
    spdlog::warn("no MLflow tracking endpoint (MLFLOW_TRACKING_URI stays unset): {}",
                 std::string(s.message()));
  }
  PutOwnDirectoryFirstOnPath();
  AgentResult result = RunAgent(launch, sink, &cancel, options);
  endpoint.Stop();  // ships what the ranks logged last
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
  if (agent_workspace != nullptr) {
    // A workspace server out of reach: keep trying a while, then leave the rest in the spool
    // directory (a restarted agent of this instance delivers it).
    if (absl::Status drained = agent_workspace->Drain(absl::Seconds(60)); !drained.ok()) {
      spdlog::error("{}", std::string(drained.message()));
    }
  }
#endif
  spdlog::info("exit {}: {}", result.exit_code, result.message);
  return result.exit_code;
}
