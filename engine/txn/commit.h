// What a transaction or a blind write hands to the commit pipeline
// (commit_queue.h).

#ifndef COWDB_ENGINE_TXN_COMMIT_H_
#define COWDB_ENGINE_TXN_COMMIT_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/transaction.h"
#include "engine/tree/btree.h"
#include "engine/version/records.h"
#include "engine/version/version_set.h"

namespace cowdb::internal {

// A key read from the snapshot and what it was.
struct ReadRecord {
  std::string key;
  bool exists = false;
  uint64_t mod_version = 0;
};

// A key range [lo, hi) observed by an iterator or a count; hi = nullopt is
// unbounded.
struct KeyRange {
  std::string lo;
  std::optional<std::string> hi;

  bool Contains(std::string_view k) const {
    return lo <= k && (!hi || k < *hi);
  }
};

// One commit waiting in the group-commit queue.
struct CommitRequest {
  // What to validate. With `snapshot` null (blind writes) nothing is.
  std::shared_ptr<const Version> snapshot;
  Isolation isolation = Isolation::kSerializable;
  const std::vector<ReadRecord>* reads = nullptr;  // serializable
  const std::vector<KeyRange>* ranges = nullptr;   // serializable
  std::vector<std::string_view> written_keys;      // for snapshot isolation
                                                   // and later group members
  // The writes, in order: views into the submitter's data, which outlives
  // the request. The leader applies them to the group's tree and logs them.
  std::vector<Mutation> mutations;
  // The branch it commits to ("" = main): a transaction's snapshot's, or
  // a blind write's batch's.
  std::string branch;
  // Tags written with its commit (a merge's record of what it merged).
  // REQUIRES: the versions they name stay pinned until it is done.
  std::vector<TagWrite> tags;

  // Filled in by the leader.
  absl::Status status;
  uint64_t version = 0;
  bool done = false;
  // How the submitter learns the outcome: it waits on `cv`, or, for a
  // request nobody waits for, the leader calls `on_done` (which may delete
  // the request).
  std::condition_variable cv;
  std::function<void(absl::StatusOr<uint64_t>)> on_done;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TXN_COMMIT_H_
