#include "kubetrain/launcher/backends/kubernetes/kubernetes_backend.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "kubetrain/launcher/backends/kubernetes/cluster.h"
#include "kubetrain/launcher/backends/kubernetes/kubeconfig.h"
#include "kubetrain/launcher/backends/kubernetes/pod_status.h"
#include "kubetrain/launcher/backends/kubernetes/watch.h"
#include "spdlog/spdlog.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;

constexpr size_t kTailLines = 20;

std::string CollectionPath(const std::string& ns, const std::string& kind) {
  std::string resource = kind == "Secret"      ? "secrets"
                         : kind == "ConfigMap" ? "configmaps"
                         : kind == "Service"   ? "services"
                                               : "pods";
  return absl::StrCat("/api/v1/namespaces/", ns, "/", resource);
}

std::string ObjectPath(const std::string& ns, const json& object) {
  return absl::StrCat(CollectionPath(ns, object.value("kind", "")), "/",
                      object["metadata"].value("name", ""));
}

// One line of a pod's log. The agent runs with `--output json` and writes one v1::LogLine per line
// (launch.proto); anything else (the container runtime's own words, a line cut short by a crash)
// is kept as an agent line as it is.
v1::LogLine ParseAgentOutputLine(absl::string_view raw) {
  v1::LogLine line;
  if (!raw.empty() && raw.front() == '{' &&
      google::protobuf::util::JsonStringToMessage(std::string(raw), &line).ok()) {
    return line;
  }
  line.Clear();
  line.set_rank(-1);
  line.set_stream(v1::LogLine::STREAM_AGENT);
  line.set_text(std::string(raw));
  return line;
}

// Follows one pod's log through the API, keeps its last lines, and (when asked) stores the lines
// in the workspace. A broken stream is re-read from the start and the lines already seen are
// skipped, so every line is handled once (its sequence is its index in the container's log).
class LogFollower {
 public:
  LogFollower(std::shared_ptr<ApiClient> client, std::string ns, std::string pod, int instance,
              int attempt, std::string job, storage::Workspace* store)
      : client_(std::move(client)),
        ns_(std::move(ns)),
        pod_(std::move(pod)),
        instance_(instance),
        attempt_(attempt),
        job_(std::move(job)),
        store_(store) {
    thread_ = std::thread([this] { Run(); });
  }
  ~LogFollower() { Stop(); }

  // The pod has ended: read to the end of its log, then stop (waits up to `timeout`).
  void Finish(absl::Duration timeout) {
    finishing_.store(true);
    absl::Time deadline = absl::Now() + timeout;
    while (!done_.load() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    Stop();
  }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> Tail() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<std::string>(tail_.begin(), tail_.end());
  }

 private:
  void Run() {
    std::string path = absl::StrCat("/api/v1/namespaces/", ns_, "/pods/", pod_,
                                    "/log?container=", kContainerName, "&follow=true");
    while (!stop_.load()) {
      int64_t index = 0;
      absl::Time last_flush = absl::Now();
      absl::Status s = client_->Stream(
          path,
          [&](absl::string_view line) {
            if (index++ < seen_) return true;  // already handled before a reconnect
            Handle(line, seen_++);
            if (pending_.size() >= 500 || absl::Now() - last_flush > absl::Milliseconds(200)) {
              Flush();
              last_flush = absl::Now();
            }
            return true;
          },
          &stop_);
      Flush();
      if (s.ok() && finishing_.load()) break;  // the stream ended after the container did
      if (s.code() == absl::StatusCode::kCancelled) break;
      // Not started yet (400 "waiting to start"), a broken stream, or the container still runs
      // after a server-side close: try again shortly.
      for (int i = 0; i < 10 && !stop_.load(); ++i) absl::SleepFor(absl::Milliseconds(20));
    }
    done_.store(true);
  }

  void Handle(absl::string_view text, int64_t sequence) {
    v1::LogLine l = ParseAgentOutputLine(text);
    {
      std::lock_guard<std::mutex> lock(mu_);
      tail_.push_back(l.rank() >= 0 ? absl::StrCat("[rank ", l.rank(), "] ", l.text())
                      : l.stream() == v1::LogLine::STREAM_AGENT
                          ? l.text()
                          : absl::StrCat("[mpirun] ", l.text()));
      if (tail_.size() > kTailLines) tail_.pop_front();
    }
    if (store_ == nullptr) return;
    l.set_job(job_);
    l.set_attempt(attempt_);
    l.set_instance(instance_);
    l.set_sequence(sequence);
    if (l.timestamp_ns() == 0) l.set_timestamp_ns(absl::ToUnixNanos(absl::Now()));
    pending_.push_back(std::move(l));
  }

  void Flush() {
    if (store_ == nullptr || pending_.empty()) return;
    absl::Status s = store_->AppendLogs(pending_);
    if (!s.ok()) {
      spdlog::warn("cannot store pod {}'s log lines: {}", pod_, std::string(s.message()));
      return;  // kept: the next flush tries again (AppendLogs is idempotent)
    }
    pending_.clear();
  }

  std::shared_ptr<ApiClient> client_;
  const std::string ns_, pod_;
  const int instance_, attempt_;
  const std::string job_;
  storage::Workspace* store_;
  std::atomic<bool> stop_{false}, finishing_{false}, done_{false};
  int64_t seen_ = 0;
  std::vector<v1::LogLine> pending_;
  std::mutex mu_;
  std::deque<std::string> tail_;
  std::thread thread_;
};

// Deletes every object (pods first, with their grace period; the owner Secret last).
void DeleteAll(const ApiClient& client, const std::string& ns, const std::vector<json>& objects,
               int64_t grace_seconds) {
  for (auto it = objects.rbegin(); it != objects.rend(); ++it) {
    bool pod = it->value("kind", "") == "Pod";
    absl::Status s = client.Delete(ObjectPath(ns, *it), pod ? grace_seconds : -1);
    if (!s.ok()) spdlog::warn("cleanup: {}", std::string(s.message()));
  }
}

class KubeGang : public Gang {
 public:
  KubeGang(std::shared_ptr<ApiClient> client, const KubernetesBackendOptions& options,
           const LaunchRequest& request, RenderedJob rendered, absl::Duration start_timeout)
      : client_(std::move(client)),
        ns_(options.target.kubernetes().namespace_()),
        job_(request.job.spec().name()),
        attempt_(request.attempt),
        grace_(request.grace),
        store_(options.target.kubernetes().workspace_url().empty() ? options.workspace : nullptr),
        rendered_(std::move(rendered)),
        start_deadline_(absl::Now() + start_timeout),
        start_timeout_(start_timeout),
        watch_(*client_, ns_, AttemptSelector(job_, attempt_, options.workspace_id),
               options.watch_timeout) {
    for (const json& pod : rendered_.pods) pods_.push_back(pod["metadata"].value("name", ""));
    last_state_.assign(pods_.size(), v1::JOB_STATE_UNSPECIFIED);
    followers_.resize(pods_.size());
    watch_.Start();
  }

  ~KubeGang() override {
    if (!ended_) Terminate();
  }

  bool Running() override { return running_; }

  std::optional<GangResult> Poll(absl::Duration timeout) override {
    if (ended_) return result_;
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      PodView view =
          watch_.WaitForChange(seen_, std::max(absl::ZeroDuration(), deadline - absl::Now()));
      seen_ = view.version;
      if (std::optional<GangResult> r = Evaluate(view)) {
        End(*r);
        return result_;
      }
      if (absl::Now() >= deadline) return std::nullopt;
    }
  }

  void Terminate() override {
    if (ended_) return;
    ended_ = true;
    DeleteAll(*client_, ns_, rendered_.All(), absl::ToInt64Seconds(grace_));
    // Wait until the pods are gone (their containers got SIGTERM, then SIGKILL after the grace).
    absl::Time deadline = absl::Now() + grace_ + absl::Seconds(10);
    uint64_t seen = 0;
    while (absl::Now() < deadline) {
      PodView view = watch_.WaitForChange(seen, absl::Milliseconds(200));
      seen = view.version;
      bool any = false;
      for (const std::string& p : pods_) any |= view.pods.count(p) > 0;
      if (!any && view.listed) break;
    }
    StopFollowers(absl::ZeroDuration());
    watch_.Stop();
  }

 private:
  std::optional<GangResult> Evaluate(const PodView& view) {
    if (!view.listed) return StartTimeoutIfDue(view);
    bool all_done = true, all_started = true;
    for (size_t i = 0; i < pods_.size(); ++i) {
      auto it = view.pods.find(pods_[i]);
      PodOutcome o;
      if (it == view.pods.end()) {
        if (view.deleted.count(pods_[i])) {
          o.state = v1::JOB_STATE_FAILED;
          o.reason = "PodDeleted";
          o.message =
              absl::StrCat("pod ", pods_[i], " was deleted by someone else while the job ran");
        } else {
          o.message = absl::StrCat("pod ", pods_[i], " is not there yet");
        }
      } else {
        o = ClassifyPod(it->second);
      }
      Report(i, o, it == view.pods.end() ? json() : it->second);
      if (o.state != v1::JOB_STATE_STARTING && !followers_[i] && it != view.pods.end()) {
        followers_[i] = std::make_unique<LogFollower>(client_, ns_, pods_[i], static_cast<int>(i),
                                                      attempt_, job_, store_);
      }
      if (o.state == v1::JOB_STATE_FAILED) {
        GangResult r;
        r.failed_instance = static_cast<int>(i);
        r.exit_code = o.exit_code;
        r.signal = o.signal;
        r.reason = o.reason;
        r.message = o.message;
        if (followers_[i]) {
          followers_[i]->Finish(absl::Seconds(3));
          r.last_lines = followers_[i]->Tail();
          // The agent's last word says which rank failed and how ("exit 1: rank 0 exited ...").
          for (auto it = r.last_lines.rbegin(); it != r.last_lines.rend(); ++it) {
            absl::string_view line = *it;
            if (absl::ConsumePrefix(&line, "exit ") && line.find(": ") != absl::string_view::npos) {
              absl::StrAppend(&r.message, " (", line.substr(line.find(": ") + 2), ")");
              break;
            }
          }
        }
        if (r.reason != "Timeout")
          absl::StrAppend(&r.message, "; every other instance was stopped");
        return r;
      }
      all_done &= o.state == v1::JOB_STATE_COMPLETED;
      all_started &= o.state != v1::JOB_STATE_STARTING;
      waiting_[i] = o.state == v1::JOB_STATE_STARTING ? o.message : "";
    }
    if (all_started && !running_) {
      running_ = true;
      spdlog::info("every pod of {} is running", rendered_.base);
    }
    if (all_done) {
      GangResult r;
      r.succeeded = true;
      return r;
    }
    return StartTimeoutIfDue(view);
  }

  std::optional<GangResult> StartTimeoutIfDue(const PodView& view) {
    if (running_ || absl::Now() < start_deadline_) return std::nullopt;
    std::vector<std::string> late;
    for (const auto& [i, why] : waiting_) {
      if (!why.empty()) late.push_back(why);
    }
    if (late.empty() && !view.last_error.ok()) late.push_back(view.last_error.ToString());
    GangResult r;
    r.reason = "StartTimeout";
    r.message = absl::StrCat("not every pod was Running within the start timeout of ",
                             absl::FormatDuration(start_timeout_), ": ",
                             late.empty() ? "no pod state arrived" : absl::StrJoin(late, "; "),
                             "; every object of the job was deleted (raise it with "
                             "`kubetrain: {start_timeout: SECONDS}`)");
    for (size_t i = 0; i < pods_.size(); ++i) {
      if (!waiting_[i].empty()) {
        r.failed_instance = static_cast<int>(i);
        break;
      }
    }
    return r;
  }

  // The pod's state into the workspace, when the pods do not report there themselves.
  void Report(size_t i, const PodOutcome& o, const json& pod) {
    if (store_ == nullptr || o.state == last_state_[i]) return;
    last_state_[i] = o.state;
    v1::InstanceStatus s;
    s.set_index(static_cast<int>(i));
    s.set_node(pod.is_object() ? pod["spec"].value("nodeName", "") : "");
    s.set_state(o.state);
    s.set_message(o.message);
    if (absl::Status st = store_->UpdateInstanceStatus(job_, s); !st.ok()) {
      spdlog::warn("cannot record instance {}'s state: {}", i, std::string(st.message()));
    }
  }

  void StopFollowers(absl::Duration finish) {
    for (auto& f : followers_) {
      if (!f) continue;
      if (finish > absl::ZeroDuration()) {
        f->Finish(finish);
      } else {
        f->Stop();
      }
    }
  }

  void End(const GangResult& r) {
    result_ = r;
    // Read every log to its end before the pods go away.
    StopFollowers(r.succeeded ? absl::Seconds(10) : absl::ZeroDuration());
    ended_ = true;
    DeleteAll(*client_, ns_, rendered_.All(), absl::ToInt64Seconds(grace_));
    watch_.Stop();
  }

  std::shared_ptr<ApiClient> client_;
  const std::string ns_, job_;
  const int attempt_;
  const absl::Duration grace_;
  storage::Workspace* store_;
  RenderedJob rendered_;
  const absl::Time start_deadline_;
  const absl::Duration start_timeout_;
  PodWatch watch_;
  std::vector<std::string> pods_;
  std::vector<v1::JobState> last_state_;
  std::vector<std::unique_ptr<LogFollower>> followers_;
  std::map<size_t, std::string> waiting_;
  uint64_t seen_ = 0;
  bool running_ = false;
  bool ended_ = false;
  std::optional<GangResult> result_;
};

}  // namespace

std::string WorkspaceId(const std::string& location) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : location) h = (h ^ c) * 1099511628211ull;
  return absl::StrFormat("ws-%012x", h & 0xffffffffffffull);
}

std::string RandomHex(int bytes) {
  std::string raw(bytes, '\0');
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, raw.data(), raw.size()) : -1;
  if (fd >= 0) close(fd);
  if (n != static_cast<ssize_t>(raw.size())) {
    // Never a predictable token: fall back to the clock and the pid only for launch ids.
    raw = absl::StrCat(absl::ToUnixNanos(absl::Now()), getpid());
  }
  std::string out;
  for (unsigned char c : raw.substr(0, bytes)) absl::StrAppendFormat(&out, "%02x", c);
  return out;
}

absl::StatusOr<std::unique_ptr<ApiClient>> ConnectToTarget(const v1::ComputeTarget& target,
                                                           const ApiClientOptions& options) {
  if (!target.has_kubernetes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("compute \"", target.name(), "\" is not a kubernetes target"));
  }
  absl::StatusOr<KubeConnection> c =
      LoadKubeconfig(target.kubernetes().kubeconfig_path(), target.kubernetes().context());
  if (!c.ok()) return c.status();
  return std::make_unique<ApiClient>(std::move(*c), options);
}

absl::StatusOr<PvcMounts> ReadPvcMounts(const ApiClient& client, const std::string& ns) {
  absl::StatusOr<json> list =
      client.Get(absl::StrCat("/api/v1/namespaces/", ns,
                              "/persistentvolumeclaims?labelSelector=ml.azure.com%2Fpvc%3Dtrue"));
  if (!list.ok()) return list.status();
  return PvcMountsFromList(*list);
}

RenderInput MakeRenderInput(const LaunchRequest& request, const KubernetesBackendOptions& options,
                            PvcMounts pvc, LaunchIds ids) {
  RenderInput in;
  in.job = request.job;
  in.attempt = request.attempt;
  in.instance_type = request.instance_type;
  in.namespace_ = options.target.kubernetes().namespace_();
  in.workspace_url = options.target.kubernetes().workspace_url();
  in.worker_image = options.target.kubernetes().worker_image();
  in.workspace_id = options.workspace_id;
  in.job_token = std::move(ids.job_token);
  in.workspace_token = request.workspace_token;  // the server's job token; empty for a directory
  in.launch_id = std::move(ids.launch_id);
  in.pvc = std::move(pvc);
  in.master_port = options.master_port;
  in.grace = request.grace;
  return in;
}

absl::StatusOr<RenderedJob> Preview(const LaunchRequest& request,
                                    const KubernetesBackendOptions& options) {
  PvcMounts pvc;
  absl::StatusOr<std::unique_ptr<ApiClient>> client = ConnectToTarget(options.target, options.api);
  absl::StatusOr<PvcMounts> read =
      client.ok() ? ReadPvcMounts(**client, options.target.kubernetes().namespace_())
                  : absl::StatusOr<PvcMounts>(client.status());
  if (read.ok()) {
    pvc = std::move(*read);
  } else if (options.warn) {
    options.warn(
        absl::StrCat("PVC mounts left out (cannot read them: ", read.status().message(), ")"));
  }
  LaunchRequest placeholders = request;
  if (!placeholders.workspace_token.empty()) placeholders.workspace_token = "<issued at submit>";
  return RenderJob(
      MakeRenderInput(placeholders, options, std::move(pvc), {"<generated at submit>", "dry-run"}));
}

absl::StatusOr<std::unique_ptr<KubernetesBackend>> KubernetesBackend::Create(
    KubernetesBackendOptions options) {
  absl::StatusOr<std::unique_ptr<ApiClient>> client = ConnectToTarget(options.target, options.api);
  if (!client.ok()) return client.status();
  for (const std::string& w : (*client)->connection().warnings) {
    if (options.warn) options.warn(w);
  }
  return std::unique_ptr<KubernetesBackend>(
      new KubernetesBackend(std::move(options), std::shared_ptr<ApiClient>(std::move(*client))));
}

absl::StatusOr<Backend::Capacity> KubernetesBackend::CurrentCapacity(
    const v1::ComputeTarget& target) {
  absl::StatusOr<std::vector<v1::Node>> ready = ListReadyNodes(*client_);
  if (!ready.ok()) return ready.status();
  std::map<std::string, v1::Node> now;
  for (v1::Node& n : *ready) now[n.name()] = std::move(n);
  Capacity out;
  out.target = target;
  out.target.clear_nodes();
  v1::Placement unavailable;
  for (const v1::Node& stored : target.nodes()) {
    auto it = now.find(stored.name());
    if (it != now.end()) {
      *out.target.add_nodes() = it->second;
      now.erase(it);
      continue;
    }
    *out.target.add_nodes() = stored;  // not Ready (or gone): kept, and held whole
    v1::InstancePlacement* all = unavailable.add_instances();
    all->set_node(stored.name());
    all->set_cpu_millicores(stored.cpu_millicores());
    all->set_memory_bytes(stored.memory_bytes());
    *all->mutable_gpu_ids() = stored.gpu_ids();
  }
  for (auto& [name, node] : now) *out.target.add_nodes() = std::move(node);
  std::vector<v1::Node> nodes(out.target.nodes().begin(), out.target.nodes().end());
  absl::StatusOr<v1::Placement> foreign = ForeignHolds(*client_, nodes, options_.workspace_id);
  if (!foreign.ok()) return foreign.status();
  foreign->set_compute(target.name());
  unavailable.set_compute(target.name());
  out.held = {*foreign, unavailable};
  return out;
}

void KubernetesBackend::Abandon(const v1::JobRecord& job) {
  const std::string& ns = options_.target.kubernetes().namespace_();
  std::string selector =
      AttemptSelector(job.spec().name(), job.status().attempt(), options_.workspace_id);
  std::string escaped;
  for (char c : selector) {
    escaped += c == '='   ? std::string("%3D")
               : c == ',' ? std::string("%2C")
               : c == '/' ? std::string("%2F")
                          : std::string(1, c);
  }
  std::vector<json> found;
  for (const char* kind : {"Secret", "ConfigMap", "Service", "Pod"}) {
    absl::StatusOr<json> list =
        client_->Get(absl::StrCat(CollectionPath(ns, kind), "?labelSelector=", escaped));
    if (!list.ok()) {
      spdlog::warn("cannot list what job {} left behind: {}", job.spec().name(),
                   std::string(list.status().message()));
      continue;
    }
    for (json item : (*list)["items"]) {
      item["kind"] = kind;  // list items may come without their kind
      found.push_back(std::move(item));
    }
  }
  if (!found.empty()) {
    spdlog::warn("deleting the {} objects job {} left behind when its supervisor was lost",
                 found.size(), job.spec().name());
  }
  DeleteAll(*client_, ns, found, 0);
}

absl::StatusOr<std::unique_ptr<Gang>> KubernetesBackend::Launch(const LaunchRequest& request) {
  const std::string& ns = options_.target.kubernetes().namespace_();
  absl::StatusOr<PvcMounts> pvc = ReadPvcMounts(*client_, ns);
  if (!pvc.ok()) return pvc.status();
  for (const std::string& w : pvc->warnings) {
    if (options_.warn) options_.warn(w);
  }
  RenderInput in =
      MakeRenderInput(request, options_, std::move(*pvc), {RandomHex(32), RandomHex(8)});
  absl::StatusOr<RenderedJob> rendered = RenderJob(in);
  if (!rendered.ok()) return rendered.status();

  auto is_ours = [&](const json& existing) {
    return existing["metadata"]
               .value("annotations", json::object())
               .value(kAnnotationLaunchId, "") == in.launch_id;
  };
  std::vector<json> created;
  auto create = [&](const json& object) -> absl::Status {
    absl::StatusOr<json> done =
        client_->Create(CollectionPath(ns, object.value("kind", "")), object, is_ours);
    if (!done.ok()) return done.status();
    created.push_back(*done);
    return absl::OkStatus();
  };
  absl::Status s = create(rendered->secret);
  if (s.ok()) {
    SetOwner(created.back(), *rendered);
    for (const json* object : {&rendered->config_map, &rendered->service}) {
      if (s = create(*object); !s.ok()) break;
    }
  }
  if (s.ok()) {
    for (const json& pod : rendered->pods) {
      if (s = create(pod); !s.ok()) break;
    }
  }
  if (!s.ok()) {
    DeleteAll(*client_, ns, created, 0);
    return absl::Status(s.code(),
                        absl::StrCat("creating the job's objects in namespace ", ns,
                                     " failed (everything created was deleted): ", s.message()));
  }
  spdlog::info("created {} objects for {} in namespace {}", created.size(), rendered->base, ns);
  int64_t start_s = request.job.spec().kubetrain().start_timeout_seconds();
  absl::Duration start_timeout = start_s > 0 ? absl::Seconds(start_s) : options_.start_timeout;
  return std::unique_ptr<Gang>(
      new KubeGang(client_, options_, request, std::move(*rendered), start_timeout));
}

}  // namespace kubetrain::backends::kubernetes
