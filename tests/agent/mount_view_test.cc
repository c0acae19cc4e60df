// The agent's bind-mount views (staging/mount_view.h), through StageInput as the agent uses them.
// Each case runs in a forked child with a mount namespace of its own (unshare(CLONE_NEWNS)), so no
// mount reaches the host and every mount vanishes with the child; a host that does not allow one
// skips the case and says why.
#include "kubetrain/agent/staging/mount_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/storage/data_stage.h"

namespace kubetrain::agent {
namespace {
namespace fs = std::filesystem;

// The child's exit status when the host does not let it have a mount namespace of its own.
constexpr int kNoNamespace = 77;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// Whether writing a new file in `dir` fails.
bool CannotWriteIn(const fs::path& dir) {
  std::ofstream w(dir / "new.txt");
  w << "x";
  w.close();
  return w.fail() && !fs::exists(dir / "new.txt");
}

// A check in the child: prints what failed (the parent shows the child's stderr) and exits 1.
#define CHILD_CHECK(cond, ...)                                           \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #cond, \
                   absl::StrCat(__VA_ARGS__).c_str());                   \
      std::fflush(stderr);                                               \
      _exit(1);                                                          \
    }                                                                    \
  } while (0)

class MountViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("kt-mount-view-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    WriteFile(dir_ / "src/folder/a.txt", "hello a");
    WriteFile(dir_ / "src/folder/sub/b.txt", "hello b");
    WriteFile(dir_ / "src/one.txt", "one");
    options_.read_only_view = MakeReadOnlyMountView;
    options_.writable_view = MakeWritableMountView;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  v1::JobInput Input(const std::string& rel, v1::DataMode mode) const {
    v1::JobInput in;
    in.set_type(absl::EndsWith(rel, ".txt") ? v1::DATA_TYPE_URI_FILE : v1::DATA_TYPE_URI_FOLDER);
    in.set_path((dir_ / "src" / rel).string());
    in.set_mode(mode);
    return in;
  }

  // Runs `body` in a forked child with a mount namespace of its own (its mounts private to it);
  // returns the child's exit status, kNoNamespace when the host does not allow one.
  static int InOwnMountNamespace(const std::function<void()>& body) {
    pid_t pid = fork();
    if (pid == 0) {
      if (unshare(CLONE_NEWNS) != 0) _exit(kNoNamespace);
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(kNoNamespace);
      body();
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  fs::path dir_;
  storage::StageOptions options_;
};

// ro_mount: a read-only bind mount; writes fail with EROFS, and a second staging replaces the
// first view (the mount an earlier try left).
TEST_F(MountViewTest, RoMountIsAReadOnlyBindMountInAPrivateNamespace) {
  const int st = InOwnMountNamespace([&] {
    for (const char* rel : {"folder", "one.txt"}) {
      const fs::path target = dir_ / "inputs" / rel;
      for (int attempt = 0; attempt < 2; ++attempt) {
        auto r =
            storage::StageInput("d", Input(rel, v1::DATA_MODE_RO_MOUNT), target.string(), options_);
        CHILD_CHECK(r.ok(), r.status().ToString());
        CHILD_CHECK(r->warnings.empty(), r->warnings.front());
        CHILD_CHECK(absl::StrContains(r->how, "read-only bind mount of"), r->how);
      }
      CHILD_CHECK(!fs::is_symlink(target), target.string());
      struct statvfs sv;
      CHILD_CHECK(statvfs(target.c_str(), &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0,
                  "not mounted read-only: ", target.string());
    }
    const fs::path folder = dir_ / "inputs/folder";
    CHILD_CHECK(ReadFile(folder / "a.txt") == "hello a", "a.txt");
    CHILD_CHECK(ReadFile(folder / "sub/b.txt") == "hello b", "sub/b.txt");
    CHILD_CHECK(ReadFile(dir_ / "inputs/one.txt") == "one", "one.txt");
    CHILD_CHECK(CannotWriteIn(folder), "a write went through the read-only view");
    CHILD_CHECK(CannotWriteIn(folder / "sub"), "a write went through the read-only view (sub/)");
  });
  if (st == kNoNamespace) {
    GTEST_SKIP() << "this host does not allow a private mount namespace (unshare(CLONE_NEWNS) or "
                    "making / private failed: run as root, or with CAP_SYS_ADMIN)";
  }
  EXPECT_EQ(st, 0) << "see the child's message above";
}

// rw_mount: a writable bind mount; the job's writes reach the data.
TEST_F(MountViewTest, RwMountIsAWritableBindMountInAPrivateNamespace) {
  const int st = InOwnMountNamespace([&] {
    const fs::path target = dir_ / "inputs/rw";
    auto r = storage::StageInput("d", Input("folder", v1::DATA_MODE_RW_MOUNT), target.string(),
                                 options_);
    CHILD_CHECK(r.ok(), r.status().ToString());
    CHILD_CHECK(r->warnings.empty(), r->warnings.front());
    CHILD_CHECK(
        r->how == absl::StrCat("bind mount of ", (dir_ / "src/folder").string(), " (writable)"),
        r->how);
    CHILD_CHECK(!fs::is_symlink(target), target.string());
    CHILD_CHECK(ReadFile(target / "a.txt") == "hello a", "a.txt");
    WriteFile(target / "written.txt", "w");
    CHILD_CHECK(ReadFile(dir_ / "src/folder/written.txt") == "w",
                "the write did not reach the data");
  });
  if (st == kNoNamespace) {
    GTEST_SKIP() << "this host does not allow a private mount namespace (unshare(CLONE_NEWNS) or "
                    "making / private failed: run as root, or with CAP_SYS_ADMIN)";
  }
  EXPECT_EQ(st, 0) << "see the child's message above";
}

// Where mounting is refused, both views fall back to a symlink; ro_mount's warning says why and
// that the job can write through it.
TEST_F(MountViewTest, WithoutPermissionToMountTheViewsAreSymlinks) {
  pid_t pid = fork();
  if (pid == 0) {
    // A namespace of its own where possible (so a mount that unexpectedly works stays private),
    // then no CAP_SYS_ADMIN: every mount fails with EPERM.
    if (unshare(CLONE_NEWNS) == 0) (void)mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3] = {};
    if (syscall(SYS_capget, &header, caps) != 0) _exit(kNoNamespace);
    caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
    if (syscall(SYS_capset, &header, caps) != 0) _exit(kNoNamespace);

    const fs::path ro = dir_ / "inputs/ro";
    auto r =
        storage::StageInput("d", Input("folder", v1::DATA_MODE_RO_MOUNT), ro.string(), options_);
    CHILD_CHECK(r.ok(), r.status().ToString());
    CHILD_CHECK(r->warnings.size() == 1, r->warnings.size(), " warnings");
    const std::string src = (dir_ / "src/folder").string();
    const std::string want = absl::StrCat(
        "input 'd' (", src,
        "): ro_mount: a read-only bind mount is not possible here (bind mount failed: ",
        std::strerror(EPERM), "); ", ro.string(), " is a symlink to ", src,
        ", which the job can write to — treat it as read-only");
    CHILD_CHECK(r->warnings[0] == want, r->warnings[0]);
    CHILD_CHECK(r->how == absl::StrCat("symlink to ", src), r->how);
    CHILD_CHECK(fs::is_symlink(ro) && ReadFile(ro / "a.txt") == "hello a", ro.string());

    const fs::path rw = dir_ / "inputs/rw";
    r = storage::StageInput("d", Input("folder", v1::DATA_MODE_RW_MOUNT), rw.string(), options_);
    CHILD_CHECK(r.ok(), r.status().ToString());
    CHILD_CHECK(r->warnings.empty(), r->warnings.front());
    CHILD_CHECK(r->how == absl::StrCat("symlink of ", src, " (writable)"), r->how);
    CHILD_CHECK(fs::is_symlink(rw), rw.string());
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  if (WEXITSTATUS(st) == kNoNamespace) {
    GTEST_SKIP() << "cannot read or drop this process's capabilities (capget / capset failed)";
  }
  EXPECT_EQ(WEXITSTATUS(st), 0) << "see the child's message above";
}

// A folder that is not empty at the target is never mounted over or removed.
TEST_F(MountViewTest, ANonEmptyTargetIsRefusedAndKept) {
  WriteFile(dir_ / "inputs/busy/keep.txt", "mine");
  auto r = MakeReadOnlyMountView((dir_ / "src/folder").string(), (dir_ / "inputs/busy").string());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(r.status().message(),
            absl::StrCat("ro_mount: ", (dir_ / "inputs/busy").string(),
                         " already exists and is not empty; remove it and try again"));
  EXPECT_EQ(ReadFile(dir_ / "inputs/busy/keep.txt"), "mine");
}

}  // namespace
}  // namespace kubetrain::agent
