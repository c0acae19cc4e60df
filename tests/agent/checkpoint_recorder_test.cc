// The agent's CheckpointRecorder against checkpoints saved by the real Checkpointer.
#include "kubetrain/agent/staging/checkpoint_recorder.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/rank/checkpoint.h"

namespace kubetrain::agent {
namespace {

namespace fs = std::filesystem;

// Refuses the first `refuse` checkpoint records (a workspace that is briefly unreachable).
class FlakySink : public MemorySink {
 public:
  explicit FlakySink(int refuse) : refuse_(refuse) {}
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    if (refuse_ > 0) {
      --refuse_;
      return absl::UnavailableError("workspace unreachable");
    }
    return MemorySink::RecordCheckpoint(record);
  }

 private:
  int refuse_;
};

TEST(CheckpointRecorderTest, RecordsEveryPublishedCheckpointOnceEvenAfterRetention) {
  char tmpl[] = "/tmp/kubetrain-recorder-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/checkpoints";
  FlakySink sink(/*refuse=*/2);
  CheckpointRecorder recorder(&sink, dir, "job-a", /*attempt=*/1, absl::Milliseconds(20));
  recorder.Start();

  checkpoint::CheckpointOptions o;
  o.dir = dir;
  o.rank = 0;
  o.world_size = 1;
  o.keep_last = 1;  // retention removes each checkpoint as soon as the next one is published
  o.attempt = "1";
  auto ck = checkpoint::Checkpointer::Create(o);
  ASSERT_TRUE(ck.ok()) << ck.status();
  std::vector<uint8_t> weights(4096, 7);
  for (int64_t step = 10; step <= 50; step += 10) {
    weights.resize(weights.size() + 10);
    checkpoint::NamedBuffer b{"w", weights.data(), weights.size()};
    ASSERT_TRUE((*ck)->Save(step, {&b, 1}).ok());
  }
  recorder.Stop();

  // The latest record of each step (refused ones came later; a step may be recorded again when
  // retention removes it).
  std::map<int64_t, v1::CheckpointRecord> latest;
  for (const auto& r : sink.checkpoints()) latest[r.step()] = r;
  std::vector<v1::CheckpointRecord> got;
  for (const auto& [step, r] : latest) got.push_back(r);
  ASSERT_EQ(got.size(), 5u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].job(), "job-a");
    EXPECT_EQ(got[i].step(), static_cast<int64_t>(10 * (i + 1)));
    EXPECT_EQ(got[i].attempt(), 1);
    EXPECT_EQ(got[i].location(), dir + "/step-" + std::to_string(got[i].step()));
    EXPECT_GT(got[i].size_bytes(), 4096);
    EXPECT_GT(got[i].created_unix_ms(), 0);
    EXPECT_EQ(got[i].retired(), got[i].step() != 50) << got[i].step();  // keep_last 1
  }
  EXPECT_EQ(recorder.recorded().size(), 5u);
  const size_t records = sink.checkpoints().size();
  recorder.Stop();  // idempotent: records nothing twice
  EXPECT_EQ(sink.checkpoints().size(), records);
  fs::remove_all(tmpl);
}

}  // namespace
}  // namespace kubetrain::agent
