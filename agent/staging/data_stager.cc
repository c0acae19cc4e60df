#include "kubetrain/agent/staging/data_stager.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kubetrain/agent/staging/mount_view.h"
#include "kubetrain/storage/data_stage.h"
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
#include "kubetrain/storage/workspace.h"
#endif

namespace kubetrain::agent {
namespace {

storage::DatastoreConfig ToConfig(const v1::Datastore& d) {
  storage::DatastoreConfig c;
  c.name = d.name();
  c.type = d.type();
  c.path = d.path();
  c.account_name = d.account_name();
  c.container_name = d.container_name();
  c.endpoint = d.endpoint();
  c.account_key = d.account_key();
  c.sas_token = d.sas_token();
  return c;
}

std::string WorkspaceDir(const v1::InstanceLaunch& launch) {
  std::string ws = launch.workspace();
  if (absl::StartsWith(ws, "file://")) ws = ws.substr(7);
  if (absl::StrContains(ws, "://")) return "";
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
  if (ws.empty()) ws = storage::DefaultWorkspacePath();
#endif
  return ws;
}

storage::StageOptions Options(const v1::InstanceLaunch& launch, AgentSink* sink) {
  storage::StageOptions o;
  o.datastores.workspace_dir = WorkspaceDir(launch);
  if (sink != nullptr) {
    o.datastores.get = [sink](const std::string& name) -> absl::StatusOr<storage::DatastoreConfig> {
      absl::StatusOr<v1::Datastore> d = sink->GetDatastore(name);
      if (!d.ok()) return d.status();
      return ToConfig(*d);
    };
    o.datastores.list = [sink]() -> absl::StatusOr<std::vector<storage::DatastoreConfig>> {
      absl::StatusOr<std::vector<v1::Datastore>> all = sink->ListDatastores();
      if (!all.ok()) return all.status();
      std::vector<storage::DatastoreConfig> out;
      for (const v1::Datastore& d : *all) out.push_back(ToConfig(d));
      return out;
    };
  }
  o.transfer.progress_bar = isatty(STDERR_FILENO) == 1;
  if (getpid() == 1) {
    // The instance's own mount namespace: bind mounts stay private to it and vanish with it.
    o.read_only_view = MakeReadOnlyMountView;
    o.writable_view = MakeWritableMountView;
  }
  return o;
}

}  // namespace

absl::Status StageInputs(const v1::InstanceLaunch& launch, AgentSink* sink, Reporter* reporter,
                         CancelToken* cancel) {
  storage::StageOptions options = Options(launch, sink);
  if (cancel != nullptr) options.transfer.canceled = [cancel] { return cancel->requested(); };
  for (const auto& [name, input] : launch.job().inputs()) {
    auto target = launch.input_paths().find(name);
    if (target == launch.input_paths().end() || target->second == input.path() ||
        !storage::InputNeedsStaging(input)) {
      continue;
    }
    absl::StatusOr<storage::StageResult> r =
        storage::StageInput(name, input, target->second, options);
    if (!r.ok()) return r.status();
    for (const std::string& w : r->warnings) reporter->Agent(w, "warn");
    reporter->Agent(absl::StrCat("input '", name, "' (", storage::RedactDataUri(input.path()),
                                 ") at ", r->local_path, ": ", r->how));
  }
  return absl::OkStatus();
}

absl::Status PublishOutputs(const v1::InstanceLaunch& launch, AgentSink* sink, Reporter* reporter) {
  const storage::StageOptions options = Options(launch, sink);
  absl::Status first;
  for (const auto& [name, output] : launch.job().outputs()) {
    auto local = launch.output_paths().find(name);
    if (local == launch.output_paths().end() || local->second == output.path() ||
        !storage::OutputNeedsPublish(output)) {
      continue;
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<storage::PublishResult> r =
        storage::PublishOutput(name, output, local->second, options);
    v1::OutputUpload record;
    record.set_job(launch.job().name());
    record.set_output(name);
    record.set_attempt(launch.attempt());
    record.set_instance(launch.instance_index());
    record.set_destination(storage::RedactDataUri(output.path()));
    record.set_duration_ms(absl::ToInt64Milliseconds(absl::Now() - start));
    record.set_finished_unix_ms(absl::ToUnixMillis(absl::Now()));
    if (r.ok()) {
      record.set_files(r->stats.files);
      record.set_bytes(r->stats.bytes);
      record.set_status("completed");
      reporter->Agent(absl::StrCat("output '", name, "': uploaded ", r->stats.files, " files, ",
                                   r->stats.bytes, " bytes from ", local->second, " to ",
                                   record.destination(), " in ", record.duration_ms(), " ms"));
    } else {
      record.set_status(absl::StrCat("failed: ", r.status().message()));
      reporter->Agent(absl::StrCat("output upload failed: ", r.status().message()), "error");
      if (first.ok()) first = r.status();
    }
    if (sink != nullptr) {
      if (absl::Status s = sink->RecordOutputUpload(record); !s.ok()) {
        reporter->Agent(
            absl::StrCat("cannot record the upload of output '", name, "': ", s.message()), "warn");
      }
    }
  }
  return first;
}

}  // namespace kubetrain::agent
