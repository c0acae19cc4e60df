// End to end through a real `kubetrain workspace serve`: local jobs submitted with
// `--workspace grpc://127.0.0.1:PORT` (supervisor, agents and CLI all over gRPC, with the server's
// token and per-job tokens) look the same in `job show / stream / metrics / logs` as on the
// embedded workspace; a server killed (SIGKILL) and restarted in the middle of a job loses and
// duplicates nothing; calls without the right token are refused and logged.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

const std::string kScript =
    std::string(KUBETRAIN_SOURCE_DIR) + "/tests/integration/scripts/lines_and_metrics.py";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What differs between two runs of the same job by nature: where its files are, when it ran,
// how long it took, its pids.
std::string Normalize(std::string s, const std::vector<std::string>& roots) {
  for (const std::string& root : roots) {
    for (size_t at = s.find(root); at != std::string::npos; at = s.find(root, at)) {
      s.replace(at, root.size(), "<DIR>");
    }
  }
  static const std::vector<std::pair<std::regex, std::string>> kRules = {
      // A checkpoint's save time (JSON leaves it out when it is 0 ms).
      {std::regex(R"re(\n *"duration_ms": "?\d+"?,?)re"), ""},
      {std::regex(R"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?Z?)"), "<TIME>"},
      {std::regex(R"(\b\d+(\.\d+)? ?(ns|us|µs|ms|s|m|h)\b)"), "<DUR>"},
      {std::regex(R"(pid \d+)"), "pid <PID>"},
      // JSON and YAML fields.
      {std::regex(R"re(("?)(pid|supervisor_pid|\w+_unix_ms|duration_ms)("?): ?"?\d+(\.\d+)?"?)re"),
       "$1$2$3: <N>"},
      // The ranks table of `job show`: RANK INSTANCE LOCAL STATUS EXIT PID.
      {std::regex(R"((\n\s+\d+\s+\d+\s+\d+\s+\w+\s+-?\d+\s+)\d+)"), "$1<PID>"},
      {std::regex(R"(elapsed [^\n]*)"), "elapsed <DUR>"},
      // Table columns as wide as their widest (normalized) cell.
      {std::regex(R"(  +)"), "  "},
  };
  for (const auto& [re, with] : kRules) s = std::regex_replace(s, re, with);
  return s;
}

// A `kubetrain workspace serve` process.
class Server {
 public:
  Server(fs::path ws, fs::path log) : ws_(std::move(ws)), log_(std::move(log)) {}
  ~Server() { Kill(); }

  // Starts on `port` (0: any); false when it did not come up within 10 s. `extra`: more flags.
  bool Start(int port = 0, const std::string& extra = "") {
    for (int attempt = 0; attempt < 50; ++attempt) {  // after a kill the port may take a moment
      fs::remove(log_);
      CommandResult r =
          testing::RunCommand(testing::KubetrainCli() + "--workspace " + ws_.string() +
                              " workspace serve --listen 127.0.0.1:" + std::to_string(port) + " " +
                              extra + " >" + log_.string() + " 2>&1 & echo $!");
      pid_ = std::atoi(r.output.c_str());
      auto deadline = Clock::now() + std::chrono::seconds(10);
      while (Clock::now() < deadline) {
        std::string text = ReadFile(log_);
        std::smatch m;
        if (std::regex_search(text, m, std::regex(R"(at (grpcs?)://127\.0\.0\.1:(\d+))"))) {
          scheme_ = m[1];
          port_ = std::stoi(m[2]);
          return true;
        }
        if (kill(pid_, 0) != 0 || text.find("cannot serve") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      Kill();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void Kill() {
    if (pid_ > 0) kill(pid_, SIGKILL);
    pid_ = -1;
  }
  std::string location() const { return scheme_ + "://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::string log() const { return ReadFile(log_); }

 private:
  fs::path ws_, log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string scheme_ = "grpc";
};

class WorkspaceServerJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-wss-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "home-embedded");
    fs::create_directories(dir_ / "home-grpc");
    server_ = std::make_unique<Server>(dir_ / "ws-served", dir_ / "server.log");
  }
  void TearDown() override {
    server_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // The CLI on the embedded workspace dir/ws-embedded.
  CommandResult Embedded(const std::string& args) {
    return testing::RunCommand("HOME=" + (dir_ / "home-embedded").string() +
                               " KUBETRAIN_WORKSPACE=" + (dir_ / "ws-embedded").string() + " " +
                               testing::KubetrainCli() + args);
  }
  // The CLI on the workspace server, with its token file.
  CommandResult Remote(const std::string& args, const std::string& token_env = "") {
    std::string token = token_env.empty() ? "KUBETRAIN_WORKSPACE_TOKEN_FILE=" +
                                                (dir_ / "ws-served" / "server.token").string()
                                          : token_env;
    return testing::RunCommand("HOME=" + (dir_ / "home-grpc").string() +
                               " KUBETRAIN_WORKSPACE=" + server_->location() + " " + token + " " +
                               testing::KubetrainCli() + args);
  }
  std::string WriteJob(const std::string& name, const std::string& command) {
    fs::path p = dir_ / (name + ".yml");
    std::ofstream(p) << "name: " << name << "\nexperiment_name: compare\ncommand: " << command
                     << "\n";
    return p.string();
  }
  std::vector<std::string> Roots() const {
    return {(dir_ / "home-embedded" / ".kubetrain").string(), (dir_ / "ws-embedded").string(),
            (dir_ / "home-grpc" / ".kubetrain").string(), (dir_ / "ws-served").string()};
  }

  fs::path dir_;
  std::unique_ptr<Server> server_;
};

TEST_F(WorkspaceServerJobsTest, LocalJobOverGrpcLooksTheSameAsOnTheEmbeddedWorkspace) {
  ASSERT_TRUE(server_->Start()) << server_->log();
  EXPECT_THAT(server_->log(), HasSubstr("access token (shown this once"));
  const std::string ok_job = WriteJob("cmp", "/usr/bin/python3 " + kScript + " 40");
  const std::string failing_job = WriteJob("cmp-fail", "/usr/bin/python3 " + kScript + " 12 0 3");
  const std::string checkpoint_job = WriteJob("cmp-ckpt", std::string(SAVE_CHECKPOINTS_BIN) + " 4");

  for (bool remote : {false, true}) {
    auto kt = [&](const std::string& a) { return remote ? Remote(a) : Embedded(a); };
    CommandResult ok = kt("job create -f " + ok_job + " --stream");
    EXPECT_EQ(ok.exit_code, 0) << ok.output;
    EXPECT_THAT(ok.output, HasSubstr("[rank 0] line 39"));
    EXPECT_THAT(ok.output, HasSubstr("[rank 0] done: 40 lines"));
    EXPECT_THAT(ok.output, HasSubstr("job cmp Completed"));
    CommandResult failed = kt("job create -f " + failing_job + " --stream");
    EXPECT_EQ(failed.exit_code, 1) << failed.output;
    EXPECT_THAT(failed.output, HasSubstr("exited with code 3"));
    CommandResult checkpoints = kt("job create -f " + checkpoint_job + " --stream");
    EXPECT_EQ(checkpoints.exit_code, 0) << checkpoints.output;
  }

  const std::vector<std::string> commands = {
      "job list",
      "job show cmp",
      "job show cmp -o json",
      "job show cmp-fail",
      "job show cmp-fail -o yaml",
      "job stream cmp",
      "job stream cmp-fail",
      "job logs cmp",
      "job logs cmp --rank 0",
      "job logs cmp -f",
      "job logs cmp-fail",
      "job metrics cmp",
      "job metrics cmp -o json",
      "job metrics cmp -o csv",
      "job metrics cmp --key loss",
      "job metrics cmp --key loss -o csv",
      "job metrics cmp --key loss -o json",
      "job metrics cmp --key nope",
      "job checkpoints cmp-ckpt",
      "job checkpoints cmp-ckpt -o json",
      "job show cmp-ckpt",
      "job show no-such-job",
      "job cancel cmp",
  };
  for (const std::string& c : commands) {
    CommandResult embedded = Embedded(c);
    CommandResult remote = Remote(c);
    EXPECT_EQ(embedded.exit_code, remote.exit_code) << c << "\n"
                                                    << embedded.output << remote.output;
    std::string e = Normalize(embedded.output, Roots());
    std::string r = Normalize(remote.output, Roots());
    EXPECT_EQ(e, r) << "`kubetrain " << c << "` differs between the embedded workspace and "
                    << "the workspace server";
  }
  // Sanity: the comparison compared something.
  EXPECT_THAT(Remote("job metrics cmp --key loss -o csv").output, HasSubstr("39,0.025"));
  EXPECT_THAT(Remote("job logs cmp").output, HasSubstr("[rank 0] line 6"));
  EXPECT_THAT(Remote("job checkpoints cmp-ckpt").output, HasSubstr("step-40"));
  // The agents got a job token, never the server's: the served workspace never refused them, and
  // no token appears in any file the job left.
  EXPECT_THAT(server_->log(), ::testing::Not(HasSubstr("refused")));
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "home-grpc")) {
    if (!e.is_regular_file()) continue;
    std::string text = ReadFile(e.path());
    EXPECT_EQ(text.find("kt1."), std::string::npos) << e.path();
    EXPECT_EQ(text.find("ktjob."), std::string::npos) << e.path();
  }
}

TEST_F(WorkspaceServerJobsTest, ServerKilledAndRestartedMidJobLosesAndDuplicatesNothing) {
  ASSERT_TRUE(server_->Start()) << server_->log();
  const int kLines = 400;
  const std::string job =
      WriteJob("restart", "/usr/bin/python3 " + kScript + " " + std::to_string(kLines) + " 0.01");
  CommandResult created = Remote("job create -f " + job);
  ASSERT_EQ(created.exit_code, 0) << created.output;

  // Once some lines are stored, kill the server hard and bring it back on the same port.
  auto lines_stored = [&] {
    CommandResult logs = Remote("job logs restart");
    return std::count(logs.output.begin(), logs.output.end(), '\n');
  };
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (lines_stored() < 60 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const auto at_kill = lines_stored();
  ASSERT_GE(at_kill, 60) << Remote("job show restart").output;
  const int port = server_->port();
  server_->Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(server_->Start(port)) << server_->log();
  // The token was shown at the first start only.
  EXPECT_THAT(server_->log(), HasSubstr("access token: in "));
  EXPECT_THAT(server_->log(), ::testing::Not(HasSubstr("kt1.")));

  std::string state;
  deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    nlohmann::json shown =
        nlohmann::json::parse(Remote("job show restart -o json").output, nullptr, false);
    state = shown.is_object() ? shown["status"].value("state", "") : "";
    if (state == "JOB_STATE_COMPLETED" || state == "JOB_STATE_FAILED" ||
        state == "JOB_STATE_CANCELED") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(state, "JOB_STATE_COMPLETED") << Remote("job show restart").output
                                          << ReadFile(dir_ /
                                                      "home-grpc/.kubetrain/jobs/restart/"
                                                      "supervisor.log");
  EXPECT_LT(at_kill, kLines) << "the job was over before the server went down";

  // Every line exactly once.
  CommandResult logs = Remote("job logs restart --rank 0");
  ASSERT_EQ(logs.exit_code, 0) << logs.output;
  std::map<std::string, int> seen;
  std::istringstream in(logs.output);
  for (std::string l; std::getline(in, l);) ++seen[l];
  for (int i = 0; i < kLines; ++i) {
    EXPECT_EQ(seen["[rank 0] line " + std::to_string(i)], 1) << "line " << i;
  }
  EXPECT_EQ(seen["[rank 0] done: 400 lines"], 1);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kLines + 1)) << logs.output;
  // Every point exactly once.
  CommandResult csv = Remote("job metrics restart --key loss -o csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  std::set<std::string> steps;
  int rows = 0;
  std::istringstream points(csv.output);
  std::string header;
  std::getline(points, header);
  for (std::string row; std::getline(points, row); ++rows)
    steps.insert(row.substr(0, row.find(',')));
  EXPECT_EQ(rows, kLines);
  EXPECT_EQ(steps.size(), static_cast<size_t>(kLines));
}

// The agents reach the server with the job's token, which the ranks never see (nor the server's).
TEST_F(WorkspaceServerJobsTest, RanksDoNotSeeAnyWorkspaceToken) {
  ASSERT_TRUE(server_->Start()) << server_->log();
  const std::string job =
      WriteJob("env", "sh -c 'echo tokens=$(env | grep -c KUBETRAIN_WORKSPACE_TOKEN)'");
  CommandResult run = Remote(
      "job create -f " + job + " --stream",
      "KUBETRAIN_WORKSPACE_TOKEN=$(cat " + (dir_ / "ws-served" / "server.token").string() + ")");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("[rank 0] tokens=0"));
  EXPECT_THAT(server_->log(), ::testing::Not(HasSubstr("refused")));
}

// `workspace serve --tls-cert --tls-key` with a self-signed certificate: the CLI, the supervisor
// and the agents all speak TLS (grpcs://, the certificate trusted through KUBETRAIN_WORKSPACE_CA).
TEST_F(WorkspaceServerJobsTest, JobOverTls) {
  const fs::path key = dir_ / "key.pem", cert = dir_ / "cert.pem";
  CommandResult made = testing::RunCommand(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
      key.string() + " -out " + cert.string() +
      " -addext subjectAltName=IP:127.0.0.1,DNS:localhost");
  ASSERT_EQ(made.exit_code, 0) << "openssl (Debian package openssl) is needed: " << made.output;
  ASSERT_TRUE(server_->Start(0, "--tls-cert " + cert.string() + " --tls-key " + key.string()))
      << server_->log();
  ASSERT_THAT(server_->location(), ::testing::StartsWith("grpcs://"));
  const std::string job = WriteJob("tls", "/usr/bin/python3 " + kScript + " 20");
  CommandResult run = Remote(
      "job create -f " + job + " --stream",
      "KUBETRAIN_WORKSPACE_CA=" + cert.string() +
          " KUBETRAIN_WORKSPACE_TOKEN_FILE=" + (dir_ / "ws-served" / "server.token").string());
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("[rank 0] done: 20 lines"));
  CommandResult metrics = Remote(
      "job metrics tls -o json",
      "KUBETRAIN_WORKSPACE_CA=" + cert.string() +
          " KUBETRAIN_WORKSPACE_TOKEN_FILE=" + (dir_ / "ws-served" / "server.token").string());
  EXPECT_THAT(metrics.output, HasSubstr("\"count\": 20")) << metrics.output;
  // Without the CA the certificate is not trusted.
  CommandResult untrusted = Remote("job list");
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.output, HasSubstr("cannot reach the workspace server at grpcs://"));
}

TEST_F(WorkspaceServerJobsTest, CommandsWithoutTheRightTokenAreRefusedAndLogged) {
  ASSERT_TRUE(server_->Start()) << server_->log();
  CommandResult none = Remote("job list", "KUBETRAIN_WORKSPACE_TOKEN=");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_THAT(none.output, HasSubstr("requires a token"));
  CommandResult wrong = Remote("job list", "KUBETRAIN_WORKSPACE_TOKEN=kt1.nottheone");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.output, HasSubstr("not valid for this workspace server"));
  std::string log = server_->log();
  EXPECT_THAT(log, HasSubstr("refused ListJobs from"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("nottheone")));
  CommandResult right = Remote("job list");
  EXPECT_EQ(right.exit_code, 0) << right.output;
  // --workspace does what KUBETRAIN_WORKSPACE does.
  CommandResult flag = testing::RunCommand(
      "KUBETRAIN_WORKSPACE_TOKEN_FILE=" + (dir_ / "ws-served" / "server.token").string() + " " +
      testing::KubetrainCli() + "--workspace " + server_->location() + " job list -o json");
  EXPECT_EQ(flag.exit_code, 0) << flag.output;
  EXPECT_EQ(flag.output, "[]\n");
  // Serving a server is a usage error; an unreachable one says where it looked.
  server_->Kill();
  CommandResult gone = Remote("job list");
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.output, HasSubstr("cannot reach the workspace server at grpc://127.0.0.1:"));
}

}  // namespace
}  // namespace kubetrain
