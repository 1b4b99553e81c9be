#include "engine/cache/node_cache.h"

namespace cowdb::internal {

NodeCache::NodeCache(size_t capacity_bytes)
    : capacity_(capacity_bytes), shard_capacity_(capacity_bytes / kShards) {}

size_t NodeCache::Charge(const Node& node) {
  // A decoded node is its page plus fixed-size entries viewing into it.
  size_t bytes = node.page ? node.page->size() : node.ByteSize();
  return bytes + sizeof(Node) + sizeof(std::string) +
         node.entries.capacity() * sizeof(LeafEntry) +
         node.keys.capacity() * sizeof(std::string_view) +
         node.children.capacity() * sizeof(ChildRef) +
         node.index.capacity() * sizeof(uint64_t) +
         (node.links ? ChildLinks::BytesFor(node.children.size()) : 0);
}

NodeCache::Slot* NodeCache::Find(Shard& s, uint64_t page_id) {
  auto it = s.index.find(page_id);
  if (it == s.index.end()) {
    ++s.misses;
    return nullptr;
  }
  ++s.hits;
  Slot* slot = &s.slots[it->second];
  if (!slot->referenced) slot->referenced = true;  // no store when set
  return slot;
}

NodeRef NodeCache::Lookup(uint64_t page_id) {
  Shard& s = ShardFor(page_id);
  MutexLock lock(&s.mu);
  Slot* slot = Find(s, page_id);
  return slot != nullptr ? slot->node : nullptr;
}

bool NodeCache::Visit(uint64_t page_id,
                      absl::FunctionRef<void(const Node&)> visit) {
  Shard& s = ShardFor(page_id);
  MutexLock lock(&s.mu);
  Slot* slot = Find(s, page_id);
  if (slot == nullptr) return false;
  visit(*slot->node);
  return true;
}

void NodeCache::EvictOne(Shard& s, std::vector<NodeRef>* evicted) {
  // The clock also passes over nodes someone else holds (a parent's child
  // link, a reader, a commit): evicting one frees no memory, it only drops
  // its entry, and the next load would decode a second copy of the page
  // while the first lives on. After two rounds it evicts whatever comes
  // next, so the byte bound holds even when every node is held.
  // Terminates: bytes > 0 means some slot is occupied.
  const size_t patience = 2 * s.slots.size();
  for (size_t step = 0;; ++step) {
    if (s.hand >= s.slots.size()) s.hand = 0;
    Slot& slot = s.slots[s.hand++];
    if (slot.node == nullptr) continue;
    if (step < patience && (slot.referenced || slot.node.use_count() > 1)) {
      slot.referenced = false;
      continue;
    }
    s.bytes -= slot.charge;
    s.index.erase(slot.page_id);
    evicted->push_back(std::move(slot.node));
    slot.node = nullptr;
    s.free.push_back(&slot - s.slots.data());
    return;
  }
}

void NodeCache::Insert(uint64_t page_id, NodeRef node) {
  const size_t charge = Charge(*node);
  if (charge > shard_capacity_) return;
  Shard& s = ShardFor(page_id);
  std::vector<NodeRef> evicted;  // released outside the lock
  {
    MutexLock lock(&s.mu);
    auto [it, inserted] = s.index.try_emplace(page_id, 0);
    if (!inserted) {
      s.slots[it->second].referenced = true;
      return;
    }
    while (s.bytes + charge > shard_capacity_) EvictOne(s, &evicted);
    size_t i;
    if (!s.free.empty()) {
      i = s.free.back();
      s.free.pop_back();
    } else {
      i = s.slots.size();
      s.slots.emplace_back();
    }
    // Once the cache is full, `i` is the slot just evicted, right behind
    // the hand: a new entry is the last the hand reaches.
    s.slots[i] = Slot{page_id, std::move(node), charge, false};
    it->second = i;
    s.bytes += charge;
  }
}

CacheStats NodeCache::GetStats() const {
  CacheStats st;
  st.capacity = capacity_;
  for (const Shard& s : shards_) {
    MutexLock lock(&s.mu);
    st.bytes += s.bytes;
    st.hits += s.hits;
    st.misses += s.misses;
  }
  return st;
}

}  // namespace cowdb::internal
