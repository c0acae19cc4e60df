#include "launcher/cli/job_view.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "launcher/cli/output.h"
#include "launcher/compute/instance_types.h"
#include "launcher/spec/job_parser.h"

namespace kubetrain::cli {
namespace {

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

std::string Environment(const v1::EnvironmentSpec& e) {
  if (!e.image().empty()) return absl::StrCat("image ", e.image());
  if (!e.build_context().empty()) return absl::StrCat("build ", e.build_context());
  if (!e.reference().empty()) return e.reference();
  return "this machine's (local compute)";
}

}  // namespace

void PrintResolvedJob(const v1::JobSpec& job, const v1::InstanceType& type, std::ostream& out) {
  Table t({"FIELD", "VALUE"});
  t.AddRow({"name", job.name().empty() ? "(generated at create)" : job.name()});
  if (!job.display_name().empty()) t.AddRow({"display name", job.display_name()});
  t.AddRow({"experiment", job.experiment_name()});
  t.AddRow({"command", absl::StrReplaceAll(job.command(), {{"\n", " ⏎ "}})});
  t.AddRow({"compute", job.compute()});
  t.AddRow({"instance type", absl::StrCat(type.name(), " (", compute::DescribeResources(type), ")")});
  t.AddRow({"ranks", Ranks(job)});
  if (job.code().local_path().size()) t.AddRow({"code", job.code().local_path()});
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
                                 " ", in.path())});
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

}  // namespace kubetrain::cli
