// A mutex with Clang thread-safety annotations, over std::mutex.
//
// Why not Mutex: Debian's Abseil is prebuilt without ThreadSanitizer
// annotations, so TSan cannot see Mutex's happens-before edges and
// reports false races. std::mutex goes through pthread, which TSan
// intercepts. The annotations keep ABSL_GUARDED_BY checkable
// (-Wthread-safety).

#ifndef COWDB_ENGINE_UTIL_MUTEX_H_
#define COWDB_ENGINE_UTIL_MUTEX_H_

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace cowdb::internal {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_UTIL_MUTEX_H_
