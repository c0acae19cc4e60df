// The pieces of examples/native-mlp on their own: the dataset is a pure function of the seed and
// shards partition it, backward matches finite differences, training on one rank reduces the loss,
// and the bucketer path over a real 2-rank CPU communicator gives identical bits on both ranks and
// on a second run.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "dataset.h"
#include "engine.h"
#include "gtest/gtest.h"
#include "kubetrain/collective/communicator.h"
#include "mlp.h"

namespace native_mlp {
namespace {

namespace coll = kubetrain::collective;

TEST(DatasetTest, ShardsPartitionTheSetAndRegenerateIdentically) {
  DatasetOptions o;
  o.train_samples = 1000;
  Shard whole = MakeShard(o, 0, 1, false);
  ASSERT_EQ(whole.count, 1000);
  int64_t total = 0;
  for (int r = 0; r < 3; ++r) {
    Shard s = MakeShard(o, r, 3, false);
    total += s.count;
    for (int64_t row = 0; row < s.count; ++row) {  // row k of rank r is global sample r + 3k
      const int64_t i = r + 3 * row;
      ASSERT_EQ(0, std::memcmp(&s.features[row * o.dims], &whole.features[i * o.dims],
                               sizeof(float) * o.dims));
      ASSERT_EQ(s.labels[row], whole.labels[i]);
    }
  }
  EXPECT_EQ(total, 1000);
  Shard again = MakeShard(o, 0, 1, false);
  EXPECT_EQ(again.features, whole.features);
  std::set<int> classes(whole.labels.begin(), whole.labels.end());
  EXPECT_EQ(classes.size(), 4u);  // every class occurs
  Shard test = MakeShard(o, 0, 1, true);
  EXPECT_FALSE(std::equal(test.features.begin(), test.features.begin() + 16,
                          whole.features.begin()));  // the first 16 features differ
  o.seed = 2;
  EXPECT_NE(MakeShard(o, 0, 1, false).features, whole.features);
}

TEST(MlpTest, GradientMatchesFiniteDifferences) {
  MlpShape shape{5, 7, 3};
  DatasetOptions o;
  o.dims = 5;
  o.classes = 3;
  o.train_samples = 16;
  Shard data = MakeShard(o, 0, 1, false);
  std::vector<float> p = InitParams(shape, 3);
  for (size_t i = shape.b1_offset(); i < shape.w2_offset(); ++i)
    p[i] = 0.25f;  // no ReLU input near 0
  CpuMlp model(shape);
  std::vector<float> grad(shape.size());
  std::vector<int> ready;
  model.TrainStep(p.data(), data.features.data(), data.labels.data(), data.count, grad.data(),
                  [&](int t) { ready.push_back(t); });
  EXPECT_EQ(ready, (std::vector<int>{3, 2, 1, 0}));  // backward order
  for (size_t i = 0; i < shape.size(); ++i) {
    const float h = 1e-3f;  // small enough that no ReLU input crosses 0
    std::vector<float> q = p;
    q[i] = p[i] + h;
    const double up =
        model.Evaluate(q.data(), data.features.data(), data.labels.data(), data.count).loss;
    q[i] = p[i] - h;
    const double down =
        model.Evaluate(q.data(), data.features.data(), data.labels.data(), data.count).loss;
    EXPECT_NEAR(grad[i], (up - down) / (2 * h), 1e-3) << "parameter " << i;
  }
}

// Runs `steps` steps of the CPU engine on rank `rank` of `world` (a real communicator) and returns
// the final parameters.
std::vector<float> Train(int rank, int world, int port, int steps, double* first, double* last) {
  coll::CommunicatorOptions co;
  co.rank = rank;
  co.world_size = world;
  co.master_port = port;
  co.job = "native-mlp-test";
  co.store_prefix = "t" + std::to_string(port);
  auto comm = coll::CreateCommunicator(coll::Backend::kCpu, co);
  if (!comm.ok()) return {};
  EngineOptions eo;
  auto engine = MakeCpuEngine(eo, comm->get());
  if (!engine.ok()) return {};
  std::vector<float> p = InitParams(eo.shape, 1), v(p.size(), 0.0f);
  if (!(*engine)->SetState(p, v).ok()) return {};
  DatasetOptions o;
  Shard s = MakeShard(o, rank, world, false);
  const int batch = 32;
  for (int step = 0; step < steps; ++step) {
    std::vector<float> x(batch * o.dims);
    std::vector<int32_t> y(batch);
    for (int j = 0; j < batch; ++j) {
      const int64_t row = (int64_t{step} * batch + j) % s.count;
      std::memcpy(&x[j * o.dims], &s.features[row * o.dims], sizeof(float) * o.dims);
      y[j] = s.labels[row];
    }
    auto r = (*engine)->Step(x.data(), y.data(), batch);
    if (!r.ok()) return {};
    if (step == 0) *first = r->loss;
    *last = r->loss;
  }
  if (!(*engine)->GetState(&p, &v).ok()) return {};
  return p;
}

TEST(CpuEngineTest, OneRankLearns) {
  double first = 0, last = 0;
  std::vector<float> p = Train(0, 1, 0, 150, &first, &last);
  ASSERT_FALSE(p.empty());
  EXPECT_LT(last, first * 0.5);
}

// Two ranks (forked) train through the bucketer; both must end with the same bits, and a second
// run must reproduce them.
TEST(CpuEngineTest, TwoRanksAgreeBitForBitAndReproduce) {
  auto run = [](int port) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_t child = fork();
    if (child == 0) {
      close(fds[0]);
      double f, l;
      std::vector<float> p = Train(1, 2, port, 60, &f, &l);
      const size_t n = p.size();
      (void)!write(fds[1], &n, sizeof(n));
      if (n) (void)!write(fds[1], p.data(), n * sizeof(float));
      _exit(p.empty() ? 1 : 0);
    }
    close(fds[1]);
    double f, l;
    std::vector<float> mine = Train(0, 2, port, 60, &f, &l);
    size_t n = 0;
    std::vector<float> theirs;
    if (read(fds[0], &n, sizeof(n)) == sizeof(n) && n > 0) {
      theirs.resize(n);
      size_t got = 0;
      while (got < n * sizeof(float)) {
        ssize_t r =
            read(fds[0], reinterpret_cast<char*>(theirs.data()) + got, n * sizeof(float) - got);
        if (r <= 0) break;
        got += r;
      }
    }
    close(fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_FALSE(mine.empty());
    EXPECT_EQ(mine, theirs) << "ranks disagree";
    return mine;
  };
  const int port = 20000 + getpid() % 20000;
  std::vector<float> a = run(port);
  std::vector<float> b = run(port + 1);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

}  // namespace
}  // namespace native_mlp
