#include "engine/tree/verify.h"

#include "absl/strings/str_cat.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

absl::Status Violation(uint64_t page_id, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("tree invariant violated at page ", page_id, ": ", what));
}

}  // namespace

absl::Status TreeVerifier::Verify(const Root& root) {
  if (root.empty()) {
    if (root.count != 0) return Violation(0, "empty tree with nonzero count");
    return absl::OkStatus();
  }
  ChildRef ref;
  ref.page_id = root.page_id;
  if (root.page_id == 0) ref.mem = root.node;
  ASSIGN_OR_RETURN(Summary s, Visit(ref));
  const uint64_t id = root.page_id;
  if (s.birth != root.max_mod) {
    return Violation(id, "root's max_mod differs from its birth");
  }
  RETURN_IF_ERROR(CheckPlacement(id, s, /*is_root=*/true));
  if (s.count != root.count) return Violation(id, "root count wrong");
  if (hashed_ && s.hash != root.hash) {
    return Violation(id, "the root's hash is not the version's");
  }
  return absl::OkStatus();
}

absl::StatusOr<TreeVerifier::Summary> TreeVerifier::Visit(const ChildRef& ref) {
  if (ref.mem) return VisitNode(ref.mem->written_id.get(), *ref.mem);
  const uint64_t id = ref.page_id;
  if (hooks_.on_reach) RETURN_IF_ERROR(hooks_.on_reach(id));
  auto it = summaries_.find(id);
  if (it != summaries_.end()) return it->second;
  ASSIGN_OR_RETURN(NodeRef n, src_.Load(id));
  if (hooks_.on_node) RETURN_IF_ERROR(hooks_.on_node(id, *n));
  ASSIGN_OR_RETURN(Summary s, VisitNode(id, *n));
  summaries_.emplace(id, s);
  return s;
}

absl::StatusOr<TreeVerifier::Summary> TreeVerifier::VisitNode(uint64_t id,
                                                              const Node& n) {
  Summary s;
  s.level = n.level;
  s.birth = n.birth;
  s.bytes = n.ByteSize();
  s.size = n.size();
  if (hashed_) s.hash = HashOf(n);
  bool splittable = n.is_leaf() ? n.entries.size() >= 2 : n.size() >= 4;
  if (s.bytes > page_size_ && splittable) {
    return Violation(id, "node larger than the page size");
  }
  auto widen = [&s](std::string_view lo, std::string_view hi) {
    if (!s.has_keys || lo < s.min_key) s.min_key = std::string(lo);
    if (!s.has_keys || hi > s.max_key) s.max_key = std::string(hi);
    s.has_keys = true;
  };
  if (n.is_leaf()) {
    for (size_t i = 0; i < n.entries.size(); ++i) {
      const LeafEntry& e = n.entries[i];
      if (i > 0 && !(n.entries[i - 1].key < e.key)) {
        return Violation(id, "keys not ascending");
      }
      if (e.mod_version > n.birth) {
        return Violation(id, "entry newer than its page");
      }
      if (e.create_version > e.mod_version) {
        return Violation(id, "entry created after its last write");
      }
      if (e.writes == 0) return Violation(id, "entry with no writes");
    }
    s.count = n.entries.size();
    if (s.count > 0) widen(n.entries.front().key, n.entries.back().key);
    return s;
  }
  if (n.keys.size() + 1 != n.children.size()) {
    return Violation(id, "separators and children do not match");
  }
  for (size_t i = 0; i < n.children.size(); ++i) {
    const ChildRef& c = n.children[i];
    ASSIGN_OR_RETURN(Summary cs, Visit(c));
    const uint64_t cid = c.mem ? c.mem->written_id.get() : c.page_id;
    if (cs.level + 1 != n.level) {
      return Violation(cid, "level does not match depth");
    }
    if (c.max_mod != cs.birth) {
      return Violation(cid, "parent's max_mod differs from the child's birth");
    }
    if (c.max_mod > n.birth) return Violation(id, "child newer than its parent");
    if (cs.count != c.count) {
      return Violation(id, absl::StrCat("child ", i, " count ", c.count,
                                        " != actual ", cs.count));
    }
    if (hashed_ && cs.hash != c.hash) {
      return Violation(cid, "hash differs from the one its parent holds");
    }
    RETURN_IF_ERROR(CheckPlacement(cid, cs, /*is_root=*/false));
    // Child i holds the keys in [keys[i-1], keys[i]).
    if (cs.has_keys) {
      if (i > 0 && cs.min_key < n.keys[i - 1]) {
        return Violation(id, "key outside separators");
      }
      if (i + 1 < n.children.size() && !(cs.max_key < n.keys[i])) {
        return Violation(id, "key outside separators");
      }
      widen(cs.min_key, cs.max_key);
    }
    if (i > 0) {
      if (i > 1 && !(n.keys[i - 2] < n.keys[i - 1])) {
        return Violation(id, "separators not ascending");
      }
      widen(n.keys[i - 1], n.keys[i - 1]);
    }
    s.count += cs.count;
  }
  return s;
}

absl::Status TreeVerifier::CheckPlacement(uint64_t id, const Summary& s,
                                          bool is_root) {
  const bool leaf = s.level == 0;
  if (is_root) {
    if (!leaf && s.size < 2) return Violation(id, "internal root with one child");
    return absl::OkStatus();
  }
  if (leaf ? s.size == 0 : s.size < 2) {
    return Violation(id, "non-root node too small");
  }
  if (strict_ && s.bytes < page_size_ / 4) {
    return Violation(id, "non-root node under a quarter full");
  }
  return absl::OkStatus();
}

absl::Status VerifyTree(NodeSource& src, const Root& root, size_t page_size,
                        bool strict, bool hashed) {
  return TreeVerifier(src, page_size, strict, {}, hashed).Verify(root);
}

}  // namespace cowdb::internal
