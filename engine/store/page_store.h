// The page store: the only durable state of a cowdb database.
//
// A PageStore is a small set of named key spaces (RocksDB column families in
// the default implementation) with point reads, ordered scans and one atomic,
// optionally synced, multi-space write. It knows nothing of trees or
// versions; the layers above decide what the bytes mean.
//
// Invariants:
//  - Commit() applies all of a StoreBatch or none of it, also across a crash.
//  - With sync = true, Commit() returns OK only after the batch is durable.
//  - After Commit() fails, the batch may or may not be durable (RocksDB can
//    persist a batch whose write reported an error). Callers must treat the
//    outcome as unknown.
//
// Thread safety: all methods may be called concurrently.

#ifndef COWDB_ENGINE_STORE_PAGE_STORE_H_
#define COWDB_ENGINE_STORE_PAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowdb::internal {

// Key spaces. Persisted as column family names; DO NOT RENAME.
enum class Space : uint8_t {
  kMeta = 0,      // fixed keys: the meta record
  kPages = 1,     // page id (8-byte big-endian) -> encoded node
  kBlobs = 2,     // blob id (8-byte big-endian) -> encoded large value
  kVersions = 3,  // version (8-byte big-endian) -> version record
  kFreed = 4,     // death checkpoint (8-byte big-endian) -> freed record
  kTags = 5,      // tag name -> version
  kLog = 6,       // version (8-byte big-endian) -> commit log record
  kCheckpoints = 7,  // version (8-byte big-endian) -> checkpoint record
  kSystem = 8,   // record name -> bytes of the layers above (DB::PutSystemRecord)
};
inline constexpr int kNumSpaces = 9;

// A set of writes to apply atomically.
class StoreBatch {
 public:
  struct Op {
    Space space;
    bool is_delete;
    std::string key;
    std::string value;
  };

  void Put(Space space, std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    ops_.push_back({space, false, std::move(key), std::move(value)});
  }
  void Delete(Space space, std::string key) {
    bytes_ += key.size();
    ops_.push_back({space, true, std::move(key), {}});
  }

  const std::vector<Op>& ops() const { return ops_; }
  size_t bytes() const { return bytes_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// Counters of store traffic since open.
struct StoreStats {
  uint64_t reads = 0;          // point reads issued
  uint64_t commits = 0;        // Commit() calls that succeeded
  uint64_t syncs = 0;          // of which synced
  uint64_t bytes_written = 0;  // key + value bytes committed
  uint64_t disk_bytes = 0;     // approximate on-disk size, 0 if unknown
  uint64_t space_bytes[kNumSpaces] = {};  // the same, per Space
};

class PageStore {
 public:
  virtual ~PageStore() = default;

  // Returns the value under `key`, std::nullopt when absent, or an error
  // (IOError-like failures come back as kUnavailable/kInternal/kDataLoss).
  virtual absl::StatusOr<std::optional<std::string>> Get(
      Space space, std::string_view key) = 0;

  // Calls `fn(key, value)` for keys >= `start` in ascending order until it
  // returns false or the space ends.
  virtual absl::Status Scan(
      Space space, std::string_view start,
      const std::function<bool(std::string_view, std::string_view)>& fn) = 0;

  // Applies `batch` atomically; see the invariants above.
  virtual absl::Status Commit(const StoreBatch& batch, bool sync) = 0;

  virtual StoreStats GetStats() = 0;

  // Writes a consistent copy of the whole store, taken while it serves
  // reads and writes, into the new directory `dir` (which must not exist).
  // The copy opens as a database of its own. Errors: Unimplemented for
  // stores that cannot do it; AlreadyExists; I/O errors.
  virtual absl::Status Checkpoint(const std::string& dir) {
    return absl::UnimplementedError("this page store cannot checkpoint");
  }
};

// A PageStore in memory (for tests and for the concurrency suites under
// ThreadSanitizer). Share the returned handle to "reopen" the same data.
std::shared_ptr<PageStore> NewMemoryPageStore();

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_STORE_PAGE_STORE_H_
