// Where the core's threads run, and what they are called. Pinning the model's worker threads
// to CPUs (ModelOptions::worker_cpus), as Triton's host policy pins instances to cores: a
// worker that stays on one core keeps the model's weights in that core's cache; one the
// scheduler moves starts its next run cold. The model's other threads then keep off those
// CPUs: a thread woken there preempts the worker in the middle of its ORT run.
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

// Keeps the calling thread off `cpus`: it may run on any other CPU this process may use.
// False, leaving the thread as it was, when `cpus` is empty, covers every allowed CPU, or the
// system refuses.
bool KeepThisThreadOff(const std::vector<int>& cpus);

// Names the calling thread as `top -H`, gdb and perf show it (at most 15 characters kept).
// Does nothing where the platform cannot.
void NameThisThread(const char* name);

}  // namespace engine
