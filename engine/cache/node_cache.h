// A cache of decoded pages: page id -> immutable Node, bounded by bytes.
//
// Pages never change once written and page ids are never reused, so entries
// are never invalidated, only evicted. Eviction is CLOCK (second chance): a
// hit only sets the entry's referenced bit, so the read path does no list
// surgery; the eviction hand clears bits and evicts the first entry not used
// since its last pass. The cache is shared by every reader and the writer.
//
// Thread safety: all methods may be called concurrently. The cache is split
// into shards, each under its own mutex, so readers rarely contend.

#ifndef COWDB_ENGINE_CACHE_NODE_CACHE_H_
#define COWDB_ENGINE_CACHE_NODE_CACHE_H_

#include <cstdint>
#include <vector>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "engine/util/mutex.h"
#include "engine/format/node.h"

namespace cowdb::internal {

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t bytes = 0;     // charged bytes currently held
  uint64_t capacity = 0;  // the configured bound
};

class NodeCache {
 public:
  // `capacity_bytes` bounds the sum of the charges of cached nodes.
  explicit NodeCache(size_t capacity_bytes);

  NodeCache(const NodeCache&) = delete;
  NodeCache& operator=(const NodeCache&) = delete;

  // Returns the node, or nullptr on a miss. Counts a hit or a miss.
  NodeRef Lookup(uint64_t page_id);

  // On a hit, calls `visit` with the node while the node's shard is locked
  // and returns true: for a short look at a node without taking a
  // reference (a reference count is a cache line every reader of a hot
  // node would write). `visit` must not call into the cache. Counts a hit
  // or a miss.
  bool Visit(uint64_t page_id, absl::FunctionRef<void(const Node&)> visit);

  // Inserts (or refreshes) a node and evicts down to the capacity. A node
  // larger than a shard's capacity is not kept.
  void Insert(uint64_t page_id, NodeRef node);

  CacheStats GetStats() const;

  // Page ids map to shards by id modulo kShards; each shard holds
  // capacity / kShards bytes. 64 rather than 16: two reader threads
  // collided on shard locks often enough to show (R1 with 2 threads
  // +8-40 % in interleaved runs).
  static constexpr int kShards = 64;

 private:

  struct Slot {
    uint64_t page_id = 0;
    NodeRef node;  // nullptr: a free slot
    size_t charge = 0;
    bool referenced = false;
  };

  struct Shard {
    mutable Mutex mu;
    std::vector<Slot> slots ABSL_GUARDED_BY(mu);  // the clock
    std::vector<size_t> free ABSL_GUARDED_BY(mu);  // free slots
    absl::flat_hash_map<uint64_t, size_t> index ABSL_GUARDED_BY(mu);  // page id -> slot
    size_t hand ABSL_GUARDED_BY(mu) = 0;
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    // Per shard, under `mu`: one global counter would be a cache line
    // every reader writes.
    uint64_t hits ABSL_GUARDED_BY(mu) = 0;
    uint64_t misses ABSL_GUARDED_BY(mu) = 0;
  };

  // The slot of `page_id` or nullptr; counts a hit or a miss and marks the
  // slot referenced.
  static Slot* Find(Shard& s, uint64_t page_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  // Evicts one entry of `s` into `evicted`.
  static void EvictOne(Shard& s, std::vector<NodeRef>* evicted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);

  static size_t Charge(const Node& node);
  Shard& ShardFor(uint64_t page_id) { return shards_[page_id % kShards]; }

  const size_t capacity_;
  const size_t shard_capacity_;
  Shard shards_[kShards];
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_CACHE_NODE_CACHE_H_
