// The gRPC client of the workspace server, and OpenWorkspace (kubetrain/storage/grpc_workspace.h).
#include "kubetrain/storage/grpc_workspace.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc_log.h"
#include "grpc_status.h"
#include "grpcpp/grpcpp.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/v1/workspace.grpc.pb.h"

namespace kubetrain::storage {
namespace {

using v1::WorkspaceService;

constexpr size_t kMaxLinesPerMessage = 2000;
constexpr size_t kMaxBytesPerMessage = 1 << 20;

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

v1::AssetRequest AssetRequest(absl::string_view name, absl::string_view version) {
  v1::AssetRequest req;
  req.set_name(std::string(name));
  req.set_version(std::string(version));
  return req;
}

v1::SetAssetArchivedRequest ArchiveRequest(absl::string_view name, absl::string_view version,
                                           bool archived) {
  v1::SetAssetArchivedRequest req;
  req.set_name(std::string(name));
  req.set_version(std::string(version));
  req.set_archived(archived);
  return req;
}

class GrpcWorkspace : public Workspace {
 public:
  GrpcWorkspace(std::string location, std::shared_ptr<grpc::Channel> channel,
                WorkspaceConnectOptions options)
      : location_(std::move(location)),
        channel_(std::move(channel)),
        stub_(WorkspaceService::NewStub(channel_)),
        options_(std::move(options)) {}

  // --- compute targets --------------------------------------------------------------------------
  absl::Status PutCompute(const v1::ComputeTarget& target) override {
    v1::PutComputeRequest req;
    *req.mutable_target() = target;
    v1::WorkspaceAck resp;
    return Unary(true, [&](grpc::ClientContext* c) { return stub_->PutCompute(c, req, &resp); });
  }
  absl::StatusOr<v1::ComputeTarget> GetCompute(absl::string_view name) override {
    v1::NameRequest req;
    req.set_name(std::string(name));
    v1::ComputeTarget resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->GetCompute(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<std::vector<v1::ComputeTarget>> ListComputes() override {
    v1::WorkspaceAck req;
    v1::ListComputesResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListComputes(c, req, &resp); }));
    return Vector(resp.targets());
  }

  // --- jobs -------------------------------------------------------------------------------------
  absl::StatusOr<v1::JobRecord> CreateJob(const v1::JobRecord& record) override {
    v1::CreateJobRequest req;
    *req.mutable_record() = record;
    v1::JobRecord resp;
    KT_RETURN_IF_ERROR(
        Unary(false, [&](grpc::ClientContext* c) { return stub_->CreateJob(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<v1::JobRecord> GetJob(absl::string_view name) override {
    v1::NameRequest req;
    req.set_name(std::string(name));
    v1::JobRecord resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->GetJob(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<std::vector<v1::JobRecord>> ListJobs() override {
    v1::ListJobsRequest req;
    v1::ListJobsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListJobs(c, req, &resp); }));
    return Vector(resp.jobs());
  }

  absl::StatusOr<v1::JobRecord> UpdateJob(absl::string_view name,
                                          const JobMutation& mutate) override {
    v1::NameRequest read;
    read.set_name(std::string(name));
    std::minstd_rand jitter(std::random_device{}());
    absl::Duration backoff = absl::Microseconds(200);
    const absl::Time give_up = absl::Now() + options_.call_timeout;
    while (true) {
      v1::ReadJobsForUpdateResponse snapshot;
      KT_RETURN_IF_ERROR(Unary(true, [&](grpc::ClientContext* c) {
        return stub_->ReadJobsForUpdate(c, read, &snapshot);
      }));
      std::vector<v1::JobRecord> all = Vector(snapshot.jobs());
      auto it = std::find_if(all.begin(), all.end(),
                             [&](const v1::JobRecord& j) { return j.spec().name() == name; });
      if (it == all.end()) {
        return absl::InternalError(absl::StrCat("workspace server ", location_,
                                                ": the snapshot for updating job \"", name,
                                                "\" does not contain it"));
      }
      v1::JobRecord job = *it;
      KT_RETURN_IF_ERROR(mutate(all, job));
      v1::CommitJobUpdateRequest commit;
      commit.set_name(std::string(name));
      commit.set_version(snapshot.version());
      *commit.mutable_record() = std::move(job);
      v1::JobRecord stored;
      absl::Status s = Unary(false, [&](grpc::ClientContext* c) {
        return stub_->CommitJobUpdate(c, commit, &stored);
      });
      if (s.ok()) return stored;
      if (s.code() != absl::StatusCode::kAborted || absl::Now() > give_up) return s;
      // Another writer changed a job between our read and our commit: read again.
      absl::SleepFor(backoff * (1.0 + std::uniform_real_distribution<double>(0, 1)(jitter)));
      backoff = std::min(backoff * 2, absl::Milliseconds(20));
    }
  }

  absl::Status UpdateInstanceStatus(absl::string_view job,
                                    const v1::InstanceStatus& instance) override {
    v1::UpdateInstanceStatusRequest req;
    req.set_job(std::string(job));
    *req.mutable_instance() = instance;
    v1::WorkspaceAck resp;
    return Unary(
        true, [&](grpc::ClientContext* c) { return stub_->UpdateInstanceStatus(c, req, &resp); });
  }

  absl::Status WatchJob(const WatchQuery& query,
                        const std::function<bool(const JobUpdate&)>& on_update) override {
    v1::WatchJobRequest req;
    req.set_job(query.job);
    req.set_rank(query.rank);
    req.set_attempt(query.attempt);
    req.set_after_id(query.after_id);
    req.set_no_logs(!query.logs);
    req.set_heartbeat_ms(query.heartbeat_ms);
    bool delivered_any = false;
    absl::Time failing_since = absl::InfiniteFuture();
    while (true) {
      KT_RETURN_IF_ERROR(WaitConnected(absl::Now() + options_.connect_timeout));
      grpc::ClientContext context;
      Prepare(&context, /*deadline=*/false);
      std::unique_ptr<grpc::ClientReader<v1::JobUpdate>> reader = stub_->WatchJob(&context, req);
      v1::JobUpdate msg;
      bool stopped = false, final = false;
      while (reader->Read(&msg)) {
        delivered_any = true;
        failing_since = absl::InfiniteFuture();
        JobUpdate u;
        if (msg.has_job()) u.job = std::move(*msg.mutable_job());
        u.lines.assign(std::make_move_iterator(msg.mutable_lines()->begin()),
                       std::make_move_iterator(msg.mutable_lines()->end()));
        u.next_id = msg.next_id();
        u.final = msg.final();
        req.set_after_id(u.next_id);  // resume here after a reconnect
        final = u.final;
        if (!on_update(u) && !final) {
          stopped = true;
          context.TryCancel();
          break;
        }
        if (final) break;
      }
      if (stopped || final) {
        if (final) context.TryCancel();
        (void)reader->Finish();
        return absl::OkStatus();
      }
      grpc::Status s = reader->Finish();
      if (s.ok()) return absl::OkStatus();
      absl::Status status = FromGrpc(s);
      // The server went away mid-stream: follow on from the cursor once it is back.
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE || !delivered_any) return status;
      if (failing_since == absl::InfiniteFuture()) failing_since = absl::Now();
      if (absl::Now() - failing_since > options_.connect_timeout) return status;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  absl::StatusOr<std::string> IssueJobToken(absl::string_view job) override {
    v1::NameRequest req;
    req.set_name(std::string(job));
    v1::IssueJobTokenResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->IssueJobToken(c, req, &resp); }));
    return resp.token();
  }

  // --- logs -------------------------------------------------------------------------------------
  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    if (lines.empty()) return absl::OkStatus();
    return Call(true, [&](grpc::ClientContext* c) {
      v1::AppendLogsResponse resp;
      std::unique_ptr<grpc::ClientWriter<v1::AppendLogsRequest>> writer =
          stub_->AppendLogs(c, &resp);
      v1::AppendLogsRequest msg;
      size_t bytes = 0;
      bool open = true;
      for (size_t i = 0; i < lines.size() && open; ++i) {
        *msg.add_lines() = lines[i];
        bytes += lines[i].text().size() + 64;
        if (msg.lines_size() >= static_cast<int>(kMaxLinesPerMessage) ||
            bytes >= kMaxBytesPerMessage || i + 1 == lines.size()) {
          open = writer->Write(msg);
          msg.Clear();
          bytes = 0;
        }
      }
      if (open) writer->WritesDone();
      return writer->Finish();
    });
  }

  absl::StatusOr<LogPage> ReadLogs(const LogQuery& query) override {
    v1::ReadLogsRequest req;
    req.set_job(query.job);
    req.set_rank(query.rank);
    req.set_attempt(query.attempt);
    req.set_after_id(query.after_id);
    req.set_limit(query.limit);
    v1::ReadLogsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ReadLogs(c, req, &resp); }));
    LogPage page;
    page.lines = Vector(resp.lines());
    page.next_id = resp.next_id();
    return page;
  }

  // --- run history ------------------------------------------------------------------------------
  absl::Status IngestMetrics(const v1::MetricBatch& batch) override {
    return IngestMetricBatches(absl::MakeConstSpan(&batch, 1));
  }

  absl::Status IngestMetricBatches(absl::Span<const v1::MetricBatch> batches) override {
    if (batches.empty()) return absl::OkStatus();
    return Call(true, [&](grpc::ClientContext* c) {
      v1::IngestMetricsResponse resp;
      std::unique_ptr<grpc::ClientWriter<v1::IngestMetricsRequest>> writer =
          stub_->IngestMetrics(c, &resp);
      v1::IngestMetricsRequest msg;
      bool open = true;
      for (const v1::MetricBatch& b : batches) {
        *msg.mutable_batch() = b;
        if (!(open = writer->Write(msg))) break;
      }
      if (open) writer->WritesDone();
      return writer->Finish();
    });
  }

  absl::StatusOr<std::vector<MetricKeySummary>> MetricSummary(absl::string_view job) override {
    v1::JobRequest req;
    req.set_job(std::string(job));
    v1::MetricSummaryResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->MetricSummary(c, req, &resp); }));
    std::vector<MetricKeySummary> out;
    out.reserve(resp.keys_size());
    for (const v1::MetricKeySummary& k : resp.keys()) {
      MetricKeySummary s;
      s.key = k.key();
      s.latest = k.latest();
      s.latest_step = k.latest_step();
      s.latest_timestamp_ms = k.latest_timestamp_ms();
      s.min = k.min();
      s.max = k.max();
      s.count = k.count();
      out.push_back(std::move(s));
    }
    return out;
  }

  absl::StatusOr<std::vector<v1::Metric>> MetricHistory(absl::string_view job,
                                                        absl::string_view key) override {
    v1::MetricHistoryRequest req;
    req.set_job(std::string(job));
    req.set_key(std::string(key));
    v1::MetricHistoryResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->MetricHistory(c, req, &resp); }));
    return Vector(resp.points());
  }

  absl::StatusOr<std::vector<v1::Param>> ListParams(absl::string_view job) override {
    v1::JobRequest req;
    req.set_job(std::string(job));
    v1::ListParamsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListParams(c, req, &resp); }));
    return Vector(resp.params());
  }

  absl::StatusOr<std::vector<v1::Tag>> ListTags(absl::string_view job) override {
    v1::JobRequest req;
    req.set_job(std::string(job));
    v1::ListTagsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListTags(c, req, &resp); }));
    return Vector(resp.tags());
  }

  // --- datastores -------------------------------------------------------------------------------
  absl::Status PutDatastore(const v1::Datastore& datastore) override {
    v1::PutDatastoreRequest req;
    *req.mutable_datastore() = datastore;
    v1::WorkspaceAck resp;
    return Unary(true, [&](grpc::ClientContext* c) { return stub_->PutDatastore(c, req, &resp); });
  }
  absl::StatusOr<v1::Datastore> GetDatastore(absl::string_view name) override {
    v1::NameRequest req;
    req.set_name(std::string(name));
    v1::Datastore resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->GetDatastore(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    v1::WorkspaceAck req;
    v1::ListDatastoresResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListDatastores(c, req, &resp); }));
    return Vector(resp.datastores());
  }

  // --- data assets and environments -------------------------------------------------------------
  // Creating an identical version again is harmless (the workspace returns the stored one), so
  // every call may be repeated.
  absl::StatusOr<v1::DataAsset> CreateDataAsset(const v1::DataAsset& asset) override {
    v1::DataAsset resp;
    KT_RETURN_IF_ERROR(Unary(
        true, [&](grpc::ClientContext* c) { return stub_->CreateDataAsset(c, asset, &resp); }));
    return resp;
  }
  absl::StatusOr<v1::DataAsset> GetDataAsset(absl::string_view name,
                                             absl::string_view version) override {
    v1::AssetRequest req = AssetRequest(name, version);
    v1::DataAsset resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->GetDataAsset(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(absl::string_view name) override {
    v1::AssetRequest req = AssetRequest(name, "");
    v1::ListDataAssetsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListDataAssets(c, req, &resp); }));
    return Vector(resp.assets());
  }
  absl::StatusOr<v1::DataAsset> SetDataAssetArchived(absl::string_view name,
                                                     absl::string_view version,
                                                     bool archived) override {
    v1::SetAssetArchivedRequest req = ArchiveRequest(name, version, archived);
    v1::DataAsset resp;
    KT_RETURN_IF_ERROR(Unary(
        true, [&](grpc::ClientContext* c) { return stub_->SetDataAssetArchived(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(
      const v1::EnvironmentAsset& environment) override {
    v1::EnvironmentAsset resp;
    KT_RETURN_IF_ERROR(Unary(true, [&](grpc::ClientContext* c) {
      return stub_->CreateEnvironment(c, environment, &resp);
    }));
    return resp;
  }
  absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(absl::string_view name,
                                                      absl::string_view version) override {
    v1::AssetRequest req = AssetRequest(name, version);
    v1::EnvironmentAsset resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->GetEnvironment(c, req, &resp); }));
    return resp;
  }
  absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(
      absl::string_view name) override {
    v1::AssetRequest req = AssetRequest(name, "");
    v1::ListEnvironmentsResponse resp;
    KT_RETURN_IF_ERROR(Unary(
        true, [&](grpc::ClientContext* c) { return stub_->ListEnvironments(c, req, &resp); }));
    return Vector(resp.environments());
  }
  absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(absl::string_view name,
                                                              absl::string_view version,
                                                              bool archived) override {
    v1::SetAssetArchivedRequest req = ArchiveRequest(name, version, archived);
    v1::EnvironmentAsset resp;
    KT_RETURN_IF_ERROR(Unary(true, [&](grpc::ClientContext* c) {
      return stub_->SetEnvironmentArchived(c, req, &resp);
    }));
    return resp;
  }

  // --- checkpoint and output upload records -----------------------------------------------------
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    v1::RecordCheckpointRequest req;
    *req.mutable_record() = record;
    v1::WorkspaceAck resp;
    return Unary(true,
                 [&](grpc::ClientContext* c) { return stub_->RecordCheckpoint(c, req, &resp); });
  }
  absl::StatusOr<std::vector<v1::CheckpointRecord>> ListCheckpoints(
      absl::string_view job) override {
    v1::JobRequest req;
    req.set_job(std::string(job));
    v1::ListCheckpointsResponse resp;
    KT_RETURN_IF_ERROR(
        Unary(true, [&](grpc::ClientContext* c) { return stub_->ListCheckpoints(c, req, &resp); }));
    return Vector(resp.checkpoints());
  }
  absl::Status RecordOutputUpload(const v1::OutputUpload& upload) override {
    v1::RecordOutputUploadRequest req;
    *req.mutable_upload() = upload;
    v1::WorkspaceAck resp;
    return Unary(true,
                 [&](grpc::ClientContext* c) { return stub_->RecordOutputUpload(c, req, &resp); });
  }
  absl::StatusOr<std::vector<v1::OutputUpload>> ListOutputUploads(absl::string_view job) override {
    v1::JobRequest req;
    req.set_job(std::string(job));
    v1::ListOutputUploadsResponse resp;
    KT_RETURN_IF_ERROR(Unary(
        true, [&](grpc::ClientContext* c) { return stub_->ListOutputUploads(c, req, &resp); }));
    return Vector(resp.uploads());
  }

 private:
  template <typename T>
  static std::vector<T> Vector(const google::protobuf::RepeatedPtrField<T>& field) {
    return std::vector<T>(field.begin(), field.end());
  }

  void Prepare(grpc::ClientContext* context, bool deadline) const {
    if (!options_.token.empty()) {
      context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
    }
    if (deadline) context->set_deadline(ToChrono(absl::Now() + options_.call_timeout));
  }

  absl::Status FromGrpc(const grpc::Status& s) const {
    absl::Status status = storage_internal::FromGrpcStatus(s);
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::Status(status.code(),
                          absl::StrCat("workspace server ", location_, ": ", status.message()));
    }
    return status;
  }

  // Waits until the channel is connected, or fails with Unavailable at `deadline`.
  absl::Status WaitConnected(absl::Time deadline) {
    grpc_connectivity_state state = channel_->GetState(true);
    while (state != GRPC_CHANNEL_READY) {
      if (!channel_->WaitForStateChange(state, ToChrono(deadline))) {
        return absl::UnavailableError(
            absl::StrCat("cannot reach the workspace server at ", location_, " (waited ",
                         absl::FormatDuration(options_.connect_timeout),
                         "); is `kubetrain workspace serve` running there?"));
      }
      state = channel_->GetState(true);
    }
    return absl::OkStatus();
  }

  // Runs `rpc` once connected; repeats it on Unavailable within connect_timeout when `idempotent`.
  absl::Status Call(bool idempotent, const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    const absl::Time give_up = absl::Now() + options_.connect_timeout;
    while (true) {
      KT_RETURN_IF_ERROR(WaitConnected(std::max(give_up, absl::Now() + absl::Milliseconds(1))));
      grpc::ClientContext context;
      Prepare(&context, true);
      grpc::Status s = rpc(&context);
      if (s.ok()) return absl::OkStatus();
      if (!idempotent || s.error_code() != grpc::StatusCode::UNAVAILABLE ||
          absl::Now() >= give_up) {
        return FromGrpc(s);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  absl::Status Unary(bool idempotent,
                     const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    return Call(idempotent, rpc);
  }

  std::string location_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<WorkspaceService::Stub> stub_;
  WorkspaceConnectOptions options_;
};

}  // namespace

absl::StatusOr<WorkspaceConnectOptions> ConnectOptionsFromEnvironment() {
  WorkspaceConnectOptions options;
  const char* token = std::getenv(kWorkspaceTokenEnv);
  const char* token_file = std::getenv(kWorkspaceTokenFileEnv);
  if (token != nullptr && token[0] != '\0') {
    options.token = std::string(absl::StripAsciiWhitespace(token));
  } else if (token_file != nullptr && token_file[0] != '\0') {
    KT_ASSIGN_OR_RETURN(
        std::string text,
        ReadFile(token_file, absl::StrCat("the token file (", kWorkspaceTokenFileEnv, ")")));
    options.token = std::string(absl::StripAsciiWhitespace(text));
  }
  if (const char* ca = std::getenv(kWorkspaceCaEnv); ca != nullptr && ca[0] != '\0') {
    options.ca_file = ca;
  }
  return options;
}

bool IsRemoteWorkspace(absl::string_view location) {
  return absl::StartsWith(location, "grpc://") || absl::StartsWith(location, "grpcs://");
}

absl::StatusOr<std::unique_ptr<Workspace>> OpenGrpcWorkspace(
    const std::string& location, const WorkspaceConnectOptions& options) {
  storage_internal::RouteGrpcLogToSpdlog();
  absl::string_view target = location;
  bool tls = false;
  if (absl::ConsumePrefix(&target, "grpcs://")) {
    tls = true;
  } else if (!absl::ConsumePrefix(&target, "grpc://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("workspace '", location,
                     "' is not a workspace server: use grpc://HOST:PORT or "
                     "grpcs://HOST:PORT"));
  }
  absl::ConsumeSuffix(&target, "/");
  if (target.empty() || target.find('/') != absl::string_view::npos ||
      target.rfind(':') == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workspace '", location, "': expected grpc://HOST:PORT (or grpcs://HOST:PORT)"));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      KT_ASSIGN_OR_RETURN(
          ssl.pem_root_certs,
          ReadFile(options.ca_file, absl::StrCat("the CA certificates (", kWorkspaceCaEnv, ")")));
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // Come back quickly after the server restarts.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  // Each client its own connection (several clients in one process, e.g. a log and a metrics
  // connection, do not share one TCP stream).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(std::string(target), credentials, args);
  return std::unique_ptr<Workspace>(new GrpcWorkspace(location, std::move(channel), options));
}

absl::StatusOr<std::unique_ptr<Workspace>> OpenWorkspace(const std::string& location,
                                                         const WorkspaceConnectOptions& options) {
  if (IsRemoteWorkspace(location)) return OpenGrpcWorkspace(location, options);
  std::string path = location.empty() ? DefaultWorkspacePath() : location;
  if (absl::StartsWith(path, "file://")) path = path.substr(7);
  if (IsRemoteWorkspace(path)) return OpenGrpcWorkspace(path, options);
  if (absl::StrContains(path, "://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "workspace '", path, "': use a directory, grpc://HOST:PORT or grpcs://HOST:PORT"));
  }
  return OpenEmbeddedWorkspace(path);
}

absl::StatusOr<std::unique_ptr<Workspace>> OpenWorkspace(const std::string& location) {
  if (!IsRemoteWorkspace(location)) return OpenWorkspace(location, WorkspaceConnectOptions());
  KT_ASSIGN_OR_RETURN(WorkspaceConnectOptions options, ConnectOptionsFromEnvironment());
  return OpenWorkspace(location, options);
}

}  // namespace kubetrain::storage
