// native-mlp: data-parallel training of a small MLP with kubetrain's C++ libraries.
//
//   kubetrain::collective  the communicator from the rank environment (RANK, WORLD_SIZE,
//                          MASTER_ADDR, MASTER_PORT) and the gradient bucketer (engine.h)
//   kubetrain::runtime     loss / accuracy per step to the job's metrics (MLFLOW_TRACKING_URI)
//   kubetrain::checkpoint  a sharded checkpoint every --checkpoint-every steps under
//                          KUBETRAIN_CHECKPOINT_DIR; on (re)start the newest one is loaded
//
// Deterministic: the data (dataset.h), the initial parameters, each step's batch and every
// reduction depend only on the seed, the step and the world size, so a run that is killed and
// resumed from its last checkpoint ends with the same bits as one that never stopped. The last
// lines rank 0 prints carry the held-out accuracy and a crc32c of the final parameters; with
// --output DIR it also writes DIR/params.bin (raw float32) and DIR/final.json.
//
// Run it as a kubetrain job (examples/native-mlp/job.yml), or alone: `native-mlp --steps 100`.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dataset.h"
#include "engine.h"
#include "kubetrain/collective/communicator.h"
#include "kubetrain/collective/env.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/rank/checkpoint.h"
#include "kubetrain/rank/runtime.h"

namespace native_mlp {
namespace {

namespace coll = kubetrain::collective;
namespace rt = kubetrain::runtime;
using kubetrain::checkpoint::Checkpointer;
using kubetrain::checkpoint::CheckpointOptions;
using kubetrain::checkpoint::NamedBuffer;

struct Config {
  int64_t steps = 300;
  int64_t batch = 32;  // per rank
  float lr = 0.05f;
  float momentum = 0.9f;
  int hidden = 64;
  uint64_t seed = 1;
  DatasetOptions data;
  int64_t checkpoint_every = 50;
  std::string checkpoint_dir;  // empty: $KUBETRAIN_CHECKPOINT_DIR (none: no checkpoints)
  int step_sleep_ms = 0;
  int64_t print_every = 10;
  std::string output;
  std::string device = "cpu";
  std::string backend;  // empty: cpu for --device cpu, nccl for --device cuda
  size_t first_bucket_bytes = 2048;
  size_t bucket_bytes = 8192;
};

std::string Hex32(uint32_t v) { return absl::StrFormat("%08x", v); }

absl::Status WriteFile(const std::filesystem::path& path, const void* data, size_t size) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot rename to ", path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status Run(const Config& cfg) {
  const bool cuda = cfg.device == "cuda";
  KT_ASSIGN_OR_RETURN(
      coll::Backend backend,
      coll::ParseBackend(cfg.backend.empty() ? (cuda ? "nccl" : "cpu") : cfg.backend));
  KT_ASSIGN_OR_RETURN(coll::CommunicatorOptions copts, coll::OptionsFromEnvironment());
  KT_ASSIGN_OR_RETURN(std::unique_ptr<coll::Communicator> comm,
                      coll::CreateCommunicator(backend, copts));
  const int rank = comm->rank(), world = comm->world_size();

  EngineOptions eopts;
  eopts.shape.dims = cfg.data.dims;
  eopts.shape.hidden = cfg.hidden;
  eopts.shape.classes = cfg.data.classes;
  eopts.lr = cfg.lr;
  eopts.momentum = cfg.momentum;
  eopts.first_bucket_bytes = cfg.first_bucket_bytes;
  eopts.bucket_bytes = cfg.bucket_bytes;
  std::unique_ptr<Engine> engine;
  if (cuda) {
    // The GPU the NCCL communicator uses: LOCAL_RANK modulo the visible devices
    // (CUDA_VISIBLE_DEVICES comes from the placement).
    eopts.cuda_device = copts.cuda_device;
    eopts.local_rank = copts.local_rank;
    KT_ASSIGN_OR_RETURN(engine, MakeCudaEngine(eopts, comm.get()));
  } else {
    KT_ASSIGN_OR_RETURN(engine, MakeCpuEngine(eopts, comm.get()));
  }

  DatasetOptions data = cfg.data;
  data.seed = cfg.seed;
  const Shard train = MakeShard(data, rank, world, /*test=*/false);
  const Shard test = MakeShard(data, rank, world, /*test=*/true);
  if (train.count == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--train-samples ", data.train_samples,
                                                   " leaves rank ", rank, " of ", world,
                                                   " without data"));
  }

  // State: fresh from the seed, or the newest complete checkpoint.
  std::vector<float> params = InitParams(eopts.shape, cfg.seed);
  std::vector<float> velocity(params.size(), 0.0f);
  int64_t start = 0;
  std::unique_ptr<Checkpointer> ckpt;
  std::string ckpt_dir = cfg.checkpoint_dir;
  if (ckpt_dir.empty()) {
    if (const char* env = std::getenv("KUBETRAIN_CHECKPOINT_DIR")) ckpt_dir = env;
  }
  if (!ckpt_dir.empty() && cfg.checkpoint_every > 0) {
    CheckpointOptions o;
    o.dir = ckpt_dir;
    o.rank = rank;
    o.world_size = world;
    KT_ASSIGN_OR_RETURN(ckpt, Checkpointer::Create(o));
    absl::StatusOr<int64_t> latest = ckpt->LatestStep();
    if (latest.ok()) {
      KT_ASSIGN_OR_RETURN(kubetrain::checkpoint::LoadedCheckpoint loaded, ckpt->Load(*latest));
      const auto* p = loaded.Find("params");
      const auto* v = loaded.Find("velocity");
      if (p == nullptr || v == nullptr || p->data.size() != params.size() * sizeof(float) ||
          v->data.size() != velocity.size() * sizeof(float)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "checkpoint ", ckpt->StepDir(*latest), " does not hold this model (", params.size(),
            " parameters, --hidden ", cfg.hidden, "); point --checkpoint-dir elsewhere"));
      }
      std::memcpy(params.data(), p->data.data(), p->data.size());
      std::memcpy(velocity.data(), v->data.data(), v->data.size());
      start = *latest;
      if (rank == 0) {
        std::printf(
            "resuming from checkpoint %s (step %lld, restart %s)\n", ckpt->StepDir(start).c_str(),
            static_cast<long long>(start),
            std::getenv("KUBETRAIN_RESTART_COUNT") ? std::getenv("KUBETRAIN_RESTART_COUNT") : "0");
      }
    } else if (latest.status().code() != absl::StatusCode::kNotFound) {
      return latest.status();
    }
  }
  KT_RETURN_IF_ERROR(engine->SetState(params, velocity));

  if (rank == 0) {
    std::printf(
        "native-mlp: %d rank(s); %s; %lld training samples per rank, batch %lld per rank, "
        "%lld steps, checkpoints %s\n",
        world, engine->Describe().c_str(), static_cast<long long>(train.count),
        static_cast<long long>(cfg.batch), static_cast<long long>(cfg.steps),
        ckpt ? absl::StrCat("every ", cfg.checkpoint_every, " steps in ", ckpt_dir).c_str()
             : "off");
    std::fflush(stdout);
    rt::LogParam("lr", absl::StrCat(cfg.lr));
    rt::LogParam("momentum", absl::StrCat(cfg.momentum));
    rt::LogParam("hidden", absl::StrCat(cfg.hidden));
    rt::LogParam("batch_per_rank", absl::StrCat(cfg.batch));
    rt::LogParam("world_size", absl::StrCat(world));
    rt::LogParam("seed", absl::StrCat(cfg.seed));
  }

  std::vector<float> xb(static_cast<size_t>(cfg.batch) * data.dims);
  std::vector<int32_t> yb(static_cast<size_t>(cfg.batch));
  std::vector<float> snap_params, snap_velocity;
  double first_loss = -1, last_loss = -1;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = start; step < cfg.steps; ++step) {
    for (int64_t j = 0; j < cfg.batch; ++j) {  // this step's batch: the next rows of the shard
      const int64_t row = (step * cfg.batch + j) % train.count;
      std::memcpy(&xb[j * data.dims], &train.features[row * data.dims], sizeof(float) * data.dims);
      yb[j] = train.labels[row];
    }
    KT_ASSIGN_OR_RETURN(GlobalResult r, engine->Step(xb.data(), yb.data(), cfg.batch));
    if (first_loss < 0) first_loss = r.loss;
    last_loss = r.loss;
    if (rank == 0) {
      rt::LogMetric("loss", r.loss, step);
      rt::LogMetric("train_accuracy", r.accuracy, step);
      if (step == start || (step + 1) % cfg.print_every == 0 || step + 1 == cfg.steps) {
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count() /
            static_cast<double>(step - start + 1);
        std::printf("step %lld/%lld loss %.4f train_accuracy %.3f (%.1f ms/step)\n",
                    static_cast<long long>(step) + 1, static_cast<long long>(cfg.steps), r.loss,
                    r.accuracy, ms);
        std::fflush(stdout);
      }
    }
    if (cfg.step_sleep_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(cfg.step_sleep_ms));
    }
    const int64_t done = step + 1;
    if (ckpt && (done % cfg.checkpoint_every == 0 || done == cfg.steps)) {
      KT_RETURN_IF_ERROR(engine->GetState(&snap_params, &snap_velocity));
      const NamedBuffer buffers[] = {
          {"params", snap_params.data(), snap_params.size() * sizeof(float)},
          {"velocity", snap_velocity.data(), snap_velocity.size() * sizeof(float)}};
      const std::map<std::string, std::string> meta = {{"model", "native-mlp"},
                                                       {"seed", absl::StrCat(cfg.seed)},
                                                       {"hidden", absl::StrCat(cfg.hidden)},
                                                       {"loss", absl::StrCat(r.loss)}};
      // The copy is taken now; the write continues in the background while training goes on.
      KT_RETURN_IF_ERROR(ckpt->SaveAsync(done, buffers, meta));
    }
  }
  if (ckpt) KT_RETURN_IF_ERROR(ckpt->Wait());

  KT_ASSIGN_OR_RETURN(GlobalResult eval,
                      engine->Evaluate(test.features.data(), test.labels.data(), test.count));
  KT_RETURN_IF_ERROR(engine->GetState(&params, &velocity));
  const uint32_t crc = kubetrain::checkpoint::Crc32c(params.data(), params.size() * sizeof(float));
  if (rank == 0) {
    rt::LogMetric("test_accuracy", eval.accuracy, cfg.steps);
    rt::LogMetric("test_loss", eval.loss, cfg.steps);
    if (first_loss >= 0) {
      std::printf("loss %.4f at step %lld -> %.4f at step %lld\n", first_loss,
                  static_cast<long long>(start) + 1, last_loss, static_cast<long long>(cfg.steps));
    }
    std::printf("final accuracy %.4f on %lld held-out samples (test loss %.4f)\n", eval.accuracy,
                static_cast<long long>(eval.samples), eval.loss);
    std::printf("final params: %zu floats crc32c=%s\n", params.size(), Hex32(crc).c_str());
    if (ckpt) std::printf("checkpoints: %s\n", ckpt_dir.c_str());
    if (!cfg.output.empty()) {
      std::filesystem::path out(cfg.output);
      std::error_code ec;
      std::filesystem::create_directories(out, ec);
      KT_RETURN_IF_ERROR(WriteFile(out / "params.bin", params.data(), params.size() * 4));
      const std::string json = absl::StrFormat(
          "{\"steps\": %d, \"world_size\": %d, \"params\": %d, \"params_crc32c\": \"%s\", "
          "\"test_accuracy\": %.6f, \"test_loss\": %.6f, \"final_train_loss\": %.6f}\n",
          cfg.steps, world, params.size(), Hex32(crc), eval.accuracy, eval.loss, last_loss);
      KT_RETURN_IF_ERROR(WriteFile(out / "final.json", json.data(), json.size()));
      std::printf("wrote %s and final.json\n", (out / "params.bin").string().c_str());
    }
    std::fflush(stdout);
  }
  // Every rank leaves together: nobody tears its communicator down under a peer still reducing.
  KT_RETURN_IF_ERROR(comm->Barrier()->Wait());
  return absl::OkStatus();
}

}  // namespace
}  // namespace native_mlp

int main(int argc, char** argv) {
  native_mlp::Config cfg;
  CLI::App app{"native-mlp: data-parallel MLP training with kubetrain's C++ libraries"};
  app.add_option("--steps", cfg.steps, "Training steps")->capture_default_str();
  app.add_option("--batch", cfg.batch, "Samples per rank per step")->capture_default_str();
  app.add_option("--lr", cfg.lr, "Learning rate")->capture_default_str();
  app.add_option("--momentum", cfg.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--hidden", cfg.hidden, "Hidden units")->capture_default_str();
  app.add_option("--seed", cfg.seed, "Seed of the data and the initial parameters")
      ->capture_default_str();
  app.add_option("--train-samples", cfg.data.train_samples, "Training set size (all ranks)")
      ->capture_default_str();
  app.add_option("--test-samples", cfg.data.test_samples, "Held-out set size (all ranks)")
      ->capture_default_str();
  app.add_option("--checkpoint-every", cfg.checkpoint_every, "Steps between checkpoints (0: none)")
      ->capture_default_str();
  app.add_option("--checkpoint-dir", cfg.checkpoint_dir,
                 "Checkpoint directory (default $KUBETRAIN_CHECKPOINT_DIR)");
  app.add_option("--step-sleep-ms", cfg.step_sleep_ms,
                 "Pretend each step takes this much longer (to watch it, or to kill it mid-run)")
      ->capture_default_str();
  app.add_option("--print-every", cfg.print_every, "Steps between progress lines")
      ->capture_default_str();
  app.add_option("--output", cfg.output, "Directory for params.bin and final.json (rank 0)");
  app.add_option("--device", cfg.device, "cpu, or cuda (cuBLAS + NCCL; CUDA builds only)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--backend", cfg.backend,
                 "Collective backend: cpu or mpi with --device cpu, nccl with --device cuda");
  app.add_option("--first-bucket-bytes", cfg.first_bucket_bytes, "Gradient bucketer: first bucket")
      ->capture_default_str();
  app.add_option("--bucket-bytes", cfg.bucket_bytes, "Gradient bucketer: later buckets")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (cfg.steps < 0 || cfg.batch <= 0 || cfg.hidden <= 0 || cfg.print_every <= 0 ||
      cfg.data.train_samples <= 0 || cfg.data.test_samples <= 0) {
    std::fprintf(stderr,
                 "native-mlp: --steps must be >= 0; --batch, --hidden, --print-every, "
                 "--train-samples and --test-samples must be > 0\n");
    return 2;
  }
  absl::Status s = native_mlp::Run(cfg);
  if (!s.ok()) {
    std::fprintf(stderr, "native-mlp: rank %d: %s\n", kubetrain::runtime::GetRankInfo().rank,
                 s.ToString().c_str());
    return 1;
  }
  kubetrain::runtime::Flush(absl::Seconds(10)).IgnoreError();
  return 0;
}
