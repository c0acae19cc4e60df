// Fuzzes the user-file parsers: the job YAML (with and without --set overrides), InstanceType /
// InstanceTypeList YAML, the local virtual-node list, and the data asset and environment YAML
// (first byte 0xF0-0xF7 / 0xF8-0xFF). The first byte picks the parser; the rest is the file. Any
// crash, sanitizer report, leak or hang is a bug: every input must end in a JobSpec or in
// diagnostics.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/nodes.h"
#include "kubetrain/launcher/spec/asset_file.h"
#include "kubetrain/launcher/spec/job_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (selector >= 0xF8) {
    auto r = kubetrain::spec::ParseEnvironmentYaml(text, "/fuzz/env.yml");
    (void)r.diagnostics.Format();
    return 0;
  }
  if (selector >= 0xF0) {
    auto r = kubetrain::spec::ParseDataAssetYaml(text, "/fuzz/data.yml");
    (void)r.diagnostics.Format();
    return 0;
  }
  switch (selector % 4) {
    case 0: {
      auto r = kubetrain::spec::ParseJobYaml(text, "/fuzz/job.yml");
      (void)r.diagnostics.Format();
      break;
    }
    case 1: {
      // The first line is a --set override, the rest the file.
      size_t nl = text.find('\n');
      std::string override = text.substr(0, nl == std::string::npos ? text.size() : nl);
      std::string body = nl == std::string::npos ? "" : text.substr(nl + 1);
      auto r = kubetrain::spec::ParseJobYaml(body, "/fuzz/job.yml", {{override}});
      (void)r.diagnostics.Format();
      break;
    }
    case 2: {
      auto r = kubetrain::compute::ParseInstanceTypesYaml(text, "/fuzz/it.yml");
      (void)r.diagnostics.Format();
      break;
    }
    default: {
      auto r = kubetrain::compute::ParseNodesYaml(text, "/fuzz/nodes.yml");
      (void)r.diagnostics.Format();
      break;
    }
  }
  return 0;
}
