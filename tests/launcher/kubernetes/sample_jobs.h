// The common jobs whose rendered objects are golden files (golden/<name>.yaml) and are checked by
// the independent validator (validate_objects.js, npm kubernetes-models).
#ifndef KUBETRAIN_TESTS_LAUNCHER_KUBERNETES_SAMPLE_JOBS_H_
#define KUBETRAIN_TESTS_LAUNCHER_KUBERNETES_SAMPLE_JOBS_H_

#include <string>
#include <vector>

#include "kubetrain/launcher/backends/kubernetes/render.h"

namespace kubetrain::testing {

struct SampleJob {
  std::string name;  // golden/<name>.yaml
  backends::kubernetes::RenderInput input;
};

// pytorch-2x2-gpu: 2 instances × 2 ranks, a GPU instance type, shm_size, an Azure ML PVC mount,
//                  an input on that PVC, workspace_url set;
// mpi-cpu:         2 instances × 2 ranks of mpi on defaultinstancetype, the target's worker image;
// command-code:    1 instance, no distribution, a `code:` folder shipped in the ConfigMap.
std::vector<SampleJob> SampleJobs();

// The namespace's PVC list the samples see (one Azure ML claim at /mnt/data, one unlabelled).
nlohmann::json SamplePvcList();

}  // namespace kubetrain::testing

#endif  // KUBETRAIN_TESTS_LAUNCHER_KUBERNETES_SAMPLE_JOBS_H_
