#include "kubetrain/launcher/compute/assets.h"

#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/launcher/spec/job_parser.h"

namespace kubetrain::compute {
namespace {

// What differs between the two kinds of asset.
template <typename Asset>
struct Kind;

template <>
struct Kind<v1::DataAsset> {
  static constexpr char kLabel[] = "data asset";
  static constexpr char kCommand[] = "kubetrain data";
  static constexpr char kFile[] = "data.yml";
  static constexpr char kFields[] = "type and path";
  static absl::StatusOr<std::vector<v1::DataAsset>> List(storage::Workspace& ws,
                                                         absl::string_view name) {
    return ws.ListDataAssets(name);
  }
  static absl::StatusOr<v1::DataAsset> Get(storage::Workspace& ws, absl::string_view name,
                                           absl::string_view version) {
    return ws.GetDataAsset(name, version);
  }
  static absl::StatusOr<v1::DataAsset> Create(storage::Workspace& ws, const v1::DataAsset& a) {
    return ws.CreateDataAsset(a);
  }
};

template <>
struct Kind<v1::EnvironmentAsset> {
  static constexpr char kLabel[] = "environment";
  static constexpr char kCommand[] = "kubetrain environment";
  static constexpr char kFile[] = "env.yml";
  static constexpr char kFields[] = "image";
  static absl::StatusOr<std::vector<v1::EnvironmentAsset>> List(storage::Workspace& ws,
                                                                absl::string_view name) {
    return ws.ListEnvironments(name);
  }
  static absl::StatusOr<v1::EnvironmentAsset> Get(storage::Workspace& ws, absl::string_view name,
                                                  absl::string_view version) {
    return ws.GetEnvironment(name, version);
  }
  static absl::StatusOr<v1::EnvironmentAsset> Create(storage::Workspace& ws,
                                                     const v1::EnvironmentAsset& e) {
    return ws.CreateEnvironment(e);
  }
};

// A lookup: the asset, or why there is none (message) and what to do (fix).
template <typename Asset>
struct Lookup {
  absl::Status status;  // OK, NotFound (message and fix set) or the workspace's error
  Asset asset;
  std::string message;
  std::string fix;
};

template <typename Asset>
Lookup<Asset> Find(storage::Workspace& ws, const spec::AssetReference& ref) {
  using K = Kind<Asset>;
  Lookup<Asset> out;
  absl::StatusOr<std::vector<Asset>> versions = K::List(ws, ref.name);
  if (!versions.ok()) {
    out.status = versions.status();
    return out;
  }
  std::vector<std::string> names;
  const Asset* found = nullptr;
  for (const Asset& a : *versions) {
    names.push_back(a.version());
    if (ref.label.empty() ? a.version() == ref.version : !a.archived()) found = &a;  // last wins
  }
  if (found != nullptr) {
    out.asset = *found;
    return out;
  }
  out.status = absl::NotFoundError("");
  // "`kubetrain data create -f data.yml` with name: x, version: 1, type and path".
  const std::string create =
      absl::StrCat("`", K::kCommand, " create -f ", K::kFile, "` with name: ", ref.name,
                   ", version: ", ref.version.empty() ? "1" : ref.version, ", ", K::kFields);
  if (versions->empty()) {
    out.message = absl::StrCat("no ", K::kLabel, " named \"", ref.name, "\" is registered");
    out.fix = absl::StrCat("register it: ", create, " (`", K::kCommand,
                           " list` shows what is registered)");
    if (std::is_same_v<Asset, v1::EnvironmentAsset> && absl::StartsWith(ref.name, "AzureML-")) {
      out.message = absl::StrCat("\"", ref.ToString(),
                                 "\" is an Azure ML curated environment; kubetrain does not ship "
                                 "those, and this workspace has none registered under that name");
      out.fix = absl::StrCat("register it: ", create,
                             " (the image to run in on Kubernetes; on local compute this "
                             "machine's software is used)");
    }
  } else if (ref.label.empty()) {
    out.message = absl::StrCat(K::kLabel, " \"", ref.name, "\" has no version \"", ref.version,
                               "\" (it has ", absl::StrJoin(names, ", "), ")");
    out.fix = absl::StrCat("name one of those, write ", ref.name, "@latest, or register version ",
                           ref.version, ": ", create);
  } else {
    out.message = absl::StrCat("every version of ", K::kLabel, " \"", ref.name, "\" is archived (",
                               absl::StrJoin(names, ", "), "), so @latest names none");
    out.fix = absl::StrCat("restore one (`", K::kCommand, " restore ", ref.name, ":", names.back(),
                           "`) or name a version");
  }
  return out;
}

template <typename Asset>
absl::StatusOr<Asset> FindOrStatus(storage::Workspace& ws, const spec::AssetReference& ref) {
  Lookup<Asset> found = Find<Asset>(ws, ref);
  if (absl::IsNotFound(found.status)) {
    return absl::NotFoundError(absl::StrCat(found.message, "; ", found.fix));
  }
  if (!found.status.ok()) return found.status;
  return found.asset;
}

template <typename Asset>
absl::StatusOr<CreatedAsset<Asset>> Create(storage::Workspace& ws, Asset asset) {
  using K = Kind<Asset>;
  if (asset.version().empty()) {
    absl::StatusOr<std::vector<Asset>> versions = K::List(ws, asset.name());
    if (!versions.ok()) return versions.status();
    int64_t highest = 0;
    for (const Asset& a : *versions) {
      int64_t n = 0;
      if (absl::SimpleAtoi(a.version(), &n) && n > highest) highest = n;
    }
    asset.set_version(absl::StrCat(highest + 1));
  }
  CreatedAsset<Asset> out;
  out.created = absl::IsNotFound(K::Get(ws, asset.name(), asset.version()).status());
  absl::StatusOr<Asset> stored = K::Create(ws, asset);
  if (absl::IsAlreadyExists(stored.status())) {
    return absl::AlreadyExistsError(absl::StrCat(stored.status().message(), "; `", K::kCommand,
                                                 " show ", asset.name(), ":", asset.version(),
                                                 "` shows it"));
  }
  if (!stored.ok()) return stored.status();
  out.asset = *std::move(stored);
  return out;
}

spec::Location Where(const v1::JobSpec& job, const std::vector<std::string>& fields) {
  for (const std::string& field : fields) {
    auto it = job.locations().find(field);
    if (it != job.locations().end()) {
      return {it->second.file(), it->second.line(), it->second.column(), ""};
    }
  }
  return {job.source_file(), 0, 0, ""};
}

void ResolveInput(storage::Workspace& ws, const v1::JobSpec& job, const std::string& name,
                  v1::JobInput& input, spec::Diagnostics& d) {
  const std::string field = absl::StrCat("inputs.", name, ".path");
  const spec::Location at = Where(job, {field, absl::StrCat("inputs.", name)});
  absl::StatusOr<spec::AssetReference> ref = spec::ParseAssetReference(input.path());
  if (!ref.ok()) {
    d.Error(at, field, std::string(ref.status().message()),
            "write azureml:<name>:<version> or azureml:<name>@latest");
    return;
  }
  Lookup<v1::DataAsset> found = Find<v1::DataAsset>(ws, *ref);
  if (absl::IsNotFound(found.status)) {
    d.Error(at, field, found.message, found.fix);
    return;
  }
  if (!found.status.ok()) {
    d.Error(at, field, std::string(found.status.message()));
    return;
  }
  const v1::DataAsset& asset = found.asset;
  const std::string id = absl::StrCat(asset.name(), ":", asset.version());
  if (input.type() != v1::DATA_TYPE_UNSPECIFIED && input.type() != asset.type()) {
    std::string type_field = absl::StrCat("inputs.", name, ".type");
    d.Error(Where(job, {type_field, field}), type_field,
            absl::StrCat("the input is ", spec::DataTypeName(input.type()), " but data asset \"",
                         id, "\" is ", spec::DataTypeName(asset.type())),
            absl::StrCat("write `type: ", spec::DataTypeName(asset.type()),
                         "` or leave `type:` out (it comes from the asset)"));
    return;
  }
  std::error_code ec;
  if (absl::StartsWith(asset.path(), "/") && !std::filesystem::exists(asset.path(), ec)) {
    d.Error(at, field,
            absl::StrCat("data asset \"", id, "\" is ", asset.path(), ", which does not exist"),
            "restore the data there, or register a new version that points at it");
    return;
  }
  input.set_type(asset.type());
  input.set_path(asset.path());
  input.set_asset(id);
}

// How the job's environment is called in messages.
std::string EnvironmentName(const v1::EnvironmentSpec& env) {
  if (!env.reference().empty()) return absl::StrCat("\"", env.reference(), "\"");
  if (!env.image().empty()) return absl::StrCat("image \"", env.image(), "\"");
  return absl::StrCat("build context ", env.build_context());
}

// A `file:env.yml` environment, read as `kubetrain environment create` reads one.
bool ResolveEnvironmentFile(v1::EnvironmentSpec& env, const spec::Location& at,
                            spec::Diagnostics& d) {
  spec::EnvironmentParseResult parsed = spec::ParseEnvironmentFile(env.file());
  if (parsed.diagnostics.has_errors()) {
    d.Error(at, "environment", absl::StrCat("the environment file ", env.file(), " is not usable"),
            absl::StrCat("fix it: ", parsed.diagnostics.Format()));
    return false;
  }
  env.set_image(parsed.environment.image());
  env.set_conda_file(parsed.environment.conda_file());
  env.set_build_context(parsed.environment.build_context());
  return true;
}

void ResolveEnvironment(storage::Workspace& ws, const v1::ComputeTarget* target, v1::JobSpec& job,
                        spec::Diagnostics& d) {
  v1::EnvironmentSpec& env = *job.mutable_environment();
  const spec::Location at = Where(job, {"environment"});
  const bool local = target != nullptr && target->has_local();
  const bool kubernetes = target != nullptr && target->has_kubernetes();
  bool conda = !env.conda_file().empty();
  if (!env.reference().empty() && env.file().empty()) {  // a registered environment
    spec::AssetReference ref{env.name(), env.version(), env.label()};
    Lookup<v1::EnvironmentAsset> found = Find<v1::EnvironmentAsset>(ws, ref);
    if (absl::IsNotFound(found.status)) {
      d.Error(at, "environment", found.message, found.fix);
      return;
    }
    if (!found.status.ok()) {
      d.Error(at, "environment", std::string(found.status.message()));
      return;
    }
    const v1::EnvironmentAsset& asset = found.asset;
    env.set_asset(absl::StrCat(asset.name(), ":", asset.version()));
    env.set_image(asset.image());
    env.set_conda_file(asset.conda_file());
    env.set_build_context(asset.build_context());
    conda = !asset.conda_spec().empty();
  } else if (!env.file().empty() && kubernetes) {  // on local compute only named, not read
    if (!ResolveEnvironmentFile(env, at, d)) return;
    conda = !env.conda_file().empty();
  }
  const bool any = !env.reference().empty() || !env.image().empty() || !env.build_context().empty();
  if (local && any) {
    std::string what = EnvironmentName(env);
    if (!env.asset().empty() && !env.image().empty()) {
      absl::StrAppend(&what, " (image ", env.image(), ")");
    }
    d.Warning(at, "environment",
              absl::StrCat("compute \"", target->name(),
                           "\" is local: the job runs on this machine's software, not in "
                           "environment ",
                           what),
              "install what the job needs on this machine, or run it on a Kubernetes compute "
              "(--set compute=<name>) to use the environment's image");
  }
  if (kubernetes && any && env.image().empty()) {
    d.Error(at, "environment",
            absl::StrCat("environment ", EnvironmentName(env), " has no image (it is built from ",
                         env.build_context(), "); kubetrain does not build images"),
            "build and push the image (with kubetrain-worker on PATH, see docker/), then register "
            "a version with `image:` (`kubetrain environment create`)");
  } else if (kubernetes && conda) {
    d.Warning(at, "environment",
              absl::StrCat("the conda file of environment ", EnvironmentName(env),
                           " is not applied: the pods run image ", env.image(), " as it is"),
              "install the conda environment in the image");
  }
}

}  // namespace

absl::StatusOr<CreatedAsset<v1::DataAsset>> CreateDataAsset(storage::Workspace& workspace,
                                                            v1::DataAsset asset) {
  return Create(workspace, std::move(asset));
}

absl::StatusOr<CreatedAsset<v1::EnvironmentAsset>> CreateEnvironment(
    storage::Workspace& workspace, v1::EnvironmentAsset environment) {
  return Create(workspace, std::move(environment));
}

absl::StatusOr<v1::DataAsset> FindDataAsset(storage::Workspace& workspace,
                                            const spec::AssetReference& reference) {
  return FindOrStatus<v1::DataAsset>(workspace, reference);
}

absl::StatusOr<v1::EnvironmentAsset> FindEnvironment(storage::Workspace& workspace,
                                                     const spec::AssetReference& reference) {
  return FindOrStatus<v1::EnvironmentAsset>(workspace, reference);
}

void ResolveJobAssets(storage::Workspace& workspace, const v1::ComputeTarget* target,
                      v1::JobSpec* job, spec::Diagnostics& diagnostics) {
  for (auto& [name, input] : *job->mutable_inputs()) {
    if (input.type() == v1::DATA_TYPE_LITERAL || !spec::IsAssetReference(input.path())) continue;
    ResolveInput(workspace, *job, name, input, diagnostics);
  }
  ResolveEnvironment(workspace, target, *job, diagnostics);
}

}  // namespace kubetrain::compute
