// The published versions: which {version, root} is latest, and handles that
// pin a version for as long as a snapshot or iterator holds them.
//
// Invariants:
//  - latest() only moves forward, by one version per commit, and only after
//    that commit is durable in the store.
//  - A Version handle is immutable; holding it keeps its root readable.
//
// Thread safety: all methods may be called concurrently. Publishing is one
// pointer swap under a mutex that readers hold only to copy the pointer.

#ifndef COWDB_ENGINE_VERSION_VERSION_SET_H_
#define COWDB_ENGINE_VERSION_VERSION_SET_H_

#include <cstdint>
#include <memory>

#include "engine/util/mutex.h"
#include "engine/tree/btree.h"

namespace cowdb::internal {

struct Version {
  uint64_t version = 0;
  Root root;
  int64_t commit_micros = 0;
};

class VersionSet {
 public:
  explicit VersionSet(std::shared_ptr<const Version> initial)
      : latest_(std::move(initial)) {}

  std::shared_ptr<const Version> latest() const {
    MutexLock lock(&mu_);
    return latest_;
  }

  // REQUIRES: v->version == latest()->version + 1, and v is durable.
  void Publish(std::shared_ptr<const Version> v) {
    MutexLock lock(&mu_);
    latest_ = std::move(v);
  }

 private:
  mutable Mutex mu_;
  std::shared_ptr<const Version> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_VERSION_SET_H_
