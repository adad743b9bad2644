#include "completer.h"

#include <utility>

namespace engine {

Completer::Completer(Handler complete)
    : complete_(std::move(complete)), thread_([this] { Loop(); }) {}

Completer::~Completer() { Stop(); }

void Completer::Post(FinishedBatch finished) {
  bool posted = false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      pending_.push_back(std::move(finished));
      posted = true;
      // Signal only a sleeping thread: a busy one takes the batch on its next pass anyway,
      // and a needless futex call per batch is measurable.
      wake = waiting_;
      waiting_ = false;
    }
  }
  if (wake) ready_.notify_one();
  if (!posted) complete_(finished);  // stopped: complete here
}

void Completer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  ready_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Completer::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    if (pending_.empty()) {
      if (stopping_) return;
      waiting_ = true;
      ready_.wait(lock, [this] { return !pending_.empty() || stopping_; });
      waiting_ = false;
      continue;
    }
    FinishedBatch finished = std::move(pending_.front());
    pending_.pop_front();
    lock.unlock();
    complete_(finished);
    lock.lock();
  }
}

}  // namespace engine
