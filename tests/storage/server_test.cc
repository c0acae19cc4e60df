// The workspace server on its own: tokens, refusals (and that they are logged), per-job tokens,
// TLS with a self-signed certificate made here with openssl, and a server restarted while agents
// (WriteSpool over the gRPC client) stream to it: every point and line is stored exactly once.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/storage/spool.h"
#include "kubetrain/storage/tokens.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/storage/workspace_server.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace kubetrain::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Captures what spdlog's default logger prints while it lives.
class LogCapture {
 public:
  LogCapture() {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_, /*force_flush=*/true);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() {
    spdlog::default_logger()->flush();
    std::lock_guard<std::mutex> lock(mu_);  // the sink writes under its own lock; see Write
    return out_.str();
  }

 private:
  // Written by the server's threads (through the sink), read by the test: serialize both.
  class LockedBuf : public std::stringbuf {
   public:
    explicit LockedBuf(std::mutex* mu) : mu_(mu) {}
    std::streamsize xsputn(const char* s, std::streamsize n) override {
      std::lock_guard<std::mutex> lock(*mu_);
      return std::stringbuf::xsputn(s, n);
    }

   private:
    std::mutex* mu_;
  };
  std::mutex mu_;
  LockedBuf buf_{&mu_};
  std::ostream stream_{&buf_};
  struct View {
    LockedBuf* buf;
    std::string str() const { return buf->str(); }
  } out_{&buf_};
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-server-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ws = OpenEmbeddedWorkspace(dir_ + "/ws");
    ASSERT_TRUE(ws.ok()) << ws.status();
    embedded_ = std::move(*ws);
    auto token = GenerateServerToken();
    ASSERT_TRUE(token.ok());
    token_ = *token;
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Milliseconds(100));
    server_.reset();
    embedded_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(WorkspaceServerOptions options = {}) {
    if (options.listen == "127.0.0.1:7070") options.listen = "127.0.0.1:0";
    options.token = token_;
    auto server = StartWorkspaceServer(embedded_.get(), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::unique_ptr<Workspace> Client(const std::string& token, const std::string& location = "",
                                    std::string ca = "",
                                    absl::Duration connect_timeout = absl::Seconds(3)) {
    WorkspaceConnectOptions options;
    options.token = token;
    options.ca_file = std::move(ca);
    options.connect_timeout = connect_timeout;
    auto ws = OpenGrpcWorkspace(location.empty() ? server_->location() : location, options);
    EXPECT_TRUE(ws.ok()) << ws.status();
    return ws.ok() ? std::move(*ws) : nullptr;
  }

  static v1::JobRecord Job(const std::string& name) {
    v1::JobRecord r;
    r.mutable_spec()->set_name(name);
    r.mutable_status()->set_state(v1::JOB_STATE_RUNNING);
    return r;
  }
  static v1::LogLine Line(const std::string& job, int instance, int64_t seq,
                          const std::string& text) {
    v1::LogLine l;
    l.set_job(job);
    l.set_instance(instance);
    l.set_rank(instance);
    l.set_sequence(seq);
    l.set_timestamp_ns(seq);
    l.set_text(text);
    return l;
  }
  static v1::MetricBatch Batch(const std::string& job, const std::string& source, int64_t seq,
                               int points) {
    v1::MetricBatch b;
    b.set_job(job);
    b.set_source(source);
    b.set_sequence(seq);
    for (int i = 0; i < points; ++i) {
      v1::Metric* m = b.add_metrics();
      m->set_key("loss");
      m->set_step(seq * points + i);
      m->set_value(1.0);
    }
    return b;
  }

  std::string dir_;
  std::string token_;
  std::unique_ptr<Workspace> embedded_;
  std::unique_ptr<WorkspaceServer> server_;
};

// --- tokens -----------------------------------------------------------------------------------

TEST(TokensTest, ServerAndJobTokensAreRecognizedAndOthersAreNot) {
  auto server = GenerateServerToken();
  ASSERT_TRUE(server.ok());
  auto other = GenerateServerToken();
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*server, *other);
  EXPECT_THAT(*server, ::testing::MatchesRegex("kt1\\.[0-9a-f]{64}"));

  EXPECT_EQ(IdentifyToken(*server, *server).kind, TokenIdentity::kServer);
  EXPECT_EQ(IdentifyToken(*server, *other).kind, TokenIdentity::kInvalid);
  EXPECT_EQ(IdentifyToken(*server, "").kind, TokenIdentity::kInvalid);
  EXPECT_EQ(IdentifyToken(*server, "Bearer").kind, TokenIdentity::kInvalid);

  std::string job = MakeJobToken(*server, "train-1");
  TokenIdentity id = IdentifyToken(*server, job);
  EXPECT_EQ(id.kind, TokenIdentity::kJob);
  EXPECT_EQ(id.job, "train-1");
  EXPECT_EQ(MakeJobToken(*server, "train-1"), job);  // stateless: the same every time
  // Signed with another server's token, or with the job name swapped: invalid.
  EXPECT_EQ(IdentifyToken(*server, MakeJobToken(*other, "train-1")).kind, TokenIdentity::kInvalid);
  std::string forged = MakeJobToken(*server, "train-2");
  forged = forged.substr(0, forged.rfind('.')) + job.substr(job.rfind('.'));
  EXPECT_EQ(IdentifyToken(*server, forged).kind, TokenIdentity::kInvalid);
  EXPECT_EQ(IdentifyToken(*server, "ktjob.zz.00").kind, TokenIdentity::kInvalid);
}

TEST(TokensTest, ServerTokenFileIsCreatedOnceOwnerOnly) {
  char tmpl[] = "/tmp/kubetrain-token-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string file = std::string(tmpl) + "/server.token";
  bool created = false;
  auto first = LoadOrCreateServerToken(file, &created);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(created);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto second = LoadOrCreateServerToken(file, &created);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(*first, *second);
  chmod(file.c_str(), 0644);
  auto exposed = LoadOrCreateServerToken(file, &created);
  EXPECT_EQ(exposed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(exposed.status().message(), HasSubstr("chmod 600"));
  std::filesystem::remove_all(tmpl);
}

// --- refusals ---------------------------------------------------------------------------------

TEST_F(ServerTest, CallsWithoutATokenAreRefusedAndLogged) {
  Start();
  LogCapture log;
  auto anonymous = Client("");
  ASSERT_NE(anonymous, nullptr);
  auto job = anonymous->GetJob("j");
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnauthenticated) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr("requires a token"));
  EXPECT_EQ(anonymous->AppendLogs({Line("j", 0, 0, "x")}).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous->ListJobs().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(server_->refused(), 3);
  std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("refused GetJob from"));
  EXPECT_THAT(text, HasSubstr("refused AppendLogs from"));
  EXPECT_THAT(text, HasSubstr("requires a token"));
  // Nothing was stored.
  EXPECT_TRUE(embedded_->ReadLogs({.job = "j"})->lines.empty());
}

TEST_F(ServerTest, CallsWithAWrongTokenAreRefusedAndLoggedWithoutTheToken) {
  Start();
  LogCapture log;
  auto other = GenerateServerToken();
  ASSERT_TRUE(other.ok());
  for (const std::string& wrong : {*other, std::string("not-a-token"), MakeJobToken(*other, "j")}) {
    auto client = Client(wrong);
    ASSERT_NE(client, nullptr);
    absl::Status s = client->IngestMetrics(Batch("j", "s", 1, 3));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
    EXPECT_THAT(s.message(), HasSubstr("not valid"));
    EXPECT_THAT(log.text(), Not(HasSubstr(wrong)));  // a token never reaches the log
  }
  EXPECT_EQ(server_->refused(), 3);
  EXPECT_THAT(log.text(), HasSubstr("refused IngestMetrics from"));
  EXPECT_TRUE(embedded_->MetricSummary("j")->empty());
}

TEST_F(ServerTest, AJobTokenWritesOnlyItsOwnJob) {
  Start();
  auto admin = Client(token_);
  ASSERT_NE(admin, nullptr);
  ASSERT_TRUE(admin->CreateJob(Job("mine")).ok());
  ASSERT_TRUE(admin->CreateJob(Job("theirs")).ok());
  auto token = admin->IssueJobToken("mine");
  ASSERT_TRUE(token.ok()) << token.status();
  LogCapture log;
  auto agent = Client(*token);
  ASSERT_NE(agent, nullptr);

  // Its own job: everything an agent does.
  v1::InstanceStatus inst;
  inst.set_index(0);
  inst.set_state(v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(agent->UpdateInstanceStatus("mine", inst).ok());
  EXPECT_TRUE(agent->AppendLogs({Line("mine", 0, 0, "hello")}).ok());
  EXPECT_TRUE(agent->IngestMetrics(Batch("mine", "a", 1, 2)).ok());
  EXPECT_TRUE(agent->GetJob("mine").ok());
  EXPECT_EQ(agent->MetricHistory("mine", "loss")->size(), 2u);
  v1::CheckpointRecord ckpt;
  ckpt.set_job("mine");
  ckpt.set_step(10);
  EXPECT_TRUE(agent->RecordCheckpoint(ckpt).ok());
  EXPECT_EQ(agent->GetDatastore("none").status().code(), absl::StatusCode::kNotFound);

  // Another job's data, or what only the launcher does: PermissionDenied.
  const auto denied = absl::StatusCode::kPermissionDenied;
  EXPECT_EQ(agent->UpdateInstanceStatus("theirs", inst).code(), denied);
  EXPECT_EQ(agent->AppendLogs({Line("mine", 0, 1, "ok"), Line("theirs", 0, 0, "sneaky")}).code(),
            denied);
  EXPECT_EQ(agent->IngestMetrics(Batch("theirs", "a", 1, 2)).code(), denied);
  EXPECT_EQ(agent->GetJob("theirs").status().code(), denied);
  EXPECT_EQ(agent->ReadLogs({.job = "theirs"}).status().code(), denied);
  ckpt.set_job("theirs");
  EXPECT_EQ(agent->RecordCheckpoint(ckpt).code(), denied);
  EXPECT_EQ(agent->ListJobs().status().code(), denied);
  EXPECT_EQ(agent->CreateJob(Job("new")).status().code(), denied);
  EXPECT_EQ(agent->IssueJobToken("theirs").status().code(), denied);
  EXPECT_EQ(agent->ListDatastores().status().code(), denied);
  auto update = agent->UpdateJob("mine", [](const auto&, v1::JobRecord& r) {
    r.mutable_status()->set_state(v1::JOB_STATE_COMPLETED);
    return absl::OkStatus();
  });
  EXPECT_EQ(update.status().code(), denied);
  EXPECT_THAT(log.text(), HasSubstr("refused UpdateInstanceStatus from"));
  EXPECT_THAT(log.text(), HasSubstr("the token of job \"mine\" may not"));

  // Nothing reached the other job.
  auto theirs = admin->GetJob("theirs");
  ASSERT_TRUE(theirs.ok());
  EXPECT_EQ(theirs->status().instances_size(), 0);
  EXPECT_TRUE(admin->ReadLogs({.job = "theirs"})->lines.empty());
  EXPECT_TRUE(admin->MetricSummary("theirs")->empty());
  EXPECT_TRUE(admin->ListCheckpoints("theirs")->empty());
  EXPECT_EQ(admin->GetJob("mine")->status().state(), v1::JOB_STATE_RUNNING);
  // A message with a line of another job is refused whole: only "hello" is stored.
  EXPECT_EQ(admin->ReadLogs({.job = "mine"})->lines.size(), 1u);
}

TEST_F(ServerTest, ServingNeedsATokenAndAnAddress) {
  WorkspaceServerOptions options;
  options.listen = "127.0.0.1:0";
  EXPECT_EQ(StartWorkspaceServer(embedded_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.token = token_;
  options.listen = "no-port";
  EXPECT_EQ(StartWorkspaceServer(embedded_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.listen = "127.0.0.1:0";
  options.tls_cert_file = "/nonexistent.pem";
  EXPECT_EQ(StartWorkspaceServer(embedded_.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);  // no key
  // A port that is taken.
  Start();
  options.tls_cert_file.clear();
  options.listen = absl::StrCat("127.0.0.1:", server_->port());
  EXPECT_EQ(StartWorkspaceServer(embedded_.get(), options).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ServerTest, UnreachableServerIsUnavailableNamingTheLocation) {
  WorkspaceConnectOptions options;
  options.token = token_;
  options.connect_timeout = absl::Milliseconds(300);
  auto ws = OpenGrpcWorkspace("grpc://127.0.0.1:1", options);
  ASSERT_TRUE(ws.ok());
  auto jobs = (*ws)->ListJobs();
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(jobs.status().message(), HasSubstr("grpc://127.0.0.1:1"));
  // With the credentials from the environment.
  setenv(kWorkspaceTokenEnv, "kt1.from-the-environment", 1);
  Start();
  auto from_env = OpenWorkspace(server_->location());
  ASSERT_TRUE(from_env.ok());
  EXPECT_THAT((*from_env)->ListJobs().status().message(), HasSubstr("not valid"));
  unsetenv(kWorkspaceTokenEnv);
  setenv(kWorkspaceTokenFileEnv, "/nonexistent/token", 1);
  EXPECT_EQ(OpenWorkspace(server_->location()).status().code(), absl::StatusCode::kInvalidArgument);
  unsetenv(kWorkspaceTokenFileEnv);
  EXPECT_EQ(OpenWorkspace("grpc://nohostport", options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenWorkspace("s3://bucket", options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- TLS --------------------------------------------------------------------------------------

TEST_F(ServerTest, TlsWithASelfSignedCertificate) {
  const std::string key = dir_ + "/key.pem", cert = dir_ + "/cert.pem";
  std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout ", key,
      " -out ", cert, " -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl (Debian package openssl) is needed";
  WorkspaceServerOptions options;
  options.tls_cert_file = cert;
  options.tls_key_file = key;
  Start(options);
  EXPECT_THAT(server_->location(), ::testing::StartsWith("grpcs://127.0.0.1:"));

  auto secure = Client(token_, "", cert);
  ASSERT_NE(secure, nullptr);
  ASSERT_TRUE(secure->CreateJob(Job("tls")).ok());
  EXPECT_TRUE(secure->AppendLogs({Line("tls", 0, 0, "over TLS")}).ok());
  EXPECT_EQ(secure->ReadLogs({.job = "tls"})->lines.at(0).text(), "over TLS");

  // Without the CA (system roots only) the certificate is not trusted; plain TCP is not spoken.
  auto untrusted = Client(token_, "", "", absl::Milliseconds(500));
  EXPECT_EQ(untrusted->GetJob("tls").status().code(), absl::StatusCode::kUnavailable);
  auto plain = Client(token_, absl::StrCat("grpc://127.0.0.1:", server_->port()), "",
                      absl::Milliseconds(500));
  EXPECT_EQ(plain->GetJob("tls").status().code(), absl::StatusCode::kUnavailable);
  // TLS does not replace the token.
  auto anonymous = Client("", "", cert);
  EXPECT_EQ(anonymous->GetJob("tls").status().code(), absl::StatusCode::kUnauthenticated);
}

// --- restart ----------------------------------------------------------------------------------

// Eight simulated agents stream log lines and metric batches through their spools; the server is
// shut down (open streams canceled mid-way) and started again on the same port twice while they
// do. Afterwards every line and every point is stored exactly once.
TEST_F(ServerTest, ServerRestartedMidJobStoresEveryPointAndLineExactlyOnce) {
  Start();
  const int port = server_->port();
  auto admin = Client(token_);
  ASSERT_TRUE(admin->CreateJob(Job("restart")).ok());
  auto token = admin->IssueJobToken("restart");
  ASSERT_TRUE(token.ok());

  constexpr int kAgents = 8;
  constexpr int kLines = 3000;   // per agent
  constexpr int kBatches = 150;  // per agent
  constexpr int kPointsPerBatch = 20;
  std::atomic<int> progress{0};
  std::vector<std::thread> agents;
  std::vector<SpoolStats> stats(kAgents);
  for (int a = 0; a < kAgents; ++a) {
    agents.emplace_back([&, a] {
      WorkspaceConnectOptions options;
      options.token = *token;
      // Even agents' clients wait out the outage inside each call; odd ones give up quickly and
      // leave the retrying to their spools.
      options.connect_timeout = a % 2 == 0 ? absl::Seconds(30) : absl::Milliseconds(100);
      auto client = OpenGrpcWorkspace(absl::StrCat("grpc://127.0.0.1:", port), options);
      ASSERT_TRUE(client.ok());
      SpoolOptions spool_options;
      spool_options.directory = absl::StrCat(dir_, "/spool-", a);
      spool_options.memory_bytes = 64 << 10;  // small: the outage spills to disk
      spool_options.retry_max = absl::Milliseconds(200);
      spool_options.max_lines_per_send = 200;
      WriteSpool logs(client->get(), spool_options);
      spool_options.directory += "-metrics";
      WriteSpool metrics(client->get(), spool_options);
      for (int i = 0; i < kLines; ++i) {
        ASSERT_TRUE(
            logs.AppendLogs({Line("restart", a, i, absl::StrCat("agent ", a, " line ", i))}).ok());
        if (i % (kLines / kBatches) == 0) {
          ASSERT_TRUE(metrics
                          .IngestMetrics(Batch("restart", absl::StrCat("agent-", a),
                                               i / (kLines / kBatches), kPointsPerBatch))
                          .ok());
        }
        if (i % 4 == 0) absl::SleepFor(absl::Milliseconds(1));  // ~1 s of output
        progress.fetch_add(1);
      }
      EXPECT_TRUE(logs.Flush(absl::Seconds(60)).ok());
      EXPECT_TRUE(metrics.Flush(absl::Seconds(60)).ok());
      stats[a] = logs.stats();
      stats[a].failed_sends += metrics.stats().failed_sends;
    });
  }
  for (int restart = 0; restart < 2; ++restart) {
    while (progress.load() < (restart + 1) * kAgents * kLines / 4) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_LT(progress.load(), kAgents * kLines) << "the agents were done before the restart";
    server_->Shutdown(absl::ZeroDuration());  // cancel whatever is in flight
    server_.reset();
    absl::SleepFor(absl::Milliseconds(300));
    WorkspaceServerOptions options;
    options.listen = absl::StrCat("127.0.0.1:", port);
    options.token = token_;
    // The port is free again at once (SO_REUSEADDR); retry a little in case it is not.
    for (int attempt = 0; attempt < 50 && server_ == nullptr; ++attempt) {
      auto server = StartWorkspaceServer(embedded_.get(), options);
      if (server.ok()) {
        server_ = std::move(*server);
      } else {
        absl::SleepFor(absl::Milliseconds(50));
      }
    }
    ASSERT_NE(server_, nullptr) << "cannot serve on port " << port << " again";
  }
  for (auto& t : agents) t.join();

  int64_t failed_sends = 0;
  for (size_t a = 0; a < stats.size(); ++a) {
    EXPECT_EQ(stats[a].dropped, 0) << "agent " << a;
    failed_sends += stats[a].failed_sends;
  }
  EXPECT_GT(failed_sends, 0) << "no spool saw the server gone";
  // Every line once.
  std::set<std::pair<int, int64_t>> seen;
  int64_t total = 0;
  storage::LogQuery q{.job = "restart"};
  while (true) {
    auto page = embedded_->ReadLogs(q);
    ASSERT_TRUE(page.ok());
    if (page->lines.empty()) break;
    for (const auto& l : page->lines) {
      EXPECT_TRUE(seen.insert({l.instance(), l.sequence()}).second) << l.ShortDebugString();
      ++total;
    }
    q.after_id = page->next_id;
  }
  EXPECT_EQ(total, kAgents * kLines);
  // Every point once.
  auto history = embedded_->MetricHistory("restart", "loss");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), static_cast<size_t>(kAgents * kBatches * kPointsPerBatch));
  auto summary = embedded_->MetricSummary("restart");
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(summary->size(), 1u);
  EXPECT_EQ((*summary)[0].count, kAgents * kBatches * kPointsPerBatch);
}

}  // namespace
}  // namespace kubetrain::storage
