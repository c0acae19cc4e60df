// The workspace server (kubetrain/storage/workspace_server.h): WorkspaceService over a Workspace.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "deterministic.h"
#include "grpc_log.h"
#include "grpc_status.h"
#include "grpcpp/grpcpp.h"
#include "kubetrain/storage/tokens.h"
#include "kubetrain/storage/workspace_server.h"
#include "kubetrain/v1/workspace.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace kubetrain::storage {
namespace {

using storage_internal::ToGrpcStatus;

// Who may call an RPC.
enum class Access {
  kServer,    // the server token only
  kJob,       // the server token, or the job token of the job the request names
  kAnyToken,  // any valid token
};

// A version of a snapshot of every job, for UpdateJob's optimistic commit of job `name`: all of
// `name`'s record, and the other jobs without their per-instance status (what their agents report
// as ranks start and end), so that a busy gang elsewhere does not keep failing the commit; no
// decision a mutation makes about job `name` depends on another job's instances.
std::string JobsVersion(const std::vector<v1::JobRecord>& jobs, const std::string& name) {
  std::string all;
  for (const v1::JobRecord& j : jobs) {
    std::string bytes;
    if (j.spec().name() == name) {
      bytes = storage_internal::SerializeDeterministic(j);
    } else {
      v1::JobRecord other = j;
      other.mutable_status()->clear_instances();
      bytes = storage_internal::SerializeDeterministic(other);
    }
    absl::StrAppend(&all, bytes.size(), ":", bytes);
  }
  return Sha256Hex(all);
}

// Returns the refusal from the handler when the caller may not make this call.
#define KT_AUTHORIZE_AS(ctx, method, access, job, who)             \
  do {                                                             \
    grpc::Status _auth = Authorize(ctx, method, access, job, who); \
    if (!_auth.ok()) return _auth;                                 \
  } while (false)
#define KT_AUTHORIZE(ctx, method, access, job)          \
  do {                                                  \
    TokenIdentity _who;                                 \
    const std::string& _job = (job);                    \
    KT_AUTHORIZE_AS(ctx, method, access, &_job, &_who); \
  } while (false)

// Lets at most `permits` bulk writes (log chunks, metric batches) into the workspace at once. The
// workspace runs one write at a time anyway; without the gate dozens of streaming agents queue on
// its lock and a status update or a supervisor's commit waits behind all of them. With it, such a
// call waits for at most `permits` bulk writes.
class BulkGate {
 public:
  explicit BulkGate(int permits) : free_(permits) {}
  void Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

class Service final : public v1::WorkspaceService::Service {
 public:
  Service(Workspace* ws, std::string token) : ws_(ws), token_(std::move(token)) {}

  int64_t refused() const { return refused_.load(); }
  void Stop() { stopping_.store(true); }

  // --- compute targets --------------------------------------------------------------------------
  grpc::Status PutCompute(grpc::ServerContext* ctx, const v1::PutComputeRequest* req,
                          v1::WorkspaceAck*) override {
    KT_AUTHORIZE(ctx, "PutCompute", Access::kServer, "");
    return ToGrpcStatus(ws_->PutCompute(req->target()));
  }
  grpc::Status GetCompute(grpc::ServerContext* ctx, const v1::NameRequest* req,
                          v1::ComputeTarget* resp) override {
    KT_AUTHORIZE(ctx, "GetCompute", Access::kServer, "");
    return Assign(ws_->GetCompute(req->name()), resp);
  }
  grpc::Status ListComputes(grpc::ServerContext* ctx, const v1::WorkspaceAck*,
                            v1::ListComputesResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListComputes", Access::kServer, "");
    return AssignAll(ws_->ListComputes(), resp->mutable_targets());
  }

  // --- jobs -------------------------------------------------------------------------------------
  grpc::Status CreateJob(grpc::ServerContext* ctx, const v1::CreateJobRequest* req,
                         v1::JobRecord* resp) override {
    KT_AUTHORIZE(ctx, "CreateJob", Access::kServer, "");
    return Assign(ws_->CreateJob(req->record()), resp);
  }
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::NameRequest* req,
                      v1::JobRecord* resp) override {
    KT_AUTHORIZE(ctx, "GetJob", Access::kJob, req->name());
    return Assign(ws_->GetJob(req->name()), resp);
  }
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListJobs", Access::kServer, "");
    return AssignAll(ws_->ListJobs(), resp->mutable_jobs());
  }
  grpc::Status ReadJobsForUpdate(grpc::ServerContext* ctx, const v1::NameRequest* req,
                                 v1::ReadJobsForUpdateResponse* resp) override {
    KT_AUTHORIZE(ctx, "ReadJobsForUpdate", Access::kServer, "");
    absl::StatusOr<std::vector<v1::JobRecord>> all = ws_->ListJobs();
    if (!all.ok()) return ToGrpcStatus(all.status());
    bool found = false;
    for (const v1::JobRecord& j : *all) found = found || j.spec().name() == req->name();
    if (!found) return ToGrpcStatus(ws_->GetJob(req->name()).status());  // its NotFound
    resp->set_version(JobsVersion(*all, req->name()));
    for (v1::JobRecord& j : *all) *resp->add_jobs() = std::move(j);
    return grpc::Status::OK;
  }
  grpc::Status CommitJobUpdate(grpc::ServerContext* ctx, const v1::CommitJobUpdateRequest* req,
                               v1::JobRecord* resp) override {
    KT_AUTHORIZE(ctx, "CommitJobUpdate", Access::kServer, "");
    return Assign(ws_->UpdateJob(req->name(),
                                 [&](const std::vector<v1::JobRecord>& all, v1::JobRecord& job) {
                                   if (JobsVersion(all, req->name()) != req->version()) {
                                     return absl::AbortedError(
                                         "the jobs changed since they were read; read again");
                                   }
                                   job = req->record();
                                   return absl::OkStatus();
                                 }),
                  resp);
  }
  grpc::Status UpdateInstanceStatus(grpc::ServerContext* ctx,
                                    const v1::UpdateInstanceStatusRequest* req,
                                    v1::WorkspaceAck*) override {
    KT_AUTHORIZE(ctx, "UpdateInstanceStatus", Access::kJob, req->job());
    return ToGrpcStatus(ws_->UpdateInstanceStatus(req->job(), req->instance()));
  }
  grpc::Status IssueJobToken(grpc::ServerContext* ctx, const v1::NameRequest* req,
                             v1::IssueJobTokenResponse* resp) override {
    KT_AUTHORIZE(ctx, "IssueJobToken", Access::kServer, "");
    if (req->name().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "IssueJobToken: no job name");
    }
    resp->set_token(MakeJobToken(token_, req->name()));
    return grpc::Status::OK;
  }

  // --- logs -------------------------------------------------------------------------------------
  grpc::Status AppendLogs(grpc::ServerContext* ctx,
                          grpc::ServerReader<v1::AppendLogsRequest>* reader,
                          v1::AppendLogsResponse* resp) override {
    TokenIdentity who;
    KT_AUTHORIZE_AS(ctx, "AppendLogs", Access::kJob, nullptr, &who);
    v1::AppendLogsRequest msg;
    int64_t lines = 0;
    while (reader->Read(&msg)) {
      for (const v1::LogLine& l : msg.lines()) {
        if (grpc::Status s = CheckJob(ctx, "AppendLogs", who, l.job()); !s.ok()) return s;
      }
      std::vector<v1::LogLine> batch(msg.lines().begin(), msg.lines().end());
      bulk_.Acquire();
      absl::Status s = ws_->AppendLogs(batch);
      bulk_.Release();
      if (!s.ok()) return ToGrpcStatus(s);
      lines += msg.lines_size();
    }
    resp->set_lines(lines);
    return grpc::Status::OK;
  }
  grpc::Status ReadLogs(grpc::ServerContext* ctx, const v1::ReadLogsRequest* req,
                        v1::ReadLogsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ReadLogs", Access::kJob, req->job());
    LogQuery q;
    q.job = req->job();
    q.rank = req->rank();
    q.attempt = req->attempt();
    q.after_id = req->after_id();
    q.limit = req->limit();
    absl::StatusOr<LogPage> page = ws_->ReadLogs(q);
    if (!page.ok()) return ToGrpcStatus(page.status());
    for (v1::LogLine& l : page->lines) *resp->add_lines() = std::move(l);
    resp->set_next_id(page->next_id);
    return grpc::Status::OK;
  }
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobUpdate>* writer) override {
    KT_AUTHORIZE(ctx, "WatchJob", Access::kJob, req->job());
    WatchQuery q;
    q.job = req->job();
    q.rank = req->rank();
    q.attempt = req->attempt();
    q.after_id = req->after_id();
    q.logs = !req->no_logs();
    if (req->heartbeat_ms() > 0) q.heartbeat_ms = std::clamp(req->heartbeat_ms(), 10, 10000);
    bool canceled = false;
    absl::Status s = ws_->WatchJob(q, [&](const JobUpdate& u) {
      if (ctx->IsCancelled() || stopping_.load()) {
        canceled = true;
        return false;
      }
      v1::JobUpdate msg;
      if (u.job.has_value()) {
        *msg.mutable_job() = *u.job;
      }
      for (const v1::LogLine& l : u.lines) *msg.add_lines() = l;
      msg.set_next_id(u.next_id);
      msg.set_final(u.final);
      if (!writer->Write(msg)) {
        canceled = true;
        return false;
      }
      return true;
    });
    if (!s.ok()) return ToGrpcStatus(s);
    if (canceled) return grpc::Status(grpc::StatusCode::CANCELLED, "watch ended");
    return grpc::Status::OK;
  }

  // --- run history ------------------------------------------------------------------------------
  grpc::Status IngestMetrics(grpc::ServerContext* ctx,
                             grpc::ServerReader<v1::IngestMetricsRequest>* reader,
                             v1::IngestMetricsResponse* resp) override {
    TokenIdentity who;
    KT_AUTHORIZE_AS(ctx, "IngestMetrics", Access::kJob, nullptr, &who);
    v1::IngestMetricsRequest msg;
    int64_t batches = 0;
    while (reader->Read(&msg)) {
      if (grpc::Status s = CheckJob(ctx, "IngestMetrics", who, msg.batch().job()); !s.ok()) {
        return s;
      }
      bulk_.Acquire();
      absl::Status s = ws_->IngestMetrics(msg.batch());
      bulk_.Release();
      if (!s.ok()) return ToGrpcStatus(s);
      ++batches;
    }
    resp->set_batches(batches);
    return grpc::Status::OK;
  }
  grpc::Status MetricSummary(grpc::ServerContext* ctx, const v1::JobRequest* req,
                             v1::MetricSummaryResponse* resp) override {
    KT_AUTHORIZE(ctx, "MetricSummary", Access::kJob, req->job());
    absl::StatusOr<std::vector<storage::MetricKeySummary>> summary = ws_->MetricSummary(req->job());
    if (!summary.ok()) return ToGrpcStatus(summary.status());
    for (const storage::MetricKeySummary& s : *summary) {
      v1::MetricKeySummary* k = resp->add_keys();
      k->set_key(s.key);
      k->set_latest(s.latest);
      k->set_latest_step(s.latest_step);
      k->set_latest_timestamp_ms(s.latest_timestamp_ms);
      k->set_min(s.min);
      k->set_max(s.max);
      k->set_count(s.count);
    }
    return grpc::Status::OK;
  }
  grpc::Status MetricHistory(grpc::ServerContext* ctx, const v1::MetricHistoryRequest* req,
                             v1::MetricHistoryResponse* resp) override {
    KT_AUTHORIZE(ctx, "MetricHistory", Access::kJob, req->job());
    return AssignAll(ws_->MetricHistory(req->job(), req->key()), resp->mutable_points());
  }
  grpc::Status ListParams(grpc::ServerContext* ctx, const v1::JobRequest* req,
                          v1::ListParamsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListParams", Access::kJob, req->job());
    return AssignAll(ws_->ListParams(req->job()), resp->mutable_params());
  }
  grpc::Status ListTags(grpc::ServerContext* ctx, const v1::JobRequest* req,
                        v1::ListTagsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListTags", Access::kJob, req->job());
    return AssignAll(ws_->ListTags(req->job()), resp->mutable_tags());
  }

  // --- datastores -------------------------------------------------------------------------------
  grpc::Status PutDatastore(grpc::ServerContext* ctx, const v1::PutDatastoreRequest* req,
                            v1::WorkspaceAck*) override {
    KT_AUTHORIZE(ctx, "PutDatastore", Access::kServer, "");
    return ToGrpcStatus(ws_->PutDatastore(req->datastore()));
  }
  grpc::Status GetDatastore(grpc::ServerContext* ctx, const v1::NameRequest* req,
                            v1::Datastore* resp) override {
    KT_AUTHORIZE(ctx, "GetDatastore", Access::kAnyToken, "");
    return Assign(ws_->GetDatastore(req->name()), resp);
  }
  grpc::Status ListDatastores(grpc::ServerContext* ctx, const v1::WorkspaceAck*,
                              v1::ListDatastoresResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListDatastores", Access::kServer, "");
    return AssignAll(ws_->ListDatastores(), resp->mutable_datastores());
  }

  // --- data assets and environments (resolved by the CLI at validate / submit) ------------------
  grpc::Status CreateDataAsset(grpc::ServerContext* ctx, const v1::DataAsset* req,
                               v1::DataAsset* resp) override {
    KT_AUTHORIZE(ctx, "CreateDataAsset", Access::kServer, "");
    return Assign(ws_->CreateDataAsset(*req), resp);
  }
  grpc::Status GetDataAsset(grpc::ServerContext* ctx, const v1::AssetRequest* req,
                            v1::DataAsset* resp) override {
    KT_AUTHORIZE(ctx, "GetDataAsset", Access::kServer, "");
    return Assign(ws_->GetDataAsset(req->name(), req->version()), resp);
  }
  grpc::Status ListDataAssets(grpc::ServerContext* ctx, const v1::AssetRequest* req,
                              v1::ListDataAssetsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListDataAssets", Access::kServer, "");
    return AssignAll(ws_->ListDataAssets(req->name()), resp->mutable_assets());
  }
  grpc::Status SetDataAssetArchived(grpc::ServerContext* ctx,
                                    const v1::SetAssetArchivedRequest* req,
                                    v1::DataAsset* resp) override {
    KT_AUTHORIZE(ctx, "SetDataAssetArchived", Access::kServer, "");
    return Assign(ws_->SetDataAssetArchived(req->name(), req->version(), req->archived()), resp);
  }
  grpc::Status CreateEnvironment(grpc::ServerContext* ctx, const v1::EnvironmentAsset* req,
                                 v1::EnvironmentAsset* resp) override {
    KT_AUTHORIZE(ctx, "CreateEnvironment", Access::kServer, "");
    return Assign(ws_->CreateEnvironment(*req), resp);
  }
  grpc::Status GetEnvironment(grpc::ServerContext* ctx, const v1::AssetRequest* req,
                              v1::EnvironmentAsset* resp) override {
    KT_AUTHORIZE(ctx, "GetEnvironment", Access::kServer, "");
    return Assign(ws_->GetEnvironment(req->name(), req->version()), resp);
  }
  grpc::Status ListEnvironments(grpc::ServerContext* ctx, const v1::AssetRequest* req,
                                v1::ListEnvironmentsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListEnvironments", Access::kServer, "");
    return AssignAll(ws_->ListEnvironments(req->name()), resp->mutable_environments());
  }
  grpc::Status SetEnvironmentArchived(grpc::ServerContext* ctx,
                                      const v1::SetAssetArchivedRequest* req,
                                      v1::EnvironmentAsset* resp) override {
    KT_AUTHORIZE(ctx, "SetEnvironmentArchived", Access::kServer, "");
    return Assign(ws_->SetEnvironmentArchived(req->name(), req->version(), req->archived()), resp);
  }

  // --- checkpoint and output upload records -----------------------------------------------------
  grpc::Status RecordCheckpoint(grpc::ServerContext* ctx, const v1::RecordCheckpointRequest* req,
                                v1::WorkspaceAck*) override {
    KT_AUTHORIZE(ctx, "RecordCheckpoint", Access::kJob, req->record().job());
    return ToGrpcStatus(ws_->RecordCheckpoint(req->record()));
  }
  grpc::Status ListCheckpoints(grpc::ServerContext* ctx, const v1::JobRequest* req,
                               v1::ListCheckpointsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListCheckpoints", Access::kJob, req->job());
    return AssignAll(ws_->ListCheckpoints(req->job()), resp->mutable_checkpoints());
  }
  grpc::Status RecordOutputUpload(grpc::ServerContext* ctx,
                                  const v1::RecordOutputUploadRequest* req,
                                  v1::WorkspaceAck*) override {
    KT_AUTHORIZE(ctx, "RecordOutputUpload", Access::kJob, req->upload().job());
    return ToGrpcStatus(ws_->RecordOutputUpload(req->upload()));
  }
  grpc::Status ListOutputUploads(grpc::ServerContext* ctx, const v1::JobRequest* req,
                                 v1::ListOutputUploadsResponse* resp) override {
    KT_AUTHORIZE(ctx, "ListOutputUploads", Access::kJob, req->job());
    return AssignAll(ws_->ListOutputUploads(req->job()), resp->mutable_uploads());
  }

 private:
  template <typename T, typename Message>
  static grpc::Status Assign(absl::StatusOr<T> value, Message* out) {
    if (!value.ok()) return ToGrpcStatus(value.status());
    *out = std::move(*value);
    return grpc::Status::OK;
  }
  template <typename T, typename Field>
  static grpc::Status AssignAll(absl::StatusOr<std::vector<T>> values, Field* out) {
    if (!values.ok()) return ToGrpcStatus(values.status());
    out->Reserve(static_cast<int>(values->size()));
    for (T& v : *values) *out->Add() = std::move(v);
    return grpc::Status::OK;
  }

  grpc::Status Refuse(grpc::ServerContext* ctx, absl::string_view method, grpc::StatusCode code,
                      const std::string& why) {
    refused_.fetch_add(1);
    spdlog::warn("workspace server: refused {} from {}: {}", std::string(method), ctx->peer(), why);
    return grpc::Status(code, why);
  }

  // Checks the caller's token against `access`; `job` is the job the request names (kJob). With
  // `job` null (streams) a job token passes here and each message is checked with CheckJob.
  grpc::Status Authorize(grpc::ServerContext* ctx, absl::string_view method, Access access,
                         const std::string* job, TokenIdentity* who) {
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end()) {
      return Refuse(ctx, method, grpc::StatusCode::UNAUTHENTICATED,
                    "this workspace server requires a token (authorization: Bearer ...); set "
                    "KUBETRAIN_WORKSPACE_TOKEN or KUBETRAIN_WORKSPACE_TOKEN_FILE");
    }
    absl::string_view value(it->second.data(), it->second.size());
    if (!absl::ConsumePrefix(&value, "Bearer ")) {
      return Refuse(ctx, method, grpc::StatusCode::UNAUTHENTICATED,
                    "the authorization metadata is not a bearer token");
    }
    *who = IdentifyToken(token_, value);
    switch (who->kind) {
      case TokenIdentity::kInvalid:
        return Refuse(ctx, method, grpc::StatusCode::UNAUTHENTICATED,
                      "the token is not valid for this workspace server");
      case TokenIdentity::kServer:
        return grpc::Status::OK;
      case TokenIdentity::kJob:
        break;
    }
    if (access == Access::kAnyToken) return grpc::Status::OK;
    if (access == Access::kServer) {
      return Refuse(ctx, method, grpc::StatusCode::PERMISSION_DENIED,
                    absl::StrCat("the token of job \"", who->job, "\" may not call ", method,
                                 "; it needs the server's token"));
    }
    if (job == nullptr) return grpc::Status::OK;
    return CheckJob(ctx, method, *who, *job);
  }

  grpc::Status CheckJob(grpc::ServerContext* ctx, absl::string_view method,
                        const TokenIdentity& who, const std::string& job) {
    if (who.kind == TokenIdentity::kServer || (who.kind == TokenIdentity::kJob && who.job == job)) {
      return grpc::Status::OK;
    }
    return Refuse(ctx, method, grpc::StatusCode::PERMISSION_DENIED,
                  absl::StrCat("the token of job \"", who.job, "\" may not ", method, " for job \"",
                               job, "\""));
  }

  Workspace* ws_;
  std::string token_;
  BulkGate bulk_{2};
  std::atomic<int64_t> refused_{0};
  std::atomic<bool> stopping_{false};
};

class Server : public WorkspaceServer {
 public:
  Server(std::unique_ptr<Service> service, std::unique_ptr<grpc::Server> server, int port,
         std::string location)
      : service_(std::move(service)),
        server_(std::move(server)),
        port_(port),
        location_(std::move(location)) {}
  ~Server() override { Shutdown(absl::Seconds(2)); }

  int port() const override { return port_; }
  std::string location() const override { return location_; }
  void Shutdown(absl::Duration grace) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    service_->Stop();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
    shut_down_ = true;
  }
  void Wait() override { server_->Wait(); }
  int64_t refused() const override { return service_->refused(); }

 private:
  std::mutex mu_;
  bool shut_down_ = false;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string location_;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the TLS ", what, " ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkspaceServer>> StartWorkspaceServer(
    Workspace* workspace, const WorkspaceServerOptions& options) {
  storage_internal::RouteGrpcLogToSpdlog();
  if (options.token.empty()) {
    return absl::InvalidArgumentError("the workspace server needs a token");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  absl::string_view listen = options.listen;
  size_t colon = listen.rfind(':');
  int requested_port = -1;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &requested_port) || requested_port < 0 ||
      requested_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("listen address '", options.listen,
                                                   "': expected HOST:PORT, e.g. 0.0.0.0:7070"));
  }
  std::shared_ptr<grpc::ServerCredentials> credentials;
  const bool tls = !options.tls_cert_file.empty();
  if (tls) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    absl::StatusOr<std::string> key = ReadPem(options.tls_key_file, "key");
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> cert = ReadPem(options.tls_cert_file, "certificate");
    if (!cert.ok()) return cert.status();
    pair.private_key = std::move(*key);
    pair.cert_chain = std::move(*cert);
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    credentials = grpc::SslServerCredentials(ssl);
  } else {
    credentials = grpc::InsecureServerCredentials();
  }
  auto service = std::make_unique<Service>(workspace, options.token);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(-1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a second server on a port fails
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve the workspace on ", options.listen,
                     ": the address is in use or not one of this machine's"));
  }
  std::string host(listen.substr(0, colon));
  if (host == "0.0.0.0" || host == "[::]" || host == "::") host = "127.0.0.1";
  std::string location = absl::StrCat(tls ? "grpcs://" : "grpc://", host, ":", port);
  return std::unique_ptr<WorkspaceServer>(
      new Server(std::move(service), std::move(server), port, std::move(location)));
}

}  // namespace kubetrain::storage
