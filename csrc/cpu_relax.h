// A pause for busy-wait loops: tells the core this is a spin-wait, which lets a hyperthread
// sibling through and saves power while polling.
#pragma once

namespace engine {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace engine
