// Data paths of job inputs and outputs, and where they lead.
//
// ParseDataUri understands the forms an Azure ML job file uses:
//   /abs/path, file:///abs/path                         a local file or folder
//   azureml://datastores/<name>/paths/<path>            a path in a registered datastore (also the
//                                                       long
//                                                       azureml://subscriptions/.../datastores/...)
//   https://<account>.blob.core.windows.net/<container>/<path>
//   http(s)://<host:port>/<account>/<container>/<path>  path-style (Azurite and other emulators)
//   wasbs://<container>@<account>.blob.core.windows.net/<path>   (and wasb://)
// Relative local paths were already resolved against the YAML's folder by the job parser. Paths
// inside a datastore or container are cleaned (CleanRelativePath): ".." is refused.
//
// ResolveData turns a parsed URI into a DataLocation: a local path, or a blob container with its
// credentials and the blob name / prefix. Datastores come from the DatastoreResolver; an https or
// wasbs URL borrows the credentials and endpoint override of a registered `azureblob` datastore of
// the same account (same container preferred), else it is read anonymously. The datastore
// `workspaceblobstore`, when not registered, is the folder
// <workspace>/datastores/workspaceblobstore.
//
// Thread-safety: pure functions (ResolveData calls the resolver's functions).
#ifndef KUBETRAIN_STORAGE_DATA_URI_H_
#define KUBETRAIN_STORAGE_DATA_URI_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/storage/blob_client.h"

namespace kubetrain::storage {

struct DataUri {
  enum class Kind { kLocal, kDatastore, kBlobUrl };
  Kind kind = Kind::kLocal;
  std::string local_path;  // kLocal: absolute
  std::string datastore;   // kDatastore: its name
  std::string account;     // kBlobUrl
  std::string container;   // kBlobUrl
  std::string endpoint;    // kBlobUrl: the service endpoint the URL names (scheme://host[/account])
  std::string path;        // kDatastore / kBlobUrl: cleaned path inside it ("" = its root)
  std::string original;    // as written, with any query string redacted (RedactDataUri)
};

// InvalidArgument (naming the URI and the form expected) for anything else, e.g. a relative path,
// an abfss:// URL or an azureml:name:version asset.
absl::StatusOr<DataUri> ParseDataUri(absl::string_view uri);

// The URI for messages and records: a query string (which may hold a SAS token) becomes
// "?<redacted>".
std::string RedactDataUri(absl::string_view uri);

// True for what ParseDataUri would not treat as a local path.
bool IsRemoteDataUri(absl::string_view uri);

// A datastore registered in the workspace (the fields of v1::Datastore the data path needs).
struct DatastoreConfig {
  std::string name;
  std::string type;  // "local" | "azureblob" | "workspaceblobstore"
  std::string path;  // local / workspaceblobstore (as a folder): the folder
  std::string account_name;
  std::string container_name;
  std::string endpoint;     // override, e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1
  std::string account_key;  // secret
  std::string sas_token;    // secret
};

struct DatastoreResolver {
  std::string workspace_dir;  // for the default workspaceblobstore; may be empty
  // The datastore called `name`; NotFound when it is not registered.
  std::function<absl::StatusOr<DatastoreConfig>(const std::string& name)> get;
  // Every registered datastore (used to find credentials for https / wasbs URLs); may be unset.
  std::function<absl::StatusOr<std::vector<DatastoreConfig>>()> list;
};

struct DataLocation {
  bool is_blob = false;
  std::string local_path;  // !is_blob: absolute path of the file or folder
  BlobAccount account;     // is_blob: container and credentials
  std::string blob_path;   // is_blob: the blob's name (uri_file) or prefix (uri_folder)
  std::string display;     // where it is, for messages and records; never a secret
};

absl::StatusOr<DataLocation> ResolveData(const DataUri& uri, const DatastoreResolver& resolver);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_DATA_URI_H_
