// PodWatch: an up-to-date view of the pods that match a label selector in one namespace, kept by a
// background thread the way client-go's reflector does it:
//   list (remember the List's resourceVersion) → watch from that resourceVersion, applying
//   ADDED / MODIFIED / DELETED and remembering each event's resourceVersion → when the stream
//   ends or breaks, watch again from the last resourceVersion seen (no events lost, none
//   replayed) → when the server says that resourceVersion is too old (410 Gone / Expired, as an
//   ERROR event or as the HTTP status), list again and carry on from the new List.
// Transport errors back off (100 ms doubling to 2 s) and retry until Stop().
//
// Ownership: borrows the client, which must outlive the PodWatch.
// Thread-safety: Snapshot/WaitForChange may be called from any thread.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_WATCH_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_WATCH_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kubetrain/launcher/backends/kubernetes/api_client.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

struct PodView {
  uint64_t version = 0;                        // increases on every change of the view
  bool listed = false;                         // the first list has arrived
  std::map<std::string, nlohmann::json> pods;  // by name
  std::set<std::string> deleted;               // pods seen and then deleted
  absl::Status last_error;                     // the latest failure talking to the server
  int lists = 0;                               // how often it listed (1 + relists after 410)
  int watches = 0;                             // how many watch streams it opened
};

class PodWatch {
 public:
  PodWatch(const ApiClient& client, std::string ns, std::string label_selector,
           absl::Duration watch_timeout = absl::Minutes(5));
  ~PodWatch();  // stops

  void Start();
  void Stop();

  PodView Snapshot() const;
  // Waits up to `timeout` for the view's version to pass `seen`; returns the view either way.
  PodView WaitForChange(uint64_t seen, absl::Duration timeout) const;

 private:
  void Run();
  absl::Status List();
  absl::Status WatchOnce();  // OutOfRange when the resourceVersion expired

  const ApiClient& client_;
  const std::string ns_, selector_;
  const absl::Duration watch_timeout_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  PodView view_;
  std::string resource_version_;
};

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_WATCH_H_
