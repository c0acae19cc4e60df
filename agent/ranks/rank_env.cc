#include "kubetrain/agent/ranks/rank_env.h"

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/rank/rank_info.h"
#include "nlohmann/json.hpp"

namespace kubetrain::agent {
namespace {

using Distribution = v1::DistributionSpec;

int ProcessesPerInstance(const v1::InstanceLaunch& launch) {
  return std::max(1, launch.job().distribution().process_count_per_instance());
}

int TfWorkerCount(const v1::InstanceLaunch& launch) {
  int workers = launch.job().distribution().worker_count();
  return workers > 0 ? workers : InstanceCount(launch);
}

int TfPsCount(const v1::InstanceLaunch& launch) {
  return std::max(0, launch.job().distribution().parameter_server_count());
}

int MasterPort(const v1::InstanceLaunch& launch) {
  return launch.master_port() > 0 ? launch.master_port() : kDefaultMasterPort;
}

const v1::InstancePlacement* ThisPlacement(const v1::InstanceLaunch& launch) {
  for (const v1::InstancePlacement& p : launch.placement().instances()) {
    if (p.instance_index() == launch.instance_index()) return &p;
  }
  return nullptr;
}

// TF_CONFIG for task `task` (workers are 0..W-1, ps are W..W+P-1).
std::string TfConfig(const v1::InstanceLaunch& launch, int task) {
  const int workers = TfWorkerCount(launch);
  const int ps = TfPsCount(launch);
  const int instances = InstanceCount(launch);
  const int port = MasterPort(launch);
  nlohmann::ordered_json cluster;
  nlohmann::ordered_json worker_list = nlohmann::ordered_json::array();
  nlohmann::ordered_json ps_list = nlohmann::ordered_json::array();
  for (int t = 0; t < workers + ps; ++t) {
    std::string address = absl::StrCat(InstanceHost(launch, t % instances), ":", port + t);
    (t < workers ? worker_list : ps_list).push_back(address);
  }
  cluster["worker"] = worker_list;
  if (ps > 0) cluster["ps"] = ps_list;
  nlohmann::ordered_json config;
  config["cluster"] = cluster;
  config["task"] = {{"type", task < workers ? "worker" : "ps"},
                    {"index", task < workers ? task : task - workers}};
  return config.dump();
}

}  // namespace

int InstanceCount(const v1::InstanceLaunch& launch) {
  if (launch.job().resources().instance_count() > 0) {
    return launch.job().resources().instance_count();
  }
  return std::max(1, launch.instance_hosts_size());
}

std::string InstanceHost(const v1::InstanceLaunch& launch, int index) {
  if (index >= 0 && index < launch.instance_hosts_size()) return launch.instance_hosts(index);
  return "127.0.0.1";
}

absl::Status ValidateLaunch(const v1::InstanceLaunch& launch) {
  if (launch.job().name().empty()) {
    return absl::InvalidArgumentError("plan: job.name is empty; the launcher must name the job");
  }
  if (launch.job().command().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan for job ", launch.job().name(), ": job.command is empty"));
  }
  const int instances = InstanceCount(launch);
  if (launch.instance_index() < 0 || launch.instance_index() >= instances) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan for job ", launch.job().name(), ": instance_index ", launch.instance_index(),
        " is outside [0, ", instances, ") (resources.instance_count)"));
  }
  if (launch.instance_hosts_size() != 0 && launch.instance_hosts_size() != instances) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan for job ", launch.job().name(), ": instance_hosts lists ",
                     launch.instance_hosts_size(), " hosts for ", instances, " instances"));
  }
  const v1::DistributionSpec& d = launch.job().distribution();
  if (d.process_count_per_instance() < 0 || d.worker_count() < 0 ||
      d.parameter_server_count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("plan for job ", launch.job().name(),
                     ": distribution counts must not be negative (process_count_per_instance=",
                     d.process_count_per_instance(), ", worker_count=", d.worker_count(),
                     ", parameter_server_count=", d.parameter_server_count(), ")"));
  }
  return absl::OkStatus();
}

std::vector<LocalRank> LocalRanks(const v1::InstanceLaunch& launch) {
  const int index = launch.instance_index();
  std::vector<LocalRank> ranks;
  switch (launch.job().distribution().type()) {
    case Distribution::TYPE_PYTORCH:
    case Distribution::TYPE_MPI: {
      const int per = ProcessesPerInstance(launch);
      for (int l = 0; l < per; ++l) ranks.push_back({index * per + l, l});
      break;
    }
    case Distribution::TYPE_TENSORFLOW: {
      const int tasks = TfWorkerCount(launch) + TfPsCount(launch);
      const int instances = InstanceCount(launch);
      for (int t = index; t < tasks; t += instances) {
        ranks.push_back({t, static_cast<int>(ranks.size())});
      }
      break;
    }
    default:
      ranks.push_back({index, 0});
      break;
  }
  return ranks;
}

std::map<std::string, std::string> RankEnvironment(const v1::InstanceLaunch& launch, int local_rank,
                                                   const RankEnvOptions& options) {
  const v1::JobSpec& job = launch.job();
  const int index = launch.instance_index();
  const int instances = InstanceCount(launch);
  const std::vector<LocalRank> ranks = LocalRanks(launch);
  const int local_count = std::max<int>(1, ranks.size());
  int global_rank = index;
  if (local_rank >= 0 && local_rank < static_cast<int>(ranks.size())) {
    global_rank = ranks[local_rank].global_rank;
  }

  std::map<std::string, std::string> env;
  // Always.
  env["AZUREML_RUN_ID"] = job.name();
  env["AZUREML_CR_NODE_RANK"] = absl::StrCat(index);
  env["AZUREML_PROCESS_NAME"] = absl::StrCat("rank_", global_rank);
  env["MLFLOW_RUN_ID"] = job.name();
  env["MLFLOW_EXPERIMENT_ID"] = job.experiment_name();
  env["MLFLOW_EXPERIMENT_NAME"] = job.experiment_name();
  if (!options.mlflow_tracking_uri.empty()) {
    env["MLFLOW_TRACKING_URI"] = options.mlflow_tracking_uri;
  }
  env["KUBETRAIN_JOB"] = job.name();
  env["KUBETRAIN_INSTANCE"] = absl::StrCat(index);
  env["KUBETRAIN_CHECKPOINT_DIR"] = launch.checkpoint_dir();
  env["KUBETRAIN_RESTART_COUNT"] = absl::StrCat(launch.attempt());

  const v1::InstancePlacement* placement = ThisPlacement(launch);
  env["CUDA_VISIBLE_DEVICES"] =
      placement == nullptr ? "" : absl::StrJoin(placement->gpu_ids(), ",");
  const int64_t cpus = placement == nullptr ? 0 : placement->cpu_millicores() / 1000;
  env["OMP_NUM_THREADS"] = absl::StrCat(std::max<int64_t>(1, cpus / local_count));

  switch (job.distribution().type()) {
    case Distribution::TYPE_PYTORCH: {
      const int per = ProcessesPerInstance(launch);
      env["MASTER_ADDR"] = InstanceHost(launch, 0);
      env["MASTER_PORT"] = absl::StrCat(MasterPort(launch));
      env["WORLD_SIZE"] = absl::StrCat(instances * per);
      env["RANK"] = absl::StrCat(global_rank);
      env["LOCAL_RANK"] = absl::StrCat(local_rank);
      env["LOCAL_WORLD_SIZE"] = absl::StrCat(per);
      env["NODE_RANK"] = absl::StrCat(index);
      env["GROUP_RANK"] = absl::StrCat(index);
      env["TORCHELASTIC_RESTART_COUNT"] = absl::StrCat(launch.attempt());
      break;
    }
    case Distribution::TYPE_MPI: {
      std::vector<std::string> hosts;
      for (int i = 0; i < instances; ++i) hosts.push_back(InstanceHost(launch, i));
      env["AZ_BATCH_MASTER_NODE"] = absl::StrCat(hosts[0], ":", MasterPort(launch));
      env["AZ_BATCHAI_MPI_MASTER_NODE"] = hosts[0];
      env["AZ_BATCH_HOST_LIST"] = absl::StrJoin(hosts, ",");
      break;
    }
    case Distribution::TYPE_TENSORFLOW:
      env["TF_CONFIG"] = TfConfig(launch, global_rank);
      break;
    default:
      break;
  }

  // kubetrain's own rank variables, for the distributions whose framework variables do not say the
  // rank and world size (none, tensorflow); mpi ranks get OpenMPI's from mpirun instead.
  if (job.distribution().type() != Distribution::TYPE_MPI) {
    const int world = job.distribution().type() == Distribution::TYPE_PYTORCH
                          ? instances * ProcessesPerInstance(launch)
                      : job.distribution().type() == Distribution::TYPE_TENSORFLOW
                          ? TfWorkerCount(launch) + TfPsCount(launch)
                          : instances;
    env[rank::kRankVar] = absl::StrCat(global_rank);
    env[rank::kWorldSizeVar] = absl::StrCat(world);
    env[rank::kLocalRankVar] = absl::StrCat(std::max(0, local_rank));
    env[rank::kLocalWorldSizeVar] = absl::StrCat(local_count);
  }

  for (const auto& [name, value] : job.environment_variables()) env[name] = value;
  return env;
}

}  // namespace kubetrain::agent
