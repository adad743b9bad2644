// Releasing the GIL around blocking calls into the core, safely at interpreter exit.
#pragma once

#include <Python.h>
#include <cxxabi.h>

#include <chrono>
#include <thread>

namespace engine::bindings {

// py::gil_scoped_release for the bindings: releases the GIL for the scope and takes it back at
// its end. It differs at interpreter exit only. A thread that wants the GIL back once Python
// finalizes (a daemon thread still waiting in predict() when the main thread exits) is ended
// by CPython < 3.14 with pthread_exit, a forced unwind. Out of py::gil_scoped_release's
// destructor (noexcept) that is std::terminate, an abort of the exiting process; and unwinding
// further would run the callers' destructors, which release Python objects without the GIL.
// This one parks such a thread instead, as CPython 3.14 does: it never runs Python again, and
// the process ends around it. Not copyable; one per scope.
class GilRelease {
 public:
  GilRelease() : state_(PyEval_SaveThread()) {}
  ~GilRelease() {
    try {
      PyEval_RestoreThread(state_);
    } catch (abi::__forced_unwind&) {
      // Never leaves the handler: leaving it without a rethrow aborts too.
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
  }
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// Runs Python's signal handlers from a thread that released the GIL, for a wait that Ctrl-C
// must interrupt. True when one raised (KeyboardInterrupt): its exception is then set, for the
// caller to throw once it holds the GIL again. Only the main thread runs handlers; false at
// interpreter exit, where taking the GIL would end the thread.
inline bool SignalHandlerRaised() {
  if (_Py_IsFinalizing()) return false;
  const PyGILState_STATE gil = PyGILState_Ensure();
  const bool raised = PyErr_CheckSignals() != 0;
  PyGILState_Release(gil);
  return raised;
}

}  // namespace engine::bindings
