#include "kubetrain/launcher/spec/asset_file.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "kubetrain/launcher/spec/overrides.h"
#include "kubetrain/launcher/spec/suggest.h"
#include "kubetrain/launcher/spec/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::spec {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kDataKeys = {"$schema", "name",        "version", "type",
                                            "path",    "description", "tags",    "properties"};
// Azure ML keys that mean nothing here (where to upload a local path to; a pipeline stage).
const std::vector<std::string> kIgnoredDataKeys = {"datastore", "stage"};
const std::vector<std::string> kDataTypes = {"uri_file", "uri_folder", "mltable"};

const std::vector<std::string> kEnvironmentKeys = {
    "$schema", "name", "version", "image", "conda_file", "build", "description", "tags", "os_type"};
const std::vector<std::string> kIgnoredEnvironmentKeys = {"inference_config", "properties", "stage",
                                                          "intellectual_property"};

// The parts both files share: loading with overrides, name / version / description / tags.
struct AssetDoc {
  YamlReader reader;
  YAML::Node root;
  fs::path base_dir;  // the file's folder: relative paths resolve against it
  std::string source_file;

  AssetDoc(const std::string& path, absl::string_view text, Diagnostics& diagnostics)
      : reader(path, text, diagnostics) {
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    base_dir = abs.parent_path();
    source_file = abs.lexically_normal().string();
  }

  // Loads the document and applies the overrides; false (with errors recorded) when it is not a
  // mapping.
  bool Load(const AssetFileOptions& options, absl::string_view what) {
    std::optional<YAML::Node> loaded = reader.Load();
    if (!loaded) return false;
    root = *loaded;
    if (!root.IsMap()) {
      reader.Error(root, "",
                   absl::StrCat("a", what == "environment" ? "n " : " ", what,
                                " file is a mapping of keys such as `name:`; found ",
                                YamlReader::Describe(root)));
      return false;
    }
    ApplyOverrides(options.overrides, root, reader);
    return true;
  }

  std::string Resolve(absl::string_view path) const {
    fs::path p(std::string(absl::StripPrefix(path, "file://")));
    if (p.is_relative()) p = base_dir / p;
    return p.lexically_normal().string();
  }

  // `name:` (required) and `version:` (optional; a YAML number such as 1 is read as its text).
  template <typename Asset>
  void NameAndVersion(Asset& asset, absl::string_view what) {
    const YAML::Node& name = root["name"];
    if (!name || name.IsNull()) {
      reader.Error(root, "name", "missing",
                   absl::StrCat("add `name: <", what, " name>` (or give --name)"));
    } else if (auto v = reader.String(name, "name")) {
      if (absl::Status s = CheckAssetName("name", *v); !s.ok()) {
        reader.Error(name, "name", std::string(s.message()));
      } else {
        asset.set_name(*v);
      }
    }
    const YAML::Node& version = root["version"];
    if (version && !version.IsNull()) {
      if (auto v = reader.String(version, "version")) {
        if (absl::Status s = CheckAssetName("version", *v); !s.ok()) {
          reader.Error(version, "version", std::string(s.message()),
                       "use a number such as 1, or leave `version:` out for the next one");
        } else {
          asset.set_version(*v);
        }
      }
    }
  }

  template <typename Asset>
  void DescriptionAndTags(Asset& asset) {
    if (root["description"]) {
      if (auto v = reader.String(root["description"], "description")) asset.set_description(*v);
    }
    if (root["tags"]) {
      if (auto tags = reader.StringMap(root["tags"], "tags")) {
        asset.mutable_tags()->insert(tags->begin(), tags->end());
      }
    }
    if (root["properties"]) reader.StringMap(root["properties"], "properties");
    asset.set_source_file(source_file);
  }
};

bool IsRemote(absl::string_view path) {
  for (absl::string_view scheme :
       {"azureml://", "https://", "http://", "wasbs://", "wasb://", "abfss://", "adl://"}) {
    if (absl::StartsWith(path, scheme)) return true;
  }
  return false;
}

void ParseDataPath(AssetDoc& doc, v1::DataAsset& asset) {
  const YAML::Node& node = doc.root["path"];
  if (!node || node.IsNull()) {
    doc.reader.Error(doc.root, "path", "missing",
                     "add `path:` (a local file or folder, azureml://datastores/<name>/paths/..., "
                     "or https://...)");
    return;
  }
  std::optional<std::string> path = doc.reader.String(node, "path");
  if (!path) return;
  if (path->empty()) {
    doc.reader.Error(node, "path", "the path is empty");
    return;
  }
  if (IsAssetReference(*path)) {
    doc.reader.Error(node, "path", absl::StrCat("\"", *path, "\" is another data asset"),
                     "give the data's own location (a local path, azureml://datastores/... or "
                     "https://...)");
    return;
  }
  if (IsRemote(*path)) {
    asset.set_path(*path);
    return;
  }
  std::string local = doc.Resolve(*path);
  asset.set_path(local);
  std::error_code ec;
  if (!fs::exists(local, ec)) {
    doc.reader.Error(node, "path", absl::StrCat("the local path ", local, " does not exist"),
                     "fix the path (relative paths start at the file's folder)");
    return;
  }
  const bool dir = fs::is_directory(local, ec);
  if (asset.type() == v1::DATA_TYPE_URI_FILE && dir) {
    doc.reader.Error(node, "path", absl::StrCat(local, " is a folder but the type is uri_file"),
                     "write `type: uri_folder`, or point `path:` at a file");
  } else if (asset.type() != v1::DATA_TYPE_URI_FILE && !dir) {
    doc.reader.Error(node, "path",
                     absl::StrCat(local, " is a file but the type is ",
                                  asset.type() == v1::DATA_TYPE_MLTABLE ? "mltable" : "uri_folder"),
                     "write `type: uri_file`, or point `path:` at a folder");
  } else if (asset.type() == v1::DATA_TYPE_MLTABLE && !fs::exists(fs::path(local) / "MLTable")) {
    doc.reader.Error(node, "path",
                     absl::StrCat("the mltable folder ", local, " has no MLTable file"),
                     "point `path:` at the folder that holds the MLTable file");
  }
}

void ParseBuild(AssetDoc& doc, v1::EnvironmentAsset& env) {
  const YAML::Node& build = doc.root["build"];
  if (!doc.reader.ExpectMap(build, "build")) return;
  doc.reader.CheckKeys(build, "build", {"path", "dockerfile_path"});
  if (!build["path"]) {
    doc.reader.Error(build, "build.path", "missing", "add `path:` (the Docker build context)");
    return;
  }
  auto path = doc.reader.String(build["path"], "build.path");
  if (!path) return;
  std::string context = doc.Resolve(*path);
  env.set_build_context(context);
  env.set_dockerfile_path("Dockerfile");
  if (build["dockerfile_path"]) {
    if (auto v = doc.reader.String(build["dockerfile_path"], "build.dockerfile_path")) {
      env.set_dockerfile_path(*v);
    }
  }
  std::error_code ec;
  if (!fs::is_directory(context, ec)) {
    doc.reader.Error(build["path"], "build.path",
                     absl::StrCat("the build context ", context, " is not a folder"),
                     "fix the path (relative paths start at the file's folder)");
  } else if (!fs::exists(fs::path(context) / env.dockerfile_path(), ec)) {
    const YAML::Node& at = build["dockerfile_path"] ? build["dockerfile_path"] : build["path"];
    doc.reader.Error(at, "build.dockerfile_path",
                     absl::StrCat(env.dockerfile_path(), " is not in the build context ", context),
                     "set `dockerfile_path:` relative to `path:`");
  }
}

void ParseCondaFile(AssetDoc& doc, v1::EnvironmentAsset& env) {
  const YAML::Node& node = doc.root["conda_file"];
  if (node.IsMap()) {  // the SDK's inline form: the conda specification itself
    YAML::Emitter out;
    out << node;
    env.set_conda_spec(std::string(out.c_str()) + "\n");
    return;
  }
  auto path = doc.reader.String(node, "conda_file");
  if (!path) return;
  std::string file = doc.Resolve(*path);
  env.set_conda_file(file);
  std::error_code ec;
  std::ifstream in;
  if (fs::is_regular_file(file, ec)) in.open(file, std::ios::binary);  // not a FIFO or device
  if (!in.is_open()) {
    doc.reader.Error(node, "conda_file", absl::StrCat("cannot read the conda file ", file),
                     "fix the path (relative paths start at the file's folder)");
    return;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  env.set_conda_spec(buffer.str());
}

}  // namespace

std::string AssetReference::ToString() const {
  return label.empty() ? absl::StrCat(name, ":", version) : absl::StrCat(name, "@", label);
}

bool IsAssetReference(absl::string_view text) {
  return absl::StartsWith(text, "azureml:") && !absl::StartsWith(text, "azureml://");
}

absl::Status CheckAssetName(absl::string_view what, absl::string_view value) {
  static const std::regex kName("^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$");
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat("the ", what, " is empty"));
  if (!std::regex_match(std::string(value), kName)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", value, "\" is not a valid asset ", what,
                     ": use 1-255 letters, digits, '-', '_' and '.', starting with a letter or "
                     "digit"));
  }
  if (what == "version" && value == "latest") {
    return absl::InvalidArgumentError(
        "\"latest\" is a label (name@latest), not a version; give a number such as 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<AssetReference> ParseAssetReferenceOrLatest(absl::string_view text) {
  const size_t from = absl::StartsWith(text, "azureml:") ? 8 : 0;
  if (text.find_first_of(":@", from) == absl::string_view::npos) {
    return ParseAssetReference(absl::StrCat(text, "@latest"));
  }
  return ParseAssetReference(text);
}

absl::StatusOr<AssetReference> ParseAssetReference(absl::string_view text) {
  absl::string_view rest = absl::StripPrefix(text, "azureml:");
  AssetReference ref;
  size_t at = rest.find('@');
  size_t colon = rest.find(':');
  if (at != absl::string_view::npos && (colon == absl::string_view::npos || at < colon)) {
    ref.name = std::string(rest.substr(0, at));
    ref.label = std::string(rest.substr(at + 1));
  } else if (colon != absl::string_view::npos) {
    ref.name = std::string(rest.substr(0, colon));
    ref.version = std::string(rest.substr(colon + 1));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" names no version or label; write azureml:", rest,
                     ":<version> or azureml:", rest, "@latest"));
  }
  if (absl::Status s = CheckAssetName("name", ref.name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": ", s.message()));
  }
  if (ref.label.empty()) {
    if (absl::Status s = CheckAssetName("version", ref.version); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\": ", s.message()));
    }
  } else if (ref.label != "latest") {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\": kubetrain knows the label @latest only; write ", ref.name,
                     "@latest or ", ref.name, ":<version>"));
  }
  return ref;
}

DataAssetParseResult ParseDataAssetYaml(absl::string_view text, const std::string& path,
                                        const AssetFileOptions& options) {
  DataAssetParseResult result;
  AssetDoc doc(path, text, result.diagnostics);
  if (!doc.Load(options, "data asset")) return result;
  doc.reader.CheckKeys(doc.root, "", kDataKeys, kIgnoredDataKeys);
  v1::DataAsset& asset = result.asset;
  doc.NameAndVersion(asset, "data asset");
  asset.set_type(v1::DATA_TYPE_URI_FOLDER);  // Azure ML's default
  if (const YAML::Node& type = doc.root["type"]; type && !type.IsNull()) {
    if (auto t = doc.reader.String(type, "type")) {
      if (*t == "uri_file") {
        asset.set_type(v1::DATA_TYPE_URI_FILE);
      } else if (*t == "mltable") {
        asset.set_type(v1::DATA_TYPE_MLTABLE);
      } else if (*t != "uri_folder") {
        doc.reader.Error(type, "type", absl::StrCat("unknown data asset type \"", *t, "\""),
                         SuggestOneOf(*t, kDataTypes));
        return result;  // the path check depends on the type
      }
    }
  }
  ParseDataPath(doc, asset);
  doc.DescriptionAndTags(asset);
  return result;
}

DataAssetParseResult ParseDataAssetFile(const std::string& path, const AssetFileOptions& options) {
  DataAssetParseResult result;
  std::optional<std::string> text = ReadUserFile(path, result.diagnostics);
  if (!text) return result;
  return ParseDataAssetYaml(*text, path, options);
}

EnvironmentParseResult ParseEnvironmentYaml(absl::string_view text, const std::string& path,
                                            const AssetFileOptions& options) {
  EnvironmentParseResult result;
  AssetDoc doc(path, text, result.diagnostics);
  if (!doc.Load(options, "environment")) return result;
  doc.reader.CheckKeys(doc.root, "", kEnvironmentKeys, kIgnoredEnvironmentKeys);
  v1::EnvironmentAsset& env = result.environment;
  doc.NameAndVersion(env, "environment");
  const YAML::Node& image = doc.root["image"];
  const YAML::Node& build = doc.root["build"];
  if (image && !image.IsNull()) {
    if (auto v = doc.reader.String(image, "image")) {
      if (v->empty()) {
        doc.reader.Error(image, "image", "the image is empty");
      } else {
        env.set_image(*v);
      }
    }
  }
  if (build && !build.IsNull()) {
    if (image && !image.IsNull()) {
      doc.reader.Error(build, "build", "give either `image:` or `build:`, not both",
                       "an environment is an image, or a Docker build context");
    } else {
      ParseBuild(doc, env);
    }
  } else if (!image || image.IsNull()) {
    doc.reader.Error(doc.root, "image", "missing: an environment needs `image:` or `build:`",
                     "for example `image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04`");
  }
  if (const YAML::Node& conda = doc.root["conda_file"]; conda && !conda.IsNull()) {
    if (build && !build.IsNull()) {
      doc.reader.Error(conda, "conda_file", "`conda_file:` goes with `image:`, not `build:`",
                       "install the conda environment in the Dockerfile instead");
    } else {
      ParseCondaFile(doc, env);
    }
  }
  env.set_os_type("linux");
  if (const YAML::Node& os = doc.root["os_type"]; os && !os.IsNull()) {
    if (auto v = doc.reader.String(os, "os_type")) {
      if (*v == "windows") {
        doc.reader.Error(os, "os_type", "kubetrain runs Linux containers only",
                         "remove `os_type:` or write `os_type: linux`");
      } else if (*v != "linux") {
        doc.reader.Error(os, "os_type", absl::StrCat("unknown os_type \"", *v, "\""),
                         "write `os_type: linux`");
      }
    }
  }
  doc.DescriptionAndTags(env);
  return result;
}

EnvironmentParseResult ParseEnvironmentFile(const std::string& path,
                                            const AssetFileOptions& options) {
  EnvironmentParseResult result;
  std::optional<std::string> text = ReadUserFile(path, result.diagnostics);
  if (!text) return result;
  return ParseEnvironmentYaml(*text, path, options);
}

}  // namespace kubetrain::spec
