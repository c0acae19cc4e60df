// Registered data assets and environments as the launcher uses them: creating a version, finding
// one by reference, and resolving a job's references at validate and submit (so the stored job
// records what it got).
//
// Rules:
//  - A version is immutable (the workspace refuses other content under an existing name:version;
//    creating the same content again is harmless). With no version the next whole number after the
//    highest whole-number version of the name is used ("1" for a new name; archived versions count,
//    so a number is never reused).
//  - name@latest is the highest version (storage::CompareAssetVersions) that is not archived; an
//    archived version still resolves by its explicit version, as in Azure ML.
//  - inputs.<x>: azureml:<name>:<version> (or {path: azureml:..., type, mode}): the input's path
//    becomes the asset's path, its type the asset's (a `type:` given must match), and
//    JobInput.asset records "name:version".
//  - environment: azureml:<name>:<version> / [azureml:]<name>@latest: EnvironmentSpec.asset records
//    "name:version"; image, conda_file and build_context become the asset's. On Kubernetes the
//    image is the pods' image (an environment with no image is an error: kubetrain builds no
//    images; a conda file is a warning: it is not applied). `file:env.yml` is read the same way.
//  - On a local compute target the job runs on this machine's software: one warning that names the
//    environment (registered, inline or file:), at validate and at submit.
//  - A reference to something not registered is an error at the reference (file:line:column)
//    whose fix names `kubetrain data create` / `kubetrain environment create`; Azure ML's curated
//    environments (AzureML-*) are named as such (kubetrain does not ship them).
//
// Thread-safety: as the Workspace passed in.
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_ASSETS_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_ASSETS_H_

#include "absl/status/statusor.h"
#include "kubetrain/launcher/spec/asset_file.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/asset.pb.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::compute {

// What a create did.
template <typename Asset>
struct CreatedAsset {
  Asset asset;           // as stored (version assigned, created_unix_ms set)
  bool created = false;  // false: that version existed with the same content; nothing changed
};

// Stores a data asset / environment version (assigning one when asset.version() is empty).
// AlreadyExists names the existing version and the fix; other errors are the workspace's.
absl::StatusOr<CreatedAsset<v1::DataAsset>> CreateDataAsset(storage::Workspace& workspace,
                                                            v1::DataAsset asset);
absl::StatusOr<CreatedAsset<v1::EnvironmentAsset>> CreateEnvironment(
    storage::Workspace& workspace, v1::EnvironmentAsset environment);

// The version a reference names (@latest: the highest one not archived). NotFound says what the
// workspace has instead and how to register or restore one.
absl::StatusOr<v1::DataAsset> FindDataAsset(storage::Workspace& workspace,
                                            const spec::AssetReference& reference);
absl::StatusOr<v1::EnvironmentAsset> FindEnvironment(storage::Workspace& workspace,
                                                     const spec::AssetReference& reference);

// Resolves the job's data asset inputs and its environment in place, by the rules above, and
// checks the environment against `target` (nullptr when the job's target is unknown: no target
// checks). Problems are recorded in `diagnostics` at their places in the job file.
void ResolveJobAssets(storage::Workspace& workspace, const v1::ComputeTarget* target,
                      v1::JobSpec* job, spec::Diagnostics& diagnostics);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_ASSETS_H_
