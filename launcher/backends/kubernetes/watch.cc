#include "kubetrain/launcher/backends/kubernetes/watch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace kubetrain::backends::kubernetes {
namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '=')
      out += "%3D";
    else if (c == ',')
      out += "%2C";
    else if (c == '/')
      out += "%2F";
    else
      out += c;
  }
  return out;
}

}  // namespace

PodWatch::PodWatch(const ApiClient& client, std::string ns, std::string label_selector,
                   absl::Duration watch_timeout)
    : client_(client),
      ns_(std::move(ns)),
      selector_(std::move(label_selector)),
      watch_timeout_(watch_timeout) {}

PodWatch::~PodWatch() { Stop(); }

void PodWatch::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void PodWatch::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

PodView PodWatch::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_;
}

PodView PodWatch::WaitForChange(uint64_t seen, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                    [&] { return view_.version > seen; });
  return view_;
}

absl::Status PodWatch::List() {
  absl::StatusOr<nlohmann::json> list = client_.Get(
      absl::StrCat("/api/v1/namespaces/", ns_, "/pods?labelSelector=", Escape(selector_)));
  if (!list.ok()) return list.status();
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, nlohmann::json> pods;
  for (const nlohmann::json& p : (*list)["items"]) pods[p["metadata"].value("name", "")] = p;
  for (const auto& [name, _] : view_.pods) {
    if (!pods.count(name)) view_.deleted.insert(name);  // deleted while we were not watching
  }
  view_.pods = std::move(pods);
  view_.listed = true;
  ++view_.lists;
  ++view_.version;
  resource_version_ = (*list)["metadata"].value("resourceVersion", "");
  changed_.notify_all();
  return absl::OkStatus();
}

absl::Status PodWatch::WatchOnce() {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++view_.watches;
    path = absl::StrCat("/api/v1/namespaces/", ns_, "/pods?watch=1&allowWatchBookmarks=true",
                        "&resourceVersion=", resource_version_,
                        "&timeoutSeconds=", absl::ToInt64Seconds(watch_timeout_),
                        "&labelSelector=", Escape(selector_));
  }
  absl::Status event_error;
  absl::Status s = client_.Stream(
      path,
      [&](absl::string_view line) {
        if (line.empty()) return true;
        nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
        if (!event.is_object()) return true;  // not an event: ignore the line
        std::string type = event.value("type", "");
        const nlohmann::json& obj = event["object"];
        if (type == "ERROR") {
          int code = obj.value("code", 0);
          std::string message = obj.value("message", "");
          event_error =
              code == 410
                  ? absl::OutOfRangeError(message)
                  : absl::UnavailableError(absl::StrCat("watch error ", code, ": ", message));
          return false;
        }
        std::lock_guard<std::mutex> lock(mu_);
        std::string rv = obj["metadata"].value("resourceVersion", "");
        if (!rv.empty()) resource_version_ = rv;
        if (type == "BOOKMARK") return true;
        std::string name = obj["metadata"].value("name", "");
        if (type == "DELETED") {
          view_.pods.erase(name);
          view_.deleted.insert(name);
        } else if (type == "ADDED" || type == "MODIFIED") {
          view_.pods[name] = obj;
        }
        ++view_.version;
        changed_.notify_all();
        return true;
      },
      &stop_);
  if (!event_error.ok()) return event_error;
  return s;
}

void PodWatch::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool need_list = true;
  while (!stop_.load()) {
    absl::Status s = need_list ? List() : WatchOnce();
    if (stop_.load()) break;
    if (s.ok()) {
      backoff = absl::Milliseconds(100);
      need_list = false;  // a listed view watches next; an ended stream resumes from the last rv
      continue;
    }
    if (s.code() == absl::StatusCode::kOutOfRange) {  // 410: our resourceVersion is gone
      spdlog::info("pod watch: resourceVersion expired ({}); listing again",
                   std::string(s.message()));
      need_list = true;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      view_.last_error = s;
      changed_.notify_all();
    }
    spdlog::debug("pod watch: {}; retrying in {}", s.ToString(), absl::FormatDuration(backoff));
    absl::Time until = absl::Now() + backoff;
    while (!stop_.load() && absl::Now() < until) absl::SleepFor(absl::Milliseconds(20));
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

}  // namespace kubetrain::backends::kubernetes
