// The CPU engine (engine.h): float32 MLP on the host, gradients through the GradientBucketer.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine.h"
#include "kubetrain/collective/bucketer.h"
#include "kubetrain/common/status_macros.h"

namespace native_mlp {
namespace {

namespace coll = kubetrain::collective;

class CpuEngine : public Engine {
 public:
  CpuEngine(const EngineOptions& options, coll::Communicator* comm)
      : options_(options),
        comm_(comm),
        model_(options.shape),
        params_(options.shape.size(), 0.0f),
        velocity_(options.shape.size(), 0.0f),
        grad_(options.shape.size(), 0.0f),
        bucketer_(comm, BucketOptions(options)) {}

  absl::Status Init() {
    const MlpShape& s = options_.shape;
    // Register in the order backward produces the gradients: b2, w2, b1, w1 (tensor ids 3..0).
    const size_t offsets[4] = {s.w1_offset(), s.b1_offset(), s.w2_offset(), s.b2_offset()};
    const size_t sizes[4] = {s.w1(), s.b1(), s.w2(), s.b2()};
    for (int t = 3; t >= 0; --t) {
      KT_ASSIGN_OR_RETURN(int index, bucketer_.Register(grad_.data() + offsets[t], sizes[t],
                                                        coll::DataType::kFloat32));
      bucket_index_[t] = index;
    }
    return absl::OkStatus();
  }

  std::string Describe() const override {
    return absl::StrCat("cpu engine, ", options_.shape.size(),
                        " parameters, gradients averaged by ", comm_->world_size(),
                        " rank(s) through the ", std::string(coll::BackendName(comm_->backend())),
                        " communicator");
  }

  absl::Status SetState(const std::vector<float>& params,
                        const std::vector<float>& velocity) override {
    if (params.size() != params_.size() || velocity.size() != velocity_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("state has ", params.size(), "/",
                                                     velocity.size(), " floats; the model has ",
                                                     params_.size()));
    }
    params_ = params;
    velocity_ = velocity;
    return absl::OkStatus();
  }

  absl::Status GetState(std::vector<float>* params, std::vector<float>* velocity) override {
    *params = params_;
    *velocity = velocity_;
    return absl::OkStatus();
  }

  absl::StatusOr<GlobalResult> Step(const float* x, const int32_t* y, int64_t count) override {
    absl::Status ready = absl::OkStatus();
    BatchResult local = model_.TrainStep(params_.data(), x, y, count, grad_.data(), [&](int t) {
      if (ready.ok()) ready = bucketer_.MarkReady(bucket_index_[t]);
    });
    KT_RETURN_IF_ERROR(ready);
    KT_RETURN_IF_ERROR(bucketer_.Wait());  // grad_ now holds the average over ranks
    SgdMomentumUpdate(params_.data(), velocity_.data(), grad_.data(), params_.size(), options_.lr,
                      options_.momentum);
    return Combine(local, count);
  }

  absl::StatusOr<GlobalResult> Evaluate(const float* x, const int32_t* y, int64_t count) override {
    return Combine(model_.Evaluate(params_.data(), x, y, count), count);
  }

 private:
  static coll::BucketerOptions BucketOptions(const EngineOptions& o) {
    coll::BucketerOptions b;
    b.first_bucket_bytes = o.first_bucket_bytes;
    b.bucket_bytes = o.bucket_bytes;
    b.op = coll::ReduceOp::kAvg;
    return b;
  }

  // Sums {loss, correct, samples} over ranks (float64: exact for the counts).
  absl::StatusOr<GlobalResult> Combine(const BatchResult& local, int64_t count) {
    double v[3] = {local.loss, static_cast<double>(local.correct), static_cast<double>(count)};
    KT_RETURN_IF_ERROR(
        comm_->AllReduce(v, 3, coll::DataType::kFloat64, coll::ReduceOp::kSum)->Wait());
    GlobalResult g;
    g.loss = v[0] / comm_->world_size();
    g.samples = static_cast<int64_t>(v[2]);
    g.accuracy = g.samples > 0 ? v[1] / v[2] : 0.0;
    return g;
  }

  EngineOptions options_;
  coll::Communicator* comm_;
  CpuMlp model_;
  std::vector<float> params_, velocity_, grad_;
  coll::GradientBucketer bucketer_;
  int bucket_index_[4] = {0, 0, 0, 0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(const EngineOptions& options,
                                                      coll::Communicator* comm) {
  if (comm->memory_kind() != coll::MemoryKind::kHost) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cpu engine needs a host-memory communicator, not ",
                     std::string(coll::BackendName(comm->backend()))));
  }
  auto engine = std::make_unique<CpuEngine>(options, comm);
  KT_RETURN_IF_ERROR(engine->Init());
  return engine;
}

}  // namespace native_mlp
