// MPI between pods without SSH (agent/mpi/rsh_agent.h): the `kubetrain-worker rsh` client against
// the agent's server (output, exit status, a refused token), and a real mpirun that starts the
// second "host" through it: two kubetrain-worker agents, instance 1 on 127.0.0.2 serving instance
// 0's mpirun as a pod would (OpenMPI treats 127.0.0.2 as a remote host: it is not an address of an
// interface here).
#include "kubetrain/agent/mpi/rsh_agent.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent {
namespace {

using ::testing::HasSubstr;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

struct Output {
  int code = -1;
  std::string text;
};

Output Shell(const std::string& command) {
  Output o;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) o.text.append(buf, n);
  int status = pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

TEST(RshAgentTest, RelaysOutputAndExitStatusAndRefusesAWrongToken) {
  int port = FreePort();
  CancelToken cancel;
  absl::StatusOr<int> served;
  std::vector<std::string> log;
  std::thread server([&] {
    RshServerOptions o;
    o.port = port;
    o.token = "job-secret";
    served = ServeOneLaunch(o, &cancel);
  });
  std::string client = absl::StrCat("KUBETRAIN_RSH_PORT=", port, " KUBETRAIN_JOB_TOKEN=");
  Output refused = Shell(client + "wrong " KUBETRAIN_WORKER_BIN " rsh 127.0.0.1 echo nope");
  EXPECT_EQ(refused.code, 255);
  EXPECT_THAT(refused.text, HasSubstr("permission denied"));
  EXPECT_THAT(refused.text, ::testing::Not(HasSubstr("nope")));
  Output ok = Shell(client + "job-secret " KUBETRAIN_WORKER_BIN
                             " rsh 127.0.0.1 'echo out; echo err >&2; exit 3'");
  server.join();
  EXPECT_EQ(ok.code, 3) << ok.text;
  EXPECT_THAT(ok.text, HasSubstr("out\n"));
  EXPECT_THAT(ok.text, HasSubstr("err\n"));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, 3);

  Output no_port = Shell(KUBETRAIN_WORKER_BIN " rsh 127.0.0.1 true");
  EXPECT_EQ(no_port.code, 255);
  EXPECT_THAT(no_port.text, HasSubstr("KUBETRAIN_RSH_PORT"));
}

TEST(RshAgentTest, CancelStopsTheServer) {
  CancelToken cancel;
  absl::StatusOr<int> served;
  std::thread server([&] {
    RshServerOptions o;
    o.port = FreePort();
    o.token = "t";
    served = ServeOneLaunch(o, &cancel);
  });
  usleep(100 * 1000);
  cancel.Request(15);
  server.join();
  EXPECT_EQ(served.status().code(), absl::StatusCode::kCancelled);
}

TEST(RshAgentTest, MpirunStartsTheOtherInstanceThroughTheAgent) {
  if (Shell("command -v mpirun").code != 0)
    GTEST_SKIP() << "no mpirun (openmpi-bin) on this machine";
  std::string dir = ::testing::TempDir() + "/rsh-mpi-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  int rsh_port = FreePort();
  for (int i = 0; i < 2; ++i) {
    v1::InstanceLaunch plan;
    plan.mutable_job()->set_name("mpi-rsh");
    plan.mutable_job()->set_command(
        "echo rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE on $KUBETRAIN_INSTANCE");
    plan.mutable_job()->mutable_resources()->set_instance_count(2);
    plan.mutable_job()->mutable_distribution()->set_type(v1::DistributionSpec::TYPE_MPI);
    plan.mutable_job()->mutable_distribution()->set_process_count_per_instance(1);
    plan.set_instance_index(i);
    plan.add_instance_hosts("127.0.0.1");
    plan.add_instance_hosts("127.0.0.2");
    plan.set_job_dir(absl::StrCat(dir, "/instance-", i));
    plan.set_checkpoint_dir(dir + "/ckpt");
    plan.set_rsh_port(rsh_port);
    std::string text;
    google::protobuf::TextFormat::PrintToString(plan, &text);
    std::ofstream(absl::StrCat(dir, "/instance-", i, ".plan")) << text;
  }
  std::string env =
      "KUBETRAIN_JOB_TOKEN=tok OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ";
  std::string worker = std::string(KUBETRAIN_WORKER_BIN) + " --no-workspace --plan-text " + dir;
  // Instance 1 (the "remote pod") waits for mpirun's launch; instance 0 runs mpirun.
  Output both = Shell("{ (" + env + worker + "/instance-1.plan > " + dir +
                      "/instance-1.log 2>&1; echo $? > " + dir + "/instance-1.rc) & " + env +
                      "timeout 120 " + worker + "/instance-0.plan; rc=$?; wait; exit $rc; }");
  std::ifstream in1(dir + "/instance-1.log");
  std::string log1((std::istreambuf_iterator<char>(in1)), {});
  std::ifstream rc1(dir + "/instance-1.rc");
  int code1 = -1;
  rc1 >> code1;
  EXPECT_EQ(both.code, 0) << both.text << "\n--- instance 1:\n" << log1;
  EXPECT_THAT(both.text, HasSubstr("[rank 0] rank 0 of 2 on 0"));
  EXPECT_THAT(both.text, HasSubstr("[rank 1] rank 1 of 2 on 1"));
  EXPECT_EQ(code1, 0) << log1;
  EXPECT_THAT(log1, HasSubstr("running for mpirun"));
  if (!HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kubetrain::agent
