// Parses an Azure ML CLI v2 command-job YAML (commandJob.schema.json) into a kubetrain.v1.JobSpec.
//
// Every field DESIGN.md lists is read, including the string and mapping forms of `code`,
// `environment`, `inputs` and `outputs`; relative paths resolve against the YAML file's folder.
// Keys kubetrain adds live under `kubetrain:`. Azure ML keys kubetrain cannot honour (`services`,
// `identity`, `queue_settings`, ...) are warnings naming the key; unknown keys are errors with a
// did-you-mean. All problems in a file are reported, each with file:line:column and field path.
//
// What needs the workspace (does the compute target exist, does it define the instance type) is
// checked by launcher/compute's ResolveJob, not here: this parser only reads the file.
//
// Thread-safety: pure functions (ParseJobFile reads the file system).
#ifndef KUBETRAIN_LAUNCHER_SPEC_JOB_PARSER_H_
#define KUBETRAIN_LAUNCHER_SPEC_JOB_PARSER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::spec {

struct JobParseOptions {
  // "field.path=value" overrides, applied before validation (like `az ml job create --set`).
  std::vector<std::string> overrides;
};

struct JobParseResult {
  v1::JobSpec spec;  // filled as far as the file allowed; use only when !diagnostics.has_errors()
  Diagnostics diagnostics;
};

// Reads and parses `path`. A file that cannot be read is an error diagnostic, not a crash.
JobParseResult ParseJobFile(const std::string& path, const JobParseOptions& options = {});

// Parses YAML `text` as if it were the file `path` (used for messages and to resolve relative
// paths; the file need not exist).
JobParseResult ParseJobYaml(absl::string_view text, const std::string& path,
                            const JobParseOptions& options = {});

// Names of distribution types and data modes as the YAML spells them.
std::string DistributionName(v1::DistributionSpec::Type type);
std::string DataTypeName(v1::DataType type);
std::string DataModeName(v1::DataMode mode);

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_JOB_PARSER_H_
