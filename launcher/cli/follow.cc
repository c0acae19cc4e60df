#include "kubetrain/launcher/cli/follow.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/cli/job_view.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/jobs/job_supervisor.h"
#include "kubetrain/launcher/jobs/scheduler.h"

namespace kubetrain::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted.store(true); }

// Ctrl-C: true to detach, false after canceling (keep following to see the end).
bool AskCancelOrDetach(storage::Workspace& ws, const std::string& name) {
  bool cancel = false;
  if (isatty(STDIN_FILENO)) {
    std::cerr << "\nCancel job " << name << "? [y/N] (N detaches; the job keeps running) "
              << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    cancel = !answer.empty() && (answer[0] == 'y' || answer[0] == 'Y');
  }
  if (!cancel) {
    std::cerr << "detached; follow it again with `kubetrain job stream " << name << "`\n";
    return true;
  }
  absl::StatusOr<v1::JobRecord> r = jobs::CancelJob(ws, name);
  if (!r.ok()) PrintError(r.status());
  return false;
}

}  // namespace

std::string FormatLogLine(const v1::LogLine& line) {
  if (line.rank() < 0) return absl::StrCat("[instance ", line.instance(), "] ", line.text());
  return absl::StrCat("[rank ", line.rank(), "] ", line.text());
}

int FollowJob(storage::Workspace& workspace, const std::string& name, std::ostream& out) {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  std::string last_status;
  int exit_code = 1;
  bool detached = false;
  // The workspace delivers lines and record changes as they happen: a server stream for a
  // workspace server, polling for the embedded one.
  absl::Status watched = workspace.WatchJob({.job = name}, [&](const storage::JobUpdate& u) {
    for (const v1::LogLine& l : u.lines) out << FormatLogLine(l) << "\n";
    if (u.job.has_value()) {
      if (u.final) {
        out.flush();
        PrintOutcome(*u.job, out);
        exit_code = u.job->status().state() == v1::JOB_STATE_COMPLETED ? 0 : 1;
        return false;
      }
      std::string status = StatusLine(*u.job);
      if (status != last_status) {
        out << "── " << status << "\n";
        last_status = status;
      }
    }
    out.flush();
    if (g_interrupted.exchange(false) && AskCancelOrDetach(workspace, name)) {
      detached = true;
      return false;
    }
    return true;
  });
  if (!watched.ok()) {
    PrintError(watched);
    return 1;
  }
  return detached ? 130 : exit_code;
}

int FollowLogs(storage::Workspace& workspace, const std::string& name, int rank,
               std::ostream& out) {
  absl::Status watched =
      workspace.WatchJob({.job = name, .rank = rank}, [&](const storage::JobUpdate& u) {
        for (const v1::LogLine& l : u.lines) out << FormatLogLine(l) << "\n";
        out.flush();
        return true;
      });
  if (!watched.ok()) {
    PrintError(watched);
    return 1;
  }
  return 0;
}

}  // namespace kubetrain::cli
