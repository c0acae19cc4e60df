#include "kubetrain/agent/agent.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/agent/mpi/mpirun_command.h"
#include "kubetrain/agent/mpi/rsh_agent.h"
#include "kubetrain/agent/staging/checkpoint_recorder.h"
#include "kubetrain/agent/staging/data_stager.h"
#include "kubetrain/common/command_template.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/v1/job_state.h"

namespace kubetrain::agent {
namespace {

namespace fs = std::filesystem;
using Outcome = RankSupervisorResult::Outcome;

absl::Status MakeDirs(const fs::path& dir, absl::string_view what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", what, " '", dir.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

const v1::InstancePlacement* ThisPlacement(const v1::InstanceLaunch& launch) {
  for (const v1::InstancePlacement& p : launch.placement().instances()) {
    if (p.instance_index() == launch.instance_index()) return &p;
  }
  return nullptr;
}

std::vector<int> CpuIds(const v1::InstanceLaunch& launch) {
  const v1::InstancePlacement* p = ThisPlacement(launch);
  if (p == nullptr) return {};
  return {p->cpu_ids().begin(), p->cpu_ids().end()};
}

// `path` made absolute and normal, for prefix comparisons (weakly_canonical: it may not exist).
fs::path Normal(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

bool Within(const fs::path& path, const fs::path& dir) {
  auto [d, p] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
  return d == dir.end();
}

// Copies `source` (a folder, or one file) into the existing folder `target`: files, folders and
// symlinks (as links), without `.git` and without anything inside `excluded`.
absl::Status CopyCodeSnapshot(const fs::path& source, const fs::path& target,
                              const std::vector<fs::path>& excluded) {
  std::error_code ec;
  if (!fs::is_directory(source, ec)) {
    fs::copy(source, target / source.filename(), fs::copy_options::copy_symlinks, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot copy the code snapshot '", source.string(),
                                              "' to '", target.string(), "': ", ec.message()));
    }
    return absl::OkStatus();
  }
  std::vector<fs::path> skip;
  for (const fs::path& e : excluded) skip.push_back(Normal(e));
  const fs::path root = Normal(source);
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& from = it->path();
    const bool excluded_here =
        from.filename() == ".git" ||
        std::any_of(skip.begin(), skip.end(), [&](const fs::path& e) { return Within(from, e); });
    if (excluded_here) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) it.disable_recursion_pending();
      continue;
    }
    const fs::path to = target / from.lexically_relative(root);
    if (it->is_symlink(ec)) {
      fs::copy_symlink(from, to, ec);
    } else if (it->is_directory(ec)) {
      fs::create_directories(to, ec);
    } else {
      fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    }
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot copy '", from.string(), "' to '", to.string(), "': ", ec.message()));
    }
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot read the code snapshot '", source.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

// distribution: mpi, instance > 0: this instance's ranks run under instance 0's mpirun. The agent
// stays up (status Running) until instance 0 (or the job) reaches an end, then mirrors it: its
// ranks' statuses, state and an exit code as if it had run them. Without a readable workspace it
// reports Completed and exits 0 at once.
AgentResult WaitForMpirunOfInstanceZero(const v1::InstanceLaunch& launch, const std::string& node,
                                        Reporter& reporter, AgentSink* sink, CancelToken* cancel) {
  AgentResult result;
  const int per = std::max(1, launch.job().distribution().process_count_per_instance());
  const int first = launch.instance_index() * per;
  const int last = first + per - 1;
  const std::string ranks = absl::StrCat("ranks ", first, "..", last);
  v1::InstanceStatus status;
  status.set_index(launch.instance_index());
  status.set_node(node);
  status.set_message(absl::StrCat(ranks, " of this instance run under instance 0's mpirun"));

  if (launch.rsh_port() > 0) {
    // Kubernetes: instance 0's mpirun starts this instance's ranks through us (rsh_agent.h).
    status.set_state(v1::JOB_STATE_RUNNING);
    reporter.UpdateStatus(status);
    reporter.Agent(
        absl::StrCat(status.message(), "; serving its launch on port ", launch.rsh_port()));
    (void)reporter.Flush();
    // The ranks started here record their exit status where instance 0's do (same plan layout).
    std::error_code ec;
    fs::create_directories(fs::path(launch.job_dir()) / "mpi-status", ec);
    RshServerOptions rsh;
    rsh.port = launch.rsh_port();
    rsh.token = JobTokenFromEnv();
    rsh.log = [&reporter](const std::string& line) { reporter.Agent(line); };
    if (rsh.token.empty()) {
      result.exit_code = kExitSetupFailed;
      result.message = absl::StrCat(kJobTokenEnv, " is not set; cannot authenticate mpirun");
      status.set_state(v1::JOB_STATE_FAILED);
    } else {
      absl::StatusOr<int> served = ServeOneLaunch(rsh, cancel);
      if (!served.ok() && absl::IsCancelled(served.status())) {
        result.exit_code = kExitCanceledBase + cancel->signal();
        result.message = absl::StrCat(ranks, " ", served.status().message());
        status.set_state(v1::JOB_STATE_CANCELED);
      } else if (!served.ok()) {
        result.exit_code = kExitSetupFailed;
        result.message = std::string(served.status().message());
        status.set_state(v1::JOB_STATE_FAILED);
      } else {
        result.exit_code = *served == 0 ? kExitOk : kExitRankFailed;
        result.message =
            absl::StrCat(ranks, " ran under instance 0's mpirun (its daemon exited ", *served, ")");
        status.set_state(*served == 0 ? v1::JOB_STATE_COMPLETED : v1::JOB_STATE_FAILED);
      }
    }
    status.set_message(result.message);
    reporter.Agent(result.message, result.exit_code == kExitOk ? "info" : "warn");
    reporter.UpdateStatus(status);
    result.supervisor.status = status;
    (void)reporter.Flush();
    return result;
  }

  absl::StatusOr<v1::JobStatus> job =
      sink != nullptr ? sink->ReadJobStatus() : absl::UnimplementedError("no sink");
  if (absl::IsUnimplemented(job.status())) {
    result.message = absl::StrCat(status.message(),
                                  "; their output and status are reported by "
                                  "instance 0 (no workspace to wait on)");
    reporter.Agent(result.message);
    status.set_state(v1::JOB_STATE_COMPLETED);
    reporter.UpdateStatus(status);
    result.supervisor.status = status;
    (void)reporter.Flush();
    return result;
  }
  reporter.Agent(absl::StrCat(status.message(), "; waiting for it to finish"));
  status.set_state(v1::JOB_STATE_RUNNING);
  reporter.UpdateStatus(status);
  (void)reporter.Flush();

  bool warned = false;
  while (true) {
    if (cancel != nullptr && cancel->requested()) {
      result.exit_code = kExitCanceledBase + cancel->signal();
      result.message = absl::StrCat("canceled (signal ", cancel->signal(), ")");
      status.set_state(v1::JOB_STATE_CANCELED);
      status.set_message(absl::StrCat(ranks, " ran under instance 0's mpirun; ", result.message));
      break;
    }
    job = sink->ReadJobStatus();
    if (!job.ok()) {
      if (!warned)
        reporter.Agent(absl::StrCat("cannot read the job's status yet: ", job.status().message()),
                       "warn");
      warned = true;
    } else {
      const v1::InstanceStatus* zero = nullptr;
      for (const v1::InstanceStatus& i : job->instances()) {
        if (i.index() == 0) zero = &i;
      }
      v1::JobState end = v1::JOB_STATE_UNSPECIFIED;
      std::string why;
      if (zero != nullptr && v1::IsTerminal(zero->state())) {
        end = zero->state();
        why = absl::StrCat("instance 0: ", zero->message());
      } else if (v1::IsTerminal(job->state())) {
        end = job->state();
        why = absl::StrCat("job: ", job->message());
      }
      if (end != v1::JOB_STATE_UNSPECIFIED) {
        status.set_state(end);
        status.set_message(absl::StrCat(ranks, " ran under instance 0's mpirun; ", why));
        if (zero != nullptr) {
          for (const v1::RankStatus& r : zero->ranks()) {
            if (r.rank() >= first && r.rank() <= last) *status.add_ranks() = r;
          }
        }
        result.exit_code = end == v1::JOB_STATE_COMPLETED  ? kExitOk
                           : end == v1::JOB_STATE_CANCELED ? kExitCanceledBase + SIGTERM
                                                           : kExitRankFailed;
        result.message = status.message();
        break;
      }
    }
    if (cancel != nullptr && cancel->fd() >= 0) {
      pollfd fd = {cancel->fd(), POLLIN, 0};
      poll(&fd, 1, 250);
    } else {
      usleep(250 * 1000);
    }
  }
  reporter.Agent(result.message, result.exit_code == kExitOk ? "info" : "warn");
  reporter.UpdateStatus(status);
  result.supervisor.status = status;
  (void)reporter.Flush();
  return result;
}

}  // namespace

absl::StatusOr<std::string> PrepareInstance(const v1::InstanceLaunch& launch) {
  fs::path job_dir = launch.job_dir().empty() ? fs::current_path() : fs::path(launch.job_dir());
  KT_RETURN_IF_ERROR(MakeDirs(job_dir, "the job directory"));
  if (!launch.checkpoint_dir().empty()) {
    KT_RETURN_IF_ERROR(MakeDirs(launch.checkpoint_dir(), "the checkpoint directory"));
  }
  for (const auto& [name, path] : launch.output_paths()) {
    auto spec = launch.job().outputs().find(name);
    const bool is_file =
        spec != launch.job().outputs().end() && spec->second.type() == v1::DATA_TYPE_URI_FILE;
    fs::path dir = is_file ? fs::path(path).parent_path() : fs::path(path);
    if (dir.empty()) continue;
    KT_RETURN_IF_ERROR(MakeDirs(dir, absl::StrCat("output '", name, "'")));
  }
  const std::string& code = launch.job().code().local_path();
  if (code.empty()) return job_dir.string();

  fs::path target = job_dir / "code";
  std::error_code ec;
  if (!fs::exists(code, ec)) {
    return absl::NotFoundError(
        absl::StrCat("code snapshot: '", code, "' (spec.code.local_path) does not exist"));
  }
  fs::remove_all(target, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot clear the old code snapshot '", target.string(), "': ", ec.message()));
  }
  KT_RETURN_IF_ERROR(MakeDirs(target, "the code directory"));
  // Never copy kubetrain's own directories when they sit inside the code folder (`code: .` next
  // to a workspace): the snapshot would contain itself.
  std::vector<fs::path> excluded = {target, job_dir};
  for (const std::string& dir : {launch.workspace(), launch.checkpoint_dir()}) {
    if (!dir.empty() && dir.find("://") == std::string::npos) excluded.push_back(dir);
  }
  KT_RETURN_IF_ERROR(CopyCodeSnapshot(code, target, excluded));
  return target.string();
}

absl::StatusOr<std::string> ResolveCommand(const v1::InstanceLaunch& launch) {
  std::map<std::string, std::string> inputs(launch.input_paths().begin(),
                                            launch.input_paths().end());
  for (const auto& [name, input] : launch.job().inputs()) {
    if (input.type() == v1::DATA_TYPE_LITERAL && !inputs.count(name)) {
      inputs[name] = input.literal();
    }
  }
  std::map<std::string, std::string> outputs(launch.output_paths().begin(),
                                             launch.output_paths().end());
  absl::StatusOr<std::string> command = common::Substitute(launch.job().command(), inputs, outputs);
  if (!command.ok()) {
    return absl::Status(
        command.status().code(),
        absl::StrCat("job ", launch.job().name(), ": command: ", command.status().message(),
                     " (no path for it in the launch plan)"));
  }
  return command;
}

absl::StatusOr<std::vector<RankProcess>> BuildProcesses(const v1::InstanceLaunch& launch,
                                                        const std::string& command,
                                                        const std::string& cwd,
                                                        const AgentOptions& options) {
  std::vector<RankProcess> procs;
  if (launch.job().distribution().type() == v1::DistributionSpec::TYPE_MPI) {
    if (launch.instance_index() != 0) return procs;
    fs::path hostfile = fs::path(launch.job_dir().empty() ? cwd : launch.job_dir()) / "hostfile";
    {
      std::ofstream out(hostfile, std::ios::trunc);
      out << MpiHostfile(launch);
      if (!out) {
        return absl::InternalError(
            absl::StrCat("cannot write the mpirun hostfile '", hostfile.string(), "'"));
      }
    }
    fs::path status_dir = hostfile.parent_path() / "mpi-status";
    std::error_code ec;
    fs::remove_all(status_dir, ec);
    KT_RETURN_IF_ERROR(MakeDirs(status_dir, "the mpi rank status directory"));
    RankProcess p;
    p.rank = -1;
    p.local_rank = 0;
    p.mpirun_tagged_output = true;
    p.mpi_status_dir = status_dir.string();
    p.mpi_ranks_per_instance =
        std::max(1, launch.job().distribution().process_count_per_instance());
    p.mpi_world_size = InstanceCount(launch) * p.mpi_ranks_per_instance;
    p.spawn.env = RankEnvironment(launch, 0, options.env);
    p.spawn.env["KUBETRAIN_MPI_STATUS_DIR"] = status_dir.string();
    p.spawn.env["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
    p.spawn.env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
    if (launch.rsh_port() > 0) {
      // Remote instances are started through `kubetrain-worker rsh` (rsh_agent.h), not ssh.
      p.spawn.env[kRshPortEnv] = std::to_string(launch.rsh_port());
    } else {
      // OpenMPI names its session directory and shared-memory segments after the host and
      // mpirun's pid. Instances of different jobs run in their own PID namespaces on one host, so
      // two mpiruns can have the same pid: without a directory of its own, one job's ranks map
      // the other's segments (seen as crashes in vader). Each run gets a private one on tmpfs.
      // (Pods have a host of their own.)
      std::string tmpl = fs::exists("/dev/shm") ? "/dev/shm/kubetrain-mpi-XXXXXX"
                                                : (hostfile.parent_path() / "mpi-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return absl::InternalError(absl::StrCat("cannot create the mpirun session directory ", tmpl,
                                                ": ", std::strerror(errno)));
      }
      p.mpi_session_dir = tmpl;
      p.spawn.env["OMPI_MCA_orte_tmpdir_base"] = tmpl;
      p.spawn.env["OMPI_MCA_btl_vader_backing_directory"] = tmpl;
    }
    p.spawn.argv = MpirunArgv(launch, command, hostfile.string(), p.spawn.env);
    if (launch.rsh_port() > 0) {
      char self[4096];
      ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      std::string agent = n > 0 ? std::string(self, static_cast<size_t>(n)) : "kubetrain-worker";
      std::vector<std::string> rsh = {"--mca",
                                      "plm_rsh_agent",
                                      agent + " rsh",
                                      "--mca",
                                      "plm_rsh_no_tree_spawn",
                                      "1",
                                      "--mca",
                                      "orte_keep_fqdn_hostnames",
                                      "1"};
      p.spawn.argv.insert(p.spawn.argv.begin() + 1, rsh.begin(), rsh.end());
    }
    p.spawn.argv.insert(p.spawn.argv.begin() + 1, options.extra_mpirun_args.begin(),
                        options.extra_mpirun_args.end());
    p.spawn.cwd = cwd;
    p.spawn.cpu_ids = CpuIds(launch);
    procs.push_back(std::move(p));
    return procs;
  }
  for (const LocalRank& r : LocalRanks(launch)) {
    RankProcess p;
    p.rank = r.global_rank;
    p.local_rank = r.local_rank;
    p.spawn.argv = {"/bin/bash", "-c", command};
    p.spawn.env = RankEnvironment(launch, r.local_rank, options.env);
    p.spawn.cwd = cwd;
    p.spawn.cpu_ids = CpuIds(launch);
    procs.push_back(std::move(p));
  }
  return procs;
}

AgentResult RunAgent(const v1::InstanceLaunch& launch, AgentSink* sink, CancelToken* cancel,
                     const AgentOptions& options) {
  ReporterOptions ropts;
  ropts.job = launch.job().name();
  ropts.attempt = launch.attempt();
  ropts.instance = launch.instance_index();
  ropts.flush_interval = options.flush_interval;
  ropts.flush_lines = options.flush_lines;
  ropts.echo_to_stderr = options.echo_to_stderr;
  Reporter reporter(ropts, sink);

  const v1::InstancePlacement* placement = ThisPlacement(launch);
  const std::string node = placement != nullptr ? placement->node() : "";
  AgentResult result;
  auto fail_before_start = [&](int code, const std::string& message) {
    result.exit_code = code;
    result.message = message;
    reporter.Agent(message, "error");
    v1::InstanceStatus status;
    status.set_index(launch.instance_index());
    status.set_node(node);
    status.set_state(v1::JOB_STATE_FAILED);
    status.set_message(message);
    reporter.UpdateStatus(status);
    result.supervisor.status = status;
    (void)reporter.Flush();
    return result;
  };

  if (absl::Status valid = ValidateLaunch(launch); !valid.ok()) {
    return fail_before_start(kExitInvalidPlan, std::string(valid.message()));
  }
  reporter.Agent(absl::StrCat("kubetrain-worker: job ", launch.job().name(), " attempt ",
                              launch.attempt(), " instance ", launch.instance_index(), " of ",
                              InstanceCount(launch), node.empty() ? "" : " on node ", node));
  absl::StatusOr<std::string> cwd = PrepareInstance(launch);
  if (!cwd.ok()) return fail_before_start(kExitSetupFailed, std::string(cwd.status().message()));
  if (absl::Status staged = StageInputs(launch, sink, &reporter, cancel); !staged.ok()) {
    if (absl::IsCancelled(staged) && cancel != nullptr) {
      return fail_before_start(kExitCanceledBase + cancel->signal(),
                               "canceled while staging the inputs");
    }
    return fail_before_start(kExitSetupFailed, std::string(staged.message()));
  }
  absl::StatusOr<std::string> command = ResolveCommand(launch);
  if (!command.ok()) {
    return fail_before_start(kExitSetupFailed, std::string(command.status().message()));
  }
  absl::StatusOr<std::vector<RankProcess>> procs = BuildProcesses(launch, *command, *cwd, options);
  if (!procs.ok())
    return fail_before_start(kExitSetupFailed, std::string(procs.status().message()));

  if (procs->empty()) return WaitForMpirunOfInstanceZero(launch, node, reporter, sink, cancel);
  reporter.Agent(absl::StrCat("running in ", *cwd, ": ", *command));

  RankSupervisorOptions sopts;
  sopts.instance = launch.instance_index();
  sopts.node = node;
  sopts.grace_period =
      absl::Milliseconds(launch.grace_period_ms() > 0 ? launch.grace_period_ms() : 3000);
  if (launch.job().limits().timeout_seconds() > 0) {
    sopts.timeout = absl::Seconds(launch.job().limits().timeout_seconds());
  }
  RankSupervisor supervisor(sopts, &reporter, cancel);
  // Instance 0 records the job's checkpoints as the ranks publish them.
  std::optional<CheckpointRecorder> checkpoints;
  if (launch.instance_index() == 0 && !launch.checkpoint_dir().empty() && sink != nullptr) {
    checkpoints.emplace(sink, launch.checkpoint_dir(), launch.job().name(), launch.attempt());
    checkpoints->Start();
  }
  std::vector<std::string> session_dirs;
  for (const RankProcess& p : *procs) {
    if (!p.mpi_session_dir.empty()) session_dirs.push_back(p.mpi_session_dir);
  }
  result.supervisor = supervisor.Run(std::move(*procs));
  for (const std::string& dir : session_dirs) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (checkpoints.has_value()) checkpoints->Stop();
  const RankSupervisorResult& s = result.supervisor;
  result.message = s.message;
  switch (s.outcome) {
    case Outcome::kSucceeded:
      result.exit_code = kExitOk;
      result.message = "all processes exited 0";
      reporter.Agent(result.message);
      break;
    case Outcome::kRankFailed: {
      result.exit_code = kExitRankFailed;
      std::string text = absl::StrCat("instance failed: ", s.message);
      if (!s.last_lines.empty()) {
        absl::StrAppend(&text, "; its last ", s.last_lines.size(), " lines:\n  ",
                        absl::StrJoin(s.last_lines, "\n  "));
      }
      reporter.Agent(text, "error");
      break;
    }
    case Outcome::kCanceled:
      result.exit_code = kExitCanceledBase + s.signal;
      reporter.Agent(absl::StrCat("instance ", s.message), "warn");
      break;
    case Outcome::kTimedOut:
      result.exit_code = kExitTimedOut;
      reporter.Agent(absl::StrCat("instance ", s.message), "error");
      break;
    case Outcome::kStartFailed:
      result.exit_code = kExitSetupFailed;
      break;
  }
  // Outputs are uploaded whatever the outcome, so partial results are kept.
  if (absl::Status published = PublishOutputs(launch, sink, &reporter);
      !published.ok() && result.exit_code == kExitOk) {
    result.exit_code = kExitOutputUploadFailed;
    result.message = absl::StrCat("output upload failed: ", published.message());
    result.supervisor.status.set_state(v1::JOB_STATE_FAILED);
    result.supervisor.status.set_message(result.message);
    reporter.UpdateStatus(result.supervisor.status);
  }
  (void)reporter.Flush();
  return result;
}

}  // namespace kubetrain::agent
