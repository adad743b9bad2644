// Sampled copies of requests and their results, for the prediction log.
//
// Off by default. When on, each successful request is kept with probability `rate`: its
// inputs and outputs are copied into a bounded buffer that Python drains in the background.
// When the buffer is full the sample is dropped and counted; a request never waits for it.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace engine {

struct Sample {
  std::string id;
  std::vector<std::pair<std::string, HostTensor>> inputs;   // owned copies
  std::vector<std::pair<std::string, HostTensor>> outputs;  // owned copies
  int64_t total_us = 0;
  int64_t timestamp_ms = 0;  // wall clock, ms since the Unix epoch
};

class Sampler {
 public:
  // rate in [0, 1]; capacity >= 1. Thread-safe.
  void Configure(double rate, size_t capacity);
  // Cheap check for the hot path: should this request be copied?
  bool ShouldSample();
  // Adds a sample, or drops and counts it when full. Thread-safe.
  void Offer(Sample sample);
  // Takes up to max_items samples, oldest first.
  std::vector<Sample> Take(size_t max_items);
  int64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> rate_{0.0};
  std::atomic<size_t> capacity_{0};
  std::atomic<int64_t> dropped_{0};
  std::mutex mutex_;
  std::deque<Sample> samples_;  // guarded by mutex_
};

// An owned deep copy of a tensor (numeric bytes or strings).
HostTensor CopyTensor(const HostTensor& t);

}  // namespace engine
