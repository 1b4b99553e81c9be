#include "engine/tree/diff.h"

#include <algorithm>
#include <optional>

#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

// A key range [lo, hi); hi == nullopt means unbounded.
struct Range {
  std::string lo;
  std::optional<std::string> hi;

  bool Contains(const std::string& k) const {
    return lo <= k && (!hi || k < *hi);
  }
};

// The intersection of `r` with [lo, hi) (nullptr = unbounded); nullopt if
// empty.
std::optional<Range> Intersect(const Range& r, const std::string_view* lo,
                               const std::string_view* hi) {
  Range out = r;
  if (lo != nullptr && *lo > out.lo) out.lo = std::string(*lo);
  if (hi != nullptr && (!out.hi || *hi < *out.hi)) out.hi = std::string(*hi);
  if (out.hi && *out.hi <= out.lo) return std::nullopt;
  return out;
}

// One side of the walk: a stored subtree by page id, loaded lazily, or a
// subtree held in memory; neither = empty.
struct Side {
  uint64_t page_id = 0;
  NodeRef node;
  int level = kUnknownLevel;  // known without loading when reached from above
  bool held = false;          // `node` is held in memory, not loaded

  static constexpr int kUnknownLevel = -2;

  static Side Of(const ChildRef& c, int level) {
    return Side{c.page_id, c.mem, level, c.mem != nullptr};
  }
  static Side Of(const Root& r) {
    return Side{r.page_id, r.page_id == 0 ? r.node : nullptr, kUnknownLevel,
                r.page_id == 0 && r.node != nullptr};
  }
  bool empty() const { return page_id == 0 && !held; }
  // The page id this subtree is stored under, 0 if none (yet).
  uint64_t stored_id() const {
    return held ? node->written_id.get() : page_id;
  }
  // Whether both sides are certainly the same subtree: the same node in
  // memory, or the same page (nodes never change, ids are never reused).
  static bool Same(const Side& a, const Side& b) {
    if (a.held && b.held && a.node == b.node) return true;
    if (a.empty() || b.empty()) return a.empty() && b.empty();
    uint64_t ia = a.stored_id();
    return ia != 0 && ia == b.stored_id();
  }
};

class Differ {
 public:
  Differ(NodeSource& src, const DiffFn& fn) : src_(src), fn_(fn) {}

  // Returns false once the callback asked to stop.
  absl::StatusOr<bool> Walk(Side a, Side b, const Range& r) {
    if (Side::Same(a, b)) return true;
    RETURN_IF_ERROR(Load(a));
    RETURN_IF_ERROR(Load(b));
    int la = Level(a), lb = Level(b);
    if (la <= 0 && lb <= 0) return CompareLeaves(a, b, r);
    // Split the higher side into its children; pair each with the lowest
    // subtree of the other side that covers the child's whole range.
    bool split_a = la >= lb;
    const Side& high = split_a ? a : b;
    const Node& n = *high.node;
    // Two internal nodes of one level (trees that share pages): a child
    // both have between the same separators holds the same keys on both
    // sides, so it is skipped before its range is built or the other side
    // searched: with few changes, that is nearly every child.
    const Node* twin =
        la == lb && a.node && b.node ? (split_a ? b.node.get() : a.node.get()) : nullptr;
    size_t j = 0;
    for (size_t i = 0; i < n.children.size(); ++i) {
      if (twin != nullptr) {
        while (j < twin->children.size() && LowerBefore(*twin, j, n, i)) ++j;
        if (j < twin->children.size() && SameBounds(*twin, j, n, i) &&
            Side::Same(Side::Of(twin->children[j], n.level - 1),
                       Side::Of(n.children[i], n.level - 1))) {
          continue;
        }
      }
      std::optional<Range> sub =
          Intersect(r, i == 0 ? nullptr : &n.keys[i - 1],
                    i + 1 == n.children.size() ? nullptr : &n.keys[i]);
      if (!sub) continue;
      Side child = Side::Of(n.children[i], n.level - 1);
      Side other = split_a ? b : a;
      ASSIGN_OR_RETURN(other, Narrow(other, n.level - 1, *sub));
      ASSIGN_OR_RETURN(bool go, split_a ? Walk(child, other, *sub)
                                        : Walk(other, child, *sub));
      if (!go) return false;
    }
    return true;
  }

 private:
  static int Level(const Side& s) { return s.node ? s.node->level : -1; }

  // Child j of `x` starts before child i of `y` (child 0 starts at minus
  // infinity; child k > 0 at keys[k-1]).
  static bool LowerBefore(const Node& x, size_t j, const Node& y, size_t i) {
    if (j == 0) return i != 0;
    if (i == 0) return false;
    return x.keys[j - 1] < y.keys[i - 1];
  }
  // Child j of `x` and child i of `y` lie between the same separators.
  static bool SameBounds(const Node& x, size_t j, const Node& y, size_t i) {
    const bool x_first = j == 0, y_first = i == 0;
    if (x_first != y_first || (!x_first && x.keys[j - 1] != y.keys[i - 1])) return false;
    const bool x_last = j + 1 == x.children.size(), y_last = i + 1 == y.children.size();
    return x_last == y_last && (x_last || x.keys[j] == y.keys[i]);
  }

  absl::Status Load(Side& s) {
    if (!s.empty() && !s.node) {
      ASSIGN_OR_RETURN(s.node, src_.Load(s.page_id));
    }
    return absl::OkStatus();
  }

  // Descends `s` while it is above `level` and one child covers all of `r`.
  // Loads only the nodes it looks into.
  absl::StatusOr<Side> Narrow(Side s, int level, const Range& r) {
    for (;;) {
      if (s.level == Side::kUnknownLevel) RETURN_IF_ERROR(Load(s));
      int current = s.node ? s.node->level : s.level;
      if (s.empty() || current <= level || current <= 0) return s;
      RETURN_IF_ERROR(Load(s));
      const Node& n = *s.node;
      auto it = std::upper_bound(n.keys.begin(), n.keys.end(), r.lo);
      size_t i = it - n.keys.begin();
      // Child i covers [keys[i-1], keys[i]); it covers r if r ends by keys[i].
      if (i < n.keys.size() && (!r.hi || *r.hi > n.keys[i])) return s;
      s = Side::Of(n.children[i], n.level - 1);
    }
  }

  absl::StatusOr<bool> CompareLeaves(const Side& a, const Side& b,
                                     const Range& r) {
    static const std::vector<LeafEntry> kNone;
    const auto& ea = a.node ? a.node->entries : kNone;
    const auto& eb = b.node ? b.node->entries : kNone;
    auto first = [&](const std::vector<LeafEntry>& v) {
      return std::lower_bound(v.begin(), v.end(), r.lo,
                              [](const LeafEntry& e, std::string_view k) {
                                return e.key < k;
                              });
    };
    auto ia = first(ea), ib = first(eb);
    auto in_range = [&](auto it, const std::vector<LeafEntry>& v) {
      return it != v.end() && (!r.hi || it->key < *r.hi);
    };
    for (;;) {
      bool va = in_range(ia, ea), vb = in_range(ib, eb);
      if (!va && !vb) return true;
      bool go = true;
      if (va && (!vb || ia->key < ib->key)) {
        go = fn_(&*ia++, nullptr);
      } else if (vb && (!va || ib->key < ia->key)) {
        go = fn_(nullptr, &*ib++);
      } else {
        if (ia->mod_version != ib->mod_version ||
            !SameValue(ia->value, ib->value)) {
          go = fn_(&*ia, &*ib);
        }
        ++ia;
        ++ib;
      }
      if (!go) return false;
    }
  }

  // For two entries of one key with the same mod_version (one write, so
  // one value), whether what is known of the values agrees; a check, not
  // a comparison: a blob held in memory on one side and stored on the
  // other is not loaded. Blob ids are not compared: one write's blob can
  // be stored twice, under two ids, when a fork of an older tree writes
  // that tree's unwritten blobs with its checkpoint while another branch's
  // tree holds the same write.
  static bool SameValue(const StoredValue& a, const StoredValue& b) {
    if (a.size() != b.size() || a.is_blob() != b.is_blob()) return false;
    if (a.in_memory() && b.in_memory()) return a.data == b.data;
    return true;
  }

  NodeSource& src_;
  const DiffFn& fn_;
};

}  // namespace

absl::Status TreeDiff(NodeSource& src, const Root& a, const Root& b,
                      std::string_view lo, std::string_view hi,
                      const DiffFn& fn) {
  Range r{std::string(lo), hi.empty() ? std::nullopt
                                      : std::optional<std::string>(hi)};
  if (r.hi && *r.hi <= r.lo) return absl::OkStatus();
  Differ d(src, fn);
  return d.Walk(Side::Of(a), Side::Of(b), r).status();
}

absl::StatusOr<bool> TreeRangeChanged(NodeSource& src, const Root& a,
                                      const Root& b, std::string_view lo,
                                      std::string_view hi) {
  bool changed = false;
  RETURN_IF_ERROR(TreeDiff(src, a, b, lo, hi, [&](auto*, auto*) {
    changed = true;
    return false;
  }));
  return changed;
}

}  // namespace cowdb::internal
