#include "engine/cache/node_cache.h"

namespace cowdb::internal {

NodeCache::NodeCache(size_t capacity_bytes)
    : capacity_(capacity_bytes), shard_capacity_(capacity_bytes / kShards) {}

size_t NodeCache::Charge(const Node& node) {
  // Decoded nodes carry per-entry allocations on top of the encoded bytes.
  return node.ByteSize() + sizeof(Node) +
         node.size() * (node.is_leaf() ? sizeof(LeafEntry) : sizeof(ChildRef) +
                                                                  sizeof(std::string));
}

NodeRef NodeCache::Lookup(uint64_t page_id) {
  Shard& s = ShardFor(page_id);
  {
    MutexLock lock(&s.mu);
    auto it = s.index.find(page_id);
    if (it != s.index.end()) {
      s.lru.splice(s.lru.begin(), s.lru, it->second);
      hits_.fetch_add(1, std::memory_order_relaxed);
      return it->second->second;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void NodeCache::Insert(uint64_t page_id, NodeRef node) {
  size_t charge = Charge(*node);
  if (charge > shard_capacity_) return;
  Shard& s = ShardFor(page_id);
  // Evicted nodes are released outside the lock.
  std::list<std::pair<uint64_t, NodeRef>> evicted;
  {
    MutexLock lock(&s.mu);
    auto it = s.index.find(page_id);
    if (it != s.index.end()) {
      s.lru.splice(s.lru.begin(), s.lru, it->second);
      return;
    }
    s.lru.emplace_front(page_id, std::move(node));
    s.index[page_id] = s.lru.begin();
    s.bytes += charge;
    while (s.bytes > shard_capacity_) {
      auto last = std::prev(s.lru.end());
      s.bytes -= Charge(*last->second);
      s.index.erase(last->first);
      evicted.splice(evicted.begin(), s.lru, last);
    }
  }
}

CacheStats NodeCache::GetStats() const {
  CacheStats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.capacity = capacity_;
  for (const Shard& s : shards_) {
    MutexLock lock(&s.mu);
    st.bytes += s.bytes;
  }
  return st;
}

}  // namespace cowdb::internal
