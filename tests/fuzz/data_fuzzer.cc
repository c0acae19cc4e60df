// Fuzzes the data-path parsers written by hand: ParseDataUri (every URI form of a job's inputs and
// outputs), CleanRelativePath (names that must never escape their root) and the List Blobs XML
// parser. The first byte picks the parser; the rest is the input. Any crash, sanitizer report or
// hang is a bug; a cleaned path must never contain "..", start with '/', or hold a backslash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/data_uri.h"
#include "kubetrain/storage/path_safety.h"

namespace {

void CheckClean(const std::string& p) {
  if (p.empty()) return;
  if (p[0] == '/' || p.find('\\') != std::string::npos) std::abort();
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string seg = p.substr(start, end - start);
    if (seg == ".." || seg == "." || seg.empty()) std::abort();
    start = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto uri = kubetrain::storage::ParseDataUri(text);
      if (uri.ok()) CheckClean(uri->path);
      (void)kubetrain::storage::RedactDataUri(text);
      break;
    }
    case 1: {
      auto clean = kubetrain::storage::CleanRelativePath(text, "fuzz");
      if (clean.ok()) CheckClean(*clean);
      break;
    }
    case 2: {
      auto page = kubetrain::storage::blob_internal::ParseListBlobs(text);
      (void)page;
      break;
    }
  }
  return 0;
}
