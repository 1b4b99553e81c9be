// Reclamation: releases versions outside retention and deletes what no
// retained version needs any more — stored pages and blobs, log records,
// checkpoint records and version records.
//
// A retained version needs its base checkpoint's stored tree (the last
// checkpoint at or before it) and the log records after that base up to
// itself. A page or blob freed at checkpoint d with birth b is stored by
// the checkpoints in [b, d); it may go once no retained version's base
// lies in that interval (records.h).
//
// Passes run one at a time, in unsynced batches that never take the commit
// path's locks: first the release floor and the released versions'
// records (after which nobody can pin them), then pages and blobs, log
// records and checkpoint records. RocksDB's WAL keeps the batches in
// order, so after any crash no readable version needs something deleted;
// deletions are idempotent.
//
// Thread safety: all methods may be called concurrently.

#ifndef COWDB_ENGINE_VERSION_RECLAIMER_H_
#define COWDB_ENGINE_VERSION_RECLAIMER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

#include "absl/status/statusor.h"
#include "engine/db.h"
#include "engine/options.h"
#include "engine/store/page_store.h"
#include "engine/util/mutex.h"
#include "engine/version/version_store.h"

namespace cowdb::internal {

class Reclaimer {
 public:
  // `store` and `versions` must outlive the Reclaimer.
  Reclaimer(const Options& options, PageStore* store, VersionStore* versions)
      : options_(options), store_(store), versions_(versions),
        retain_versions_(options.retain_versions), retain_seconds_(options.retain_seconds) {}
  // Stops the background thread.
  ~Reclaimer();

  // Starts the background thread (Options::background_reclaim): a pass
  // after commits (see Wake) and every second.
  void Start();
  // Asks the background thread for a pass soon.
  void Wake();
  // Runs one pass now.
  absl::StatusOr<ReclaimStats> Reclaim();
  // Raises the release floor to `version` whatever the retention window
  // keeps (DB::ReleaseBefore): versions below it are released at once
  // unless tagged or pinned, and the floor is persisted with a synced
  // write. A floor at or above `version` is left alone. What the released
  // versions alone needed goes in the next pass (woken here). Errors:
  // NotFound for a version after the latest; storage errors.
  absl::Status ReleaseBefore(uint64_t version);

  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

  // The retention window (Options::retain_versions, retain_seconds), which
  // SetRetention changes for the next passes (woken here).
  void SetRetention(uint64_t retain_versions, uint64_t retain_seconds);
  std::pair<uint64_t, uint64_t> retention() const {
    return {retain_versions_.load(), retain_seconds_.load()};
  }

 private:
  absl::StatusOr<ReclaimStats> ReclaimLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reclaim_mu_);
  // The lowest version the retention options keep.
  absl::StatusOr<uint64_t> WindowFloor(const Version& latest);
  void ReclaimLoop();

  const Options options_;
  PageStore* const store_;
  VersionStore* const versions_;
  std::atomic<uint64_t> retain_versions_;
  std::atomic<uint64_t> retain_seconds_;

  // Each pass scans only what is new since the last one (released records
  // become RocksDB tombstones, and scanning over them again would cost
  // more every pass), plus the records an earlier pass had to keep.
  Mutex reclaim_mu_;
  uint64_t versions_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 0;
  uint64_t freed_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 0;
  std::set<uint64_t> kept_versions_ ABSL_GUARDED_BY(reclaim_mu_);
  std::set<uint64_t> kept_freed_ ABSL_GUARDED_BY(reclaim_mu_);
  uint64_t log_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 1;
  std::set<uint64_t> kept_log_ ABSL_GUARDED_BY(reclaim_mu_);

  std::mutex reclaim_wake_mu_;
  std::condition_variable reclaim_cv_;
  bool reclaim_requested_ = false;  // guarded by reclaim_wake_mu_
  bool shutting_down_ = false;      // guarded by reclaim_wake_mu_
  std::thread thread_;
  std::atomic<uint64_t> errors_{0};
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_RECLAIMER_H_
