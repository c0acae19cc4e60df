#include "kubetrain/launcher/jobs/job_names.h"

#include <iterator>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::jobs {

std::string GenerateJobName() {
  static constexpr const char* kAdjectives[] = {
      "calm",  "bold", "brave",  "bright", "busy",  "clever", "cool",  "eager", "gentle", "happy",
      "jolly", "keen", "kind",   "lively", "lucid", "mellow", "neat",  "nice",  "quiet",  "quick",
      "sharp", "shy",  "sleepy", "sunny",  "swift", "tidy",   "witty", "zen"};
  static constexpr const char* kNouns[] = {
      "apple", "arm",    "bear", "bee",  "boat", "book", "cloud", "coat", "cup", "door",
      "fox",   "garden", "hat",  "key",  "kite", "lamp", "leaf",  "moon", "owl", "pear",
      "plum",  "river",  "seed", "ship", "star", "tree", "wave",  "yam"};
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen gen;
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix += kAlphabet[absl::Uniform<size_t>(gen, 0, 36)];
  return absl::StrCat(kAdjectives[absl::Uniform<size_t>(gen, 0, std::size(kAdjectives))], "_",
                      kNouns[absl::Uniform<size_t>(gen, 0, std::size(kNouns))], "_", suffix);
}

}  // namespace kubetrain::jobs
