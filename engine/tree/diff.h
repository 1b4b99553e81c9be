// Differences between two versions of a tree.
//
// TreeDiff walks both trees together and skips every pair of subtrees with
// the same page id: pages are immutable, so the same id means the same
// contents. Its cost grows with what changed between the versions (times
// the depth), not with the size of the tree.

#ifndef COWDB_ENGINE_TREE_DIFF_H_
#define COWDB_ENGINE_TREE_DIFF_H_

#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "engine/tree/btree.h"

namespace cowdb::internal {

// Called for each differing key, in ascending key order: `before` is the
// entry in `a` (nullptr if absent), `after` the entry in `b` (nullptr if
// absent). Entries differ when their mod_version or value differ. Return
// false to stop the walk.
using DiffFn =
    std::function<bool(const LeafEntry* before, const LeafEntry* after)>;

// Reports the differences between `a` and `b` for keys in [lo, hi); an
// empty `hi` means no upper bound.
absl::Status TreeDiff(NodeSource& src, const Root& a, const Root& b,
                      std::string_view lo, std::string_view hi,
                      const DiffFn& fn);

// True when `a` and `b` differ somewhere in [lo, hi).
absl::StatusOr<bool> TreeRangeChanged(NodeSource& src, const Root& a,
                                      const Root& b, std::string_view lo,
                                      std::string_view hi);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_DIFF_H_
