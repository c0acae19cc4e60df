#include "kubetrain/agent/mpi/mpirun_command.h"

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/test_util.h"

namespace kubetrain::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using testing::ParsePlan;

constexpr char kPlan[] = R"pb(
  job {
    name: "mpi_job"
    command: "python allreduce.py"
    resources { instance_count: 2 }
    distribution { type: TYPE_MPI process_count_per_instance: 2 }
  }
  instance_index: 0
  master_port: 29700
  placement {
    instances {
      instance_index: 0
      cpu_millicores: 4000
      gpu_ids: [ 0 ]
    }
    instances {
      instance_index: 1
      cpu_millicores: 2000
      gpu_ids: [ 1 ]
    }
  }
)pb";

TEST(MpiTest, HostfileMergesInstancesOnOneHost) {
  v1::InstanceLaunch launch = ParsePlan(kPlan);
  launch.add_instance_hosts("127.0.0.1");
  launch.add_instance_hosts("127.0.0.1");
  EXPECT_EQ(MpiHostfile(launch), "127.0.0.1 slots=4\n");
}

TEST(MpiTest, HostfileOneLinePerHost) {
  v1::InstanceLaunch launch = ParsePlan(kPlan);
  launch.add_instance_hosts("job-0.svc");
  launch.add_instance_hosts("job-1.svc");
  EXPECT_EQ(MpiHostfile(launch), "job-0.svc slots=2\njob-1.svc slots=2\n");
}

TEST(MpiTest, MpirunArgvRunsEveryRankWithThePrologue) {
  v1::InstanceLaunch launch = ParsePlan(kPlan);
  std::vector<std::string> argv =
      MpirunArgv(launch, "python allreduce.py", "/job/hostfile",
                 {{"KUBETRAIN_JOB", "mpi_job"}, {"OMPI_ALLOW_RUN_AS_ROOT", "1"}});
  std::string joined = absl::StrJoin(argv, " ");
  EXPECT_EQ(argv[0], "mpirun");
  EXPECT_THAT(joined, HasSubstr("--hostfile /job/hostfile -np 4"));
  EXPECT_THAT(argv, Contains("--oversubscribe"));
  EXPECT_THAT(argv, Contains("--tag-output"));
  EXPECT_THAT(joined, HasSubstr("--bind-to none"));
  EXPECT_THAT(joined, HasSubstr("-x KUBETRAIN_JOB"));
  EXPECT_THAT(joined, ::testing::Not(HasSubstr("-x OMPI_ALLOW_RUN_AS_ROOT")));
  EXPECT_EQ(argv.back(), "python allreduce.py");
  EXPECT_EQ(argv[argv.size() - 2], "kubetrain-rank");
  launch.set_mpirun("/opt/openmpi/bin/mpirun");
  EXPECT_EQ(MpirunArgv(launch, "x", "h", {})[0], "/opt/openmpi/bin/mpirun");
}

TEST(MpiTest, PrologueGivesEachRankItsInstanceValues) {
  v1::InstanceLaunch launch = ParsePlan(kPlan);
  std::string script = MpiRankPrologue(launch) +
                       "; echo $AZUREML_PROCESS_NAME $AZUREML_CR_NODE_RANK "
                       "$CUDA_VISIBLE_DEVICES $OMP_NUM_THREADS";
  auto run = [&](int rank) {
    std::string quoted;
    for (char c : script) quoted += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return testing::ShellOutput("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + " /bin/bash -c '" +
                                quoted + "'");
  };
  EXPECT_EQ(run(0), "rank_0 0 0 2\n");
  EXPECT_EQ(run(1), "rank_1 0 0 2\n");
  EXPECT_EQ(run(3), "rank_3 1 1 1\n");
}

TEST(MpiTest, PrologueLeavesUserValuesAlone) {
  v1::InstanceLaunch launch = ParsePlan(kPlan);
  (*launch.mutable_job()->mutable_environment_variables())["CUDA_VISIBLE_DEVICES"] = "7";
  EXPECT_THAT(MpiRankPrologue(launch), ::testing::Not(HasSubstr("CUDA_VISIBLE_DEVICES")));
}

TEST(MpiTest, ParsesTaggedLines) {
  auto out = ParseTaggedLine("[1,3]<stdout>:hello world");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->rank, 3);
  EXPECT_EQ(out->stream, v1::LogLine::STREAM_STDOUT);
  EXPECT_EQ(out->text, "hello world");
  auto err = ParseTaggedLine("[12345,0]<stderr>:");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->stream, v1::LogLine::STREAM_STDERR);
  EXPECT_EQ(err->text, "");
  EXPECT_FALSE(ParseTaggedLine("--------------------").has_value());
  EXPECT_FALSE(ParseTaggedLine("[1,x]<stdout>:a").has_value());
  EXPECT_FALSE(ParseTaggedLine("[1,2]<stdin>:a").has_value());
}

struct Demuxed {
  int rank;
  v1::LogLine::Stream stream;
  std::string text;
  bool operator==(const Demuxed& o) const {
    return rank == o.rank && stream == o.stream && text == o.text;
  }
};
void PrintTo(const Demuxed& d, std::ostream* os) {
  *os << "{" << d.rank << "," << d.stream << ",\"" << d.text << "\"}";
}

// Feeds `chunks` one by one (as reads would deliver them) and returns the lines.
std::vector<Demuxed> Demux(const std::vector<std::string>& chunks,
                           v1::LogLine::Stream stream = v1::LogLine::STREAM_STDOUT) {
  std::vector<Demuxed> out;
  auto emit = [&](int rank, v1::LogLine::Stream s, absl::string_view text) {
    out.push_back({rank, s, std::string(text)});
  };
  TaggedOutputDemux demux(stream);
  for (const std::string& c : chunks) demux.Feed(c, emit);
  demux.Finish(emit);
  return out;
}

constexpr auto kOut = v1::LogLine::STREAM_STDOUT;
constexpr auto kErr = v1::LogLine::STREAM_STDERR;

TEST(TaggedOutputDemuxTest, SplitsInterleavedChunksBackIntoRankLines) {
  // Exactly what mpirun 4.1 wrote for ranks printing "a\nb\nc", then "d\n".
  std::string out =
      "[1,0]<stdout>:a\n[1,0]<stdout>:b\n[1,0]<stdout>:c[1,1]<stdout>:a\n[1,1]<stdout>:b\n"
      "[1,1]<stdout>:c[1,0]<stdout>:d\n[1,1]<stdout>:d\n";
  std::vector<Demuxed> lines = Demux({out});
  EXPECT_THAT(lines, ::testing::UnorderedElementsAre(
                         Demuxed{0, kOut, "a"}, Demuxed{0, kOut, "b"}, Demuxed{0, kOut, "cd"},
                         Demuxed{1, kOut, "a"}, Demuxed{1, kOut, "b"}, Demuxed{1, kOut, "cd"}));
  // Byte by byte gives the same.
  std::vector<std::string> bytes;
  for (char c : out) bytes.push_back(std::string(1, c));
  EXPECT_THAT(Demux(bytes), ::testing::UnorderedElementsAreArray(lines));
}

TEST(TaggedOutputDemuxTest, NewlineArrivingInALaterChunk) {
  // python's print: the text and its newline reached mpirun separately.
  EXPECT_THAT(Demux({"[1,2]<stdout>:rank 2 OK[1,3]<stdout>:rank 3 OK\n[1,2]<stdout>:\n"}),
              ::testing::ElementsAre(Demuxed{3, kOut, "rank 3 OK"}, Demuxed{2, kOut, "rank 2 OK"}));
}

TEST(TaggedOutputDemuxTest, UntaggedLinesAreMpirunsOwn) {
  EXPECT_THAT(Demux({"[1,0]<stderr>:boom\n-----\nmpirun noticed that process rank 0\n"}, kErr),
              ::testing::ElementsAre(Demuxed{0, kErr, "boom"}, Demuxed{-1, kErr, "-----"},
                                     Demuxed{-1, kErr, "mpirun noticed that process rank 0"}));
}

TEST(TaggedOutputDemuxTest, BracketsInTextAreText) {
  EXPECT_THAT(
      Demux({"[1,0]<stdout>:x[0] = [1, 2]\n", "[warn] plain\n"}),
      ::testing::ElementsAre(Demuxed{0, kOut, "x[0] = [1, 2]"}, Demuxed{-1, kOut, "[warn] plain"}));
}

TEST(TaggedOutputDemuxTest, PartialLinesAreFlushedAtTheEnd) {
  EXPECT_THAT(Demux({"[1,1]<stdout>:no newline", "[1,"}),
              ::testing::ElementsAre(Demuxed{1, kOut, "no newline[1,"}));
}

TEST(MpiTest, FirstFailedRankFromStatusFiles) {
  testing::TempDir dir;
  std::ofstream(dir / "0") << "0 100.5\n";
  std::ofstream(dir / "1") << "143 101.0\n";  // SIGTERMed after rank 3 failed
  std::ofstream(dir / "3") << "3 100.9\n";
  std::optional<MpirunFailure> f = FirstFailedRank(dir.path());
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->rank, 3);
  EXPECT_EQ(f->exit_code, 3);
  std::ofstream(dir / "2") << "137 100.7\n";
  f = FirstFailedRank(dir.path());
  EXPECT_EQ(f->rank, 2);
  EXPECT_EQ(f->signal, 9);
  EXPECT_FALSE(FirstFailedRank(dir / "missing").has_value());
}

TEST(MpiTest, ParsesMpirunFailureReports) {
  auto exit = ParseMpirunFailure({
      "mpirun detected that one or more processes exited with non-zero status, thus causing",
      "the job to be terminated. The first process to do so was:",
      "",
      "  Process name: [[55019,1],1]",
      "  Exit code:    3",
  });
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->rank, 1);
  EXPECT_EQ(exit->exit_code, 3);
  auto sig = ParseMpirunFailure(
      {"mpirun noticed that process rank 2 with PID 0 on node vm exited on signal 9 (Killed)."});
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(sig->rank, 2);
  EXPECT_EQ(sig->signal, 9);
  EXPECT_FALSE(
      ParseMpirunFailure({"Primary job  terminated normally, but 1 process returned"}).has_value());
}

}  // namespace
}  // namespace kubetrain::agent
