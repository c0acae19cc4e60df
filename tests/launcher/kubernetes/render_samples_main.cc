// Writes the rendered objects of every sample job (sample_jobs.h) as JSON files into a folder, for
// validate_objects.js: render_samples OUTDIR
#include <fstream>
#include <iostream>

#include "tests/launcher/kubernetes/sample_jobs.h"

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
  return 0;
}
