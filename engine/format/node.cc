#include "engine/format/node.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/format/merkle.h"

namespace cowdb::internal {
namespace {

// The (up to) 8 bytes of `key` after its first `skip`, big-endian,
// zero-padded: a < b implies Prefix(a) <= Prefix(b).
uint64_t Prefix(std::string_view key, size_t skip) {
  unsigned char buf[8] = {};
  if (key.size() > skip) {
    std::memcpy(buf, key.data() + skip, std::min<size_t>(8, key.size() - skip));
  }
  uint64_t v;
  std::memcpy(&v, buf, 8);
  return __builtin_bswap64(v);
}

// The first i in [lo, hi) at which `before(n.key(i))` is false, where
// `before` holds for a prefix of the keys.
template <typename Before>
size_t Partition(const Node& n, size_t lo, size_t hi, Before before) {
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (before(n.key(mid))) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

template <typename Before>
size_t Search(const Node& n, std::string_view key, Before before) {
  const size_t count = n.num_keys();
  if (n.index.size() != count || count == 0) {
    return Partition(n, 0, count, before);
  }
  if (n.index_skip > 0) {
    // Every key starts with the shared prefix; a key that does not sorts
    // before or after all of them.
    int c = key.substr(0, n.index_skip).compare(n.key(0).substr(0, n.index_skip));
    if (c < 0) return 0;
    if (c > 0) return count;
  }
  // Keys whose integer is below the key's sort before it, those above sort
  // after it; only a tie needs whole keys.
  const uint64_t p = Prefix(key, n.index_skip);
  auto first = std::lower_bound(n.index.begin(), n.index.end(), p);
  auto last = std::upper_bound(first, n.index.end(), p);
  return Partition(n, first - n.index.begin(), last - n.index.begin(), before);
}

}  // namespace

const Node* ChildLinks::Link(size_t i, NodeRef child) {
  MutexLock lock(&mu_);
  Slot& slot = slots_[i];
  if (const Node* linked = slot.node.load(std::memory_order_relaxed)) {
    return linked;
  }
  slot.owner = std::move(child);
  slot.node.store(slot.owner.get(), std::memory_order_release);
  return slot.owner.get();
}

void Node::BuildIndex() {
  links = level >= 2 ? std::make_shared<ChildLinks>(children.size()) : nullptr;
  const size_t count = num_keys();
  index.clear();
  index_skip = 0;
  if (count == 0) return;
  std::string_view first = key(0), last = key(count - 1);
  size_t common = std::min(first.size(), last.size());
  size_t skip = 0;
  while (skip < common && first[skip] == last[skip]) ++skip;
  index_skip = skip;  // keys are sorted: what first and last share, all do
  index.resize(count);
  for (size_t i = 0; i < count; ++i) index[i] = Prefix(key(i), skip);
}

void Node::Seal(const BlobPool& pool) {
  size_t bytes = 0;
  for (const LeafEntry& e : entries) {
    bytes += e.key.size() + (e.value.is_blob() ? e.value.digest.size()
                                               : e.value.data.size());
  }
  for (std::string_view k : keys) bytes += k.size();
  auto buffer = std::make_shared<std::string>();
  buffer->reserve(bytes);
  auto keep = [&](std::string_view v) {
    size_t at = buffer->size();
    buffer->append(v.data(), v.size());
    return at;
  };
  // Offsets first: the buffer must not move while views are taken.
  std::vector<size_t> at;
  at.reserve(entries.size() * 2 + keys.size());
  for (const LeafEntry& e : entries) {
    at.push_back(keep(e.key));
    at.push_back(keep(e.value.is_blob() ? e.value.digest : e.value.data));
  }
  for (std::string_view k : keys) at.push_back(keep(k));
  const char* base = buffer->data();
  size_t j = 0;
  std::vector<std::shared_ptr<const std::string>> blobs;
  for (LeafEntry& e : entries) {
    e.key = std::string_view(base + at[j++], e.key.size());
    if (!e.value.is_blob()) {
      e.value.data = std::string_view(base + at[j++], e.value.data.size());
      continue;
    }
    e.value.digest = std::string_view(base + at[j++], e.value.digest.size());
    if (!e.value.data.empty()) {
      auto it = pool.find(e.value.data.data());
      assert(it != pool.end());  // the builder pools every held blob
      if (it != pool.end()) blobs.push_back(it->second);
    }
  }
  for (std::string_view& k : keys) {
    k = std::string_view(base + at[j++], k.size());
  }
  page = std::move(buffer);
  held_blobs = std::move(blobs);
  BuildIndex();
}

Hash HashOf(const Node& n) {
  if (n.is_leaf()) {
    NodeHasher h = NodeHasher::Leaf(n.entries.size());
    for (const LeafEntry& e : n.entries) {
      assert(!e.value.is_blob() || e.value.digest.size() == kHashBytes);
      h.AddEntry(e.key, e.value.is_blob(),
                 e.value.is_blob() ? e.value.digest : e.value.data,
                 e.mod_version);
    }
    return h.Finish();
  }
  NodeHasher h = NodeHasher::Internal(n.level, n.children.size());
  for (size_t i = 0; i < n.children.size(); ++i) {
    h.AddChild(i == 0 ? std::string_view() : n.keys[i - 1],
               n.children[i].hash, i == 0);
  }
  return h.Finish();
}

size_t LowerBound(const Node& n, std::string_view key) {
  return Search(n, key, [key](std::string_view k) { return k < key; });
}

size_t UpperBound(const Node& n, std::string_view key) {
  return Search(n, key, [key](std::string_view k) { return k <= key; });
}

}  // namespace cowdb::internal
