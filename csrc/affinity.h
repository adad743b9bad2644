// Pinning the model's worker threads to CPUs (ModelOptions::worker_cpus), as Triton's host
// policy pins instances to cores. A worker that stays on one core keeps the model's weights
// in that core's cache; one the scheduler moves starts its next run cold.
#pragma once

#include <string>
#include <vector>

namespace engine {

// The CPUs this process may run on (its affinity mask), in increasing order. Empty where the
// platform cannot tell.
std::vector<int> AllowedCpus();

// Throws CoreError(kInvalidConfig) naming the first CPU of `cpus` this process may not run on
// (with the ones it may), or kUnsupported for a non-empty list where threads cannot be
// pinned.
void CheckCpus(const std::vector<int>& cpus);

// Pins the calling thread to `cpu`; false when the system refuses (the thread runs anywhere).
bool PinThisThread(int cpu);

}  // namespace engine
