#include "kubetrain/launcher/compute/instance_types.h"

#include <cstring>
#include <regex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/spec/suggest.h"
#include "kubetrain/launcher/spec/yaml_reader.h"

namespace kubetrain::compute {
namespace {

using spec::Field;
using spec::YamlReader;

constexpr char kApiVersion[] = "amlarc.azureml.com/v1alpha1";
constexpr char kGpuResource[] = "nvidia.com/gpu";

// Reads requests or limits into `out`. Returns false when the mapping had errors.
void ParseResourceList(YamlReader& r, const YAML::Node& node, absl::string_view field,
                       bool allow_gpu, v1::ResourceList& out) {
  if (!r.ExpectMap(node, field)) return;
  std::vector<std::string> known = {"cpu", "memory"};
  if (allow_gpu) known.push_back(kGpuResource);
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.Scalar();
    std::string f = Field(field, key);
    if (key == kGpuResource && !allow_gpu) {
      r.Error(it->first, f, "GPUs are only set under limits", "move nvidia.com/gpu to limits");
      continue;
    }
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      r.Error(it->first, f, "unknown resource", spec::SuggestOneOf(key, known));
      continue;
    }
    if (key == kGpuResource) {
      if (auto v = r.Int(it->second, f, 0, 1024)) out.set_gpu(static_cast<int32_t>(*v));
      continue;
    }
    auto text = r.String(it->second, f);
    if (!text) continue;
    absl::StatusOr<common::ParsedQuantity> q = common::ParseQuantity(*text);
    if (!q.ok()) {
      r.Error(it->second, f, std::string(q.status().message()));
      continue;
    }
    if (q->milli == 0) {
      r.Error(it->second, f, absl::StrCat(key, " must be greater than zero"));
      continue;
    }
    v1::Quantity* dst = key == "cpu" ? out.mutable_cpu() : out.mutable_memory();
    dst->set_value(key == "cpu" ? q->milli : q->Ceil());
    dst->set_original(*text);
  }
}

void ParseOne(YamlReader& r, const YAML::Node& node, absl::string_view field,
              std::vector<v1::InstanceType>& out) {
  if (!r.ExpectMap(node, field)) return;
  r.CheckKeys(node, field, {"apiVersion", "kind", "metadata", "spec"}, {"status"});
  if (node["kind"] && node["kind"].IsScalar() && node["kind"].Scalar() != "InstanceType") {
    r.Error(node["kind"], Field(field, "kind"),
            absl::StrCat("expected InstanceType, found \"", node["kind"].Scalar(), "\""));
  }
  if (node["apiVersion"] && node["apiVersion"].IsScalar() &&
      node["apiVersion"].Scalar() != kApiVersion) {
    r.Error(
        node["apiVersion"], Field(field, "apiVersion"),
        absl::StrCat("expected ", kApiVersion, ", found \"", node["apiVersion"].Scalar(), "\""));
  }
  v1::InstanceType type;
  spec::Location where = r.At(node, field);
  type.mutable_source()->set_file(where.file);
  type.mutable_source()->set_line(where.line);
  type.mutable_source()->set_column(where.column);

  const YAML::Node& metadata = node["metadata"];
  std::string mfield = Field(field, "metadata");
  if (!metadata) {
    r.Error(node, mfield, "missing", "add `metadata: {name: <instance type name>}`");
  } else if (r.ExpectMap(metadata, mfield)) {
    r.CheckKeys(metadata, mfield, {"name"},
                {"labels", "annotations", "namespace", "uid", "resourceVersion",
                 "creationTimestamp", "generation"});
    if (!metadata["name"]) {
      r.Error(metadata, Field(mfield, "name"), "missing", "name the instance type");
    } else if (auto name = r.String(metadata["name"], Field(mfield, "name"))) {
      static const std::regex kName("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$");
      if (!std::regex_match(*name, kName)) {
        r.Error(metadata["name"], Field(mfield, "name"),
                absl::StrCat("\"", *name, "\" is not a valid Kubernetes resource name"),
                "use lower-case letters, digits, '-' and '.', starting and ending with a letter "
                "or digit");
      }
      type.set_name(*name);
    }
  }

  const YAML::Node& spec_node = node["spec"];
  std::string sfield = Field(field, "spec");
  if (!spec_node) {
    r.Error(node, sfield, "missing", "add `spec: {resources: {limits: {cpu: ..., memory: ...}}}`");
  } else if (r.ExpectMap(spec_node, sfield)) {
    r.CheckKeys(spec_node, sfield, {"nodeSelector", "resources"}, {"tolerations"});
    if (spec_node["nodeSelector"]) {
      if (auto sel = r.StringMap(spec_node["nodeSelector"], Field(sfield, "nodeSelector"))) {
        type.mutable_node_selector()->insert(sel->begin(), sel->end());
      }
    }
    const YAML::Node& res = spec_node["resources"];
    std::string rfield = Field(sfield, "resources");
    if (!res) {
      r.Error(spec_node, rfield, "missing", "add `resources: {limits: {cpu: ..., memory: ...}}`");
    } else if (r.ExpectMap(res, rfield)) {
      r.CheckKeys(res, rfield, {"requests", "limits"});
      if (res["requests"]) {
        ParseResourceList(r, res["requests"], Field(rfield, "requests"), false,
                          *type.mutable_requests());
      }
      std::string lfield = Field(rfield, "limits");
      if (!res["limits"]) {
        r.Error(res, lfield, "missing", "limits must give cpu and memory");
      } else {
        const YAML::Node& limits = res["limits"];
        ParseResourceList(r, limits, lfield, true, *type.mutable_limits());
        if (limits.IsMap()) {
          for (const char* required : {"cpu", "memory"}) {
            if (!limits[required]) {
              r.Error(limits, Field(lfield, required), "missing",
                      absl::StrCat("limits must give ", required));
            }
          }
        }
      }
      // Requests default to limits (Kubernetes' rule) and may not exceed them.
      v1::ResourceList* req = type.mutable_requests();
      const v1::ResourceList& lim = type.limits();
      if (!req->has_cpu() && lim.has_cpu()) *req->mutable_cpu() = lim.cpu();
      if (!req->has_memory() && lim.has_memory()) *req->mutable_memory() = lim.memory();
      if (lim.has_cpu() && req->cpu().value() > lim.cpu().value()) {
        r.Error(res["requests"]["cpu"], Field(rfield, "requests.cpu"),
                absl::StrCat("request ", req->cpu().original(), " exceeds the limit ",
                             lim.cpu().original()));
      }
      if (lim.has_memory() && req->memory().value() > lim.memory().value()) {
        r.Error(res["requests"]["memory"], Field(rfield, "requests.memory"),
                absl::StrCat("request ", req->memory().original(), " exceeds the limit ",
                             lim.memory().original()));
      }
    }
  }
  out.push_back(std::move(type));
}

void SetQuantity(v1::Quantity* q, int64_t value, const char* original) {
  q->set_value(value);
  q->set_original(original);
}

}  // namespace

InstanceTypeParseResult ParseInstanceTypesYaml(absl::string_view text, const std::string& path) {
  InstanceTypeParseResult result;
  YamlReader r(path, text, result.diagnostics);
  std::optional<YAML::Node> root = r.Load();
  if (!root) return result;
  if (!root->IsMap()) {
    r.Error(*root, "",
            absl::StrCat("expected an InstanceType or InstanceTypeList, found ",
                         YamlReader::Describe(*root)));
    return result;
  }
  const YAML::Node& kind = (*root)["kind"];
  if (!kind) {
    r.Error(*root, "kind", "missing", "add `kind: InstanceType` or `kind: InstanceTypeList`");
    return result;
  }
  if (kind.IsScalar() && kind.Scalar() == "InstanceTypeList") {
    r.CheckKeys(*root, "", {"apiVersion", "kind", "items", "metadata"});
    const YAML::Node& items = (*root)["items"];
    if (!items || !items.IsSequence()) {
      r.Error(items ? items : *root, "items",
              absl::StrCat("expected a list of InstanceType, found ", YamlReader::Describe(items)));
      return result;
    }
    for (size_t i = 0; i < items.size(); ++i) {
      ParseOne(r, items[i], absl::StrCat("items[", i, "]"), result.items);
    }
  } else if (kind.IsScalar() && kind.Scalar() == "InstanceType") {
    ParseOne(r, *root, "", result.items);
  } else {
    r.Error(kind, "kind",
            absl::StrCat("expected InstanceType or InstanceTypeList, found ",
                         YamlReader::Describe(kind)),
            spec::SuggestOneOf(kind.IsScalar() ? kind.Scalar() : "",
                               {"InstanceType", "InstanceTypeList"}));
  }
  std::map<std::string, int> seen;
  for (const v1::InstanceType& t : result.items) {
    if (!t.name().empty() && ++seen[t.name()] == 2) {
      result.diagnostics.Error({path, t.source().line(), t.source().column(), ""}, "metadata.name",
                               absl::StrCat("instance type \"", t.name(), "\" is defined twice"));
    }
  }
  return result;
}

InstanceTypeParseResult ParseInstanceTypesFile(const std::string& path) {
  InstanceTypeParseResult result;
  std::optional<std::string> text = spec::ReadUserFile(path, result.diagnostics);
  if (!text) return result;
  return ParseInstanceTypesYaml(*text, path);
}

v1::InstanceType DefaultInstanceType() {
  v1::InstanceType t;
  t.set_name(kDefaultInstanceTypeName);
  SetQuantity(t.mutable_requests()->mutable_cpu(), 100, "100m");
  SetQuantity(t.mutable_requests()->mutable_memory(), int64_t{2} << 30, "2Gi");
  SetQuantity(t.mutable_limits()->mutable_cpu(), 2000, "2");
  SetQuantity(t.mutable_limits()->mutable_memory(), int64_t{2} << 30, "2Gi");
  return t;
}

std::vector<v1::InstanceType> EffectiveInstanceTypes(const v1::ComputeTarget& target) {
  std::vector<v1::InstanceType> out(target.instance_types().begin(), target.instance_types().end());
  bool has_default = std::any_of(out.begin(), out.end(), [](const v1::InstanceType& t) {
    return t.name() == kDefaultInstanceTypeName;
  });
  if (!has_default) out.push_back(DefaultInstanceType());
  return out;
}

absl::StatusOr<v1::InstanceType> FindInstanceType(const v1::ComputeTarget& target,
                                                  absl::string_view name_in) {
  std::string name = name_in.empty() ? kDefaultInstanceTypeName : std::string(name_in);
  std::vector<std::string> names;
  for (const v1::InstanceType& t : EffectiveInstanceTypes(target)) {
    if (t.name() == name) return t;
    names.push_back(t.name());
  }
  std::string close = spec::ClosestMatch(name, names);
  return absl::NotFoundError(absl::StrCat(
      "compute \"", target.name(), "\" has no instance type \"", name, "\"",
      close.empty() ? "" : absl::StrCat("; did you mean `", close, "`?"),
      " (available: ", absl::StrJoin(names, ", "),
      "; add one with `kubetrain instance-type apply -f FILE --compute ", target.name(), "`)"));
}

void ApplyInstanceTypes(const std::vector<v1::InstanceType>& items, v1::ComputeTarget& target) {
  for (const v1::InstanceType& item : items) {
    bool replaced = false;
    for (v1::InstanceType& existing : *target.mutable_instance_types()) {
      if (existing.name() == item.name()) {
        existing = item;
        replaced = true;
      }
    }
    if (!replaced) *target.add_instance_types() = item;
  }
}

}  // namespace kubetrain::compute
