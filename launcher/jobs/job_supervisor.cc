#include "kubetrain/launcher/jobs/job_supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/jobs/launch.h"
#include "kubetrain/launcher/jobs/scheduler.h"
#include "kubetrain/v1/job_state.h"
#include "kubetrain/v1/launch.pb.h"
#include "spdlog/spdlog.h"

namespace kubetrain::jobs {
namespace {

constexpr int kLastLines = 20;

bool Stopping(const JobSupervisorOptions& o) { return o.stop != nullptr && o.stop->load(); }

void SetState(v1::JobRecord& job, v1::JobState state, const std::string& reason,
              const std::string& message) {
  v1::JobStatus* s = job.mutable_status();
  s->set_state(state);
  s->set_reason(reason);
  s->set_message(message);
  if (v1::IsTerminal(state)) s->set_finished_unix_ms(NowMs());
}

// Jobs whose supervisor died without recording an end hold nothing: mark them failed.
void ReapLostJobs(storage::Workspace& ws, const std::string& compute, backends::Backend& backend) {
  absl::StatusOr<std::vector<v1::JobRecord>> all = ws.ListJobs();
  if (!all.ok()) return;
  for (const v1::JobRecord& j : *all) {
    v1::JobState st = j.status().state();
    if (j.spec().compute() != compute ||
        (st != v1::JOB_STATE_STARTING && st != v1::JOB_STATE_RUNNING) || SupervisorAlive(j)) {
      continue;
    }
    bool reaped = false;
    (void)ws.UpdateJob(j.spec().name(), [&reaped](const auto&, v1::JobRecord& r) {
      if (v1::IsTerminal(r.status().state()) || SupervisorAlive(r)) return absl::OkStatus();
      SetState(r, v1::JOB_STATE_FAILED, "SupervisorLost",
               absl::StrCat("the process supervising the job (pid ", r.supervisor_pid(),
                            ") ended without recording an outcome; its instances were stopped "
                            "with it"));
      reaped = true;
      return absl::OkStatus();
    });
    if (reaped) backend.Abandon(j);  // what the lost supervisor could not clean up
  }
}

// A job that left the queue: placed (with the instance type it was placed as), or ended.
struct Dequeued {
  v1::JobRecord job;
  v1::InstanceType type;
};

// Waits in the queue until the job may start. Returns the record with its placement and the
// instance type the placement was computed for, or a record in a terminal state (canceled while
// queued, or can never fit).
absl::StatusOr<Dequeued> WaitForPlacement(storage::Workspace& ws, const std::string& name,
                                          backends::Backend& backend,
                                          const JobSupervisorOptions& options) {
  std::string last_wait;
  while (true) {
    KT_ASSIGN_OR_RETURN(v1::JobRecord current, ws.GetJob(name));
    ReapLostJobs(ws, current.spec().compute(), backend);
    KT_ASSIGN_OR_RETURN(v1::ComputeTarget stored,
                        compute::FindComputeTarget(ws, current.spec().compute()));
    // The nodes as they are now, and what others hold on them (Kubernetes: other pods).
    absl::StatusOr<backends::Backend::Capacity> capacity = backend.CurrentCapacity(stored);
    if (!capacity.ok()) {
      // Still cancellable while the compute cannot be read (e.g. the API server is down).
      bool stopping = Stopping(options);
      KT_ASSIGN_OR_RETURN(v1::JobRecord job, ws.UpdateJob(name, [&](const auto&, v1::JobRecord& r) {
        if (!v1::IsTerminal(r.status().state()) && (r.cancel_requested() || stopping)) {
          SetState(r, v1::JOB_STATE_CANCELED, "Canceled", "canceled while queued");
        } else if (!v1::IsTerminal(r.status().state())) {
          r.set_waiting_for(absl::StrCat("cannot read the compute's current capacity: ",
                                         capacity.status().message()));
        }
        return absl::OkStatus();
      }));
      if (v1::IsTerminal(job.status().state())) return Dequeued{std::move(job), {}};
      if (job.waiting_for() != last_wait) {
        spdlog::warn("queued: {}", job.waiting_for());
        last_wait = job.waiting_for();
      }
      absl::SleepFor(options.queue_poll);
      continue;
    }
    const v1::ComputeTarget& target = capacity->target;
    KT_ASSIGN_OR_RETURN(
        v1::InstanceType type,
        compute::FindInstanceType(target, current.spec().resources().instance_type()));
    bool stopping = Stopping(options);
    KT_ASSIGN_OR_RETURN(
        v1::JobRecord job,
        ws.UpdateJob(name, [&](const std::vector<v1::JobRecord>& all, v1::JobRecord& r) {
          if (v1::IsTerminal(r.status().state())) return absl::OkStatus();
          if (r.cancel_requested() || stopping) {
            SetState(r, v1::JOB_STATE_CANCELED, "Canceled", "canceled while queued");
            return absl::OkStatus();
          }
          absl::StatusOr<v1::Placement> placed =
              TryStart(all, r, target, type, SupervisorAlive, capacity->held);
          if (placed.ok()) {
            *r.mutable_placement() = *placed;
            r.mutable_placement()->set_compute(target.name());
            r.clear_waiting_for();
            SetState(r, v1::JOB_STATE_STARTING, "", "placed; starting instances");
            r.mutable_status()->set_started_unix_ms(NowMs());
          } else if (placed.status().code() == absl::StatusCode::kUnavailable) {
            r.set_waiting_for(std::string(placed.status().message()));
          } else {
            SetState(r, v1::JOB_STATE_FAILED, "CannotFit", std::string(placed.status().message()));
          }
          return absl::OkStatus();
        }));
    if (job.status().state() != v1::JOB_STATE_QUEUED) return Dequeued{std::move(job), type};
    if (job.waiting_for() != last_wait) {
      spdlog::info("queued: {}", job.waiting_for());
      last_wait = job.waiting_for();
    }
    absl::SleepFor(options.queue_poll);
  }
}

// Why a gang failed, worked out before the transaction that records it (reading logs inside
// UpdateJob would re-enter the workspace while it holds the write lock).
struct Failure {
  int rank = -1;
  std::string reason, message;
  std::vector<std::string> last_lines;
};

// The failing rank, its exit code or signal and its last lines, from what its agent reported.
Failure DescribeFailure(storage::Workspace& ws, const backends::GangResult& result,
                        const v1::JobRecord& job, int64_t memory_limit_bytes) {
  Failure f;
  std::string what;
  // The root cause: of every failed rank of every instance, the one that ended first (its peers
  // often fail a moment later because it died); at the same millisecond, one killed by a signal
  // other than SIGTERM (what fail-fast sends), then the lower rank.
  const v1::RankStatus* first = nullptr;
  int first_instance = result.failed_instance;
  auto earlier = [](const v1::RankStatus& a, const v1::RankStatus& b) {
    auto key = [](const v1::RankStatus& r) {
      return std::make_tuple(r.finished_unix_ms(), r.signal() == 0 || r.signal() == SIGTERM,
                             r.rank());
    };
    return key(a) < key(b);
  };
  for (const v1::InstanceStatus& inst : job.status().instances()) {
    for (const v1::RankStatus& rank : inst.ranks()) {
      if (rank.state() != v1::JOB_STATE_FAILED) continue;
      if (first == nullptr || earlier(rank, *first)) {
        first = &rank;
        first_instance = inst.index();
      }
    }
  }
  if (first != nullptr) {
    const v1::RankStatus& rank = *first;
    f.rank = rank.rank();
    what = rank.signal() != 0
               ? absl::StrCat("rank ", rank.rank(), " was killed by signal ", rank.signal(), " (",
                              strsignal(rank.signal()), ")")
               : absl::StrCat("rank ", rank.rank(), " exited with code ", rank.exit_code());
    if (rank.signal() == SIGKILL && memory_limit_bytes > 0) {
      absl::StrAppend(&what,
                      " — if nobody killed it, it most likely exceeded the instance "
                      "type's memory limit of ",
                      common::FormatBytes(memory_limit_bytes), " (out-of-memory kill)");
    }
  } else {
    for (const v1::InstanceStatus& inst : job.status().instances()) {
      if (inst.index() == result.failed_instance && !inst.message().empty()) what = inst.message();
    }
  }
  if (what.empty()) {
    what = result.signal != 0 ? absl::StrCat("instance ", result.failed_instance,
                                             "'s agent was killed by signal ", result.signal)
                              : absl::StrCat("instance ", result.failed_instance,
                                             "'s agent exited with code ", result.exit_code);
  }
  if (f.rank >= 0) {
    storage::LogQuery q;
    q.job = job.spec().name();
    q.rank = f.rank;
    q.attempt = job.status().attempt();
    while (true) {
      absl::StatusOr<storage::LogPage> page = ws.ReadLogs(q);
      if (!page.ok() || page->lines.empty()) break;
      for (const v1::LogLine& l : page->lines) f.last_lines.push_back(l.text());
      q.after_id = page->next_id;
    }
    if (f.last_lines.size() > kLastLines) {
      f.last_lines.erase(f.last_lines.begin(), f.last_lines.end() - kLastLines);
    }
  }
  if (result.exit_code == v1::AGENT_EXIT_TIMED_OUT) {
    f.reason = "Timeout";
    f.message = absl::StrCat("limits.timeout of ", job.spec().limits().timeout_seconds(),
                             " s expired; every rank was stopped");
  } else {
    f.reason = "RankFailed";
    f.message =
        absl::StrCat(what, " on instance ", first_instance, "; every other rank was stopped");
  }
  return f;
}

}  // namespace

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

std::string ThisHost() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

bool SupervisedElsewhere(const v1::JobRecord& job) {
  return !job.supervisor_host().empty() && job.supervisor_host() != ThisHost();
}

bool SupervisorAlive(const v1::JobRecord& job) {
  // Another machine's supervisor (a shared workspace server): its pid means nothing here, and
  // only that machine can tell; take it as alive.
  if (SupervisedElsewhere(job)) return true;
  pid_t pid = static_cast<pid_t>(job.supervisor_pid());
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  // A supervisor that died but was not reaped yet (its parent is init, which may take its time)
  // is a zombie: not alive.
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t close = text.rfind(')');
  return close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'Z';
}

absl::StatusOr<v1::JobRecord> CancelJob(storage::Workspace& workspace, const std::string& name) {
  KT_ASSIGN_OR_RETURN(
      v1::JobRecord job, workspace.UpdateJob(name, [](const auto&, v1::JobRecord& r) {
        v1::JobState st = r.status().state();
        if (v1::IsTerminal(st)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job \"", r.spec().name(), "\" has already ended (", v1::JobState_Name(st), ")"));
        }
        r.set_cancel_requested(true);
        if (st == v1::JOB_STATE_QUEUED) {
          SetState(r, v1::JOB_STATE_CANCELED, "Canceled", "canceled while queued");
        }
        return absl::OkStatus();
      }));
  // The supervisor also sees cancel_requested within a fraction of a second; the signal only
  // makes it quicker, and only a supervisor on this machine can get it.
  if (!v1::IsTerminal(job.status().state()) && !SupervisedElsewhere(job) && SupervisorAlive(job)) {
    kill(static_cast<pid_t>(job.supervisor_pid()), SIGTERM);
  }
  return job;
}

absl::StatusOr<v1::JobRecord> SuperviseJob(storage::Workspace& workspace, const std::string& name,
                                           backends::Backend& backend,
                                           const JobSupervisorOptions& options) {
  const std::string host = ThisHost();
  KT_RETURN_IF_ERROR(workspace
                         .UpdateJob(name,
                                    [&](const auto&, v1::JobRecord& r) {
                                      r.set_supervisor_pid(getpid());
                                      r.set_supervisor_host(host);
                                      return absl::OkStatus();
                                    })
                         .status());
  // The agents' credential for this job alone (empty for the embedded workspace); it goes to
  // them in their environment, never on a command line or in a log.
  absl::StatusOr<std::string> agent_token = workspace.IssueJobToken(name);
  while (true) {
    KT_ASSIGN_OR_RETURN(Dequeued dequeued, WaitForPlacement(workspace, name, backend, options));
    const v1::JobRecord& job = dequeued.job;
    if (v1::IsTerminal(job.status().state())) return job;

    backends::LaunchRequest request =
        MakeLaunchRequest(job, dequeued.type, options.workspace_uri, options.grace);

    if (agent_token.ok()) request.workspace_token = *agent_token;
    absl::StatusOr<std::unique_ptr<backends::Gang>> gang =
        agent_token.ok() ? backend.Launch(request)
                         : absl::Status(agent_token.status().code(),
                                        absl::StrCat("cannot get a workspace token for the "
                                                     "job's agents: ",
                                                     agent_token.status().message()));
    if (!gang.ok()) {
      return workspace.UpdateJob(name, [&](const auto&, v1::JobRecord& r) {
        SetState(r, v1::JOB_STATE_FAILED, "LaunchFailed", std::string(gang.status().message()));
        return absl::OkStatus();
      });
    }
    auto mark_running = [&]() -> absl::Status {
      return workspace
          .UpdateJob(name,
                     [](const auto&, v1::JobRecord& r) {
                       if (r.status().state() == v1::JOB_STATE_STARTING) {
                         SetState(r, v1::JOB_STATE_RUNNING, "", "");
                       }
                       return absl::OkStatus();
                     })
          .status();
    };
    bool marked_running = false;
    if ((*gang)->Running()) {
      KT_RETURN_IF_ERROR(mark_running());
      marked_running = true;
    }

    std::optional<backends::GangResult> result;
    absl::Time next_check = absl::Now();
    bool canceled = false;
    while (!result) {
      result = (*gang)->Poll(options.poll);
      if (result) break;
      if (!marked_running && (*gang)->Running()) {
        KT_RETURN_IF_ERROR(mark_running());
        marked_running = true;
      }
      if (absl::Now() >= next_check) {  // a cancel request made through the workspace
        absl::StatusOr<v1::JobRecord> now = workspace.GetJob(name);
        canceled = now.ok() && now->cancel_requested();
        next_check = absl::Now() + absl::Milliseconds(250);
      }
      if (canceled || Stopping(options)) {
        (*gang)->Terminate();
        canceled = true;
        break;
      }
    }

    Failure failure;
    if (!canceled && !result->succeeded) {
      KT_ASSIGN_OR_RETURN(v1::JobRecord now, workspace.GetJob(name));
      failure = DescribeFailure(workspace, *result, now, request.memory_limit_bytes);
      if (!result->reason.empty()) {  // the backend knows the cause better
        failure.reason = result->reason;
        failure.message = result->message;
      }
      if (failure.last_lines.empty()) failure.last_lines = result->last_lines;
    }
    bool retry = false;
    KT_ASSIGN_OR_RETURN(v1::JobRecord after, workspace.UpdateJob(name, [&](const auto&,
                                                                           v1::JobRecord& r) {
      retry = false;  // the mutation may run more than once (a workspace server's retry)
      if (canceled) {
        SetState(r, v1::JOB_STATE_CANCELED, "Canceled", "canceled; every rank was stopped");
      } else if (result->succeeded) {
        SetState(r, v1::JOB_STATE_COMPLETED, "", "every rank exited 0");
      } else {
        SetState(r, v1::JOB_STATE_FAILED, failure.reason, failure.message);
        r.mutable_status()->set_failed_rank(failure.rank);
        r.mutable_status()->clear_last_log_lines();
        for (const std::string& l : failure.last_lines) r.mutable_status()->add_last_log_lines(l);
      }
      v1::Attempt* a = r.add_attempts();
      a->set_attempt(r.status().attempt());
      *a->mutable_placement() = r.placement();
      a->set_final_state(r.status().state());
      a->set_reason(r.status().reason());
      a->set_message(r.status().message());
      a->set_started_unix_ms(r.status().started_unix_ms());
      a->set_finished_unix_ms(r.status().finished_unix_ms());
      if (r.status().state() == v1::JOB_STATE_FAILED &&
          r.status().attempt() < r.spec().kubetrain().max_retries()) {
        retry = true;  // requeue: the next attempt takes a placement like any queued job
        r.mutable_status()->set_attempt(r.status().attempt() + 1);
        r.mutable_status()->set_finished_unix_ms(0);
        r.mutable_status()->clear_instances();
        r.clear_placement();
        SetState(r, v1::JOB_STATE_QUEUED, "Retrying",
                 absl::StrCat("attempt ", r.status().attempt(), " of ",
                              r.spec().kubetrain().max_retries() + 1, " after: ", a->message()));
      }
      return absl::OkStatus();
    }));
    if (!retry) return after;
    spdlog::warn("attempt {} failed ({}); retrying", after.status().attempt() - 1,
                 after.attempts().rbegin()->message());
  }
}

}  // namespace kubetrain::jobs
