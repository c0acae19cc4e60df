// `kubetrain datastore create|list|show` through the real binary: flags and Azure ML YAML, output
// formats, validation errors, and secrets that are stored but never printed.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"

namespace {
namespace fs = std::filesystem;
using ::kubetrain::testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

class DatastoreCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kt-ds-cli-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
  }
  void TearDown() override { fs::remove_all(dir_); }
  CommandResult Cli(const std::string& args) {
    return kubetrain::testing::RunCommand(kubetrain::testing::KubetrainCli() + "--workspace " +
                                          (dir_ / "ws").string() + " " + args);
  }
  fs::path dir_;
};

TEST_F(DatastoreCliTest, CreateListShowNeverPrintSecrets) {
  CommandResult r =
      Cli("datastore create blobs --type azureblob --account-name devstoreaccount1 "
          "--container-name data --endpoint http://127.0.0.1:10000/devstoreaccount1 "
          "--account-key " +
          std::string(kKey));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("created"));
  EXPECT_THAT(r.output, Not(HasSubstr(kKey)));
  std::ofstream(dir_ / "ds.yml")
      << "$schema: https://azuremlschemas.azureedge.net/latest/"
         "azureBlob.schema.json\n"
         "name: fromyaml\ntype: azure_blob\naccount_name: acct\n"
         "container_name: c1\ncredentials:\n  sas_token: sv=1&sig=TOPSECRET\n";
  r = Cli("datastore create -f " + (dir_ / "ds.yml").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Cli("datastore create mylocal --type local --path " + (dir_ / "data").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  for (const char* cmd : {"datastore list", "datastore list -o json", "datastore list -o yaml",
                          "datastore show blobs", "datastore show blobs -o json",
                          "datastore show fromyaml -o yaml"}) {
    r = Cli(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr(kKey))) << cmd;
    EXPECT_THAT(r.output, Not(HasSubstr("TOPSECRET"))) << cmd;
  }
  r = Cli("datastore show blobs");
  EXPECT_THAT(r.output, HasSubstr("account_key: <set>"));
  EXPECT_THAT(r.output, HasSubstr("endpoint: http://127.0.0.1:10000/devstoreaccount1"));
  r = Cli("datastore list");
  EXPECT_THAT(r.output, HasSubstr("fromyaml"));
  EXPECT_THAT(r.output, HasSubstr("SAS token"));
  EXPECT_THAT(r.output, HasSubstr((dir_ / "data").string()));
  r = Cli("datastore show fromyaml -o json");
  EXPECT_THAT(r.output, HasSubstr("\"sas_token\": \"<set>\""));
  // The secrets live in the workspace database, readable by its owner only.
  struct stat st;
  ASSERT_EQ(stat((dir_ / "ws/workspace.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST_F(DatastoreCliTest, BadDatastoresAreRefusedWithTheFix) {
  CommandResult r = Cli("datastore create x --type azureblob --account-name a");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("--container-name"));
  r =
      Cli("datastore create x --type azureblob --account-name a --container-name c "
          "--account-key 'not base64!'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("not valid base64"));
  EXPECT_THAT(r.output, Not(HasSubstr("not base64!")));
  r = Cli("datastore create x --type local --path /no/such/dir");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("not a directory"));
  r = Cli("datastore create 'bad name' --type local --path /tmp");
  EXPECT_EQ(r.exit_code, 1);
  r = Cli("datastore create x --type s3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("not supported"));
  r = Cli("datastore show nope");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("datastore list"));
}

TEST_F(DatastoreCliTest, JobValidateNamesMissingDatastoresAndBadDataPaths) {
  std::ofstream(dir_ / "job.yml")
      << "command: echo ${{inputs.a}} ${{inputs.b}} ${{outputs.o}}\n"
         "inputs:\n"
         "  a: {type: uri_folder, path: azureml://datastores/nosuch/paths/x}\n"
         "  b: {type: uri_folder, path: 'https://acct.blob.core.windows.net/c/../../etc'}\n"
         "  w: {type: uri_folder, path: azureml://datastores/workspaceblobstore/paths/x}\n"
         "outputs:\n"
         "  o: {path: 'abfss://c@a.dfs.core.windows.net/x'}\n";
  CommandResult r = Cli("job validate -f " + (dir_ / "job.yml").string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // At the path itself (line 3, column 31), not at the input's name.
  EXPECT_THAT(r.output, HasSubstr("job.yml:3:31: error: inputs.a.path: no datastore \"nosuch\""));
  EXPECT_THAT(r.output, HasSubstr("kubetrain datastore create nosuch"));
  EXPECT_THAT(r.output, HasSubstr("inputs.b.path"));
  EXPECT_THAT(r.output, HasSubstr("'../../etc' would escape its root"));
  EXPECT_THAT(r.output, HasSubstr("outputs.o.path"));
  EXPECT_THAT(r.output, Not(HasSubstr("inputs.w")));
  EXPECT_THAT(r.output, HasSubstr("3 errors"));
  // Once registered, the datastore is accepted.
  ASSERT_EQ(
      Cli("datastore create nosuch --type local --path " + (dir_ / "data").string()).exit_code, 0);
  r = Cli("job validate -f " + (dir_ / "job.yml").string());
  EXPECT_THAT(r.output, Not(HasSubstr("inputs.a")));
}

}  // namespace
