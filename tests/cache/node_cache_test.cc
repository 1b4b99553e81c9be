#include "engine/cache/node_cache.h"

#include <thread>

#include "gtest/gtest.h"
#include "tests/util/kept_bytes.h"

namespace cowdb::internal {
namespace {

NodeRef MakeNode(size_t value_bytes) {
  auto n = std::make_shared<Node>();
  LeafEntry e;
  e.key = "k";
  e.value.data = testing::Keep(std::string(value_bytes, 'v'));
  n->entries.push_back(e);
  return n;
}

TEST(NodeCacheTest, HitAndMissAreCounted) {
  NodeCache cache(1 << 20);
  EXPECT_EQ(cache.Lookup(1), nullptr);
  NodeRef n = MakeNode(100);
  cache.Insert(1, n);
  EXPECT_EQ(cache.Lookup(1), n);
  CacheStats s = cache.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_GT(s.bytes, 100u);
}

TEST(NodeCacheTest, StaysWithinCapacityAndKeepsRecentlyUsed) {
  constexpr uint64_t kShards = NodeCache::kShards;
  const size_t capacity = kShards * 10000;  // 10,000 bytes per shard
  NodeCache cache(capacity);
  // Ids 0, kShards, 2 * kShards, ... all land in shard 0.
  for (uint64_t i = 0; i < 100; ++i) {
    cache.Insert(i * kShards, MakeNode(1000));
    if (i > 0) cache.Lookup(0);  // keep id 0 hot
    EXPECT_LE(cache.GetStats().bytes, capacity);
  }
  EXPECT_NE(cache.Lookup(0), nullptr) << "the hot entry was evicted";
  EXPECT_NE(cache.Lookup(99 * kShards), nullptr) << "the newest entry was evicted";
  EXPECT_EQ(cache.Lookup(kShards), nullptr) << "a cold entry survived";
}

TEST(NodeCacheTest, OversizedNodeIsNotKept) {
  NodeCache cache(NodeCache::kShards * 1000);
  cache.Insert(1, MakeNode(5000));
  EXPECT_EQ(cache.Lookup(1), nullptr);
  EXPECT_EQ(cache.GetStats().bytes, 0u);
}

// Evicting a node someone holds would free nothing and make the next load
// decode a second copy: the clock passes over it.
TEST(NodeCacheTest, HeldNodeIsPassedOverByEviction) {
  const size_t capacity = NodeCache::kShards * 3000;
  NodeCache cache(capacity);
  cache.Insert(0, MakeNode(1000));
  NodeRef held = cache.Lookup(0);
  for (uint64_t i = 1; i < 50; ++i) {
    cache.Insert(i * NodeCache::kShards, MakeNode(1000));  // all in shard 0
    EXPECT_LE(cache.GetStats().bytes, capacity);
  }
  EXPECT_EQ(cache.Lookup(0), held) << "a held node lost its entry";
  EXPECT_EQ(cache.Lookup(NodeCache::kShards), nullptr) << "a cold entry survived";
}

// When every node is held the bound still holds, and an evicted node
// stays valid for its holder.
TEST(NodeCacheTest, BoundHoldsWhenEveryNodeIsHeld) {
  const size_t capacity = NodeCache::kShards * 3000;
  NodeCache cache(capacity);
  std::vector<NodeRef> held;
  for (uint64_t i = 0; i < 50; ++i) {
    held.push_back(MakeNode(1000));
    cache.Insert(i * NodeCache::kShards, held.back());
    EXPECT_LE(cache.GetStats().bytes, capacity);
  }
  EXPECT_EQ(cache.Lookup(0), nullptr);
  EXPECT_EQ(held[0]->entries[0].value.data.size(), 1000u);
}

TEST(NodeCacheTest, ConcurrentUse) {
  NodeCache cache(64 * 1024);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (uint64_t i = 0; i < 20000; ++i) {
        uint64_t id = (i * 7 + t) % 500;
        NodeRef n = cache.Lookup(id);
        if (n == nullptr) {
          cache.Insert(id, MakeNode(id % 200));
        } else {
          EXPECT_EQ(n->entries[0].value.data.size(), id % 200);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(cache.GetStats().bytes, 64u * 1024);
}

}  // namespace
}  // namespace cowdb::internal
