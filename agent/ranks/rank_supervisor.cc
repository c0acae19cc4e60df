#include "kubetrain/agent/ranks/rank_supervisor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/agent/mpi/mpirun_command.h"

namespace kubetrain::agent {
namespace {

using Outcome = RankSupervisorResult::Outcome;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

struct Proc {
  RankProcess spec;
  ChildProcess child;
  std::string pending[2];                       // partial lines of stdout, stderr
  std::unique_ptr<TaggedOutputDemux> demux[2];  // mpirun --tag-output: per-rank lines
  bool running = false;                         // spawned and not reaped
  bool signalled_by_us = false;
  int exit_code = 0;
  int signal = 0;
  v1::JobState state = v1::JOB_STATE_STARTING;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
};

class RunState {
 public:
  RunState(const RankSupervisorOptions& options, Reporter* reporter, CancelToken* cancel)
      : options_(options), reporter_(reporter), cancel_(cancel) {}

  RankSupervisorResult Go(std::vector<RankProcess> specs);

 private:
  void Start(std::vector<RankProcess> specs);
  void ReadFd(Proc& p, int which);
  void FlushAndClose(Proc& p);
  void EmitLine(Proc& p, int which, absl::string_view text);
  void EmitRankLine(int rank, v1::LogLine::Stream stream, absl::string_view text);
  void CheckExits();
  void Finished(Proc& p, int wstatus);
  void BeginTeardown(const std::string& why);
  void SignalLiveGroups(int sig);
  bool AnyRunning() const;
  void ReportStatus();
  void SweepOrphans();
  void AddMpiRanks(const Proc& p, v1::InstanceStatus& s);
  std::deque<std::string>& Tail(int rank) { return tails_[rank]; }

  const RankSupervisorOptions& options_;
  Reporter* reporter_;
  CancelToken* cancel_;
  std::vector<Proc> procs_;
  std::map<int, std::deque<std::string>> tails_;  // per log rank (-1: mpirun's own lines)
  std::vector<std::string> mpirun_lines_;         // untagged mpirun output (for its failure)
  RankSupervisorResult result_;
  bool tearing_down_ = false;
  bool killed_ = false;
  absl::Time teardown_start_;
  absl::Time kill_deadline_;
  bool status_dirty_ = false;
  std::unique_ptr<OrphanGuard> guard_;  // kills the rank groups if this agent dies abruptly
  std::set<pid_t> guarded_;             // process groups registered with the guard
  absl::Time next_scan_;
  void GuardNewGroups();
};

// Registers with the guard every process group our descendants are in: ranks that start their own
// groups (mpirun puts each rank it forks into its own) are then covered as well.
void RunState::GuardNewGroups() {
  if (guard_ == nullptr) return;
  for (auto it = guarded_.begin(); it != guarded_.end();) {
    if (!GroupAlive(*it)) {
      guard_->Remove(*it);
      it = guarded_.erase(it);
    } else {
      ++it;
    }
  }
  const pid_t own = getpgrp();
  for (pid_t pid : LiveDescendants()) {
    if (pid == guard_->pid()) continue;
    pid_t pgid = getpgid(pid);
    if (pgid <= 0 || pgid == own || pgid == guard_->pid() || guarded_.count(pgid)) continue;
    guard_->Add(pgid);
    guarded_.insert(pgid);
  }
}

void RunState::Start(std::vector<RankProcess> specs) {
  for (RankProcess& spec : specs) {
    Proc p;
    p.spec = std::move(spec);
    absl::StatusOr<ChildProcess> child = Spawn(p.spec.spawn);
    if (!child.ok()) {
      std::string who = p.spec.rank < 0 ? "mpirun" : absl::StrCat("rank ", p.spec.rank);
      result_.outcome = Outcome::kStartFailed;
      result_.failed_rank = p.spec.rank;
      result_.message = absl::StrCat("could not start ", who, ": ", child.status().message());
      reporter_->Agent(result_.message, "error");
      p.state = v1::JOB_STATE_FAILED;
      p.exit_code = 127;
      procs_.push_back(std::move(p));
      BeginTeardown("a process could not start");
      return;
    }
    p.child = std::move(*child);
    if (p.spec.mpirun_tagged_output) {
      p.demux[0] =
          std::make_unique<TaggedOutputDemux>(v1::LogLine::STREAM_STDOUT, options_.max_line_bytes);
      p.demux[1] =
          std::make_unique<TaggedOutputDemux>(v1::LogLine::STREAM_STDERR, options_.max_line_bytes);
    }
    if (guard_ != nullptr) {
      guard_->Add(p.child.pid());
      guarded_.insert(p.child.pid());
    }
    p.running = true;
    p.state = v1::JOB_STATE_RUNNING;
    p.started_ms = NowMs();
    reporter_->Agent(
        absl::StrCat(p.spec.rank < 0 ? std::string("mpirun") : absl::StrCat("rank ", p.spec.rank),
                     " started (pid ", p.child.pid(), ", local rank ", p.spec.local_rank, ")"));
    procs_.push_back(std::move(p));
  }
}

void RunState::EmitLine(Proc& p, int which, absl::string_view text) {
  EmitRankLine(p.spec.rank, which == 0 ? v1::LogLine::STREAM_STDOUT : v1::LogLine::STREAM_STDERR,
               text);
}

void RunState::EmitRankLine(int rank, v1::LogLine::Stream stream, absl::string_view text) {
  if (rank < 0) {  // mpirun's own words: kept to find the rank it blames
    mpirun_lines_.emplace_back(text);
    if (mpirun_lines_.size() > 200) mpirun_lines_.erase(mpirun_lines_.begin());
  }
  reporter_->Line(rank, stream, text);
  std::deque<std::string>& tail = Tail(rank);
  tail.emplace_back(text);
  while (tail.size() > options_.tail_lines) tail.pop_front();
}

// Emits partial lines still open (a pipe held open by an escaped process) and closes the pipes.
void RunState::FlushAndClose(Proc& p) {
  for (int which = 0; which < 2; ++which) {
    if (p.demux[which] != nullptr) {
      p.demux[which]->Finish([this](int rank, v1::LogLine::Stream stream, absl::string_view text) {
        EmitRankLine(rank, stream, text);
      });
    } else if (!p.pending[which].empty()) {
      EmitLine(p, which, p.pending[which]);
    }
    p.pending[which].clear();
  }
  p.child.CloseStdout();
  p.child.CloseStderr();
}

void RunState::ReadFd(Proc& p, int which) {
  int fd = which == 0 ? p.child.stdout_fd() : p.child.stderr_fd();
  if (fd < 0) return;
  char buf[65536];
  // Bounded per call so one chatty rank cannot starve exit checks.
  for (int round = 0; round < 16; ++round) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (p.demux[which] != nullptr) {
      auto emit = [this](int rank, v1::LogLine::Stream stream, absl::string_view text) {
        EmitRankLine(rank, stream, text);
      };
      if (n > 0) {
        p.demux[which]->Feed(absl::string_view(buf, n), emit);
        continue;
      }
      p.demux[which]->Finish(emit);
      if (which == 0) {
        p.child.CloseStdout();
      } else {
        p.child.CloseStderr();
      }
      return;
    }
    std::string& pending = p.pending[which];
    if (n <= 0) {  // EOF (or error): flush the partial line, close.
      if (!pending.empty()) EmitLine(p, which, pending);
      pending.clear();
      if (which == 0) {
        p.child.CloseStdout();
      } else {
        p.child.CloseStderr();
      }
      return;
    }
    pending.append(buf, n);
    size_t start = 0;
    while (true) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos) break;
      size_t end = nl;
      if (end > start && pending[end - 1] == '\r') --end;
      EmitLine(p, which, absl::string_view(pending).substr(start, end - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    while (pending.size() >= options_.max_line_bytes) {
      EmitLine(p, which, absl::string_view(pending).substr(0, options_.max_line_bytes));
      pending.erase(0, options_.max_line_bytes);
    }
  }
}

void RunState::Finished(Proc& p, int wstatus) {
  // What it wrote before exiting is in its pipes: read it now, so its last lines are in its tail.
  ReadFd(p, 0);
  ReadFd(p, 1);
  p.running = false;
  p.finished_ms = NowMs();
  if (WIFSIGNALED(wstatus)) {
    p.signal = WTERMSIG(wstatus);
  } else {
    p.exit_code = WEXITSTATUS(wstatus);
  }
  const bool failed = p.signal != 0 || p.exit_code != 0;
  if (p.signalled_by_us) {
    p.state = v1::JOB_STATE_CANCELED;
  } else {
    p.state = failed ? v1::JOB_STATE_FAILED : v1::JOB_STATE_COMPLETED;
  }
  const std::string who = p.spec.rank < 0 ? "mpirun" : absl::StrCat("rank ", p.spec.rank);
  const std::string how = p.signal != 0 ? absl::StrCat("was killed by ", SignalName(p.signal))
                                        : absl::StrCat("exited with code ", p.exit_code);
  reporter_->Agent(absl::StrCat(who, " (pid ", p.child.pid(), ") ", how),
                   failed && !p.signalled_by_us ? "warn" : "info");
  status_dirty_ = true;
  if (failed && !tearing_down_) {
    result_.outcome = Outcome::kRankFailed;
    result_.failed_rank = p.spec.rank;
    result_.failed_pid = p.child.pid();
    result_.exit_code = p.exit_code;
    result_.signal = p.signal;
    int tail_rank = p.spec.rank;
    if (p.spec.mpirun_tagged_output) {
      std::optional<MpirunFailure> f;
      if (!p.spec.mpi_status_dir.empty()) f = FirstFailedRank(p.spec.mpi_status_dir);
      if (!f.has_value()) f = ParseMpirunFailure(mpirun_lines_);
      if (f.has_value()) {
        if (f->rank >= 0) {
          result_.failed_rank = f->rank;
          tail_rank = f->rank;
        }
        if (f->signal != 0) {
          result_.signal = f->signal;
          result_.exit_code = 0;
        } else if (f->exit_code != 0) {
          result_.exit_code = f->exit_code;
          result_.signal = 0;
        }
      }
    }
    const std::string failed_who =
        result_.failed_rank < 0 ? who : absl::StrCat("rank ", result_.failed_rank);
    const std::string failed_how = result_.signal != 0
                                       ? absl::StrCat("was killed by ", SignalName(result_.signal))
                                       : absl::StrCat("exited with code ", result_.exit_code);
    result_.message = absl::StrCat(failed_who, " ", failed_how);
    const std::deque<std::string>& tail = Tail(tail_rank);
    result_.last_lines.assign(tail.begin(), tail.end());
    BeginTeardown(absl::StrCat(failed_who, " failed"));
  }
}

void RunState::CheckExits() {
  for (Proc& p : procs_) {
    if (!p.running) continue;
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    // WNOWAIT: the pid stays a zombie, so its process group id cannot be reused while we clean up.
    if (waitid(P_PID, p.child.pid(), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == ECHILD) {  // reaped behind our back: its status is lost
        reporter_->Agent(absl::StrCat("pid ", p.child.pid(), " vanished (reaped elsewhere)"),
                         "warn");
        Finished(p, 255 << 8);
      }
      continue;
    }
    if (info.si_pid == 0) continue;
    SignalGroup(p.child.pid(), SIGKILL);  // leftovers of this rank's group
    if (guard_ != nullptr) {
      guard_->Remove(p.child.pid());
      guarded_.erase(p.child.pid());
    }
    int wstatus = 0;
    while (waitpid(p.child.pid(), &wstatus, 0) < 0 && errno == EINTR) {
    }
    Finished(p, wstatus);
  }
}

void RunState::SignalLiveGroups(int sig) {
  for (Proc& p : procs_) {
    if (!p.running) continue;
    p.signalled_by_us = true;
    SignalGroup(p.child.pid(), sig);
  }
}

void RunState::BeginTeardown(const std::string& why) {
  if (tearing_down_) return;
  tearing_down_ = true;
  teardown_start_ = absl::Now();
  kill_deadline_ = teardown_start_ + options_.grace_period;
  if (AnyRunning()) {
    reporter_->Agent(absl::StrCat(why, "; stopping the other processes (SIGTERM, SIGKILL after ",
                                  absl::FormatDuration(options_.grace_period), ")"));
  }
  SignalLiveGroups(SIGTERM);
  status_dirty_ = true;
}

bool RunState::AnyRunning() const {
  return std::any_of(procs_.begin(), procs_.end(), [](const Proc& p) { return p.running; });
}

void RunState::ReportStatus() {
  v1::InstanceStatus& s = result_.status;
  s.Clear();
  s.set_index(options_.instance);
  s.set_node(options_.node);
  bool running = AnyRunning();
  if (running) {
    s.set_state(v1::JOB_STATE_RUNNING);
  } else {
    switch (result_.outcome) {
      case Outcome::kSucceeded:
        s.set_state(v1::JOB_STATE_COMPLETED);
        break;
      case Outcome::kCanceled:
        s.set_state(v1::JOB_STATE_CANCELED);
        break;
      default:
        s.set_state(v1::JOB_STATE_FAILED);
        break;
    }
  }
  s.set_message(result_.message);
  for (const Proc& p : procs_) {
    v1::RankStatus* r = s.add_ranks();
    r->set_rank(p.spec.rank);
    r->set_local_rank(p.spec.local_rank);
    r->set_state(p.state);
    r->set_exit_code(p.exit_code);
    r->set_signal(p.signal);
    r->set_pid(p.child.pid());
    r->set_started_unix_ms(p.started_ms);
    r->set_finished_unix_ms(p.finished_ms);
    if (p.spec.mpi_world_size > 0) AddMpiRanks(p, s);
  }
  reporter_->UpdateStatus(s);
  status_dirty_ = false;
}

// The ranks under mpirun, from the statuses their wrappers recorded (no pid: mpirun's children).
void RunState::AddMpiRanks(const Proc& p, v1::InstanceStatus& s) {
  std::map<int, RankExit> exits;
  if (!p.spec.mpi_status_dir.empty()) exits = ReadRankExits(p.spec.mpi_status_dir);
  for (int rank = 0; rank < p.spec.mpi_world_size; ++rank) {
    v1::RankStatus* r = s.add_ranks();
    r->set_rank(rank);
    r->set_local_rank(rank % std::max(1, p.spec.mpi_ranks_per_instance));
    r->set_started_unix_ms(p.started_ms);
    auto it = exits.find(rank);
    if (it == exits.end()) {
      // Still running, or killed before its wrapper could record anything.
      r->set_state(p.running ? v1::JOB_STATE_RUNNING : v1::JOB_STATE_CANCELED);
      if (!p.running) r->set_finished_unix_ms(p.finished_ms);
      continue;
    }
    const int status = it->second.status;
    if (status > 128 && status < 128 + 65) {
      r->set_signal(status - 128);
    } else {
      r->set_exit_code(status);
    }
    r->set_finished_unix_ms(static_cast<int64_t>(it->second.when * 1000));
    if (status == 0) {
      r->set_state(v1::JOB_STATE_COMPLETED);
    } else if (rank == result_.failed_rank || !tearing_down_) {
      r->set_state(v1::JOB_STATE_FAILED);
    } else {
      r->set_state(v1::JOB_STATE_CANCELED);
    }
  }
}

void RunState::SweepOrphans() {
  // Processes that left their rank's group (setsid, double fork) were reparented to us (child
  // subreaper). Kill them, then reap every remaining child.
  for (int round = 0; round < 50; ++round) {
    std::vector<pid_t> left = LiveDescendants();
    if (left.empty()) break;
    if (round == 0) {
      reporter_->Agent(absl::StrCat(left.size(),
                                    " process(es) outlived their rank's process group; killing "
                                    "them (pids ",
                                    absl::StrJoin(left, ","), ")"),
                       "warn");
    }
    for (pid_t pid : left) kill(pid, SIGKILL);
    for (pid_t pid : left) {
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    usleep(10000);
  }
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

RankSupervisorResult RunState::Go(std::vector<RankProcess> specs) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const absl::Time deadline = absl::Now() + options_.timeout;
  if (cancel_ != nullptr && cancel_->requested()) {
    result_.outcome = Outcome::kCanceled;
    result_.signal = cancel_->signal();
    result_.message = absl::StrCat("canceled (", SignalName(result_.signal), ") before start");
    reporter_->Agent(result_.message);
    ReportStatus();
    return std::move(result_);
  }
  if (absl::StatusOr<std::unique_ptr<OrphanGuard>> guard = OrphanGuard::Start(); guard.ok()) {
    guard_ = std::move(*guard);
  } else {
    reporter_->Agent(absl::StrCat("no orphan guard (", guard.status().message(),
                                  "); if this agent is killed, processes its ranks forked may "
                                  "survive"),
                     "warn");
  }
  Start(std::move(specs));
  next_scan_ = absl::Now() + absl::Milliseconds(100);
  ReportStatus();

  std::vector<pollfd> fds;
  std::vector<std::pair<size_t, int>> owners;  // fds[i] → (proc, which); cancel fd first
  absl::Time drain_deadline = absl::InfiniteFuture();
  while (true) {
    fds.clear();
    owners.clear();
    if (cancel_ != nullptr && cancel_->fd() >= 0) {
      fds.push_back({cancel_->fd(), POLLIN, 0});
      owners.push_back({0, -1});
    }
    for (size_t i = 0; i < procs_.size(); ++i) {
      if (procs_[i].child.stdout_fd() >= 0) {
        fds.push_back({procs_[i].child.stdout_fd(), POLLIN, 0});
        owners.push_back({i, 0});
      }
      if (procs_[i].child.stderr_fd() >= 0) {
        fds.push_back({procs_[i].child.stderr_fd(), POLLIN, 0});
        owners.push_back({i, 1});
      }
    }
    const bool running = AnyRunning();
    if (tearing_down_ && !running && result_.teardown == absl::ZeroDuration()) {
      result_.teardown = absl::Now() - teardown_start_;
    }
    const bool pipes_open = fds.size() > (cancel_ != nullptr && cancel_->fd() >= 0 ? 1u : 0u);
    if (!running) {
      if (!pipes_open) break;
      // Every process is reaped but something (an escaped child) still holds a pipe open.
      if (drain_deadline == absl::InfiniteFuture()) {
        drain_deadline = absl::Now() + absl::Milliseconds(500);
      }
      if (absl::Now() >= drain_deadline) break;
    }

    absl::Duration wait = options_.poll_interval;
    if (tearing_down_ && !killed_) wait = std::min(wait, kill_deadline_ - absl::Now());
    wait = std::max(wait, absl::ZeroDuration());
    int rc = poll(fds.data(), fds.size(), static_cast<int>(absl::ToInt64Milliseconds(wait)));
    if (rc < 0 && errno != EINTR) break;
    if (rc > 0) {
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        if (owners[i].second < 0) {
          cancel_->Drain();
          continue;
        }
        ReadFd(procs_[owners[i].first], owners[i].second);
      }
    }

    if (cancel_ != nullptr && cancel_->requested() && !tearing_down_) {
      result_.outcome = Outcome::kCanceled;
      result_.signal = cancel_->signal();
      result_.message = absl::StrCat("canceled (", SignalName(result_.signal), ")");
      BeginTeardown(absl::StrCat("received ", SignalName(result_.signal)));
    }
    if (!tearing_down_ && absl::Now() >= deadline) {
      result_.outcome = Outcome::kTimedOut;
      result_.message = absl::StrCat("timed out after ", absl::FormatDuration(options_.timeout),
                                     " (limits.timeout)");
      BeginTeardown("limits.timeout reached");
    }
    CheckExits();
    if (tearing_down_ && !killed_ && absl::Now() >= kill_deadline_ && AnyRunning()) {
      reporter_->Agent(absl::StrCat("grace period of ", absl::FormatDuration(options_.grace_period),
                                    " over; sending SIGKILL"),
                       "warn");
      for (Proc& p : procs_) {
        if (p.running) SignalGroup(p.child.pid(), SIGKILL);
      }
      killed_ = true;
    }
    if (absl::Now() >= next_scan_) {
      GuardNewGroups();
      next_scan_ = absl::Now() + absl::Milliseconds(500);
    }
    if (status_dirty_) ReportStatus();
    reporter_->MaybeFlush();
  }
  if (tearing_down_) {
    if (result_.teardown == absl::ZeroDuration()) result_.teardown = absl::Now() - teardown_start_;
    reporter_->Agent(absl::StrCat("all processes stopped ", absl::FormatDuration(result_.teardown),
                                  " after the teardown began"));
  }
  if (result_.outcome == Outcome::kSucceeded) result_.message = "all processes exited 0";
  guard_.reset();  // every group is gone: the guard exits without killing
  SweepOrphans();
  for (Proc& p : procs_) FlushAndClose(p);
  ReportStatus();
  return std::move(result_);
}

}  // namespace

RankSupervisor::RankSupervisor(RankSupervisorOptions options, Reporter* reporter,
                               CancelToken* cancel)
    : options_(std::move(options)), reporter_(reporter), cancel_(cancel) {}

RankSupervisorResult RankSupervisor::Run(std::vector<RankProcess> processes) {
  RunState run(options_, reporter_, cancel_);
  return run.Go(std::move(processes));
}

}  // namespace kubetrain::agent
