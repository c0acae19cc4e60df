#include "kubetrain/agent/ranks/cancel.h"

#include <fcntl.h>
#include <unistd.h>

namespace kubetrain::agent {

CancelToken::CancelToken() {
  if (pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
}

CancelToken::~CancelToken() {
  if (pipe_[0] >= 0) close(pipe_[0]);
  if (pipe_[1] >= 0) close(pipe_[1]);
}

void CancelToken::Request(int signal) {
  int expected = 0;
  signal_.compare_exchange_strong(expected, signal);
  if (pipe_[1] >= 0) {
    char byte = 1;
    ssize_t ignored = write(pipe_[1], &byte, 1);
    (void)ignored;
  }
}

void CancelToken::Drain() {
  char buf[64];
  while (pipe_[0] >= 0 && read(pipe_[0], buf, sizeof(buf)) > 0) {
  }
}

}  // namespace kubetrain::agent
