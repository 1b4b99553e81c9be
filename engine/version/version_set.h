// The published versions and which of them are retained.
//
// A Version handle ({version, root}) pins its version for as long as any
// copy of it lives: snapshots, iterators and transactions hold one. The
// VersionSet counts pins per version and keeps the tags, so that the
// reclaimer can tell which old versions must stay readable.
//
// Retention: a version is retained while it is the latest, at or above the
// release floor (the retention window the reclaimer last applied), tagged,
// or pinned. Below the floor, a version that is neither tagged nor pinned
// is released for good: pinning it fails with OutOfRange, even if its
// pages have not been deleted yet.
//
// Invariants:
//  - latest() only moves forward, by one version per commit, and only after
//    that commit is durable in the store.
//  - The floor only moves forward.
//  - A version that was pinned or tagged when the reclaimer planned a pass
//    is in that pass's keep set; a version that was not can never be pinned
//    again once below the floor.
//
// Thread safety: all methods may be called concurrently.

#ifndef COWDB_ENGINE_VERSION_VERSION_SET_H_
#define COWDB_ENGINE_VERSION_VERSION_SET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/tree/btree.h"
#include "engine/util/mutex.h"

namespace cowdb::internal {

// A branch other than main at some version: its tree and where it came
// from.
struct BranchHead {
  Root root;
  uint64_t created = 0;         // the version whose commit created it
  uint64_t source_version = 0;  // the version it was forked from
  std::string source;           // the branch it was forked from ("" = main)
};
using BranchTable = std::map<std::string, BranchHead, std::less<>>;

// A tag set or removed in the same write as a commit (so that what a
// fork or a merge records about itself is durable with it).
struct TagWrite {
  static constexpr uint64_t kThisCommit = ~uint64_t{0};
  std::string name;
  // The version to tag (kThisCommit: the commit's own); nullopt removes
  // the tag.
  std::optional<uint64_t> version;
};

// Every version holds the trees of all branches that exist at it: main's
// in `root`, the others in `branches`. A commit changes one branch; the
// others keep their trees (shared by pointer).
struct Version {
  uint64_t version = 0;
  // Main's tree; in a view of another branch (BranchView), that branch's.
  Root root;
  // The branches other than main; null when there are none.
  std::shared_ptr<const BranchTable> branches;
  // In a view: the branch whose tree `root` is; "" for main. And the
  // version that created it (a branch deleted and created again is
  // another branch).
  std::string branch;
  uint64_t branch_created = 0;
  int64_t commit_micros = 0;
  // In a hashed database: digest(version) and digest(version - 1)
  // (proof.h); zero otherwise.
  Hash digest{};
  Hash previous_digest{};
};

// `v` seen as branch `branch` ("" or "main": `v` itself): a handle on the
// same pin whose root is that branch's tree. Errors: NotFound if the
// branch does not exist at v.
absl::StatusOr<std::shared_ptr<const Version>> BranchView(
    std::shared_ptr<const Version> v, std::string_view branch);

// The internal name of a branch: "" for main.
inline std::string_view InternalBranchName(std::string_view name) {
  return name == "main" ? std::string_view() : name;
}

class VersionSet {
 public:
  // `latest` as opened; `floor` and `tags` as persisted.
  VersionSet(const Version& latest, uint64_t floor,
             std::map<std::string, uint64_t> tags);

  ~VersionSet();

  VersionSet(const VersionSet&) = delete;
  VersionSet& operator=(const VersionSet&) = delete;

  std::shared_ptr<const Version> latest() const;

  // Makes `v` the latest. REQUIRES: v.version == latest()->version + 1 and
  // v is durable.
  void Publish(const Version& v);
  // Replaces the latest version's handle by `v`, the same version with an
  // equivalent tree (a checkpoint releasing what it wrote). REQUIRES:
  // v.version == latest()->version.
  void ReplaceLatest(const Version& v);

  // Pins `version` if it is retained. Then `v` (read by the caller from its
  // record) becomes a handle that holds the pin. Errors: OutOfRange for a
  // released version (naming the oldest retained), NotFound for one after
  // the latest.
  absl::Status AcquirePin(uint64_t version);
  std::shared_ptr<const Version> AdoptPin(const Version& v);
  void ReleasePin(uint64_t version) { state_->Release(version); }

  // Tags. Tag requires the version to be retained (see AcquirePin).
  absl::Status CheckRetained(uint64_t version);
  void SetTag(const std::string& name, uint64_t version);
  void RemoveTag(const std::string& name);
  std::map<std::string, uint64_t> tags() const;

  // The oldest retained version.
  uint64_t oldest_retained() const;
  // The first version at or after `version` that is retained right now:
  // `version` itself if at or above the floor, else the first pinned or
  // tagged one below the floor, else the floor.
  uint64_t NextRetained(uint64_t version) const;
  uint64_t floor() const;

  // For the reclaimer: raises the floor to `window_floor` (never above the
  // latest) and returns the versions below it that stay retained (pinned or
  // tagged), with the floor applied.
  struct Plan {
    uint64_t floor = 0;
    std::set<uint64_t> keep;  // all < floor
  };
  Plan PlanRelease(uint64_t window_floor);

 private:
  // Everything lives here so that a handle released after the VersionSet
  // is gone (a snapshot outliving its DB, against the contract) finds its
  // state expired instead of freed memory.
  struct State {
    mutable Mutex mu;
    std::shared_ptr<const Version> latest ABSL_GUARDED_BY(mu);
    uint64_t floor ABSL_GUARDED_BY(mu) = 0;
    std::map<uint64_t, int> pins ABSL_GUARDED_BY(mu);
    std::map<std::string, uint64_t> tags ABSL_GUARDED_BY(mu);
    std::multiset<uint64_t> tagged ABSL_GUARDED_BY(mu);

    absl::Status CheckRetainedLocked(uint64_t version) const
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
    uint64_t OldestRetainedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
    void Release(uint64_t version);
  };

  // A handle on `v` whose destruction releases one pin.
  std::shared_ptr<const Version> MakeHandle(const Version& v);

  const std::shared_ptr<State> state_;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_VERSION_SET_H_
