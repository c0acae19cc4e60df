// Datastore definitions (`kubetrain datastore create`): Azure ML's datastore YAML
// (azureBlob.schema.json) → kubetrain.v1.Datastore, and the checks a datastore must pass before
// the workspace stores it.
//
// The file, as Azure ML writes it:
//   $schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json
//   name: blobs
//   type: azure_blob                 # or kubetrain's own: local, workspaceblobstore
//   account_name: acct
//   container_name: data
//   endpoint: core.windows.net       # the storage DNS suffix (sovereign clouds), or kubetrain's
//                                    # override: a full service URL such as Azurite's
//   protocol: https
//   credentials: {account_key: ...}  # or {sas_token: ...}
//   path: ./data                     # local only; relative to the file
// No key is required in the file: the command line can give (and override) every field, so
// what is missing is reported by ValidateDatastore once both are combined.
//
// Thread-safety: pure functions, except that they read the file / the datastore's folder.
#ifndef KUBETRAIN_LAUNCHER_SPEC_DATASTORE_FILE_H_
#define KUBETRAIN_LAUNCHER_SPEC_DATASTORE_FILE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kubetrain/v1/datastore.pb.h"

namespace kubetrain::spec {

struct DatastoreFileResult {
  // OK, or why the file was refused: NotFound "cannot read <path>"; InvalidArgument
  // "<path>:<line>: not valid YAML: ...", "<path>: expected a mapping", or
  // "<path>:<line>: type \"x\" is not supported; ...".
  absl::Status status;
  // The datastore the file defines (type "azure_blob" becomes "azureblob"; a relative `path:`
  // is made relative to the file's folder). Use only when status.ok().
  v1::Datastore datastore;
  // "<path>:<line>: warning: `key` is not used by kubetrain and is ignored", one per unknown key;
  // filled even when status is not OK.
  std::vector<std::string> warnings;
};

// Parses a datastore YAML; `path` names it in messages and anchors a relative `path:`.
DatastoreFileResult ParseDatastoreYaml(absl::string_view text, const std::string& path);
// Reads and parses the file at `path`.
DatastoreFileResult ParseDatastoreFile(const std::string& path);

// Checks and completes `datastore` as `kubetrain datastore create` stores it: the name; the type
// (inferred when empty: azureblob with an account name, else local); azureblob needs an account
// and a container, at most one of account key (valid base64) and SAS token (a leading '?' is
// dropped), and an endpoint that is a URL; local and workspaceblobstore take no blob settings,
// and their folder (for workspaceblobstore by default <workspace_dir>/datastores/
// workspaceblobstore, created) must exist and is stored canonical. InvalidArgument (NotFound for
// a missing folder) whose message names the flag to fix.
absl::Status ValidateDatastore(const std::string& workspace_dir, v1::Datastore* datastore);

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_DATASTORE_FILE_H_
