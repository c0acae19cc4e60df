// `kubetrain compute ...`: attach, list, show.
#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/backends/kubernetes/cluster.h"
#include "kubetrain/launcher/backends/kubernetes/kubeconfig.h"
#include "kubetrain/launcher/backends/kubernetes/kubernetes_backend.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/attach.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/placement/placement.h"

namespace kubetrain::cli {
namespace {

struct ComputeFlags {
  std::string name, type, kubeconfig, context, ns, nodes_file, output, workspace_url, worker_image;
};

std::string Kind(const v1::ComputeTarget& t) { return t.has_kubernetes() ? "kubernetes" : "local"; }

void PrintWarnings(const std::vector<std::string>& warnings) {
  for (const std::string& w : warnings) std::cerr << "kubetrain: warning: " << w << "\n";
}

// Connects to the cluster of `options` and reads what attaching stores (namespace check, Ready
// nodes, InstanceType custom resources), printing the warnings.
absl::StatusOr<backends::kubernetes::ClusterInventory> ReadCluster(
    const compute::AttachOptions& options) {
  namespace k8s = backends::kubernetes;
  absl::StatusOr<std::unique_ptr<k8s::ApiClient>> client =
      k8s::ConnectToTarget(compute::BuildKubernetesTarget(options, {}));
  if (!client.ok()) return client.status();
  PrintWarnings((*client)->connection().warnings);
  absl::StatusOr<k8s::ClusterInventory> inventory = k8s::ReadClusterInventory(**client, options.ns);
  if (inventory.ok()) PrintWarnings(inventory->warnings);
  return inventory;
}

int Attach(const GlobalFlags& global, const ComputeFlags& f) {
  compute::AttachOptions options;
  options.name = f.name;
  options.nodes_file = f.nodes_file;
  options.kubeconfig = f.kubeconfig;
  options.context = f.context;
  options.ns = f.ns;
  options.workspace_url = f.workspace_url;
  options.worker_image = f.worker_image;
  v1::ComputeTarget target;
  std::optional<std::vector<v1::InstanceType>> cluster_types;
  if (f.type == "local") {
    if (!f.kubeconfig.empty() || !f.ns.empty() || !f.context.empty() || !f.workspace_url.empty() ||
        !f.worker_image.empty()) {
      PrintError(absl::InvalidArgumentError(
          "--kubeconfig, --context, --namespace, --workspace-url and --worker-image are for "
          "--type kubernetes"));
      return kExitUsage;
    }
    compute::LocalAttach local = compute::BuildLocalTarget(options);
    std::cerr << local.diagnostics.Format();
    if (local.diagnostics.has_errors()) return kExitFailure;
    target = std::move(local.target);
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
    absl::StatusOr<std::string> context =
        backends::kubernetes::LoadKubeconfigContext(f.kubeconfig, f.context);
    if (!context.ok()) {
      PrintError(context.status());
      return kExitFailure;
    }
    options.context = *context;
    absl::StatusOr<backends::kubernetes::ClusterInventory> cluster = ReadCluster(options);
    if (!cluster.ok()) {
      PrintError(cluster.status());
      return kExitFailure;
    }
    target = compute::BuildKubernetesTarget(options, std::move(cluster->nodes));
    cluster_types = std::move(cluster->instance_types);
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
  std::optional<v1::ComputeTarget> previous;
  if (absl::StatusOr<v1::ComputeTarget> old = (*ws)->GetCompute(f.name); old.ok()) {
    previous = std::move(*old);
  }
  compute::AttachResult attached =
      compute::MergeAttachedTarget(previous, std::move(target), cluster_types);
  const v1::ComputeTarget& stored = attached.target;
  if (absl::Status s = (*ws)->PutCompute(stored); !s.ok()) {
    PrintError(s);
    return kExitFailure;
  }
  std::cout << "compute \"" << f.name << "\" " << (attached.existed ? "updated" : "attached")
            << " (" << Kind(stored) << ", " << stored.nodes_size() << " node"
            << (stored.nodes_size() == 1 ? "" : "s") << ")\n";
  if (stored.has_kubernetes()) {
    std::cout << "namespace " << stored.kubernetes().namespace_() << ", "
              << stored.instance_types_size() << " instance type"
              << (stored.instance_types_size() == 1 ? "" : "s")
              << (cluster_types.has_value() ? " from the cluster's InstanceType resources"
                                            : " (the cluster has no InstanceType CRD)")
              << "; free capacity is read from the cluster when jobs are placed\n";
    if (stored.kubernetes().workspace_url().empty()) {
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
