#include "affinity.h"

#include <algorithm>
#include <cstring>

#include "status.h"

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace engine {

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
#endif
  return cpus;
}

void CheckCpus(const std::vector<int>& cpus) {
  if (cpus.empty()) return;
#ifdef __linux__
  const std::vector<int> allowed = AllowedCpus();
  for (int cpu : cpus) {
    if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
      std::string list;
      for (int a : allowed) list += (list.empty() ? "" : ",") + std::to_string(a);
      throw CoreError(StatusCode::kInvalidConfig,
                      "worker_cpus names CPU " + std::to_string(cpu) +
                          ", which this process may not run on (it may run on: " + list + ")");
    }
  }
#else
  throw CoreError(StatusCode::kUnsupported,
                  "worker_cpus: pinning threads to CPUs is supported on Linux only");
#endif
}

bool PinThisThread(int cpu) {
#ifdef __linux__
  if (cpu < 0 || cpu >= CPU_SETSIZE) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
#else
  (void)cpu;
  return false;
#endif
}

bool KeepThisThreadOff(const std::vector<int>& cpus) {
#ifdef __linux__
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  bool any = false;
  for (int cpu : AllowedCpus()) {
    if (std::find(cpus.begin(), cpus.end(), cpu) != cpus.end()) continue;
    CPU_SET(cpu, &set);
    any = true;
  }
  return any && pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
#else
  (void)cpus;
  return false;
#endif
}

void NameThisThread(const char* name) {
#ifdef __linux__
  char truncated[16] = {};
  std::strncpy(truncated, name, sizeof(truncated) - 1);
  pthread_setname_np(pthread_self(), truncated);  // fails only on a name over 15 characters
#else
  (void)name;
#endif
}

}  // namespace engine
