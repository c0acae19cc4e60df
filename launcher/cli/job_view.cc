#include "kubetrain/launcher/cli/job_view.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/jobs/scheduler.h"
#include "kubetrain/launcher/placement/placement.h"
#include "kubetrain/launcher/spec/job_parser.h"
#include "kubetrain/v1/job_state.h"

namespace kubetrain::cli {
std::string Ranks(const v1::JobSpec& job) {
  const v1::DistributionSpec& d = job.distribution();
  int instances = job.resources().instance_count();
  switch (d.type()) {
    case v1::DistributionSpec::TYPE_TENSORFLOW:
      return absl::StrCat(instances, " instance(s), tensorflow: ", d.worker_count(), " worker(s), ",
                          d.parameter_server_count(), " parameter server(s)");
    case v1::DistributionSpec::TYPE_NONE:
      return absl::StrCat(instances, " instance(s) × 1 process (no distribution)");
    default:
      return absl::StrCat(instances, " instance(s) × ", d.process_count_per_instance(),
                          " process(es), ", spec::DistributionName(d.type()), ": ",
                          instances * d.process_count_per_instance(), " ranks");
  }
}

namespace {

std::string Environment(const v1::EnvironmentSpec& e) {
  std::string what = !e.image().empty()           ? absl::StrCat("image ", e.image())
                     : !e.build_context().empty() ? absl::StrCat("build ", e.build_context())
                                                  : "";
  if (!e.asset().empty()) {
    return absl::StrCat("azureml:", e.asset(), what.empty() ? "" : absl::StrCat(" (", what, ")"));
  }
  if (!what.empty()) return what;
  if (!e.reference().empty()) return e.reference();
  return "this machine's (local compute)";
}

// The environment, then one row per input and output, by name.
void AddEnvironmentAndData(const v1::JobSpec& job, Table& t) {
  t.AddRow({"environment", Environment(job.environment())});
  std::vector<std::string> names;
  for (const auto& [name, unused] : job.inputs()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const v1::JobInput& in = job.inputs().at(name);
    t.AddRow({absl::StrCat("input ", name),
              in.type() == v1::DATA_TYPE_LITERAL
                  ? absl::StrCat("literal ", in.literal())
                  : absl::StrCat(spec::DataTypeName(in.type()), " ", spec::DataModeName(in.mode()),
                                 " ", in.path(),
                                 in.asset().empty()
                                     ? ""
                                     : absl::StrCat(" (data asset azureml:", in.asset(), ")"))});
  }
  names.clear();
  for (const auto& [name, unused] : job.outputs()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const v1::JobOutput& o = job.outputs().at(name);
    t.AddRow({absl::StrCat("output ", name),
              absl::StrCat(spec::DataTypeName(o.type()), " ", spec::DataModeName(o.mode()), " ",
                           o.path().empty() ? "(workspace default)" : o.path())});
  }
}

}  // namespace

void PrintResolvedJob(const v1::JobSpec& job, const v1::InstanceType& type, std::ostream& out) {
  Table t({"FIELD", "VALUE"});
  t.AddRow({"name", job.name().empty() ? "(generated at create)" : job.name()});
  if (!job.display_name().empty()) t.AddRow({"display name", job.display_name()});
  t.AddRow({"experiment", job.experiment_name()});
  t.AddRow({"command", absl::StrReplaceAll(job.command(), {{"\n", " ⏎ "}})});
  t.AddRow({"compute", job.compute()});
  t.AddRow({"instance type",
            absl::StrCat(type.name(), " (",
                         placement::FormatRequest(placement::EffectiveRequest(type)), ")")});
  t.AddRow({"ranks", Ranks(job)});
  if (!job.code().local_path().empty()) t.AddRow({"code", job.code().local_path()});
  AddEnvironmentAndData(job, t);
  if (job.limits().timeout_seconds() > 0) {
    t.AddRow({"timeout", absl::StrCat(job.limits().timeout_seconds(), " s")});
  }
  t.AddRow({"retries", absl::StrCat(job.kubetrain().max_retries())});
  t.Print(out);
}

nlohmann::json ResolvedJobJson(const v1::JobSpec& job, const v1::InstanceType& type) {
  v1::JobSpec copy = job;
  copy.clear_locations();
  return nlohmann::json{{"job", ToJson(copy)}, {"instance_type", ToJson(type)}};
}

std::string StateName(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_QUEUED:
      return "Queued";
    case v1::JOB_STATE_STARTING:
      return "Starting";
    case v1::JOB_STATE_RUNNING:
      return "Running";
    case v1::JOB_STATE_COMPLETED:
      return "Completed";
    case v1::JOB_STATE_FAILED:
      return "Failed";
    case v1::JOB_STATE_CANCELED:
      return "Canceled";
    default:
      return "Unknown";
  }
}

namespace {

std::string Duration(const v1::JobStatus& s) {
  int64_t start = s.started_unix_ms() ? s.started_unix_ms() : s.created_unix_ms();
  int64_t end = s.finished_unix_ms() ? s.finished_unix_ms() : absl::ToUnixMillis(absl::Now());
  if (start == 0) return "-";
  double seconds = static_cast<double>(end - start) / 1000.0;
  if (seconds < 120) return absl::StrFormat("%.1fs", seconds);
  return absl::StrFormat("%dm%02ds", static_cast<int>(seconds) / 60,
                         static_cast<int>(seconds) % 60);
}

int Processes(const v1::JobSpec& spec) {
  const v1::DistributionSpec& d = spec.distribution();
  return d.type() == v1::DistributionSpec::TYPE_TENSORFLOW ? 1 : d.process_count_per_instance();
}

}  // namespace

std::string StatusLine(const v1::JobRecord& job) {
  const v1::JobStatus& s = job.status();
  std::string line = StateName(s.state());
  if (s.state() == v1::JOB_STATE_QUEUED && !job.waiting_for().empty()) {
    absl::StrAppend(&line, ": ", job.waiting_for());
  } else if (s.state() == v1::JOB_STATE_RUNNING) {
    absl::StrAppend(&line, " on ", job.placement().instances_size(), " instance(s)");
  } else if (!s.message().empty()) {
    absl::StrAppend(&line, ": ", s.message());
  }
  if (s.attempt() > 0) absl::StrAppend(&line, " (attempt ", s.attempt() + 1, ")");
  return line;
}

void PrintOutcome(const v1::JobRecord& job, std::ostream& out) {
  const v1::JobStatus& s = job.status();
  out << "── job " << job.spec().name() << " " << StateName(s.state()) << " after " << Duration(s);
  if (!s.message().empty() && s.state() != v1::JOB_STATE_COMPLETED) out << ": " << s.message();
  out << "\n";
  if (s.last_log_lines_size() > 0) {
    out << "── last lines of rank " << s.failed_rank() << ":\n";
    for (const std::string& l : s.last_log_lines()) out << "   " << l << "\n";
  }
  out.flush();
}

void PrintJobTable(const std::vector<v1::JobRecord>& jobs, std::ostream& out) {
  Table t({"NAME", "STATUS", "COMPUTE", "INSTANCE TYPE", "INSTANCES×PROCS", "CREATED", "DURATION"});
  for (const v1::JobRecord& j : jobs) {
    const std::string& type = j.spec().resources().instance_type();
    t.AddRow({j.spec().name(), StateName(j.status().state()), j.spec().compute(),
              type.empty() ? compute::kDefaultInstanceTypeName : type,
              absl::StrCat(j.spec().resources().instance_count(), "×", Processes(j.spec())),
              LocalTime(j.status().created_unix_ms()), Duration(j.status())});
  }
  t.Print(out);
}

void PrintJobDetails(const v1::JobRecord& job, std::ostream& out) {
  const v1::JobSpec& spec = job.spec();
  const v1::JobStatus& s = job.status();
  Table head({"FIELD", "VALUE"});
  head.AddRow({"name", spec.name()});
  head.AddRow({"status", StatusLine(job)});
  head.AddRow({"experiment", spec.experiment_name()});
  head.AddRow({"display name", spec.display_name()});
  head.AddRow({"command", absl::StrReplaceAll(spec.command(), {{"\n", " ⏎ "}})});
  head.AddRow({"compute", spec.compute()});
  head.AddRow({"instance type", spec.resources().instance_type().empty()
                                    ? compute::kDefaultInstanceTypeName
                                    : spec.resources().instance_type()});
  head.AddRow({"ranks", Ranks(spec)});
  AddEnvironmentAndData(spec, head);
  head.AddRow({"created", LocalTime(s.created_unix_ms())});
  head.AddRow({"duration", Duration(s)});
  head.AddRow({"job folder", job.job_dir()});
  head.Print(out);
  if (job.placement().instances_size() > 0) {
    out << "\nplacement\n";
    Table p({"  INSTANCE", "NODE", "CPU", "MEMORY", "GPUS", "CPU IDS"});
    for (const v1::InstancePlacement& i : job.placement().instances()) {
      p.AddRow({absl::StrCat("  ", i.instance_index()), i.node(),
                common::FormatMillicores(i.cpu_millicores()), common::FormatBytes(i.memory_bytes()),
                absl::StrJoin(i.gpu_ids(), ","), absl::StrJoin(i.cpu_ids(), ",")});
    }
    p.Print(out);
  }
  if (s.instances_size() > 0) {
    out << "\nranks\n";
    Table r({"  RANK", "INSTANCE", "LOCAL", "STATUS", "EXIT", "PID"});
    for (const v1::InstanceStatus& inst : s.instances()) {
      for (const v1::RankStatus& rank : inst.ranks()) {
        std::string exit = rank.signal() != 0             ? absl::StrCat("signal ", rank.signal())
                           : v1::IsTerminal(rank.state()) ? absl::StrCat(rank.exit_code())
                                                          : "-";
        r.AddRow({absl::StrCat("  ", rank.rank()), absl::StrCat(inst.index()),
                  absl::StrCat(rank.local_rank()), StateName(rank.state()), exit,
                  absl::StrCat(rank.pid())});
      }
      if (inst.ranks_size() == 0 && !inst.message().empty()) {
        r.AddRow(
            {"  -", absl::StrCat(inst.index()), "-", StateName(inst.state()), "-", inst.message()});
      }
    }
    r.Print(out);
  }
  if (job.attempts_size() > 1 || (job.attempts_size() == 1 && s.attempt() > 0)) {
    out << "\nattempts\n";
    Table a({"  ATTEMPT", "STATUS", "CAUSE"});
    for (const v1::Attempt& at : job.attempts()) {
      a.AddRow({absl::StrCat("  ", at.attempt() + 1), StateName(at.final_state()), at.message()});
    }
    a.Print(out);
  }
  if (s.last_log_lines_size() > 0) {
    out << "\nlast lines of rank " << s.failed_rank() << "\n";
    for (const std::string& l : s.last_log_lines()) out << "  " << l << "\n";
  }
}

void PrintCheckpointTable(const std::vector<v1::CheckpointRecord>& checkpoints,
                          const std::string& indent, std::ostream& out) {
  Table t({indent + "STEP", "SIZE", "SAVE TIME", "ATTEMPT", "CREATED", "LOCATION"});
  for (const v1::CheckpointRecord& c : checkpoints) {
    t.AddRow({absl::StrCat(indent, c.step()), common::FormatBytes(c.size_bytes()),
              absl::StrCat(c.duration_ms(), " ms"), absl::StrCat(c.attempt() + 1),
              LocalTime(c.created_unix_ms()),
              c.retired() ? absl::StrCat(c.location(), " (removed by retention)") : c.location()});
  }
  t.Print(out);
}

}  // namespace kubetrain::cli
