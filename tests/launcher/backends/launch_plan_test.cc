// Where the launch plan puts each input and output (what ${{inputs.x}} / ${{outputs.y}} become).
#include "kubetrain/launcher/backends/launch_plan.h"

#include <gtest/gtest.h>

namespace kubetrain::backends {
namespace {

v1::JobInput Input(v1::DataType type, const std::string& path, v1::DataMode mode) {
  v1::JobInput in;
  in.set_type(type);
  in.set_path(path);
  in.set_mode(mode);
  return in;
}

v1::JobOutput Output(v1::DataType type, const std::string& path, v1::DataMode mode) {
  v1::JobOutput out;
  out.set_type(type);
  out.set_path(path);
  out.set_mode(mode);
  return out;
}

TEST(LaunchPlanTest, InputsAndOutputsGetTheirLocalPaths) {
  LaunchRequest req;
  req.job.set_job_dir("/ws/jobs/j");
  req.attempt_dir = "/ws/jobs/j/attempt-0";
  v1::JobSpec* spec = req.job.mutable_spec();
  spec->set_command("true");
  auto& in = *spec->mutable_inputs();
  in["lr"].set_type(v1::DATA_TYPE_LITERAL);
  in["lr"].set_literal("0.1");
  in["direct"] =
      Input(v1::DATA_TYPE_URI_FOLDER, "azureml://datastores/b/paths/x", v1::DATA_MODE_DIRECT);
  in["local"] = Input(v1::DATA_TYPE_URI_FOLDER, "/data/train", v1::DATA_MODE_UNSPECIFIED);
  in["file"] = Input(v1::DATA_TYPE_URI_FILE, "https://a.blob.core.windows.net/c/d/model.pt",
                     v1::DATA_MODE_DOWNLOAD);
  auto& out = *spec->mutable_outputs();
  out["default"] = Output(v1::DATA_TYPE_URI_FOLDER, "", v1::DATA_MODE_UNSPECIFIED);
  out["inplace"] = Output(v1::DATA_TYPE_URI_FOLDER, "/results/x", v1::DATA_MODE_RW_MOUNT);
  out["copied"] = Output(v1::DATA_TYPE_URI_FOLDER, "/results/y", v1::DATA_MODE_UPLOAD);
  out["blob"] = Output(v1::DATA_TYPE_URI_FILE, "azureml://datastores/b/paths/out/m.bin",
                       v1::DATA_MODE_UNSPECIFIED);
  out["passthru"] =
      Output(v1::DATA_TYPE_URI_FOLDER, "wasbs://c@a.blob.core.windows.net/o", v1::DATA_MODE_DIRECT);

  absl::StatusOr<v1::InstanceLaunch> plan = BuildInstanceLaunch(req, 1, {"h0", "h1"}, 29500);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const auto& ip = plan->input_paths();
  EXPECT_EQ(ip.at("lr"), "0.1");
  EXPECT_EQ(ip.at("direct"), "azureml://datastores/b/paths/x");
  EXPECT_EQ(ip.at("local"), "/ws/jobs/j/data/instance-1/inputs/local");
  EXPECT_EQ(ip.at("file"), "/ws/jobs/j/data/instance-1/inputs/file/model.pt");
  const auto& op = plan->output_paths();
  EXPECT_EQ(op.at("default"), "/ws/jobs/j/outputs/default");
  EXPECT_EQ(op.at("inplace"), "/results/x");
  EXPECT_EQ(op.at("copied"), "/ws/jobs/j/data/instance-1/outputs/copied");
  EXPECT_EQ(op.at("blob"), "/ws/jobs/j/data/instance-1/outputs/blob/m.bin");
  EXPECT_EQ(op.at("passthru"), "wasbs://c@a.blob.core.windows.net/o");
}

}  // namespace
}  // namespace kubetrain::backends
