// The assets table of the embedded workspace. See asset_store.h and workspace.h.
#include "asset_store.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "deterministic.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/storage/workspace.h"

namespace kubetrain::storage_internal {

const char kAssetSchema[] = R"sql(
-- Registered data assets and environments, one row per (kind, name, version); immutable once
-- written except for the archived flag inside the record.
CREATE TABLE IF NOT EXISTS assets (
  kind    TEXT NOT NULL,                   -- 'data' or 'environment'
  name    TEXT NOT NULL,
  version TEXT NOT NULL,
  record  BLOB NOT NULL,                   -- kubetrain.v1.DataAsset / EnvironmentAsset
  PRIMARY KEY (kind, name, version)
) WITHOUT ROWID;
)sql";

namespace {

using storage::storage_internal::SerializeDeterministic;

// What differs between the two kinds of asset.
template <typename Asset>
struct Kind;

template <>
struct Kind<v1::DataAsset> {
  static constexpr char kKey[] = "data";
  static constexpr char kLabel[] = "data asset";
  static constexpr char kCommand[] = "kubetrain data";
  static std::string Describe(const v1::DataAsset& a) {
    std::string type(absl::StripPrefix(v1::DataType_Name(a.type()), "DATA_TYPE_"));
    return absl::StrCat(absl::AsciiStrToLower(type), " ", a.path());
  }
};

template <>
struct Kind<v1::EnvironmentAsset> {
  static constexpr char kKey[] = "environment";
  static constexpr char kLabel[] = "environment";
  static constexpr char kCommand[] = "kubetrain environment";
  static std::string Describe(const v1::EnvironmentAsset& e) {
    if (!e.image().empty()) return absl::StrCat("image ", e.image());
    return absl::StrCat("build ", e.build_context());
  }
};

// The content that makes a version: everything but the bookkeeping fields.
template <typename Asset>
std::string Content(Asset asset) {
  asset.clear_archived();
  asset.clear_created_unix_ms();
  asset.clear_source_file();
  return SerializeDeterministic(asset);
}

template <typename Asset>
std::string Op(absl::string_view verb, absl::string_view name, absl::string_view version) {
  return absl::StrCat(verb, " ", Kind<Asset>::kLabel, " \"", name, ":", version, "\"");
}

template <typename Asset>
absl::Status Parse(const Db* db, const std::string& blob, absl::string_view op, Asset& asset) {
  if (!asset.ParseFromString(blob)) {
    return absl::DataLossError(absl::StrCat("workspace ", db->path(), ": ", op,
                                            ": stored record does not parse as ",
                                            asset.GetTypeName()));
  }
  return absl::OkStatus();
}

template <typename Asset>
absl::Status NotFound(const Db* db, absl::string_view name, absl::string_view version) {
  return absl::NotFoundError(absl::StrCat(Kind<Asset>::kLabel, " \"", name, ":", version,
                                          "\" not found in workspace ", db->path(), "; see `",
                                          Kind<Asset>::kCommand, " list`"));
}

// Within a transaction.
template <typename Asset>
absl::StatusOr<std::optional<Asset>> Read(Db* db, absl::string_view name, absl::string_view version,
                                          absl::string_view op) {
  KT_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("SELECT record FROM assets WHERE kind = ? AND name = ? AND version = ?", op));
  st.Bind(1, Kind<Asset>::kKey).Bind(2, name).Bind(3, version);
  KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
  if (!row) return std::optional<Asset>();
  Asset asset;
  KT_RETURN_IF_ERROR(Parse(db, st.ColumnBlob(0), op, asset));
  return std::optional<Asset>(std::move(asset));
}

template <typename Asset>
absl::Status Write(Db* db, const Asset& asset, absl::string_view op) {
  KT_ASSIGN_OR_RETURN(Statement st, db->Prepare("INSERT OR REPLACE INTO assets(kind, name, "
                                                "version, record) VALUES(?, ?, ?, ?)",
                                                op));
  st.Bind(1, Kind<Asset>::kKey)
      .Bind(2, asset.name())
      .Bind(3, asset.version())
      .BindBlob(4, asset.SerializeAsString());
  return st.Run(op);
}

template <typename Asset>
absl::StatusOr<Asset> Create(Db* db, const Asset& asset) {
  std::string op = Op<Asset>("create", asset.name(), asset.version());
  if (asset.name().empty() || asset.version().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": the ", Kind<Asset>::kLabel, " needs a name and a version"));
  }
  KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db, true, op));
  KT_ASSIGN_OR_RETURN(std::optional<Asset> existing,
                      Read<Asset>(db, asset.name(), asset.version(), op));
  if (existing.has_value()) {
    if (Content(*existing) == Content(asset)) {
      KT_RETURN_IF_ERROR(tx.Commit(op));
      return *std::move(existing);
    }
    return absl::AlreadyExistsError(
        absl::StrCat(Kind<Asset>::kLabel, " \"", asset.name(), ":", asset.version(),
                     "\" already exists (", Kind<Asset>::Describe(*existing),
                     ") with other content; versions are immutable: "
                     "create a new version (another `version:`, or none for the next number)"));
  }
  Asset stored = asset;
  stored.set_archived(false);
  stored.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  KT_RETURN_IF_ERROR(Write(db, stored, op));
  KT_RETURN_IF_ERROR(tx.Commit(op));
  return stored;
}

template <typename Asset>
absl::StatusOr<Asset> Get(Db* db, absl::string_view name, absl::string_view version) {
  std::string op = Op<Asset>("get", name, version);
  KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db, false, op));
  KT_ASSIGN_OR_RETURN(std::optional<Asset> found, Read<Asset>(db, name, version, op));
  if (!found.has_value()) return NotFound<Asset>(db, name, version);
  KT_RETURN_IF_ERROR(tx.Commit(op));
  return *std::move(found);
}

template <typename Asset>
absl::StatusOr<std::vector<Asset>> List(Db* db, absl::string_view name) {
  std::string op = absl::StrCat("list ", Kind<Asset>::kLabel, "s",
                                name.empty() ? "" : absl::StrCat(" \"", name, "\""));
  KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db, false, op));
  KT_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare(name.empty() ? "SELECT record FROM assets WHERE kind = ?"
                               : "SELECT record FROM assets WHERE kind = ? AND name = ?",
                  op));
  st.Bind(1, Kind<Asset>::kKey);
  if (!name.empty()) st.Bind(2, name);
  std::vector<Asset> out;
  while (true) {
    KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
    if (!row) break;
    Asset asset;
    KT_RETURN_IF_ERROR(Parse(db, st.ColumnBlob(0), op, asset));
    out.push_back(std::move(asset));
  }
  KT_RETURN_IF_ERROR(tx.Commit(op));
  std::sort(out.begin(), out.end(), [](const Asset& a, const Asset& b) {
    if (a.name() != b.name()) return a.name() < b.name();
    return storage::CompareAssetVersions(a.version(), b.version()) < 0;
  });
  return out;
}

template <typename Asset>
absl::StatusOr<Asset> SetArchived(Db* db, absl::string_view name, absl::string_view version,
                                  bool archived) {
  std::string op = Op<Asset>(archived ? "archive" : "restore", name, version);
  KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db, true, op));
  KT_ASSIGN_OR_RETURN(std::optional<Asset> found, Read<Asset>(db, name, version, op));
  if (!found.has_value()) return NotFound<Asset>(db, name, version);
  found->set_archived(archived);
  KT_RETURN_IF_ERROR(Write(db, *found, op));
  KT_RETURN_IF_ERROR(tx.Commit(op));
  return *std::move(found);
}

}  // namespace

absl::StatusOr<v1::DataAsset> CreateDataAsset(Db* db, const v1::DataAsset& asset) {
  return Create(db, asset);
}
absl::StatusOr<v1::DataAsset> GetDataAsset(Db* db, absl::string_view name,
                                           absl::string_view version) {
  return Get<v1::DataAsset>(db, name, version);
}
absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(Db* db, absl::string_view name) {
  return List<v1::DataAsset>(db, name);
}
absl::StatusOr<v1::DataAsset> SetDataAssetArchived(Db* db, absl::string_view name,
                                                   absl::string_view version, bool archived) {
  return SetArchived<v1::DataAsset>(db, name, version, archived);
}

absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(Db* db, const v1::EnvironmentAsset& env) {
  return Create(db, env);
}
absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(Db* db, absl::string_view name,
                                                    absl::string_view version) {
  return Get<v1::EnvironmentAsset>(db, name, version);
}
absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(Db* db, absl::string_view name) {
  return List<v1::EnvironmentAsset>(db, name);
}
absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(Db* db, absl::string_view name,
                                                            absl::string_view version,
                                                            bool archived) {
  return SetArchived<v1::EnvironmentAsset>(db, name, version, archived);
}

}  // namespace kubetrain::storage_internal

namespace kubetrain::storage {

int CompareAssetVersions(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && digit(a[i_end])) ++i_end;
      while (j_end < b.size() && digit(b[j_end])) ++j_end;
      // Compare the runs as numbers: without leading zeros, the longer one is larger.
      absl::string_view x = a.substr(i, i_end - i), y = b.substr(j, j_end - j);
      while (x.size() > 1 && x[0] == '0') x.remove_prefix(1);
      while (y.size() > 1 && y[0] == '0') y.remove_prefix(1);
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
      if (int c = x.compare(y); c != 0) return c < 0 ? -1 : 1;
      i = i_end;
      j = j_end;
      continue;
    }
    if (a[i] != b[j])
      return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]) ? -1 : 1;
    ++i;
    ++j;
  }
  if (i < a.size() || j < b.size()) return i < a.size() ? 1 : -1;
  // Equal as versions ("01" and "1"): order by the text, so that the order is total.
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

}  // namespace kubetrain::storage
