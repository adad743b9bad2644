#include "sampler.h"

#include <cstring>
#include <random>

namespace engine {

void Sampler::Configure(double rate, size_t capacity) {
  rate_.store(rate < 0 ? 0 : (rate > 1 ? 1 : rate), std::memory_order_relaxed);
  capacity_.store(capacity, std::memory_order_relaxed);
}

bool Sampler::ShouldSample() {
  const double rate = rate_.load(std::memory_order_relaxed);
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  thread_local std::minstd_rand generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator) < rate;
}

void Sampler::Offer(Sample sample) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (samples_.size() >= capacity_.load(std::memory_order_relaxed)) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  samples_.push_back(std::move(sample));
}

std::vector<Sample> Sampler::Take(size_t max_items) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Sample> taken;
  while (!samples_.empty() && taken.size() < max_items) {
    taken.push_back(std::move(samples_.front()));
    samples_.pop_front();
  }
  return taken;
}

HostTensor CopyTensor(const HostTensor& t) {
  if (t.type == ElementType::kString) {
    HostTensor copy;
    copy.type = t.type;
    copy.shape = t.shape;
    copy.strings = t.strings;
    return copy;
  }
  HostTensor copy = AllocateHostTensor(t.type, t.shape);
  if (t.byte_size > 0) std::memcpy(MutableData(copy), t.data, t.byte_size);
  return copy;
}

}  // namespace engine
