#include "launcher/cli/follow.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "launcher/cli/job_view.h"
#include "launcher/cli/output.h"
#include "launcher/jobs/scheduler.h"
#include "launcher/jobs/supervisor.h"

namespace kubetrain::cli {
namespace {

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted.store(true); }

// Prints every stored line after `*cursor`; returns how many.
int Drain(storage::Workspace& ws, const std::string& name, int64_t* cursor, std::ostream& out) {
  int printed = 0;
  while (true) {
    storage::LogQuery q;
    q.job = name;
    q.after_id = *cursor;
    absl::StatusOr<storage::LogPage> page = ws.ReadLogs(q);
    if (!page.ok() || page->lines.empty()) break;
    for (const v1::LogLine& l : page->lines) out << FormatLogLine(l) << "\n";
    printed += static_cast<int>(page->lines.size());
    *cursor = page->next_id;
  }
  out.flush();
  return printed;
}

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

int FollowJob(storage::Workspace& ws, const std::string& name, std::ostream& out) {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  int64_t cursor = 0;
  std::string last_status;
  while (true) {
    absl::StatusOr<v1::JobRecord> job = ws.GetJob(name);
    if (!job.ok()) {
      PrintError(job.status());
      return 1;
    }
    Drain(ws, name, &cursor, out);
    std::string status = StatusLine(*job);
    if (status != last_status && !jobs::IsTerminal(job->status().state())) {
      out << "── " << status << "\n" << std::flush;
      last_status = status;
    }
    if (jobs::IsTerminal(job->status().state())) {
      Drain(ws, name, &cursor, out);  // lines stored just before the end
      PrintOutcome(*job, out);
      return job->status().state() == v1::JOB_STATE_COMPLETED ? 0 : 1;
    }
    if (g_interrupted.exchange(false) && AskCancelOrDetach(ws, name)) return 130;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

}  // namespace kubetrain::cli
