// Writes the rendered objects of every sample job (sample_jobs.h) as JSON files into a folder, for
// validate_objects.js, and docker/rbac.yaml as rbac.json (NAMESPACE replaced by "team-a"):
//   render_samples OUTDIR
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "tests/launcher/kubernetes/sample_jobs.h"
#include "yaml-cpp/yaml.h"

namespace {

nlohmann::json FromYaml(const YAML::Node& n) {
  if (n.IsMap()) {
    nlohmann::json o = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it) o[it->first.Scalar()] = FromYaml(it->second);
    return o;
  }
  if (n.IsSequence()) {
    nlohmann::json a = nlohmann::json::array();
    for (YAML::Node item : n) a.push_back(FromYaml(item));
    return a;
  }
  if (n.IsNull()) return nullptr;
  return n.Scalar();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: render_samples OUTDIR\n";
    return 2;
  }
  for (const auto& sample : kubetrain::testing::SampleJobs()) {
    auto rendered = kubetrain::backends::kubernetes::RenderJob(sample.input);
    if (!rendered.ok()) {
      std::cerr << sample.name << ": " << rendered.status() << "\n";
      return 1;
    }
    std::ofstream out(std::string(argv[1]) + "/" + sample.name + ".json");
    out << nlohmann::json(rendered->All()).dump(2) << "\n";
    std::cout << "rendered " << sample.name << " (" << rendered->All().size() << " objects)\n";
  }
  std::ifstream in(KUBETRAIN_SOURCE_DIR "/docker/rbac.yaml");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json rbac = nlohmann::json::array();
  for (const YAML::Node& doc :
       YAML::LoadAll(absl::StrReplaceAll(text.str(), {{"NAMESPACE", "team-a"}}))) {
    rbac.push_back(FromYaml(doc));
  }
  std::ofstream(std::string(argv[1]) + "/rbac.json") << rbac.dump(2) << "\n";
  std::cout << "converted docker/rbac.yaml (" << rbac.size() << " objects)\n";
  return 0;
}
