// One thread that runs control-plane calls in order, so gRPC's callback threads never block
// on Python (the GIL) or on a model load.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace engine::server {

class ControlExecutor {
 public:
  ControlExecutor();
  // Stops (see Stop).
  ~ControlExecutor();
  ControlExecutor(const ControlExecutor&) = delete;
  ControlExecutor& operator=(const ControlExecutor&) = delete;

  // Queues `task`; never blocks. Returns false (and drops `task`) once Stop has begun: the
  // caller then answers its RPC itself.
  bool Post(std::function<void()> task);

  // Refuses new tasks, runs those already queued, and joins the thread. Blocks; idempotent.
  // Must not be called with the GIL held when tasks may need it.
  void Stop();

 private:
  void Loop();

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;  // GUARDED_BY(mutex_)
  bool stopping_ = false;                    // GUARDED_BY(mutex_)
  std::thread thread_;
};

}  // namespace engine::server
