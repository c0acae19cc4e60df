// Azure ML datastore YAML → v1::Datastore: the fields, the type names, the endpoint forms, errors
// and warnings with their line, and the checks before a datastore is stored.
#include "kubetrain/launcher/spec/datastore_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::spec {
namespace {

using ::testing::HasSubstr;

constexpr char kKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

TEST(DatastoreFileTest, ReadsAnAzureMlBlobDatastore) {
  DatastoreFileResult r = ParseDatastoreYaml(
      "$schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json\n"
      "name: blobs\n"
      "type: azure_blob\n"
      "description: training data\n"
      "account_name: acct\n"
      "container_name: data\n"
      "endpoint: core.chinacloudapi.cn\n"
      "credentials:\n"
      "  sas_token: sv=1&sig=x\n"
      "tags: {team: ml}\n",
      "ds.yml");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.warnings.empty());
  const v1::Datastore& d = r.datastore;
  EXPECT_EQ(d.name(), "blobs");
  EXPECT_EQ(d.type(), "azureblob");
  EXPECT_EQ(d.description(), "training data");
  EXPECT_EQ(d.account_name(), "acct");
  EXPECT_EQ(d.container_name(), "data");
  // Azure ML's endpoint is the DNS suffix; kubetrain stores the service URL.
  EXPECT_EQ(d.endpoint(), "https://acct.blob.core.chinacloudapi.cn");
  EXPECT_EQ(d.sas_token(), "sv=1&sig=x");
  EXPECT_TRUE(d.account_key().empty());
}

TEST(DatastoreFileTest, EndpointForms) {
  auto endpoint = [](const std::string& lines) {
    return ParseDatastoreYaml("account_name: acct\n" + lines, "ds.yml").datastore.endpoint();
  };
  EXPECT_EQ(endpoint("endpoint: core.windows.net\n"), "");  // the default
  EXPECT_EQ(endpoint("endpoint: core.windows.net\nprotocol: http\n"),
            "http://acct.blob.core.windows.net");
  EXPECT_EQ(endpoint("endpoint: http://127.0.0.1:10000/devstoreaccount1\n"),
            "http://127.0.0.1:10000/devstoreaccount1");
}

TEST(DatastoreFileTest, UnsupportedTypeNamesItsLine) {
  DatastoreFileResult r = ParseDatastoreYaml("name: x\n\ntype: azure_data_lake_gen2\n", "ds.yml");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status.message(),
            "ds.yml:3: type \"azure_data_lake_gen2\" is not supported; kubetrain supports "
            "azure_blob (and its own local, workspaceblobstore)");
}

TEST(DatastoreFileTest, UnknownKeysAreWarningsWithTheirLine) {
  DatastoreFileResult r =
      ParseDatastoreYaml("name: x\ntype: azure_blob\nsubscription_id: abc\n", "ds.yml");
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_EQ(r.warnings[0],
            "ds.yml:3: warning: `subscription_id` is not used by kubetrain and is ignored");
  // Kept alongside an error too.
  r = ParseDatastoreYaml("bogus: 1\ntype: s3\n", "ds.yml");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.warnings.size(), 1u);
}

TEST(DatastoreFileTest, BadYamlAndUnreadableFiles) {
  DatastoreFileResult r = ParseDatastoreYaml("name: x\ncredentials: {account_key: [\n", "ds.yml");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status.message(), HasSubstr("not valid YAML"));
  EXPECT_THAT(std::string(r.status.message()), ::testing::StartsWith("ds.yml:"));
  EXPECT_EQ(ParseDatastoreYaml("- a\n- b\n", "ds.yml").status.message(),
            "ds.yml: expected a mapping");
  r = ParseDatastoreFile("/no/such/ds.yml");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status.message(), "cannot read /no/such/ds.yml");
}

TEST(DatastoreFileTest, RelativePathIsRelativeToTheFile) {
  std::string dir = ::testing::TempDir() + "/ds-file-" + std::to_string(getpid());
  std::filesystem::create_directories(dir + "/data");
  std::ofstream(dir + "/ds.yml") << "name: mine\ntype: local\npath: data\n";
  DatastoreFileResult r = ParseDatastoreFile(dir + "/ds.yml");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(std::filesystem::path(r.datastore.path()), std::filesystem::path(dir) / "data");
  ASSERT_TRUE(ValidateDatastore(dir + "/ws", &r.datastore).ok());
  EXPECT_EQ(r.datastore.path(), std::filesystem::canonical(dir + "/data").string());
  std::filesystem::remove_all(dir);
}

TEST(DatastoreFileTest, ValidationNamesWhatIsMissing) {
  v1::Datastore d;
  d.set_account_name("acct");
  EXPECT_EQ(ValidateDatastore("/ws", &d).message(),
            "the datastore has no name (give NAME or `name:` in the file)");
  d.set_name("blobs");
  EXPECT_EQ(ValidateDatastore("/ws", &d).message(),
            "datastore \"blobs\" (azureblob) needs --account-name and --container-name");
  EXPECT_EQ(d.type(), "azureblob");  // inferred from the account
  d.set_container_name("c");
  d.set_account_key(kKey);
  d.set_sas_token("?sv=1");
  EXPECT_THAT(ValidateDatastore("/ws", &d).message(), HasSubstr("not both"));
  d.clear_account_key();
  ASSERT_TRUE(ValidateDatastore("/ws", &d).ok());
  EXPECT_EQ(d.sas_token(), "sv=1");

  v1::Datastore local;
  local.set_name("l");
  local.set_path("/no/such/dir");
  absl::Status missing = ValidateDatastore("/ws", &local);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("is not a directory"));
}

}  // namespace
}  // namespace kubetrain::spec
