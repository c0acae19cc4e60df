// Blob download throughput: kubetrain's parallel ranged download (storage/transfer.h, checksum
// verified) of one 1 GiB blob from a real Azurite, against the `curl` command fetching the same
// blob from the same Azurite in the same run. Both write a file in the same folder; rounds
// alternate the two, after one warm-up round of each that is not counted. Prints each round and
// the median ratio (ours / curl).
//
// Usage: bench_blob_download [size_mib=1024] [rounds=5] [parallelism=8]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/transfer.h"
#include "storage/blob/shared_key.h"
#include "tests/storage/azurite.h"

namespace {
namespace fs = std::filesystem;
using namespace kubetrain;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A read-only account SAS (what a user would give curl).
std::string ReadSas() {
  std::string key;
  absl::Base64Unescape(testing::kAzuriteKey, &key);
  const std::string version = "2021-08-06", expiry = "2099-01-01T00:00:00Z";
  std::string to_sign = absl::StrCat(testing::kAzuriteAccount, "\nr\nb\nsco\n\n", expiry,
                                     "\n\nhttps,http\n", version, "\n\n");
  std::string sig = absl::Base64Escape(storage::shared_key::HmacSha256(key, to_sign));
  std::string enc;
  for (char c : sig) {
    if (c == '+')
      enc += "%2B";
    else if (c == '/')
      enc += "%2F";
    else if (c == '=')
      enc += "%3D";
    else
      enc += c;
  }
  return absl::StrCat("sv=", version, "&ss=b&srt=sco&sp=r&se=", expiry,
                      "&spr=https,http&sig=", enc);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t size_mib = argc > 1 ? std::atoll(argv[1]) : 1024;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const int parallelism = argc > 3 ? std::atoi(argv[3]) : 8;
  if (std::system("command -v curl >/dev/null 2>&1") != 0) {
    std::printf("bench_blob_download: SKIP: the curl command is missing (scripts/setup-deps.sh)\n");
    return 0;
  }
  testing::Azurite azurite;
  if (absl::Status s = azurite.Start(); !s.ok()) {
    std::printf("bench_blob_download: SKIP: %s\n", std::string(s.message()).c_str());
    return 0;
  }
  char tmpl[] = "/tmp/kubetrain-bench-blob-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const fs::path dir = tmpl;
  auto client = storage::BlobClient::Create(azurite.Account("bench"));
  if (!client.ok() || !(*client)->CreateContainer().ok()) {
    std::fprintf(stderr, "bench_blob_download: cannot reach Azurite\n");
    return 1;
  }
  // The blob: random bytes, uploaded in blocks (with its Content-MD5).
  {
    std::mt19937_64 rng(1);
    std::vector<uint64_t> buf(1 << 17);
    FILE* f = std::fopen((dir / "src.bin").c_str(), "wb");
    for (int64_t i = 0; i < size_mib; ++i) {
      for (auto& w : buf) w = rng();
      std::fwrite(buf.data(), 1, buf.size() * 8, f);
    }
    std::fclose(f);
    auto up = storage::UploadPath(**client, (dir / "src.bin").string(), true, "big.bin", {});
    if (!up.ok()) {
      std::fprintf(stderr, "bench_blob_download: upload: %s\n",
                   std::string(up.status().message()).c_str());
      return 1;
    }
    fs::remove(dir / "src.bin");
  }
  const double mib = static_cast<double>(size_mib);
  const std::string url = absl::StrCat((*client)->BlobUrl("big.bin"), "?", ReadSas());
  std::vector<double> ours, unverified, theirs, ratios, ratios_unverified;
  for (int r = -1; r < rounds; ++r) {  // round -1 warms Azurite and the page cache up
    fs::remove(dir / "curl.bin");
    auto t0 = std::chrono::steady_clock::now();
    std::string cmd = absl::StrCat("curl -sSf -o ", (dir / "curl.bin").string(), " '", url, "'");
    int rc = std::system(cmd.c_str());
    double curl_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0 || fs::file_size(dir / "curl.bin") != static_cast<uint64_t>(size_mib) << 20) {
      std::fprintf(stderr, "bench_blob_download: curl failed (exit %d)\n", rc);
      return 1;
    }
    fs::remove(dir / "curl.bin");

    double ours_s[2];
    for (int verify = 1; verify >= 0; --verify) {
      fs::remove(dir / "ours.bin");
      storage::TransferOptions t;
      t.parallelism = parallelism;
      t.verify_md5 = verify == 1;
      t0 = std::chrono::steady_clock::now();
      auto got =
          storage::DownloadBlobPath(**client, "big.bin", true, (dir / "ours.bin").string(), t);
      ours_s[verify] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!got.ok()) {
        std::fprintf(stderr, "bench_blob_download: %s\n",
                     std::string(got.status().message()).c_str());
        return 1;
      }
      fs::remove(dir / "ours.bin");
    }
    if (r < 0) continue;
    ours.push_back(mib / ours_s[1]);
    unverified.push_back(mib / ours_s[0]);
    theirs.push_back(mib / curl_s);
    ratios.push_back(ours.back() / theirs.back());
    ratios_unverified.push_back(unverified.back() / theirs.back());
    std::printf(
        "round %d: kubetrain download %.0f MiB/s (%d parallel ranged GETs, MD5 verified), "
        "%.0f MiB/s (size check only), curl %.0f MiB/s; ratio %.2f (verified), %.2f "
        "(size only)\n",
        r, ours.back(), parallelism, unverified.back(), theirs.back(), ratios.back(),
        ratios_unverified.back());
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  std::printf(
      "download of %lld MiB from Azurite (median of %d rounds): kubetrain %.0f MiB/s (MD5 "
      "verified) / %.0f MiB/s (size check only) vs curl %.0f MiB/s: ratio %.2f verified, "
      "%.2f size only (medians of the rounds' ratios)\n",
      static_cast<long long>(size_mib), rounds, Median(ours), Median(unverified), Median(theirs),
      Median(ratios), Median(ratios_unverified));
  return 0;
}
