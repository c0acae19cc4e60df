#include "kubetrain/launcher/spec/job_parser.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kubetrain/common/command_template.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/spec/asset_file.h"
#include "kubetrain/launcher/spec/overrides.h"
#include "kubetrain/launcher/spec/suggest.h"
#include "kubetrain/launcher/spec/yaml_reader.h"

namespace kubetrain::spec {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kTopLevelKeys = {"$schema",
                                                "type",
                                                "name",
                                                "display_name",
                                                "experiment_name",
                                                "description",
                                                "tags",
                                                "command",
                                                "code",
                                                "environment",
                                                "compute",
                                                "resources",
                                                "distribution",
                                                "environment_variables",
                                                "inputs",
                                                "outputs",
                                                "limits",
                                                "kubetrain",
                                                "properties"};
// Azure ML keys that mean something there but nothing here: accepted with a warning.
const std::vector<std::string> kIgnoredTopLevelKeys = {"services", "identity", "queue_settings",
                                                       "parent_job_name"};

const std::vector<std::string> kDistributionTypes = {"mpi", "pytorch", "tensorflow"};
// Azure ML's values for the sections kubetrain accepts with a warning: a file is still checked
// the way Azure ML checks it, so it stays valid there.
const std::vector<std::string> kIdentityTypes = {"user_identity", "managed", "managed_identity",
                                                 "aml_token"};
const std::vector<std::string> kJobTiers = {"null", "spot", "basic", "standard", "premium"};
const std::vector<std::string> kPriorities = {"low", "medium", "high"};
const std::vector<std::string> kDataTypes = {"uri_file", "uri_folder", "mltable", "mlflow_model",
                                             "custom_model"};
// Azure ML's rules: inputs are mounted (ro_mount, rw_mount), copied (download) or passed through
// (direct); upload is an output mode. eval_mount / eval_download (Azure ML evaluates an MLTable on
// the node) are refused with an error: kubetrain does not evaluate MLTable.
const std::vector<std::string> kInputModes = {"ro_mount", "rw_mount", "download", "direct"};
const std::vector<std::string> kOutputModes = {"rw_mount", "upload", "direct"};

struct ParseContext {
  YamlReader& reader;
  fs::path base_dir;  // folder of the YAML file; relative paths resolve against it
  v1::JobSpec& spec;

  void Remember(const YAML::Node& node, absl::string_view field) {
    Location where = reader.At(node, field);
    if (where.line == 0) return;
    v1::SourceLocation& loc = (*spec.mutable_locations())[std::string(field)];
    loc.set_file(where.file);
    loc.set_line(where.line);
    loc.set_column(where.column);
  }

  std::string Resolve(absl::string_view path) const {
    fs::path p(std::string(path.data(), path.size()));
    if (p.is_relative()) p = base_dir / p;
    return p.lexically_normal().string();
  }
};

bool IsRemoteUri(absl::string_view path) {
  return absl::StartsWith(path, "azureml:") || absl::StartsWith(path, "https://") ||
         absl::StartsWith(path, "http://") || absl::StartsWith(path, "wasbs://") ||
         absl::StartsWith(path, "wasb://") || absl::StartsWith(path, "abfss://") ||
         absl::StartsWith(path, "adl://");
}

void ParseName(ParseContext& c, const YAML::Node& node) {
  std::optional<std::string> name = c.reader.String(node, "name");
  if (!name) return;
  static const std::regex kName("^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$");
  if (!std::regex_match(*name, kName)) {
    c.reader.Error(
        node, "name", absl::StrCat("\"", *name, "\" is not a valid job name"),
        "use letters, digits, '-' and '_', starting with a letter or digit (at most 255)");
    return;
  }
  c.spec.set_name(*name);
}

void ParseCode(ParseContext& c, const YAML::Node& node) {
  std::optional<std::string> path;
  YAML::Node at = node;
  if (node.IsMap()) {
    c.reader.CheckKeys(node, "code", {"local_path", "path"});
    if (node["local_path"]) {
      at = node["local_path"];
      path = c.reader.String(at, "code.local_path");
    } else if (node["path"]) {
      at = node["path"];
      path = c.reader.String(at, "code.path");
    } else {
      c.reader.Error(node, "code", "expected `local_path: <folder>`", "or write `code: <folder>`");
      return;
    }
  } else {
    path = c.reader.String(node, "code");
  }
  if (!path) return;
  if (path->empty()) {
    c.reader.Error(at, "code", "the code folder is empty", "name a folder, e.g. `code: src`");
    return;
  }
  if (IsRemoteUri(*path)) {
    c.reader.Error(at, "code", absl::StrCat("\"", *path, "\" is a registered or remote code asset"),
                   "kubetrain snapshots a local folder: give its path relative to the YAML");
    return;
  }
  std::string resolved = c.Resolve(absl::StripPrefix(*path, "file:"));
  c.spec.mutable_code()->set_local_path(resolved);
  c.Remember(at, "code");
  std::error_code ec;
  if (!fs::exists(resolved, ec)) {
    c.reader.Warning(at, "code", absl::StrCat("the folder ", resolved, " does not exist (yet)"),
                     "`kubetrain job create` needs it; create it or fix the path");
  }
}

void ParseEnvironment(ParseContext& c, const YAML::Node& node) {
  v1::EnvironmentSpec* env = c.spec.mutable_environment();
  c.Remember(node, "environment");
  if (node.IsScalar()) {
    std::string ref = node.Scalar();
    env->set_reference(ref);
    if (absl::StartsWith(ref, "file:")) {
      env->set_file(c.Resolve(absl::StripPrefix(ref, "file:")));
      return;
    }
    // A registered environment: resolved against the workspace at validate / submit.
    absl::StatusOr<AssetReference> parsed = ParseAssetReference(ref);
    if (!parsed.ok()) {
      c.reader.Error(node, "environment", std::string(parsed.status().message()),
                     "write azureml:<name>:<version>, azureml:<name>@latest, or an inline "
                     "`image:` mapping");
      return;
    }
    env->set_name(parsed->name);
    env->set_version(parsed->version);
    env->set_label(parsed->label);
    return;
  }
  if (!c.reader.ExpectMap(node, "environment")) return;
  c.reader.CheckKeys(node, "environment",
                     {"image", "conda_file", "build", "name", "version", "description", "tags",
                      "os_type", "$schema"},
                     {"inference_config"});
  if (node["image"]) {
    if (auto v = c.reader.String(node["image"], "environment.image")) env->set_image(*v);
  }
  if (node["conda_file"]) {
    if (auto v = c.reader.String(node["conda_file"], "environment.conda_file")) {
      env->set_conda_file(c.Resolve(*v));
    }
  }
  if (node["name"]) {
    if (auto v = c.reader.String(node["name"], "environment.name")) env->set_name(*v);
  }
  if (node["version"]) {
    if (auto v = c.reader.String(node["version"], "environment.version")) env->set_version(*v);
  }
  if (node["build"]) {
    const YAML::Node& build = node["build"];
    if (c.reader.ExpectMap(build, "environment.build")) {
      c.reader.CheckKeys(build, "environment.build", {"path", "dockerfile_path"});
      if (build["path"]) {
        if (auto v = c.reader.String(build["path"], "environment.build.path")) {
          env->set_build_context(c.Resolve(*v));
        }
      }
    }
  }
  if (env->image().empty() && env->build_context().empty()) {
    c.reader.Error(node, "environment", "an inline environment needs `image:` or `build:`",
                   "for example `image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04`");
  }
}

// `value` (at `field`) is one of `allowed`, case-insensitively; else an error with the choices.
void CheckOneOf(ParseContext& c, const YAML::Node& value, const std::string& field,
                const std::vector<std::string>& allowed) {
  std::optional<std::string> v = c.reader.String(value, field);
  if (!v) return;
  const std::string lower = absl::AsciiStrToLower(*v);
  if (std::find(allowed.begin(), allowed.end(), lower) == allowed.end()) {
    c.reader.Error(value, field, absl::StrCat("unknown value \"", *v, "\""),
                   SuggestOneOf(lower, allowed));
  }
}

// `identity` and `queue_settings` mean nothing to kubetrain (a warning says so), but their values
// are checked as Azure ML checks them.
void CheckAzureOnlySections(ParseContext& c, const YAML::Node& root) {
  if (const YAML::Node& identity = root["identity"];
      identity && c.reader.ExpectMap(identity, "identity")) {
    if (!identity["type"]) {
      c.reader.Error(identity, "identity.type", "missing",
                     "add `type:` (user_identity, managed, managed_identity or aml_token)");
    } else {
      CheckOneOf(c, identity["type"], "identity.type", kIdentityTypes);
    }
  }
  if (const YAML::Node& queue = root["queue_settings"];
      queue && c.reader.ExpectMap(queue, "queue_settings")) {
    if (queue["job_tier"] && !queue["job_tier"].IsNull()) {
      CheckOneOf(c, queue["job_tier"], "queue_settings.job_tier", kJobTiers);
    }
    if (queue["priority"] && !queue["priority"].IsNull()) {
      CheckOneOf(c, queue["priority"], "queue_settings.priority", kPriorities);
    }
  }
}

void ParseResources(ParseContext& c, const YAML::Node& node) {
  if (!c.reader.ExpectMap(node, "resources")) return;
  c.reader.CheckKeys(node, "resources", {"instance_type", "instance_count", "shm_size"},
                     {"properties", "docker_args", "locations", "max_instance_count"});
  v1::ResourcesSpec* r = c.spec.mutable_resources();
  if (node["instance_type"]) {
    if (auto v = c.reader.String(node["instance_type"], "resources.instance_type")) {
      r->set_instance_type(*v);
      c.Remember(node["instance_type"], "resources.instance_type");
    }
  }
  if (node["instance_count"]) {
    if (auto v = c.reader.Int(node["instance_count"], "resources.instance_count", 1, 1024)) {
      r->set_instance_count(static_cast<int32_t>(*v));
      c.Remember(node["instance_count"], "resources.instance_count");
    }
  }
  if (node["shm_size"]) {
    const YAML::Node& shm = node["shm_size"];
    auto text = c.reader.String(shm, "resources.shm_size");
    if (!text) return;
    // Azure ML documents Docker's form: <number><b|k|m|g>, binary units. Kubernetes quantities
    // ("2Gi") are accepted as well.
    static const std::regex kDocker("^([0-9]+)([bkmg])$");
    std::smatch m;
    int64_t bytes = -1;
    if (std::regex_match(*text, m, kDocker)) {
      int shift = std::string("bkmg").find(m[2].str()[0]) * 10;
      int64_t n = std::stoll(m[1].str());
      if (n < (int64_t{1} << (62 - shift))) bytes = n << shift;
    } else if (auto q = common::ParseQuantity(*text); q.ok()) {
      bytes = q->Ceil();
    }
    if (bytes <= 0) {
      c.reader.Error(
          shm, "resources.shm_size",
          absl::StrCat("expected a size such as \"2g\" or \"2Gi\", found \"", *text, "\""));
      return;
    }
    r->mutable_shm_size()->set_value(bytes);
    r->mutable_shm_size()->set_original(*text);
  }
}

void ParseDistribution(ParseContext& c, const YAML::Node& node) {
  if (!c.reader.ExpectMap(node, "distribution")) return;
  v1::DistributionSpec* d = c.spec.mutable_distribution();
  const YAML::Node& type = node["type"];
  if (!type) {
    c.reader.Error(node, "distribution.type", "missing",
                   "add `type: mpi`, `pytorch` or `tensorflow`");
    return;
  }
  auto name = c.reader.String(type, "distribution.type");
  if (!name) return;
  std::string lower = absl::AsciiStrToLower(*name);
  std::vector<std::string> keys = {"type"};
  if (lower == "mpi" || lower == "pytorch") {
    d->set_type(lower == "mpi" ? v1::DistributionSpec::TYPE_MPI
                               : v1::DistributionSpec::TYPE_PYTORCH);
    keys.push_back("process_count_per_instance");
  } else if (lower == "tensorflow") {
    d->set_type(v1::DistributionSpec::TYPE_TENSORFLOW);
    keys.insert(keys.end(), {"worker_count", "parameter_server_count"});
  } else {
    c.reader.Error(type, "distribution.type", absl::StrCat("unknown type \"", *name, "\""),
                   SuggestOneOf(lower, kDistributionTypes));
    return;
  }
  c.Remember(type, "distribution.type");
  c.reader.CheckKeys(node, "distribution", keys);
  if (node["process_count_per_instance"] && d->type() != v1::DistributionSpec::TYPE_TENSORFLOW) {
    if (auto v = c.reader.Int(node["process_count_per_instance"],
                              "distribution.process_count_per_instance", 1, 1024)) {
      d->set_process_count_per_instance(static_cast<int32_t>(*v));
      c.Remember(node["process_count_per_instance"], "distribution.process_count_per_instance");
    }
  }
  if (d->type() == v1::DistributionSpec::TYPE_TENSORFLOW) {
    if (node["worker_count"]) {
      if (auto v = c.reader.Int(node["worker_count"], "distribution.worker_count", 1, 4096)) {
        d->set_worker_count(static_cast<int32_t>(*v));
      }
    }
    if (node["parameter_server_count"]) {
      if (auto v = c.reader.Int(node["parameter_server_count"],
                                "distribution.parameter_server_count", 0, 4096)) {
        d->set_parameter_server_count(static_cast<int32_t>(*v));
      }
    }
  }
}

std::optional<v1::DataType> DataTypeOf(ParseContext& c, const YAML::Node& node,
                                       absl::string_view field) {
  auto name = c.reader.String(node, field);
  if (!name) return std::nullopt;
  if (*name == "uri_file") return v1::DATA_TYPE_URI_FILE;
  if (*name == "uri_folder") return v1::DATA_TYPE_URI_FOLDER;
  if (*name == "mltable") return v1::DATA_TYPE_MLTABLE;
  if (*name == "mlflow_model") return v1::DATA_TYPE_MLFLOW_MODEL;
  if (*name == "custom_model") return v1::DATA_TYPE_CUSTOM_MODEL;
  if (*name == "string" || *name == "integer" || *name == "number" || *name == "boolean") {
    return v1::DATA_TYPE_LITERAL;
  }
  c.reader.Error(node, field, absl::StrCat("unknown data type \"", *name, "\""),
                 SuggestOneOf(*name, kDataTypes));
  return std::nullopt;
}

std::optional<v1::DataMode> DataModeOf(ParseContext& c, const YAML::Node& node,
                                       absl::string_view field, bool output) {
  auto name = c.reader.String(node, field);
  if (!name) return std::nullopt;
  const std::vector<std::string>& allowed = output ? kOutputModes : kInputModes;
  static const std::map<std::string, v1::DataMode> kModes = {
      {"ro_mount", v1::DATA_MODE_RO_MOUNT},
      {"rw_mount", v1::DATA_MODE_RW_MOUNT},
      {"download", v1::DATA_MODE_DOWNLOAD},
      {"upload", v1::DATA_MODE_UPLOAD},
      {"direct", v1::DATA_MODE_DIRECT},
      {"eval_mount", v1::DATA_MODE_EVAL_MOUNT},
      {"eval_download", v1::DATA_MODE_EVAL_DOWNLOAD}};
  if (std::find(allowed.begin(), allowed.end(), *name) == allowed.end()) {
    if (!output && (*name == "eval_mount" || *name == "eval_download")) {
      c.reader.Error(node, field,
                     absl::StrCat("mode \"", *name,
                                  "\" evaluates an MLTable in Azure ML; kubetrain does not "
                                  "evaluate MLTable"),
                     "use `ro_mount` or `download` and read the MLTable in your script");
    } else if (kModes.count(*name)) {
      c.reader.Error(
          node, field,
          absl::StrCat("mode \"", *name, "\" is not allowed for an ", output ? "output" : "input"),
          absl::StrCat("use one of `", absl::StrJoin(allowed, "`, `"), "`"));
    } else {
      c.reader.Error(node, field, absl::StrCat("unknown mode \"", *name, "\""),
                     SuggestOneOf(*name, allowed));
    }
    return std::nullopt;
  }
  return kModes.at(*name);
}

// A data path: remote URIs stay as written; local paths (plain or file://) resolve against the
// YAML folder and must exist for inputs. A data asset reference stays as written
// (launcher/compute/assets.h resolves it); an output cannot write into one (versions are
// immutable).
std::string ResolveDataPath(ParseContext& c, const YAML::Node& node, absl::string_view field,
                            const std::string& path, bool input) {
  c.Remember(node, field);
  if (IsAssetReference(path)) {
    if (!input) {
      c.reader.Error(node, field,
                     absl::StrCat("\"", path,
                                  "\" is a data asset; an output cannot write into one "
                                  "(asset versions are immutable)"),
                     "give the output a folder, azureml://datastores/... or https://... path");
    } else if (absl::StatusOr<AssetReference> ref = ParseAssetReference(path); !ref.ok()) {
      c.reader.Error(node, field, std::string(ref.status().message()),
                     "write azureml:<name>:<version> or azureml:<name>@latest");
    }
    return path;
  }
  if (IsRemoteUri(path)) return path;
  absl::string_view local = path;
  absl::ConsumePrefix(&local, "file://");
  std::string resolved = c.Resolve(local);
  std::error_code ec;
  if (input && !fs::exists(resolved, ec)) {
    c.reader.Error(node, field, absl::StrCat("the local path ", resolved, " does not exist"),
                   "fix the path (relative paths start at the YAML file's folder)");
  }
  return resolved;
}

void ParseInputs(ParseContext& c, const YAML::Node& node) {
  if (node.IsNull()) return;
  if (!c.reader.ExpectMap(node, "inputs")) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string name = it->first.Scalar();
    std::string field = Field("inputs", name);
    YAML::Node value = it->second;  // a copy: `it->` returns a temporary proxy
    v1::JobInput input;
    c.Remember(it->first, field);
    if (value.IsScalar()) {
      const std::string& text = value.Scalar();
      if (IsAssetReference(text)) {  // its type comes from the asset
        input.set_path(ResolveDataPath(c, value, Field(field, "path"), text, true));
      } else {
        input.set_type(v1::DATA_TYPE_LITERAL);
        input.set_literal(text);
      }
    } else if (value.IsNull()) {
      c.reader.Error(it->first, field, "the input has no value",
                     "give a literal (`epochs: 10`) or a mapping with `type:` and `path:`");
      continue;
    } else if (c.reader.ExpectMap(value, field)) {
      c.reader.CheckKeys(value, field,
                         {"type", "path", "mode", "description", "optional", "default", "value"});
      // Without `type:`, uri_folder, or for a data asset the asset's type.
      v1::DataType type =
          value["path"] && value["path"].IsScalar() && IsAssetReference(value["path"].Scalar())
              ? v1::DATA_TYPE_UNSPECIFIED
              : v1::DATA_TYPE_URI_FOLDER;
      if (value["type"]) {
        if (auto t = DataTypeOf(c, value["type"], Field(field, "type"))) type = *t;
        c.Remember(value["type"], Field(field, "type"));
      }
      input.set_type(type);
      if (type == v1::DATA_TYPE_LITERAL) {
        // Azure ML's rule: typed inputs (`type: integer` + `default:`) belong to components; a
        // command job's literal input is the value itself.
        const YAML::Node& v = value["value"] ? value["value"] : value["default"];
        c.reader.Error(
            value["type"], Field(field, "type"),
            absl::StrCat("`type: ", value["type"].Scalar(),
                         "` is component syntax; a command job takes the literal itself"),
            absl::StrCat("write `", name, ": ",
                         v && v.IsScalar() ? v.Scalar() : std::string("<value>"), "`"));
      } else if (!value["path"]) {
        c.reader.Error(value, Field(field, "path"), "missing",
                       "add `path:` (a local path, azureml://datastores/..., or https://...)");
      } else if (auto path = c.reader.String(value["path"], Field(field, "path"))) {
        input.set_path(ResolveDataPath(c, value["path"], Field(field, "path"), *path, true));
      }
      if (value["mode"]) {
        if (type == v1::DATA_TYPE_LITERAL) {
          c.reader.Error(value["mode"], Field(field, "mode"), "a literal input has no mode",
                         "remove `mode:` (modes apply to uri_file / uri_folder data)");
        } else if (auto m = DataModeOf(c, value["mode"], Field(field, "mode"), false)) {
          input.set_mode(*m);
        }
      }
    } else {
      continue;
    }
    (*c.spec.mutable_inputs())[name] = input;
  }
}

void ParseOutputs(ParseContext& c, const YAML::Node& node) {
  if (node.IsNull()) return;
  if (!c.reader.ExpectMap(node, "outputs")) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string name = it->first.Scalar();
    std::string field = Field("outputs", name);
    YAML::Node value = it->second;  // a copy: `it->` returns a temporary proxy
    v1::JobOutput output;
    output.set_type(v1::DATA_TYPE_URI_FOLDER);
    c.Remember(it->first, field);
    if (value.IsDefined() && !value.IsNull()) {
      if (!c.reader.ExpectMap(value, field)) continue;
      c.reader.CheckKeys(value, field, {"type", "path", "mode", "description", "name", "version"});
      if (value["type"]) {
        if (auto t = DataTypeOf(c, value["type"], Field(field, "type"))) {
          if (*t == v1::DATA_TYPE_LITERAL) {
            c.reader.Error(value["type"], Field(field, "type"), "outputs cannot be literals",
                           "use uri_folder or uri_file");
          } else {
            output.set_type(*t);
          }
        }
      }
      if (value["path"]) {
        if (auto path = c.reader.String(value["path"], Field(field, "path"))) {
          output.set_path(ResolveDataPath(c, value["path"], Field(field, "path"), *path, false));
        }
      }
      if (value["mode"]) {
        if (auto m = DataModeOf(c, value["mode"], Field(field, "mode"), true)) output.set_mode(*m);
      }
    }
    (*c.spec.mutable_outputs())[name] = output;
  }
}

void ParseKubetrain(ParseContext& c, const YAML::Node& node) {
  if (!c.reader.ExpectMap(node, "kubetrain")) return;
  c.reader.CheckKeys(node, "kubetrain", {"max_retries", "checkpoint", "start_timeout"});
  v1::KubetrainSpec* k = c.spec.mutable_kubetrain();
  if (node["max_retries"]) {
    if (auto v = c.reader.Int(node["max_retries"], "kubetrain.max_retries", 0, 100)) {
      k->set_max_retries(static_cast<int32_t>(*v));
    }
  }
  if (node["start_timeout"]) {
    if (auto v = c.reader.Int(node["start_timeout"], "kubetrain.start_timeout", 1, 86400 * 7)) {
      k->set_start_timeout_seconds(*v);
    }
  }
  if (node["checkpoint"]) {
    const YAML::Node& cp = node["checkpoint"];
    if (c.reader.ExpectMap(cp, "kubetrain.checkpoint")) {
      c.reader.CheckKeys(cp, "kubetrain.checkpoint", {"keep_last"});
      if (cp["keep_last"]) {
        if (auto v = c.reader.Int(cp["keep_last"], "kubetrain.checkpoint.keep_last", 1, 1000)) {
          k->mutable_checkpoint()->set_keep_last(static_cast<int32_t>(*v));
        }
      }
    }
  }
  if (!k->checkpoint().keep_last()) k->mutable_checkpoint()->set_keep_last(3);
}

void CheckCommandReferences(ParseContext& c, const YAML::Node& node) {
  absl::StatusOr<std::vector<common::TemplateReference>> refs =
      common::FindReferences(c.spec.command());
  if (!refs.ok()) {
    size_t open = c.spec.command().find("${{");
    std::string needle = c.spec.command().substr(open == std::string::npos ? 0 : open, 8);
    c.reader.diagnostics().Error(c.reader.FindText(node, "command", needle), "command",
                                 std::string(refs.status().message()));
    return;
  }
  for (const common::TemplateReference& ref : *refs) {
    bool input = ref.kind == common::TemplateReference::Kind::kInput;
    std::vector<std::string> names;
    if (input) {
      for (const auto& [name, unused] : c.spec.inputs()) names.push_back(name);
    } else {
      for (const auto& [name, unused] : c.spec.outputs()) names.push_back(name);
    }
    if (std::find(names.begin(), names.end(), ref.name) != names.end()) continue;
    std::string hint = names.empty()
                           ? absl::StrCat("declare it under `", input ? "inputs" : "outputs", ":`")
                           : SuggestOneOf(ref.name, names);
    c.reader.diagnostics().Error(
        c.reader.FindText(node, "command", ref.text), "command",
        absl::StrCat(ref.text, " refers to ", input ? "an input" : "an output",
                     " the job does not declare"),
        hint);
  }
}

}  // namespace

std::string DistributionName(v1::DistributionSpec::Type type) {
  switch (type) {
    case v1::DistributionSpec::TYPE_MPI:
      return "mpi";
    case v1::DistributionSpec::TYPE_PYTORCH:
      return "pytorch";
    case v1::DistributionSpec::TYPE_TENSORFLOW:
      return "tensorflow";
    default:
      return "none";
  }
}

std::string DataTypeName(v1::DataType type) {
  switch (type) {
    case v1::DATA_TYPE_LITERAL:
      return "literal";
    case v1::DATA_TYPE_URI_FILE:
      return "uri_file";
    case v1::DATA_TYPE_URI_FOLDER:
      return "uri_folder";
    case v1::DATA_TYPE_MLTABLE:
      return "mltable";
    case v1::DATA_TYPE_MLFLOW_MODEL:
      return "mlflow_model";
    case v1::DATA_TYPE_CUSTOM_MODEL:
      return "custom_model";
    default:
      return "unspecified";
  }
}

std::string DataModeName(v1::DataMode mode) {
  switch (mode) {
    case v1::DATA_MODE_RO_MOUNT:
      return "ro_mount";
    case v1::DATA_MODE_RW_MOUNT:
      return "rw_mount";
    case v1::DATA_MODE_DOWNLOAD:
      return "download";
    case v1::DATA_MODE_UPLOAD:
      return "upload";
    case v1::DATA_MODE_DIRECT:
      return "direct";
    case v1::DATA_MODE_EVAL_MOUNT:
      return "eval_mount";
    case v1::DATA_MODE_EVAL_DOWNLOAD:
      return "eval_download";
    default:
      return "default";
  }
}

JobParseResult ParseJobFile(const std::string& path, const JobParseOptions& options) {
  JobParseResult result;
  std::optional<std::string> text = ReadUserFile(path, result.diagnostics);
  if (!text) return result;
  return ParseJobYaml(*text, path, options);
}

JobParseResult ParseJobYaml(absl::string_view text, const std::string& path,
                            const JobParseOptions& options) {
  JobParseResult result;
  YamlReader reader(path, text, result.diagnostics);
  std::optional<YAML::Node> loaded = reader.Load();
  if (!loaded) return result;
  YAML::Node root = *loaded;
  if (!root.IsMap()) {
    reader.Error(root, "",
                 absl::StrCat("a job file is a mapping of keys such as `command:`; found ",
                              YamlReader::Describe(root)));
    return result;
  }
  ApplyOverrides(options.overrides, root, reader);

  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  v1::JobSpec& spec = result.spec;
  ParseContext c{reader, abs.parent_path(), spec};
  spec.set_source_file(abs.lexically_normal().string());

  reader.CheckKeys(root, "", kTopLevelKeys, kIgnoredTopLevelKeys);

  if (root["$schema"]) {
    if (auto v = reader.String(root["$schema"], "$schema")) spec.set_schema(*v);
  }
  if (root["type"]) {
    auto v = reader.String(root["type"], "type");
    if (v && *v != "command") {
      reader.Error(
          root["type"], "type", absl::StrCat("kubetrain runs command jobs, found \"", *v, "\""),
          absl::StrCat(*v == "sweep" || *v == "pipeline" ? "split the " + *v + " into " : "",
                       "`type: command`"));
    }
  }
  if (root["name"]) ParseName(c, root["name"]);
  for (auto [key, setter] :
       std::vector<std::pair<const char*, void (v1::JobSpec::*)(const std::string&)>>{
           {"display_name", &v1::JobSpec::set_display_name},
           {"experiment_name", &v1::JobSpec::set_experiment_name},
           {"description", &v1::JobSpec::set_description}}) {
    if (root[key]) {
      if (auto v = reader.String(root[key], key)) (spec.*setter)(*v);
    }
  }
  if (spec.experiment_name().empty()) {
    // Azure ML's default: the name of the folder the job file is in.
    spec.set_experiment_name(abs.parent_path().filename().string());
  }
  if (root["tags"]) {
    if (auto tags = reader.StringMap(root["tags"], "tags")) {
      spec.mutable_tags()->insert(tags->begin(), tags->end());
    }
  }
  if (root["properties"]) reader.StringMap(root["properties"], "properties");

  const YAML::Node& command = root["command"];
  if (!command || command.IsNull()) {
    reader.Error(root, "command", "missing",
                 "add `command: <what to run>`, e.g. `command: python train.py`");
  } else if (auto v = reader.String(command, "command")) {
    if (absl::StripAsciiWhitespace(*v).empty()) {
      reader.Error(command, "command", "the command is empty", "give the command to run");
    }
    spec.set_command(*v);
    c.Remember(command, "command");
  }

  if (root["code"]) ParseCode(c, root["code"]);
  if (root["environment"]) ParseEnvironment(c, root["environment"]);
  if (root["environment_variables"]) {
    if (auto env = reader.StringMap(root["environment_variables"], "environment_variables")) {
      spec.mutable_environment_variables()->insert(env->begin(), env->end());
    }
  }

  spec.set_compute("local");
  if (root["compute"]) {
    if (auto v = reader.String(root["compute"], "compute")) {
      std::string name(absl::StripPrefix(*v, "azureml:"));
      if (name.empty()) {
        reader.Error(root["compute"], "compute", "the compute name is empty",
                     "name an attached compute target, or `local`");
      } else {
        spec.set_compute(name);
      }
      c.Remember(root["compute"], "compute");
    }
  }

  spec.mutable_resources()->set_instance_count(1);
  if (root["resources"]) ParseResources(c, root["resources"]);
  if (root["distribution"]) ParseDistribution(c, root["distribution"]);
  v1::DistributionSpec* d = spec.mutable_distribution();
  if (d->type() != v1::DistributionSpec::TYPE_TENSORFLOW && d->process_count_per_instance() == 0) {
    d->set_process_count_per_instance(1);
  }
  if (d->type() == v1::DistributionSpec::TYPE_TENSORFLOW && d->worker_count() == 0) {
    d->set_worker_count(spec.resources().instance_count());
  }

  if (root["inputs"]) ParseInputs(c, root["inputs"]);
  if (root["outputs"]) ParseOutputs(c, root["outputs"]);

  CheckAzureOnlySections(c, root);
  if (root["limits"]) {
    const YAML::Node& limits = root["limits"];
    if (reader.ExpectMap(limits, "limits")) {
      reader.CheckKeys(limits, "limits", {"timeout"});
      if (limits["timeout"]) {
        if (auto v = reader.Int(limits["timeout"], "limits.timeout", 1, int64_t{86400} * 365)) {
          spec.mutable_limits()->set_timeout_seconds(*v);
        }
      }
    }
  }
  if (root["kubetrain"]) {
    ParseKubetrain(c, root["kubetrain"]);
  } else {
    spec.mutable_kubetrain()->mutable_checkpoint()->set_keep_last(3);
  }

  if (command && command.IsScalar()) CheckCommandReferences(c, command);
  return result;
}

}  // namespace kubetrain::spec
