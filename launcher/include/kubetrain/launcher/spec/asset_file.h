// Registered assets as users write them: Azure ML's data asset YAML (data.schema.json) and
// environment YAML (environment.schema.json) → kubetrain.v1.DataAsset / EnvironmentAsset, and the
// references a job uses to name them (azureml:<name>:<version>, azureml:<name>@latest).
//
// A data asset file (`kubetrain data create -f data.yml`):
//   $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
//   name: cifar-10-example
//   version: 1             # optional: the workspace gives the next whole number
//   type: uri_folder       # uri_file | uri_folder (default) | mltable
//   path: ./cifar-10       # a local path (relative to the file; must exist and match `type`),
//                          # azureml://datastores/<name>/paths/..., https://..., wasbs://...
//   description: CIFAR-10 # optional, as `tags:`
// An environment file (`kubetrain environment create -f env.yml`):
//   $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
//   name: AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu
//   version: 6                                     # optional, as for data
//   image: mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04
//   conda_file: conda.yml                          # optional, with `image:`; its content is stored
//   build: {path: ./docker, dockerfile_path: Dockerfile}   # instead of `image:`
//   os_type: linux                                 # optional; kubetrain runs Linux only
// Every problem is a Diagnostic with file:line:column and field; unknown keys are errors with a
// did-you-mean, Azure ML keys kubetrain does not use are warnings that name them.
//
// Thread-safety: pure functions, except that the *File functions and local paths read the file
// system.
#ifndef KUBETRAIN_LAUNCHER_SPEC_ASSET_FILE_H_
#define KUBETRAIN_LAUNCHER_SPEC_ASSET_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/asset.pb.h"

namespace kubetrain::spec {

// A reference to a registered asset: a version or a label.
struct AssetReference {
  std::string name;
  std::string version;  // from "name:version"; empty with a label
  std::string label;    // from "name@label"; kubetrain resolves "latest" only
  // "name:version" or "name@label".
  std::string ToString() const;
};

// True for "azureml:<name>:<version>" and "azureml:<name>@<label>" (not "azureml://...").
bool IsAssetReference(absl::string_view text);

// Parses "azureml:name:version", "azureml:name@label", "name:version" or "name@label".
// InvalidArgument says what is wrong ("names no version or label", "is not a valid asset name").
absl::StatusOr<AssetReference> ParseAssetReference(absl::string_view text);
// The same, where a bare NAME (no version, no label) means NAME@latest (`data show cifar`).
absl::StatusOr<AssetReference> ParseAssetReferenceOrLatest(absl::string_view text);

// Checks an asset name or version as Azure ML allows them: 1-255 letters, digits, '-', '_', '.',
// starting with a letter or digit; a version is never "latest" (that is a label). `what` is
// "name" or "version" for the message.
absl::Status CheckAssetName(absl::string_view what, absl::string_view value);

struct AssetFileOptions {
  // "field=value" overrides applied to the file before it is checked (`--name x`, `--version 2`
  // and `--set` become "name=x", "version=2", ...), as for job files.
  std::vector<std::string> overrides;
};

struct DataAssetParseResult {
  // The asset (a local path made absolute); use only when !diagnostics.has_errors(). `version` is
  // empty when the file gives none (the workspace assigns the next one).
  v1::DataAsset asset;
  Diagnostics diagnostics;
};

struct EnvironmentParseResult {
  // The environment (paths made absolute, the conda file's content in conda_spec); use only when
  // !diagnostics.has_errors(). `version` as for data.
  v1::EnvironmentAsset environment;
  Diagnostics diagnostics;
};

// Reads and parses the file at `path`; a file that cannot be read is an error diagnostic.
DataAssetParseResult ParseDataAssetFile(const std::string& path,
                                        const AssetFileOptions& options = {});
// Parses `text` as if it were the file `path` (for messages and relative paths).
DataAssetParseResult ParseDataAssetYaml(absl::string_view text, const std::string& path,
                                        const AssetFileOptions& options = {});

EnvironmentParseResult ParseEnvironmentFile(const std::string& path,
                                            const AssetFileOptions& options = {});
EnvironmentParseResult ParseEnvironmentYaml(absl::string_view text, const std::string& path,
                                            const AssetFileOptions& options = {});

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_ASSET_FILE_H_
