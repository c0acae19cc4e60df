#include "kubetrain/launcher/jobs/submit.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/launcher/jobs/job_names.h"
#include "kubetrain/launcher/jobs/job_supervisor.h"
#include "kubetrain/launcher/placement/placement.h"

namespace kubetrain::jobs {
namespace {

// Double fork: the supervisor is re-parented to init, in its own session, so it survives the
// terminal and the `kubetrain job create` that started it.
absl::Status StartDetached(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return absl::InternalError(absl::StrCat("cannot open ", log, ": ", strerror(errno)));
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    close(out);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(out);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    // The supervisor outlives this command: it must not hold what the caller had open (a lock,
    // a pipe the caller's caller waits on). Every descriptor above stderr closes at exec.
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < 4096; ++fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execv(args[0], args.data());
    int err = errno;
    (void)!write(report[1], &err, sizeof(err));  // exec failed: tell the parent why
    _exit(127);
  }
  close(out);
  close(report[1]);
  waitpid(pid, nullptr, 0);
  int err = 0;
  ssize_t n = read(report[0], &err, sizeof(err));  // EOF on successful exec (CLOEXEC)
  close(report[0]);
  if (n == sizeof(err)) {
    return absl::InternalError(
        absl::StrCat("cannot start the job supervisor ", argv[0], ": ", strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckCanEverFit(const v1::JobSpec& spec, const v1::ComputeTarget& target,
                             const v1::InstanceType& type) {
  absl::StatusOr<v1::Placement> empty =
      placement::PlaceGang(target, type, spec.resources().instance_count(), {});
  if (empty.ok() || empty.status().code() != absl::StatusCode::kFailedPrecondition) {
    return absl::OkStatus();
  }
  return empty.status();
}

absl::StatusOr<v1::JobRecord> SubmitJob(storage::Workspace& workspace, v1::JobSpec spec,
                                        const SubmitOptions& options) {
  if (spec.name().empty()) spec.set_name(GenerateJobName());
  if (spec.display_name().empty()) spec.set_display_name(spec.name());
  v1::JobRecord record;
  record.set_job_dir(absl::StrCat(options.workspace_path, "/jobs/", spec.name()));
  *record.mutable_spec() = std::move(spec);
  v1::JobStatus* s = record.mutable_status();
  s->set_job(record.spec().name());
  s->set_state(v1::JOB_STATE_QUEUED);
  s->set_failed_rank(-1);
  s->set_created_unix_ms(NowMs());
  absl::StatusOr<v1::JobRecord> stored = workspace.CreateJob(record);
  if (!stored.ok()) {
    if (stored.status().code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(absl::StrCat(
          "a job named \"", record.spec().name(),
          "\" already exists in this workspace; choose another with --name (or drop `name:` to "
          "get a generated one)"));
    }
    return stored.status();
  }
  std::error_code ec;
  std::filesystem::create_directories(stored->job_dir(), ec);
  std::vector<std::string> argv = options.supervisor_argv;
  argv.push_back(stored->spec().name());
  absl::Status started =
      ec ? absl::InternalError(
               absl::StrCat("cannot create ", stored->job_dir(), ": ", ec.message()))
         : StartDetached(argv, absl::StrCat(stored->job_dir(), "/supervisor.log"));
  if (!started.ok()) {
    // Leave no queued job nobody will run.
    (void)workspace.UpdateJob(stored->spec().name(), [&](const auto&, v1::JobRecord& r) {
      r.mutable_status()->set_state(v1::JOB_STATE_FAILED);
      r.mutable_status()->set_reason("SupervisorFailed");
      r.mutable_status()->set_message(std::string(started.message()));
      r.mutable_status()->set_finished_unix_ms(NowMs());
      return absl::OkStatus();
    });
    return started;
  }
  return stored;
}

}  // namespace kubetrain::jobs
