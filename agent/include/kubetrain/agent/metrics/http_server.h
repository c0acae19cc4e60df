// A minimal HTTP/1.1 server on a loopback port, for the agent's MLflow-compatible endpoint.
//
// One thread accepts connections and serves them one at a time: it reads one request (headers,
// then a body of Content-Length bytes; chunked bodies are refused with 411), calls the handler,
// writes the response with `Connection: close` and closes the connection. No keep-alive, no TLS.
// A client that sends nothing for `read_timeout` is dropped, so a stuck client cannot hold the
// endpoint for longer than that.
//
// Ownership: owns its socket and thread. Thread-safety: Start/Stop from one thread; the handler
// runs on the server thread (one request at a time).
#ifndef KUBETRAIN_AGENT_METRICS_HTTP_SERVER_H_
#define KUBETRAIN_AGENT_METRICS_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kubetrain::agent {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // without the query, percent-decoded
  std::map<std::string, std::string> query;    // decoded query parameters (last one wins)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback only
  int port = 0;                    // 0 = any free port (see HttpServer::port())
  absl::Duration read_timeout = absl::Seconds(10);
  size_t max_body_bytes = 16 << 20;  // larger bodies get 413
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  HttpServer(HttpServerOptions options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {}
  ~HttpServer() { Stop(); }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the server thread.
  absl::Status Start();
  // Stops accepting, finishes the request in progress and joins the thread. Idempotent.
  void Stop();
  // The bound port (after Start).
  int port() const { return port_; }

 private:
  void Loop();
  void Serve(int fd);

  HttpServerOptions options_;
  Handler handler_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

// "%41b" -> "Ab"; '+' -> ' ' when `plus_is_space` (query strings).
std::string PercentDecode(const std::string& text, bool plus_is_space);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_METRICS_HTTP_SERVER_H_
