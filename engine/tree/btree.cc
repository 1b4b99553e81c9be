#include "engine/tree/btree.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/format/merkle.h"
#include "engine/format/page.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

// Index of the child of `n` whose range holds `key`.
size_t ChildIndex(const Node& n, std::string_view key) {
  return UpperBound(n, key);
}

// The shortest prefix of `hi` that is greater than `lo` (REQUIRES lo < hi):
// a separator between two leaves needs no more, and short separators mean
// more children per internal node and fewer levels.
std::string_view ShortestSeparator(std::string_view lo, std::string_view hi) {
  size_t n = 0;
  while (n < lo.size() && n < hi.size() && lo[n] == hi[n]) ++n;
  return hi.substr(0, n + 1);
}

// Index of the first entry of leaf `n` whose key is >= `key`.
size_t LeafIndex(const Node& n, std::string_view key) {
  return LowerBound(n, key);
}

// Number of keys < `key` in the tree.
absl::StatusOr<uint64_t> Rank(NodeSource& src, const Root& root,
                              std::string_view key) {
  if (root.empty()) return 0;
  uint64_t rank = 0;
  ASSIGN_OR_RETURN(NodeRef hold, src.LoadRoot(root));
  const Node* n = hold.get();
  while (!n->is_leaf()) {
    size_t i = ChildIndex(*n, key);
    for (size_t j = 0; j < i; ++j) rank += n->children[j].count;
    ASSIGN_OR_RETURN(n, src.Child(*n, i, &hold));
  }
  return rank + LeafIndex(*n, key);
}

}  // namespace

// ------------------------------------------------------------------- reading

namespace {

// The first node at or below `level` on the path from the root toward
// `key`. Nodes above level 1 are borrowed through their parents' links
// (no lock, no reference count); `*hold` keeps the others, and the root
// when its version does not pin it.
absl::StatusOr<const Node*> DescendToward(NodeSource& src, const Root& root,
                                          std::string_view key, int level,
                                          NodeRef* hold) {
  const Node* n = root.node.get();
  if (n == nullptr) {
    ASSIGN_OR_RETURN(*hold, src.Load(root.page_id));
    n = hold->get();
  }
  while (n->level > level) {
    ASSIGN_OR_RETURN(n, src.Child(*n, ChildIndex(*n, key), hold));
  }
  return n;
}

}  // namespace

void SetProbe(const Node& n, FreedItem* item) {
  item->level = n.level;
  item->probed = true;
  if (n.is_leaf()) {
    if (!n.entries.empty()) item->key.assign(n.entries.front().key);
  } else if (!n.keys.empty()) {
    item->key.assign(n.keys.front());
  }
}

absl::StatusOr<bool> TreeReaches(NodeSource& src, const Root& root,
                                 const FreedItem& in) {
  if (root.empty()) return false;
  const FreedItem* item = &in;
  FreedItem loaded;
  if (in.kind == FreedItem::kPage && !in.probed) {
    ASSIGN_OR_RETURN(NodeRef page, src.Load(in.id));
    loaded = in;
    SetProbe(*page, &loaded);
    item = &loaded;
  }
  if (item->kind == FreedItem::kBlob && item->key.empty()) return true;
  const int level = item->kind == FreedItem::kPage ? item->level : 0;
  // The node at each level on the probe key's path, with its id (a held
  // node's is the page a checkpoint gave it, if any).
  NodeRef hold = root.node;
  uint64_t id = root.page_id != 0 ? root.page_id
                                  : root.node->written_id.get();
  if (!hold) {
    ASSIGN_OR_RETURN(hold, src.Load(root.page_id));
  }
  for (;;) {
    const Node& n = *hold;
    if (item->kind == FreedItem::kPage && id == item->id) return true;
    if (n.level <= level) break;
    const size_t i = ChildIndex(n, item->key);
    const ChildRef& c = n.children[i];
    id = c.mem ? c.mem->written_id.get() : c.page_id;
    NodeRef next;
    ASSIGN_OR_RETURN(next, src.LoadChild(n, i));
    hold = std::move(next);
  }
  if (item->kind == FreedItem::kPage) return false;
  const Node& leaf = *hold;
  const size_t i = LeafIndex(leaf, item->key);
  if (i == leaf.entries.size() || leaf.entries[i].key != item->key) return false;
  if (leaf.entries[i].value.blob_id == item->id) return true;
  const std::vector<uint64_t>& ids = leaf.assigned_blob_ids;
  return i < ids.size() && ids[i] == item->id;
}

absl::StatusOr<std::optional<Found>> TreeGet(NodeSource& src, const Root& root,
                                             std::string_view key) {
  if (root.empty()) return std::nullopt;
  // The root is usually pinned by the version and borrowed, like the
  // levels above 1; the leaf, which the answer points into, is held.
  NodeRef hold;
  ASSIGN_OR_RETURN(const Node* n, DescendToward(src, root, key, 0, &hold));
  size_t i = LeafIndex(*n, key);
  if (i == n->entries.size() || n->entries[i].key != key) return std::nullopt;
  if (n == root.node.get()) hold = root.node;  // the pinned root is the leaf
  return Found{std::move(hold), &n->entries[i]};
}

absl::StatusOr<bool> TreeRead(NodeSource& src, const Root& root,
                              std::string_view key, std::string* value,
                              EntryMeta* meta, uint64_t* since) {
  if (root.empty()) {
    if (since != nullptr) *since = root.max_mod;
    return false;
  }
  NodeRef hold;  // down to the leaf's parent; the leaf is only visited
  ASSIGN_OR_RETURN(const Node* n, DescendToward(src, root, key, 1, &hold));
  bool found = false;
  uint64_t blob_id = 0;
  auto read = [&](const Node& leaf) {
    size_t i = LeafIndex(leaf, key);
    if (i == leaf.entries.size() || leaf.entries[i].key != key) {
      if (since != nullptr) *since = leaf.birth;
      return;
    }
    const LeafEntry& e = leaf.entries[i];
    found = true;
    if (since != nullptr) *since = e.mod_version;
    if (meta != nullptr) {
      *meta = EntryMeta{e.mod_version, e.create_version, e.writes, e.lease};
    }
    if (e.value.in_memory()) {
      value->assign(e.value.data);
    } else {
      blob_id = e.value.blob_id;
    }
  };
  if (n->is_leaf()) {
    read(*n);  // the root is the leaf
  } else {
    RETURN_IF_ERROR(src.VisitChild(*n, ChildIndex(*n, key), read));
  }
  if (blob_id != 0) {
    ASSIGN_OR_RETURN(*value, src.LoadBlob(blob_id));
  }
  return found;
}

absl::Status TreeProve(NodeSource& src, const Root& root, std::string_view key,
                       ReadProof* proof, std::optional<std::string>* value) {
  proof->path.clear();
  proof->leaf.clear();
  *value = std::nullopt;
  if (root.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(NodeRef n, src.LoadRoot(root));
  while (!n->is_leaf()) {
    ProofNode& p = proof->path.emplace_back();
    p.level = n->level;
    p.separators.assign(n->keys.begin(), n->keys.end());
    p.children.reserve(n->children.size());
    for (const ChildRef& c : n->children) p.children.push_back(c.hash);
    ASSIGN_OR_RETURN(n, src.LoadChild(*n, ChildIndex(*n, key)));
  }
  proof->leaf.reserve(n->entries.size());
  for (const LeafEntry& e : n->entries) {
    ProofEntry& p = proof->leaf.emplace_back();
    p.key = std::string(e.key);
    p.blob = e.value.is_blob();
    p.value = std::string(p.blob ? e.value.digest : e.value.data);
    p.mod_version = e.mod_version;
    if (e.key == key) {
      ASSIGN_OR_RETURN(std::string v, src.ReadValue(e.value));
      *value = std::move(v);
    }
  }
  return absl::OkStatus();
}

namespace {

// Adds `n` (whose keys lie in [lo, hi); nullopt: no bound) and the children
// the range [begin, end) needs to proof->nodes; returns its index.
absl::StatusOr<uint32_t> ProveRangeRec(NodeSource& src, const Node& n,
                                       std::optional<std::string_view> lo,
                                       std::optional<std::string_view> hi,
                                       std::string_view begin, std::string_view end,
                                       RangeProof* proof) {
  const uint32_t index = static_cast<uint32_t>(proof->nodes.size());
  proof->nodes.emplace_back();
  RangeProofNode out;
  out.level = n.level;
  if (n.is_leaf()) {
    out.entries.reserve(n.entries.size());
    for (const LeafEntry& e : n.entries) {
      out.entries.push_back({std::string(e.key), e.value.is_blob(),
                             std::string(e.value.is_blob() ? e.value.digest : e.value.data),
                             e.mod_version});
    }
    proof->nodes[index] = std::move(out);
    return index;
  }
  const size_t count = n.children.size();
  out.separators.assign(n.keys.begin(), n.keys.end());
  out.expanded.assign(count, 0);
  for (const ChildRef& c : n.children) out.children.push_back(c.hash);
  for (size_t i = 0; i < count; ++i) {
    std::optional<std::string_view> clo = i == 0 ? lo : n.keys[i - 1];
    std::optional<std::string_view> chi = i + 1 == count ? hi : n.keys[i];
    if ((chi && !(begin < *chi)) || (!end.empty() && clo && !(*clo < end))) continue;
    ASSIGN_OR_RETURN(NodeRef child, src.LoadChild(n, i));
    ASSIGN_OR_RETURN(out.expanded[i], ProveRangeRec(src, *child, clo, chi, begin, end, proof));
  }
  proof->nodes[index] = std::move(out);
  return index;
}

}  // namespace

absl::Status TreeProveRange(NodeSource& src, const Root& root, std::string_view begin,
                            std::string_view end, RangeProof* proof) {
  proof->nodes.clear();
  if (root.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(NodeRef n, src.LoadRoot(root));
  return ProveRangeRec(src, *n, std::nullopt, std::nullopt, begin, end, proof).status();
}

absl::StatusOr<uint64_t> TreeCount(NodeSource& src, const Root& root,
                                   std::string_view begin,
                                   std::string_view end) {
  if (!end.empty() && end <= begin) return 0;
  uint64_t hi = root.count;
  if (!end.empty()) {
    ASSIGN_OR_RETURN(hi, Rank(src, root, end));
  }
  ASSIGN_OR_RETURN(uint64_t lo, Rank(src, root, begin));
  return hi - lo;
}

// ---------------------------------------------------------------- TreeCursor

absl::Status TreeCursor::Descend(bool leftmost) {
  while (!path_.back().first->is_leaf()) {
    const auto& [node, idx] = path_.back();
    absl::StatusOr<NodeRef> child = src_->LoadChild(*node, idx);
    if (!child.ok()) {
      path_.clear();
      return child.status();
    }
    int start = leftmost ? 0 : static_cast<int>((*child)->size()) - 1;
    path_.emplace_back(*std::move(child), start);
  }
  return absl::OkStatus();
}

absl::Status TreeCursor::StepLeaf(bool forward) {
  // Pop to the nearest ancestor with a sibling in the direction of travel.
  path_.pop_back();
  while (!path_.empty()) {
    auto& [node, idx] = path_.back();
    int next = idx + (forward ? 1 : -1);
    if (next >= 0 && next < static_cast<int>(node->size())) {
      idx = next;
      return Descend(forward);
    }
    path_.pop_back();
  }
  return absl::OkStatus();
}

absl::Status TreeCursor::SeekToFirst() {
  path_.clear();
  if (root_.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(NodeRef n, src_->LoadRoot(root_));
  path_.emplace_back(std::move(n), 0);
  RETURN_IF_ERROR(Descend(true));
  while (Valid() && path_.back().first->entries.empty()) {
    RETURN_IF_ERROR(StepLeaf(true));
  }
  return absl::OkStatus();
}

absl::Status TreeCursor::SeekToLast() {
  path_.clear();
  if (root_.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(NodeRef n, src_->LoadRoot(root_));
  int last = static_cast<int>(n->size()) - 1;
  path_.emplace_back(std::move(n), last);
  RETURN_IF_ERROR(Descend(false));
  while (Valid() && path_.back().first->entries.empty()) {
    RETURN_IF_ERROR(StepLeaf(false));
  }
  return absl::OkStatus();
}

absl::Status TreeCursor::Seek(std::string_view key) {
  path_.clear();
  if (root_.empty()) return absl::OkStatus();
  absl::StatusOr<NodeRef> n = src_->LoadRoot(root_);
  while (true) {
    if (!n.ok()) {
      path_.clear();
      return n.status();
    }
    const Node& node = **n;
    if (node.is_leaf()) {
      int i = static_cast<int>(LeafIndex(node, key));
      path_.emplace_back(*std::move(n), i);
      break;
    }
    size_t i = ChildIndex(node, key);
    path_.emplace_back(*std::move(n), static_cast<int>(i));
    n = src_->LoadChild(*path_.back().first, i);
  }
  // Past the end of this leaf: the answer is the next leaf's first key.
  while (Valid() && path_.back().second >=
                        static_cast<int>(path_.back().first->entries.size())) {
    RETURN_IF_ERROR(StepLeaf(true));
  }
  return absl::OkStatus();
}

absl::Status TreeCursor::Next() {
  auto& [leaf, idx] = path_.back();
  if (++idx < static_cast<int>(leaf->entries.size())) return absl::OkStatus();
  do {
    RETURN_IF_ERROR(StepLeaf(true));
  } while (Valid() && path_.back().first->entries.empty());
  return absl::OkStatus();
}

absl::Status TreeCursor::Prev() {
  auto& idx = path_.back().second;
  if (--idx >= 0) return absl::OkStatus();
  do {
    RETURN_IF_ERROR(StepLeaf(false));
  } while (Valid() && path_.back().first->entries.empty());
  return absl::OkStatus();
}

// --------------------------------------------------------------- TreeBuilder

TreeBuilder::TreeBuilder(NodeSource* src, const Root& base, uint64_t version,
                         size_t page_size, size_t inline_limit, bool hashed)
    : src_(src),
      version_(version),
      page_size_(page_size),
      inline_limit_(inline_limit),
      hashed_(hashed) {
  root_.page_id = base.page_id;
  if (base.page_id == 0) root_.mem = base.node;
  root_.count = base.count;
  root_.max_mod = base.max_mod;
  root_.hash = base.hash;
}

bool TreeBuilder::TooBig(const Node& n) const {
  if (n.ByteSize() <= page_size_) return false;
  return n.is_leaf() ? n.entries.size() >= 2 : n.children.size() >= 4;
}

bool TreeBuilder::TooSmall(const Node& n) const {
  if (n.is_leaf() ? n.entries.empty() : n.children.size() < 2) return true;
  return n.ByteSize() < page_size_ / 4;
}

absl::StatusOr<Node*> TreeBuilder::Touch(ChildRef& ref) {
  if (ref.dirty) return ref.dirty.get();
  NodeRef clean;
  if (ref.mem) {
    // Held in memory. If a checkpoint has written it (or is writing it),
    // the page dies with this version; else it was never stored.
    clean = std::move(ref.mem);
    if (uint64_t id = clean->written_id.get()) FreePage(id, *clean);
  } else {
    ASSIGN_OR_RETURN(clean, src_->Load(ref.page_id));
    FreePage(ref.page_id, *clean);
  }
  auto copy = std::make_shared<Node>(*clean);
  copy->DropIndex();  // about to change
  copy->birth = version_;
  // Held blobs that a checkpoint gave ids keep them: their bytes stay in
  // memory, and the id is what the copy frees when it drops them.
  const std::vector<uint64_t>& ids = clean->assigned_blob_ids;
  for (size_t i = 0; i < ids.size() && i < copy->entries.size(); ++i) {
    if (ids[i] != 0) copy->entries[i].value.blob_id = ids[i];
  }
  copy->assigned_blob_ids.clear();
  for (const auto& b : clean->held_blobs) blob_pool_.emplace(b->data(), b);
  copy->held_blobs.clear();
  pinned_.push_back(std::move(clean));  // the copy's views point into it
  ref.page_id = 0;
  ref.dirty = std::move(copy);
  return ref.dirty.get();
}

absl::StatusOr<const Node*> TreeBuilder::View(const ChildRef& ref,
                                              NodeRef* hold) {
  if (ref.dirty) return ref.dirty.get();
  if (ref.mem) return ref.mem.get();
  ASSIGN_OR_RETURN(*hold, src_->Load(ref.page_id));
  return hold->get();
}

void TreeBuilder::Refresh(ChildRef& ref) {
  ref.count = ref.dirty->count();
  ref.max_mod = version_;
}

void TreeBuilder::Release(const LeafEntry& e) {
  // A blob without an id was never written: dropping it frees memory only.
  if (!e.value.is_blob() || e.value.blob_id == 0) return;
  FreedItem item{FreedItem::kBlob, e.value.blob_id, e.mod_version};
  item.key.assign(e.key);
  freed_.push_back(std::move(item));
}

void TreeBuilder::FreePage(uint64_t id, const Node& n) {
  FreedItem item{FreedItem::kPage, id, n.birth};
  SetProbe(n, &item);
  freed_.push_back(std::move(item));
}

absl::Status TreeBuilder::Put(std::string_view key, std::string_view value,
                              uint64_t lease) {
  LeafEntry entry;
  entry.key = arena_.Copy(key);
  entry.mod_version = version_;
  entry.lease = lease;
  // As a new key; InsertRec carries create_version and writes over from
  // the entry it replaces.
  entry.create_version = version_;
  entry.writes = 1;
  if (value.size() > inline_limit_) {
    auto held = std::make_shared<const std::string>(value);
    entry.value.blob_size = held->size();
    entry.value.data = *held;
    if (hashed_) {
      entry.value.digest = arena_.Copy(HashView(BlobDigest(value)));
    }
    blob_pool_.emplace(held->data(), std::move(held));
  } else {
    entry.value.data = arena_.Copy(value);
  }
  if (IsEmpty(root_)) {
    root_.dirty = std::make_shared<Node>();
    root_.dirty->birth = version_;
  }
  RETURN_IF_ERROR(InsertRec(root_, entry));
  FixRoot();
  return absl::OkStatus();
}

absl::Status TreeBuilder::Delete(std::string_view key) {
  ASSIGN_OR_RETURN(bool present, Contains(key));
  if (!present) return absl::OkStatus();
  RETURN_IF_ERROR(EraseRec(root_, key));
  FixRoot();
  return absl::OkStatus();
}

absl::StatusOr<bool> TreeBuilder::Contains(std::string_view key) {
  if (IsEmpty(root_)) return false;
  NodeRef hold;
  ASSIGN_OR_RETURN(const Node* n, View(root_, &hold));
  while (!n->is_leaf()) {
    ASSIGN_OR_RETURN(n, View(n->children[ChildIndex(*n, key)], &hold));
  }
  size_t i = LeafIndex(*n, key);
  return i < n->entries.size() && n->entries[i].key == key;
}

absl::Status TreeBuilder::InsertRec(ChildRef& ref, LeafEntry& entry) {
  ASSIGN_OR_RETURN(Node* n, Touch(ref));
  if (n->is_leaf()) {
    size_t i = LeafIndex(*n, entry.key);
    if (i < n->entries.size() && n->entries[i].key == entry.key) {
      const LeafEntry& old = n->entries[i];
      entry.create_version = old.create_version;
      entry.writes = old.writes + 1;
      Release(old);
      n->entries[i] = std::move(entry);
    } else {
      n->entries.insert(n->entries.begin() + i, std::move(entry));
    }
  } else {
    size_t i = ChildIndex(*n, entry.key);
    RETURN_IF_ERROR(InsertRec(n->children[i], entry));
    RETURN_IF_ERROR(Rebalance(n, i));
  }
  Refresh(ref);
  return absl::OkStatus();
}

absl::Status TreeBuilder::EraseRec(ChildRef& ref, std::string_view key) {
  ASSIGN_OR_RETURN(Node* n, Touch(ref));
  if (n->is_leaf()) {
    size_t i = LeafIndex(*n, key);  // present: Contains() said so
    Release(n->entries[i]);
    n->entries.erase(n->entries.begin() + i);
  } else {
    size_t i = ChildIndex(*n, key);
    RETURN_IF_ERROR(EraseRec(n->children[i], key));
    RETURN_IF_ERROR(Rebalance(n, i));
  }
  Refresh(ref);
  return absl::OkStatus();
}

// Child i of `parent` (dirty) changed: split it if too big; merge it with a
// sibling (and split again if the union is too big) if too small.
absl::Status TreeBuilder::Rebalance(Node* parent, size_t i) {
  Node* child = parent->children[i].dirty.get();
  if (TooBig(*child)) {
    size_t end = i + 1;
    for (size_t j = i; j < end;) {
      if (TooBig(*parent->children[j].dirty)) {
        SplitInTwo(parent, j);
        ++end;
      } else {
        ++j;
      }
    }
    return absl::OkStatus();
  }
  if (!TooSmall(*child) || parent->children.size() < 2) {
    return absl::OkStatus();
  }
  size_t l = i > 0 ? i - 1 : i;
  size_t r = l + 1;
  ASSIGN_OR_RETURN(Node* left, Touch(parent->children[l]));
  ASSIGN_OR_RETURN(Node* right, Touch(parent->children[r]));
  if (left->is_leaf()) {
    for (auto& e : right->entries) left->entries.push_back(std::move(e));
  } else {
    left->keys.push_back(std::move(parent->keys[l]));
    for (auto& k : right->keys) left->keys.push_back(std::move(k));
    for (auto& c : right->children) left->children.push_back(std::move(c));
  }
  parent->keys.erase(parent->keys.begin() + l);
  parent->children.erase(parent->children.begin() + r);
  Refresh(parent->children[l]);
  if (TooBig(*left)) SplitInTwo(parent, l);
  return absl::OkStatus();
}

// Splits dirty child i of `parent` at its byte midpoint.
void TreeBuilder::SplitInTwo(Node* parent, size_t i) {
  Node* left = parent->children[i].dirty.get();
  auto right = std::make_shared<Node>();
  right->level = left->level;
  right->birth = version_;
  size_t half = left->ByteSize() / 2;
  size_t acc = kNodeHeaderBytes;
  std::string_view separator;
  if (left->is_leaf()) {
    size_t m = 1;  // entries [0, m) stay left; m in [1, n-1]
    for (; m < left->entries.size() - 1; ++m) {
      acc += LeafEntryBytes(left->entries[m - 1]);
      if (acc >= half) break;
    }
    right->entries.assign(std::make_move_iterator(left->entries.begin() + m),
                          std::make_move_iterator(left->entries.end()));
    left->entries.resize(m);
    separator = ShortestSeparator(left->entries.back().key,
                                  right->entries.front().key);
  } else {
    // keys[m] moves up; children [0, m] stay left; m in [1, n-3].
    size_t n = left->children.size();
    size_t m = 1;
    for (; m < n - 3; ++m) {
      acc += ChildEntryBytes(left->keys[m - 1], left->children[m]);
      if (acc >= half) break;
    }
    separator = left->keys[m];
    right->keys.assign(std::make_move_iterator(left->keys.begin() + m + 1),
                       std::make_move_iterator(left->keys.end()));
    right->children.assign(
        std::make_move_iterator(left->children.begin() + m + 1),
        std::make_move_iterator(left->children.end()));
    left->keys.resize(m);
    left->children.resize(m + 1);
  }
  ChildRef right_ref;
  right_ref.dirty = std::move(right);
  Refresh(right_ref);
  Refresh(parent->children[i]);
  parent->keys.insert(parent->keys.begin() + i, std::move(separator));
  parent->children.insert(parent->children.begin() + i + 1,
                          std::move(right_ref));
}

void TreeBuilder::FixRoot() {
  // Grow: wrap an oversized root and split it.
  while (root_.dirty && TooBig(*root_.dirty)) {
    auto wrapper = std::make_shared<Node>();
    wrapper->level = root_.dirty->level + 1;
    wrapper->birth = version_;
    wrapper->children.push_back(std::move(root_));
    root_ = ChildRef();
    root_.dirty = std::move(wrapper);
    Rebalance(root_.dirty.get(), 0).IgnoreError();  // splitting loads nothing
    Refresh(root_);
  }
  // Shrink: an internal root with one child, or an empty leaf root.
  while (root_.dirty) {
    Node* n = root_.dirty.get();
    if (!n->is_leaf() && n->children.size() == 1) {
      ChildRef only = std::move(n->children[0]);
      root_ = std::move(only);
    } else if (n->is_leaf() && n->entries.empty()) {
      root_ = ChildRef();
      root_.max_mod = version_;  // when the tree became empty (key history)
    } else {
      break;
    }
  }
}

Root TreeBuilder::Finish() {
  if (root_.dirty) SealRec(root_);
  Root root{root_.page_id, root_.count, root_.max_mod, root_.hash, root_.mem};
  if (hashed_ && IsEmpty(root_)) root.hash = EmptyTreeHash();
  return root;
}

void TreeBuilder::SealRec(ChildRef& ref) {
  for (ChildRef& c : ref.dirty->children) {
    if (c.dirty) SealRec(c);
  }
  ref.dirty->Seal(blob_pool_);
  if (hashed_) ref.hash = HashOf(*ref.dirty);
  sealed_bytes_ += ref.dirty->ByteSize();
  ref.mem = std::move(ref.dirty);
  ref.page_id = 0;
}

}  // namespace cowdb::internal
