// `kubetrain compute ...`: attach, list, show.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/backends/kubernetes/cluster.h"
#include "kubetrain/launcher/backends/kubernetes/kubernetes_backend.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/nodes.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/placement/placement.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::cli {
namespace {

struct ComputeFlags {
  std::string name, type, kubeconfig, context, ns, nodes_file, output, workspace_url, worker_image;
};

std::string Kind(const v1::ComputeTarget& t) { return t.has_kubernetes() ? "kubernetes" : "local"; }

// Checks the kubeconfig can be read and names the context; returns the context to store.
absl::StatusOr<std::string> CheckKubeconfig(const std::string& path, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("cannot read the kubeconfig ", path));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  std::vector<std::string> contexts;
  if (root["contexts"] && root["contexts"].IsSequence()) {
    for (const auto& c : root["contexts"]) {
      if (c["name"] && c["name"].IsScalar()) contexts.push_back(c["name"].Scalar());
    }
  }
  std::string want = context;
  if (want.empty() && root["current-context"] && root["current-context"].IsScalar()) {
    want = root["current-context"].Scalar();
  }
  if (want.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " has no current-context; pass --context (one of: ", absl::StrJoin(contexts, ", "),
        ")"));
  }
  if (std::find(contexts.begin(), contexts.end(), want) == contexts.end()) {
    return absl::NotFoundError(absl::StrCat(path, " has no context \"", want,
                                            "\" (it has: ", absl::StrJoin(contexts, ", "), ")"));
  }
  return want;
}

// Connects to the cluster: checks the namespace, reads the Ready nodes and the InstanceType
// custom resources (into `types`; crd_installed false when the cluster has none).
absl::Status ReadCluster(v1::ComputeTarget& target,
                         backends::kubernetes::ClusterInstanceTypes& types) {
  namespace k8s = backends::kubernetes;
  absl::StatusOr<std::unique_ptr<k8s::ApiClient>> client = k8s::ConnectToTarget(target);
  if (!client.ok()) return client.status();
  for (const std::string& w : (*client)->connection().warnings) {
    std::cerr << "kubetrain: warning: " << w << "\n";
  }
  if (absl::Status s = k8s::CheckNamespace(**client, target.kubernetes().namespace_()); !s.ok()) {
    if (s.code() != absl::StatusCode::kUnavailable) return s;
    return absl::UnavailableError(absl::StrCat("cannot reach the cluster of context \"",
                                               (*client)->connection().context, "\" at ",
                                               (*client)->connection().server, " (", s.message(),
                                               "); check the kubeconfig's server and "
                                               "that this machine can reach it"));
  }
  absl::StatusOr<std::vector<v1::Node>> nodes = k8s::ListReadyNodes(**client);
  if (!nodes.ok()) return nodes.status();
  if (nodes->empty()) {
    std::cerr << "kubetrain: warning: the cluster has no Ready, schedulable node; jobs will wait "
                 "in the queue until one is\n";
  }
  for (v1::Node& n : *nodes) *target.add_nodes() = std::move(n);
  absl::StatusOr<k8s::ClusterInstanceTypes> read = k8s::ReadInstanceTypes(**client);
  if (!read.ok()) return read.status();
  for (const std::string& w : read->warnings) std::cerr << "kubetrain: warning: " << w << "\n";
  types = std::move(*read);
  return absl::OkStatus();
}

int Attach(const GlobalFlags& global, const ComputeFlags& f) {
  v1::ComputeTarget target;
  backends::kubernetes::ClusterInstanceTypes cluster_types;
  target.set_name(f.name);
  if (f.type == "local") {
    if (!f.kubeconfig.empty() || !f.ns.empty() || !f.context.empty() || !f.workspace_url.empty() ||
        !f.worker_image.empty()) {
      PrintError(absl::InvalidArgumentError(
          "--kubeconfig, --context, --namespace, --workspace-url and --worker-image are for "
          "--type kubernetes"));
      return kExitUsage;
    }
    target.mutable_local();
    if (f.nodes_file.empty()) {
      *target.add_nodes() = compute::DetectLocalNode();
    } else {
      compute::NodeParseResult nodes = compute::ParseNodesFile(f.nodes_file);
      std::cerr << nodes.diagnostics.Format();
      if (nodes.diagnostics.has_errors()) return kExitFailure;
      for (v1::Node& n : nodes.nodes) *target.add_nodes() = std::move(n);
    }
  } else if (f.type == "kubernetes") {
    if (f.kubeconfig.empty() || f.ns.empty()) {
      PrintError(
          absl::InvalidArgumentError("--type kubernetes needs --kubeconfig and --namespace"));
      return kExitUsage;
    }
    if (!f.nodes_file.empty()) {
      PrintError(absl::InvalidArgumentError(
          "--nodes is for --type local; a cluster's nodes are read from the cluster"));
      return kExitUsage;
    }
    absl::StatusOr<std::string> context = CheckKubeconfig(f.kubeconfig, f.context);
    if (!context.ok()) {
      PrintError(context.status());
      return kExitFailure;
    }
    v1::KubernetesCompute* k = target.mutable_kubernetes();
    k->set_kubeconfig_path(std::filesystem::absolute(f.kubeconfig).string());
    k->set_context(*context);
    k->set_namespace_(f.ns);
    k->set_workspace_url(f.workspace_url);
    k->set_worker_image(f.worker_image);
    if (absl::Status s = ReadCluster(target, cluster_types); !s.ok()) {
      PrintError(s);
      return kExitFailure;
    }
  } else {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("unknown compute type \"", f.type, "\"; use local or kubernetes")));
    return kExitUsage;
  }

  auto ws = OpenWorkspace(global);
  if (!ws.ok()) {
    PrintError(ws.status());
    return kExitFailure;
  }
  // Re-attaching keeps the instance types IT operations curated.
  bool existed = false;
  if (auto old = (*ws)->GetCompute(f.name); old.ok() && old->name() == f.name) {
    existed = old->nodes_size() > 0 || old->instance_types_size() > 0;
    *target.mutable_instance_types() = old->instance_types();
  }
  // A cluster's InstanceType custom resources are the truth for it: they replace what was there.
  if (cluster_types.crd_installed) {
    target.clear_instance_types();
    compute::ApplyInstanceTypes(cluster_types.items, target);
    target.mutable_kubernetes()->set_instance_types_source("cluster");
  }
  if (absl::Status s = (*ws)->PutCompute(target); !s.ok()) {
    PrintError(s);
    return kExitFailure;
  }
  std::cout << "compute \"" << f.name << "\" " << (existed ? "updated" : "attached") << " ("
            << Kind(target) << ", " << target.nodes_size() << " node"
            << (target.nodes_size() == 1 ? "" : "s") << ")\n";
  if (target.has_kubernetes()) {
    std::cout << "namespace " << target.kubernetes().namespace_() << ", "
              << target.instance_types_size() << " instance type"
              << (target.instance_types_size() == 1 ? "" : "s")
              << (cluster_types.crd_installed ? " from the cluster's InstanceType resources"
                                              : " (the cluster has no InstanceType CRD)")
              << "; free capacity is read from the cluster when jobs are placed\n";
    if (target.kubernetes().workspace_url().empty()) {
      std::cout << "pods do not report to a workspace (no --workspace-url): their logs and states "
                   "are collected through the API, metrics are not kept\n";
    }
  }
  return kExitOk;
}

int List(const GlobalFlags& global, const ComputeFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto targets = compute::LoadComputeTargets(**ws);
  if (!targets.ok()) return PrintError(targets.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(*targets), *format, std::cout);
    return kExitOk;
  }
  Table table({"NAME", "TYPE", "NODES", "CPU", "MEMORY", "GPUS", "INSTANCE TYPES"});
  for (const v1::ComputeTarget& t : *targets) {
    int64_t cpu = 0, mem = 0, gpus = 0;
    for (const v1::Node& n : t.nodes()) {
      cpu += n.cpu_millicores();
      mem += n.memory_bytes();
      gpus += n.gpu_ids_size();
    }
    std::vector<std::string> types;
    for (const auto& it : compute::EffectiveInstanceTypes(t)) types.push_back(it.name());
    table.AddRow({t.name(), Kind(t), absl::StrCat(t.nodes_size()), common::FormatMillicores(cpu),
                  common::FormatBytes(mem), absl::StrCat(gpus), absl::StrJoin(types, ",")});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const GlobalFlags& global, const ComputeFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  absl::StatusOr<v1::ComputeTarget> target = compute::FindComputeTarget(**ws, f.name);
  if (!target.ok()) return PrintError(target.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJson(*target), *format, std::cout);
    return kExitOk;
  }
  std::cout << "compute  " << target->name() << " (" << Kind(*target) << ")\n";
  if (target->has_kubernetes()) {
    std::cout << "cluster  " << target->kubernetes().kubeconfig_path() << " context "
              << target->kubernetes().context() << ", namespace "
              << target->kubernetes().namespace_() << "\n";
    if (!target->kubernetes().workspace_url().empty()) {
      std::cout << "workspace for pods  " << target->kubernetes().workspace_url() << "\n";
    }
    if (!target->kubernetes().worker_image().empty()) {
      std::cout << "worker image  " << target->kubernetes().worker_image() << "\n";
    }
  }
  std::cout << "\nnodes\n";
  Table nodes({"  NAME", "CPU", "MEMORY", "GPU IDS", "CPU IDS", "LABELS"});
  for (const v1::Node& n : target->nodes()) {
    std::vector<std::string> labels;
    for (const auto& [k, v] : n.labels()) labels.push_back(absl::StrCat(k, "=", v));
    std::sort(labels.begin(), labels.end());
    nodes.AddRow({"  " + n.name(), common::FormatMillicores(n.cpu_millicores()),
                  common::FormatBytes(n.memory_bytes()), absl::StrJoin(n.gpu_ids(), ","),
                  absl::StrJoin(n.cpu_ids(), ","), absl::StrJoin(labels, ",")});
  }
  nodes.Print(std::cout);
  std::cout << "\ninstance types\n";
  Table types({"  NAME", "REQUESTS", "LIMITS CPU", "LIMITS MEMORY", "NODE SELECTOR"});
  for (const v1::InstanceType& t : compute::EffectiveInstanceTypes(*target)) {
    std::vector<std::string> sel;
    for (const auto& [k, v] : t.node_selector()) sel.push_back(absl::StrCat(k, "=", v));
    std::sort(sel.begin(), sel.end());
    types.AddRow({"  " + t.name(), placement::FormatRequest(placement::EffectiveRequest(t)),
                  common::FormatMillicores(t.limits().cpu().value()),
                  common::FormatBytes(t.limits().memory().value()), absl::StrJoin(sel, ",")});
  }
  types.Print(std::cout);
  return kExitOk;
}

}  // namespace

void AddComputeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* compute = app.add_subcommand("compute", "Attach and inspect compute targets");
  compute->require_subcommand(1);
  auto f = std::make_shared<ComputeFlags>();

  CLI::App* attach = compute->add_subcommand(
      "attach",
      "Attach a compute target: this machine (with virtual nodes) or a Kubernetes namespace");
  attach->add_option("name", f->name, "Name jobs use in `compute:`")->required();
  attach->add_option("--type", f->type, "local or kubernetes")->required();
  attach->add_option("--nodes", f->nodes_file, "local: a YAML list of virtual nodes");
  attach->add_option("--kubeconfig", f->kubeconfig, "kubernetes: path of the kubeconfig");
  attach->add_option("--context", f->context, "kubernetes: context (default: current-context)");
  attach->add_option("--namespace", f->ns, "kubernetes: namespace the jobs run in");
  attach->add_option("--workspace-url", f->workspace_url,
                     "kubernetes: the workspace the pods report to (grpc://host:port)");
  attach->add_option("--worker-image", f->worker_image,
                     "kubernetes: image for jobs without environment.image (built from docker/)");
  attach->callback([&flags, f, exit_code] { *exit_code = Attach(flags, *f); });

  CLI::App* list = compute->add_subcommand("list", "List compute targets");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* show = compute->add_subcommand("show", "Show a compute target's nodes and capacity");
  show->add_option("name", f->name, "Compute name")->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });
}

}  // namespace kubetrain::cli
