// Data assets and environments in the embedded workspace: the `assets` table of workspace.db and
// the Workspace methods over it (see kubetrain/storage/workspace.h for their contract). Private to
// kubetrain::storage.
//
// Thread-safety: each function is one transaction on `db`; the caller serialises its use of `db`
// (EmbeddedWorkspace holds its mutex around every call).
#ifndef KUBETRAIN_STORAGE_SRC_ASSET_STORE_H_
#define KUBETRAIN_STORAGE_SRC_ASSET_STORE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/v1/asset.pb.h"
#include "sqlite.h"

namespace kubetrain::storage_internal {

// CREATE TABLE IF NOT EXISTS statements of the assets table; run inside the schema transaction.
extern const char kAssetSchema[];

absl::StatusOr<v1::DataAsset> CreateDataAsset(Db* db, const v1::DataAsset& asset);
absl::StatusOr<v1::DataAsset> GetDataAsset(Db* db, absl::string_view name,
                                           absl::string_view version);
absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(Db* db, absl::string_view name);
absl::StatusOr<v1::DataAsset> SetDataAssetArchived(Db* db, absl::string_view name,
                                                   absl::string_view version, bool archived);

absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(Db* db, const v1::EnvironmentAsset& env);
absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(Db* db, absl::string_view name,
                                                    absl::string_view version);
absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(Db* db, absl::string_view name);
absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(Db* db, absl::string_view name,
                                                            absl::string_view version,
                                                            bool archived);

}  // namespace kubetrain::storage_internal

#endif  // KUBETRAIN_STORAGE_SRC_ASSET_STORE_H_
