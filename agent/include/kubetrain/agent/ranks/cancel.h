// CancelToken: how a signal handler (or another thread) asks the agent to stop all ranks.
//
// Request() is async-signal-safe: it stores the reason (a signal number) and writes one byte to a
// self-pipe whose read end the supervisor polls, so a request wakes the poll loop at once.
//
// Ownership: owns the pipe. Thread-safety: Request() from any thread or signal handler; the rest
// from the agent's main thread.
#ifndef KUBETRAIN_AGENT_RANKS_CANCEL_H_
#define KUBETRAIN_AGENT_RANKS_CANCEL_H_

#include <atomic>

namespace kubetrain::agent {

class CancelToken {
 public:
  CancelToken();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Asks for cancellation; `signal` is the reason (SIGTERM, SIGINT, ...). The first reason sticks.
  void Request(int signal);
  bool requested() const { return signal_.load() != 0; }
  int signal() const { return signal_.load(); }  // 0 when not requested
  int fd() const { return pipe_[0]; }            // readable once requested (non-blocking)
  void Drain();                                  // empties the pipe (poll loop)

 private:
  std::atomic<int> signal_{0};
  int pipe_[2] = {-1, -1};
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_RANKS_CANCEL_H_
