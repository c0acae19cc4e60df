// Job YAML parsing: valid forms, and a table of malformed files each asserting the exact field path
// and line of its error.
#include "kubetrain/launcher/spec/job_parser.h"

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::spec {
namespace {

using ::testing::HasSubstr;

constexpr char kPath[] = "/jobs/demo/job.yml";

JobParseResult Parse(const std::string& yaml, std::vector<std::string> overrides = {}) {
  return ParseJobYaml(yaml, kPath, JobParseOptions{std::move(overrides)});
}

TEST(JobParserTest, ParsesEveryFieldOfACommandJob) {
  JobParseResult r = Parse(R"(
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
name: train_1
display_name: Train it
experiment_name: exp
description: a job
tags: {team: ml, priority: 1}
command: python train.py --data ${{inputs.data}} --lr ${{inputs.lr}} --out ${{outputs.model}}
code: src
environment: azureml:AzureML-pytorch-1.9:6
environment_variables: {NCCL_DEBUG: INFO}
compute: azureml:gpu-cluster
resources:
  instance_type: gpu-small
  instance_count: 2
  shm_size: 2g
distribution:
  type: pytorch
  process_count_per_instance: 4
inputs:
  lr: 0.1
  data:
    type: uri_folder
    path: https://acct.blob.core.windows.net/c/data
    mode: download
outputs:
  model:
    type: uri_folder
    mode: upload
limits:
  timeout: 3600
kubetrain:
  max_retries: 2
  checkpoint: {keep_last: 5}
)");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  const v1::JobSpec& s = r.spec;
  EXPECT_EQ(s.name(), "train_1");
  EXPECT_EQ(s.display_name(), "Train it");
  EXPECT_EQ(s.experiment_name(), "exp");
  EXPECT_EQ(s.tags().at("priority"), "1");
  EXPECT_EQ(s.code().local_path(), "/jobs/demo/src");
  EXPECT_EQ(s.environment().name(), "AzureML-pytorch-1.9");
  EXPECT_EQ(s.environment().version(), "6");
  EXPECT_EQ(s.environment_variables().at("NCCL_DEBUG"), "INFO");
  EXPECT_EQ(s.compute(), "gpu-cluster");
  EXPECT_EQ(s.resources().instance_type(), "gpu-small");
  EXPECT_EQ(s.resources().instance_count(), 2);
  EXPECT_EQ(s.resources().shm_size().value(), int64_t{2} << 30);
  EXPECT_EQ(s.distribution().type(), v1::DistributionSpec::TYPE_PYTORCH);
  EXPECT_EQ(s.distribution().process_count_per_instance(), 4);
  EXPECT_EQ(s.inputs().at("lr").type(), v1::DATA_TYPE_LITERAL);
  EXPECT_EQ(s.inputs().at("lr").literal(), "0.1");
  EXPECT_EQ(s.inputs().at("data").mode(), v1::DATA_MODE_DOWNLOAD);
  EXPECT_EQ(s.outputs().at("model").mode(), v1::DATA_MODE_UPLOAD);
  EXPECT_EQ(s.limits().timeout_seconds(), 3600);
  EXPECT_EQ(s.kubetrain().max_retries(), 2);
  EXPECT_EQ(s.kubetrain().checkpoint().keep_last(), 5);
  EXPECT_EQ(s.locations().at("resources.instance_count").line(), 16);
}

TEST(JobParserTest, DefaultsMatchAzureMl) {
  JobParseResult r = Parse("command: echo hi\n");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.spec.compute(), "local");
  EXPECT_EQ(r.spec.experiment_name(), "demo");  // the YAML's folder
  EXPECT_EQ(r.spec.resources().instance_count(), 1);
  EXPECT_EQ(r.spec.distribution().type(), v1::DistributionSpec::TYPE_NONE);
  EXPECT_EQ(r.spec.distribution().process_count_per_instance(), 1);
  EXPECT_EQ(r.spec.kubetrain().checkpoint().keep_last(), 3);
}

TEST(JobParserTest, CodeAndEnvironmentMappingForms) {
  JobParseResult r = Parse(R"(command: x
code: {local_path: ../src}
environment: {image: python:3.11, conda_file: env/conda.yml}
)");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.spec.code().local_path(), "/jobs/src");
  EXPECT_EQ(r.spec.environment().image(), "python:3.11");
  EXPECT_EQ(r.spec.environment().conda_file(), "/jobs/demo/env/conda.yml");
}

TEST(JobParserTest, EnvironmentLabelAndFileForms) {
  EXPECT_EQ(Parse("command: x\nenvironment: azureml:tf@latest\n").spec.environment().label(),
            "latest");
  EXPECT_EQ(Parse("command: x\nenvironment: file:./env.yml\n").spec.environment().file(),
            "/jobs/demo/env.yml");
}

TEST(JobParserTest, DataAssetReferencesAreKeptForResolution) {
  JobParseResult r = Parse(R"(command: x
inputs:
  cifar: azureml:cifar-10-example:1
  latest:
    path: azureml:cifar@latest
    mode: download
  typed: {type: uri_file, path: azureml:labels:2}
environment: azureml:AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu:6
)");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  const v1::JobInput& cifar = r.spec.inputs().at("cifar");
  EXPECT_EQ(cifar.path(), "azureml:cifar-10-example:1");
  EXPECT_EQ(cifar.type(), v1::DATA_TYPE_UNSPECIFIED);  // the asset's type, once resolved
  EXPECT_EQ(r.spec.locations().at("inputs.cifar.path").line(), 3);
  EXPECT_EQ(r.spec.locations().at("inputs.cifar.path").column(), 10);
  EXPECT_EQ(r.spec.inputs().at("latest").path(), "azureml:cifar@latest");
  EXPECT_EQ(r.spec.inputs().at("latest").mode(), v1::DATA_MODE_DOWNLOAD);
  EXPECT_EQ(r.spec.inputs().at("typed").type(), v1::DATA_TYPE_URI_FILE);
  EXPECT_EQ(r.spec.environment().name(), "AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu");
  EXPECT_EQ(r.spec.environment().version(), "6");
  EXPECT_EQ(r.spec.locations().at("environment").line(), 8);
}

TEST(JobParserTest, OverridesReplaceFieldsAndCreateMappings) {
  JobParseResult r =
      Parse("command: echo ${{inputs.x}}\ncompute: azureml:gpu-cluster\ninputs: {x: 1}\n",
            {"compute=local", "resources.instance_count=3", "inputs.x=7",
             "distribution={type: mpi, process_count_per_instance: 2}"});
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.spec.compute(), "local");
  EXPECT_EQ(r.spec.resources().instance_count(), 3);
  EXPECT_EQ(r.spec.inputs().at("x").literal(), "7");
  EXPECT_EQ(r.spec.distribution().type(), v1::DistributionSpec::TYPE_MPI);
}

TEST(JobParserTest, ErrorsFromOverridesNameTheOverride) {
  JobParseResult r = Parse("command: x\n", {"resources.instance_count=zero"});
  ASSERT_TRUE(r.diagnostics.has_errors());
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("(--set resources.instance_count=zero)"));
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("resources.instance_count"));
}

TEST(JobParserTest, IgnoredAzureKeysAreWarningsThatNameThem) {
  JobParseResult r = Parse(
      "command: x\nservices: {my_jupyter: {type: jupyter_lab}}\nidentity: {type: "
      "managed}\nqueue_settings: {job_tier: spot}\n");
  EXPECT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  std::string text = r.diagnostics.Format();
  EXPECT_THAT(text, HasSubstr("job.yml:2:1: warning: services:"));
  EXPECT_THAT(text, HasSubstr("job.yml:3:1: warning: identity:"));
  EXPECT_THAT(text, HasSubstr("job.yml:4:1: warning: queue_settings:"));
}

// Ignored, but checked as Azure ML checks them, so the file stays valid there.
TEST(JobParserTest, IgnoredAzureSectionsAreStillChecked) {
  JobParseResult r = Parse(
      "command: x\nidentity: {type: root}\nqueue_settings: {job_tier: gold, priority: urgent}\n");
  std::string text = r.diagnostics.Format();
  EXPECT_EQ(r.diagnostics.error_count(), 3) << text;
  EXPECT_THAT(text, HasSubstr("job.yml:2:18: error: identity.type: unknown value \"root\""));
  EXPECT_THAT(text, HasSubstr("queue_settings.job_tier: unknown value \"gold\""));
  EXPECT_THAT(text, HasSubstr("queue_settings.priority: unknown value \"urgent\""));
  JobParseResult ok = Parse(
      "command: x\nidentity: {type: AML_Token}\nqueue_settings: {job_tier: null, priority: "
      "high}\n");
  EXPECT_FALSE(ok.diagnostics.has_errors()) << ok.diagnostics.Format();
}

TEST(JobParserTest, ReportsEveryErrorInOnePass) {
  JobParseResult r = Parse(R"(comand: python train.py
resources:
  instance_count: two
distribution:
  type: pytorh
)");
  EXPECT_EQ(r.diagnostics.error_count(), 4) << r.diagnostics.Format();
  std::string text = r.diagnostics.Format();
  EXPECT_THAT(text, HasSubstr("job.yml:1:1: error: comand: unknown key; did you mean `command`?"));
  EXPECT_THAT(text,
              HasSubstr("job.yml:3:19: error: resources.instance_count: expected an integer"));
  EXPECT_THAT(text, HasSubstr("job.yml:5:9: error: distribution.type: unknown type \"pytorh\"; did "
                              "you mean `pytorch`?"));
  EXPECT_THAT(text, HasSubstr("error: command: missing"));
}

// ---- the malformed-file table ------------------------------------------------------------------

struct Malformed {
  const char* name;
  const char* yaml;
  const char* field;    // the field path of the (first) error
  int line;             // its line (0 = not from a line)
  const char* message;  // a substring of its message or suggestion
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

class MalformedJobTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedJobTest, ReportsFieldLineAndFix) {
  const Malformed& m = GetParam();
  JobParseResult r = Parse(m.yaml);
  ASSERT_TRUE(r.diagnostics.has_errors()) << m.name << " parsed without error";
  bool found = false;
  for (const Diagnostic& d : r.diagnostics.all()) {
    if (d.severity != Diagnostic::Severity::kError) continue;
    if (d.field == m.field && d.location.line == m.line &&
        (d.message + "; " + d.suggestion).find(m.message) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << m.name << ": wanted " << m.field << " at line " << m.line << " with \""
                     << m.message << "\"; got:\n"
                     << r.diagnostics.Format();
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedJobTest,
    ::testing::Values(
        Malformed{"not_yaml", "command: [unclosed\n", "", 2, "not valid YAML"},
        Malformed{"empty_file", "", "", 0, "empty"},
        Malformed{"top_level_list", "- command: x\n", "", 1, "mapping"},
        Malformed{"missing_command", "compute: local\n", "command", 1, "missing"},
        Malformed{"empty_command", "command: '  '\n", "command", 1, "empty"},
        Malformed{"command_is_list", "command: [a, b]\n", "command", 1, "expected a string"},
        Malformed{"misspelt_top_key", "command: x\ninstance_count: 2\n", "instance_count", 2,
                  "unknown key"},
        Malformed{"misspelt_command", "comand: x\n", "comand", 1, "did you mean `command`?"},
        Malformed{"misspelt_resources_key", "command: x\nresources:\n  instance_cout: 2\n",
                  "resources.instance_cout", 3, "did you mean `instance_count`?"},
        Malformed{"instance_count_text", "command: x\nresources:\n  instance_count: two\n",
                  "resources.instance_count", 3, "expected an integer from 1 to 1024"},
        Malformed{"instance_count_zero", "command: x\nresources:\n  instance_count: 0\n",
                  "resources.instance_count", 3, "found 0"},
        Malformed{"instance_count_negative", "command: x\nresources:\n  instance_count: -2\n",
                  "resources.instance_count", 3, "found -2"},
        Malformed{"instance_type_list", "command: x\nresources:\n  instance_type: [a]\n",
                  "resources.instance_type", 3, "expected a string"},
        Malformed{"resources_scalar", "command: x\nresources: big\n", "resources", 2,
                  "expected a mapping"},
        Malformed{"shm_size_bad", "command: x\nresources:\n  shm_size: lots\n",
                  "resources.shm_size", 3, "expected a size"},
        Malformed{"distribution_no_type",
                  "command: x\ndistribution:\n  process_count_per_instance: 2\n",
                  "distribution.type", 3, "missing"},
        Malformed{"distribution_bad_type", "command: x\ndistribution:\n  type: horovod\n",
                  "distribution.type", 3, "unknown type"},
        Malformed{"distribution_typo_type", "command: x\ndistribution:\n  type: pytroch\n",
                  "distribution.type", 3, "did you mean `pytorch`?"},
        Malformed{"process_count_zero",
                  "command: x\ndistribution:\n  type: mpi\n  process_count_per_instance: 0\n",
                  "distribution.process_count_per_instance", 4, "found 0"},
        Malformed{"tf_key_on_mpi", "command: x\ndistribution:\n  type: mpi\n  worker_count: 2\n",
                  "distribution.worker_count", 4, "unknown key"},
        Malformed{"tf_worker_count_text",
                  "command: x\ndistribution:\n  type: tensorflow\n  worker_count: many\n",
                  "distribution.worker_count", 4, "expected an integer"},
        Malformed{"ps_negative",
                  "command: x\ndistribution:\n  type: tensorflow\n  parameter_server_count: -1\n",
                  "distribution.parameter_server_count", 4, "found -1"},
        Malformed{"input_unknown_type",
                  "command: x\ninputs:\n  d:\n    type: uri_foldr\n    path: /tmp\n",
                  "inputs.d.type", 4, "did you mean `uri_folder`?"},
        Malformed{"input_missing_path", "command: x\ninputs:\n  d:\n    type: uri_file\n",
                  "inputs.d.path", 4, "missing"},
        Malformed{
            "input_bad_mode",
            "command: x\ninputs:\n  d:\n    type: uri_folder\n    path: /tmp\n    mode: upload\n",
            "inputs.d.mode", 6, "not allowed for an input"},
        Malformed{
            "input_typo_mode",
            "command: x\ninputs:\n  d:\n    type: uri_folder\n    path: /tmp\n    mode: downlaod\n",
            "inputs.d.mode", 6, "did you mean `download`?"},
        Malformed{"input_null", "command: x\ninputs:\n  d:\n", "inputs.d", 3, "no value"},
        Malformed{"input_unknown_key",
                  "command: x\ninputs:\n  d:\n    path: /tmp\n    moed: download\n",
                  "inputs.d.moed", 5, "did you mean `mode`?"},
        Malformed{"input_local_missing",
                  "command: x\ninputs:\n  d:\n    type: uri_folder\n    path: ./no-such-dir\n",
                  "inputs.d.path", 5, "does not exist"},
        Malformed{"input_data_asset_no_version", "command: x\ninputs:\n  d: azureml:cifar\n",
                  "inputs.d.path", 3, "no version or label"},
        Malformed{"input_data_asset_label",
                  "command: x\ninputs:\n  d:\n    path: azureml:cifar@prod\n", "inputs.d.path", 4,
                  "@latest only"},
        Malformed{"output_data_asset", "command: x\noutputs:\n  o:\n    path: azureml:out:1\n",
                  "outputs.o.path", 4, "cannot write into one"},
        Malformed{"output_ro_mount", "command: x\noutputs:\n  o:\n    mode: ro_mount\n",
                  "outputs.o.mode", 4, "not allowed for an output"},
        Malformed{
            "input_eval_mount",
            "command: x\ninputs:\n  d:\n    type: mltable\n    path: /tmp\n    mode: eval_mount\n",
            "inputs.d.mode", 6, "does not evaluate MLTable"},
        Malformed{
            "input_literal_mode",
            "command: x\ninputs:\n  d:\n    type: integer\n    value: 3\n    mode: download\n",
            "inputs.d.mode", 6, "a literal input has no mode"},
        Malformed{"output_download", "command: x\noutputs:\n  o:\n    mode: download\n",
                  "outputs.o.mode", 4, "not allowed for an output"},
        Malformed{"output_literal", "command: x\noutputs:\n  o:\n    type: string\n",
                  "outputs.o.type", 4, "cannot be literals"},
        Malformed{"output_scalar", "command: x\noutputs:\n  o: somewhere\n", "outputs.o", 3,
                  "expected a mapping"},
        Malformed{"ref_missing_input", "command: echo ${{inputs.rat}}\ninputs:\n  rate: 1\n",
                  "command", 1, "did you mean `rate`?"},
        Malformed{"ref_missing_output", "command: |\n  echo hi\n  cp x ${{outputs.model}}\n",
                  "command", 3, "declare it under `outputs:`"},
        Malformed{"ref_unclosed", "command: echo ${{inputs.x\ninputs: {x: 1}\n", "command", 1,
                  "unclosed"},
        Malformed{"ref_bad_namespace", "command: echo ${{params.x}}\n", "command", 1,
                  "not a reference kubetrain knows"},
        Malformed{"tags_nested", "command: x\ntags:\n  a: {b: c}\n", "tags.a", 3,
                  "expected a string value"},
        Malformed{"env_vars_list", "command: x\nenvironment_variables: [A=1]\n",
                  "environment_variables", 2, "expected a mapping"},
        Malformed{"environment_no_version", "command: x\nenvironment: azureml:pytorch\n",
                  "environment", 2, "no version or label"},
        Malformed{"environment_inline_no_image", "command: x\nenvironment:\n  conda_file: c.yml\n",
                  "environment", 3, "needs `image:`"},
        Malformed{"environment_typo", "command: x\nenvironment:\n  imgae: python\n",
                  "environment.imgae", 3, "did you mean `image`?"},
        Malformed{"code_remote", "command: x\ncode: azureml:code:1\n", "code", 2,
                  "remote code asset"},
        Malformed{"code_mapping_no_path", "command: x\ncode: {dir: src}\n", "code.dir", 2,
                  "unknown key"},
        Malformed{"type_sweep", "type: sweep\ncommand: x\n", "type", 1, "command jobs"},
        Malformed{"bad_name", "name: my job!\ncommand: x\n", "name", 1, "not a valid job name"},
        Malformed{"timeout_text", "command: x\nlimits:\n  timeout: 1h\n", "limits.timeout", 3,
                  "expected an integer"},
        Malformed{"limits_typo", "command: x\nlimits:\n  timout: 10\n", "limits.timout", 3,
                  "did you mean `timeout`?"},
        Malformed{"kubetrain_typo", "command: x\nkubetrain:\n  max_retry: 2\n",
                  "kubetrain.max_retry", 3, "did you mean `max_retries`?"},
        Malformed{"max_retries_negative", "command: x\nkubetrain:\n  max_retries: -1\n",
                  "kubetrain.max_retries", 3, "found -1"},
        Malformed{"keep_last_zero", "command: x\nkubetrain:\n  checkpoint: {keep_last: 0}\n",
                  "kubetrain.checkpoint.keep_last", 3, "found 0"},
        Malformed{"compute_empty", "command: x\ncompute: 'azureml:'\n", "compute", 2, "empty"}));

}  // namespace
}  // namespace kubetrain::spec
