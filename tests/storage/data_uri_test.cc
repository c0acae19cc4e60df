// Data path forms, datastore resolution and path safety (no service needed).
#include "kubetrain/storage/data_uri.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kubetrain/storage/path_safety.h"

namespace kubetrain::storage {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(DataUriTest, LocalAndFileForms) {
  auto a = ParseDataUri("/data/x/");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->kind, DataUri::Kind::kLocal);
  EXPECT_EQ(a->local_path, "/data/x");
  auto b = ParseDataUri("file:///data/y");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->local_path, "/data/y");
  EXPECT_FALSE(ParseDataUri("relative/path").ok());
  EXPECT_FALSE(ParseDataUri("wasbs:/?c@a.t/x").ok());  // found by tests/fuzz/data_fuzzer
  EXPECT_FALSE(ParseDataUri("c:data").ok());
}

TEST(DataUriTest, DatastoreForms) {
  auto a = ParseDataUri("azureml://datastores/blobs/paths/train/2024/");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, DataUri::Kind::kDatastore);
  EXPECT_EQ(a->datastore, "blobs");
  EXPECT_EQ(a->path, "train/2024");
  auto l = ParseDataUri(
      "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/ds/paths/a.csv");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->datastore, "ds");
  EXPECT_EQ(l->path, "a.csv");
  EXPECT_FALSE(ParseDataUri("azureml://datastores//paths/x").ok());
  EXPECT_FALSE(ParseDataUri("azureml:mydata:1").ok());
}

TEST(DataUriTest, BlobUrlForms) {
  auto h = ParseDataUri("https://acct.blob.core.windows.net/cont/dir/file%20one.bin");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->kind, DataUri::Kind::kBlobUrl);
  EXPECT_EQ(h->account, "acct");
  EXPECT_EQ(h->container, "cont");
  EXPECT_EQ(h->path, "dir/file one.bin");
  EXPECT_EQ(h->endpoint, "https://acct.blob.core.windows.net");
  auto w = ParseDataUri("wasbs://cont@acct.blob.core.windows.net/dir");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->account, "acct");
  EXPECT_EQ(w->container, "cont");
  EXPECT_EQ(w->path, "dir");
  auto p = ParseDataUri("http://127.0.0.1:10000/devstoreaccount1/cont/x/y");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->account, "devstoreaccount1");
  EXPECT_EQ(p->container, "cont");
  EXPECT_EQ(p->path, "x/y");
  EXPECT_EQ(p->endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  auto sas = ParseDataUri("https://acct.blob.core.windows.net/c/x?sv=1&sig=SECRET");
  EXPECT_FALSE(sas.ok());
  EXPECT_THAT(sas.status().message(), HasSubstr("--sas-token"));
  EXPECT_FALSE(ParseDataUri("abfss://c@a.dfs.core.windows.net/x").ok());
  EXPECT_FALSE(ParseDataUri("https://acct.blob.core.windows.net/").ok());
}

TEST(DataUriTest, PathsThatEscapeAreRefusedWithThePathNamed) {
  for (const char* bad : {"azureml://datastores/d/paths/a/../../etc/passwd",
                          "https://a.blob.core.windows.net/c/../other/x",
                          "wasbs://c@a.blob.core.windows.net/x/%2e%2e/y"}) {
    auto r = ParseDataUri(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("escape")) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("'..'")) << bad;
  }
}

TEST(PathSafetyTest, CleanRelativePath) {
  EXPECT_EQ(*CleanRelativePath("a//./b/", "t"), "a/b");
  EXPECT_EQ(*CleanRelativePath("", "t"), "");
  auto abs = CleanRelativePath("/etc/passwd", "blob '/etc/passwd'");
  ASSERT_FALSE(abs.ok());
  EXPECT_THAT(abs.status().message(), HasSubstr("/etc/passwd"));
  EXPECT_THAT(abs.status().message(), HasSubstr("absolute"));
  EXPECT_FALSE(CleanRelativePath("a/../../b", "t").ok());
  EXPECT_FALSE(CleanRelativePath("a\\..\\b", "t").ok());
  EXPECT_FALSE(JoinInside("/root", "../x", "t").ok());
  EXPECT_EQ(*JoinInside("/root", "x/y", "t"), "/root/x/y");
}

TEST(PathSafetyTest, SymlinkOutOfTheTreeIsAnErrorNamingIt) {
  fs::path dir = fs::temp_directory_path() / ("kt-safety-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "tree/sub");
  std::ofstream(dir / "tree/sub/a.txt") << "a";
  std::ofstream(dir / "outside.txt") << "secret";
  fs::create_symlink("sub/a.txt", dir / "tree/inside-link");
  auto ok = ListTreeInside((dir / "tree").string(), "input 'd'");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].relative, "inside-link");
  EXPECT_EQ((*ok)[1].relative, "sub/a.txt");
  fs::create_symlink("../../outside.txt", dir / "tree/sub/escape");
  auto bad = ListTreeInside((dir / "tree").string(), "input 'd'");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("input 'd'"));
  EXPECT_THAT(bad.status().message(), HasSubstr("sub/escape"));
  EXPECT_THAT(bad.status().message(), HasSubstr("outside"));
  fs::remove_all(dir);
}

TEST(ResolveDataTest, DatastoresAndDefaults) {
  DatastoreResolver r;
  r.workspace_dir = "/ws";
  r.get = [](const std::string& name) -> absl::StatusOr<DatastoreConfig> {
    if (name == "blobs") {
      DatastoreConfig d;
      d.name = "blobs";
      d.type = "azureblob";
      d.account_name = "acct";
      d.container_name = "cont";
      d.endpoint = "http://127.0.0.1:1/acct";
      d.account_key = "a2V5";
      return d;
    }
    if (name == "localds") {
      DatastoreConfig d;
      d.name = name;
      d.type = "local";
      d.path = "/srv/data";
      return d;
    }
    return absl::NotFoundError("no");
  };
  r.list = [&]() -> absl::StatusOr<std::vector<DatastoreConfig>> {
    return std::vector{*r.get("blobs")};
  };

  auto wsb = ResolveData(*ParseDataUri("azureml://datastores/workspaceblobstore/paths/x"), r);
  ASSERT_TRUE(wsb.ok());
  EXPECT_FALSE(wsb->is_blob);
  EXPECT_EQ(wsb->local_path, "/ws/datastores/workspaceblobstore/x");
  auto local = ResolveData(*ParseDataUri("azureml://datastores/localds/paths/a/b"), r);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->local_path, "/srv/data/a/b");
  auto blob = ResolveData(*ParseDataUri("azureml://datastores/blobs/paths/p"), r);
  ASSERT_TRUE(blob.ok());
  EXPECT_TRUE(blob->is_blob);
  EXPECT_EQ(blob->account.container, "cont");
  EXPECT_EQ(blob->blob_path, "p");
  // An https URL of a registered account borrows its key and endpoint override.
  auto url = ResolveData(*ParseDataUri("https://acct.blob.core.windows.net/cont/q"), r);
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->account.endpoint, "http://127.0.0.1:1/acct");
  EXPECT_EQ(url->account.account_key, "a2V5");
  EXPECT_EQ(url->blob_path, "q");
  auto missing = ResolveData(*ParseDataUri("azureml://datastores/nope/paths/x"), r);
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("kubetrain datastore create nope"));
}

}  // namespace
}  // namespace kubetrain::storage
