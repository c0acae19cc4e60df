// Workspace server tokens (kubetrain/storage/tokens.h).
#include "kubetrain/storage/tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace kubetrain::storage {
namespace {

constexpr char kServerPrefix[] = "kt1.";
constexpr char kJobPrefix[] = "ktjob.";
constexpr char kJobContext[] = "kubetrain workspace job token v1";

std::string Hex(const unsigned char* data, size_t size) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(data), size));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> GenerateServerToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    }
    got += static_cast<size_t>(n);
  }
  return absl::StrCat(kServerPrefix, Hex(bytes, sizeof(bytes)));
}

std::string MakeJobToken(absl::string_view server_token, absl::string_view job) {
  std::string message = absl::StrCat(kJobContext, std::string(1, '\0'), job);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), server_token.data(), static_cast<int>(server_token.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len);
  return absl::StrCat(kJobPrefix, absl::BytesToHexString(job), ".", Hex(mac, mac_len));
}

TokenIdentity IdentifyToken(absl::string_view server_token, absl::string_view token) {
  TokenIdentity id;
  if (server_token.empty() || token.empty()) return id;
  if (absl::StartsWith(token, kServerPrefix)) {
    if (ConstantTimeEquals(token, server_token)) id.kind = TokenIdentity::kServer;
    return id;
  }
  if (!absl::StartsWith(token, kJobPrefix)) return id;
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[1].size() % 2 != 0 || !IsHex(parts[1]) || !IsHex(parts[2])) {
    return id;
  }
  std::string job = absl::HexStringToBytes(parts[1]);
  if (job.empty()) return id;
  if (ConstantTimeEquals(token, MakeJobToken(server_token, job))) {
    id.kind = TokenIdentity::kJob;
    id.job = std::move(job);
  }
  return id;
}

absl::StatusOr<std::string> LoadOrCreateServerToken(const std::string& file, bool* created) {
  *created = false;
  struct stat st;
  if (stat(file.c_str(), &st) == 0) {
    if ((st.st_mode & 0077) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("the workspace server token file ", file, " is accessible by others (mode ",
                       absl::StrFormat("%03o", st.st_mode & 0777),
                       "); make it private with `chmod 600 ", file, "`"));
    }
    std::ifstream in(file);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string token(absl::StripAsciiWhitespace(buffer.str()));
    if (!in || !absl::StartsWith(token, kServerPrefix) || token.size() != 4 + 64 ||
        !IsHex(token.substr(4))) {
      return absl::FailedPreconditionError(
          absl::StrCat("the workspace server token file ", file,
                       " does not hold a kubetrain server token; remove it to generate a new one"));
    }
    return token;
  }
  if (errno != ENOENT) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot read ", file, ": ", std::strerror(errno)));
  }
  absl::StatusOr<std::string> token = GenerateServerToken();
  if (!token.ok()) return token.status();
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", file, ": ", std::strerror(errno)));
  }
  std::string text = *token + "\n";
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok) {
    unlink(file.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", file, ": ", std::strerror(errno)));
  }
  *created = true;
  return token;
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

}  // namespace kubetrain::storage
