// The node search index must answer exactly like a plain binary search
// over the keys, whatever the keys share and however short they are.

#include "engine/format/node.h"

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/kept_bytes.h"

namespace cowdb::internal {
namespace {

std::string RandomKey(std::mt19937_64& rng, const std::string& prefix) {
  // Few distinct bytes, so keys tie on their 8-byte integers often.
  std::string k = prefix;
  size_t len = rng() % 12;
  for (size_t i = 0; i < len; ++i) k.push_back("\0\1ab\xff"[rng() % 5]);
  return k;
}

Node MakeNode(bool leaf, const std::set<std::string>& keys) {
  Node n;
  n.level = leaf ? 0 : 1;
  for (const std::string& k : keys) {
    if (leaf) {
      LeafEntry e;
      e.key = testing::Keep(k);
      n.entries.push_back(e);
    } else {
      n.keys.push_back(testing::Keep(k));
    }
  }
  if (!leaf) n.children.resize(n.keys.size() + 1);
  return n;
}

TEST(NodeIndexTest, AgreesWithPlainBinarySearch) {
  std::mt19937_64 rng(20261127);
  const std::vector<std::string> prefixes = {"", "user:", "a", "\xff\xff",
                                             std::string(20, 'p')};
  for (int round = 0; round < 400; ++round) {
    const std::string& prefix = prefixes[round % prefixes.size()];
    std::set<std::string> keys;
    size_t count = rng() % 40;
    while (keys.size() < count) {
      std::string k = RandomKey(rng, round % 3 == 0 ? "" : prefix);
      if (!k.empty()) keys.insert(k);
    }
    std::vector<std::string> sorted(keys.begin(), keys.end());
    std::vector<std::string> probes = {"", prefix, prefix + '\0',
                                       prefix + "\xff\xff\xff\xff\xff\xff\xff\xff\xff"};
    for (const std::string& k : sorted) {
      probes.push_back(k);
      probes.push_back(k + '\0');
      probes.push_back(k.substr(0, k.size() / 2));
      if (!k.empty()) probes.push_back(k.substr(0, k.size() - 1) + "\xff");
    }
    for (int i = 0; i < 50; ++i) probes.push_back(RandomKey(rng, prefix));

    for (bool leaf : {true, false}) {
      Node plain = MakeNode(leaf, keys);
      Node indexed = MakeNode(leaf, keys);
      indexed.BuildIndex();
      ASSERT_EQ(indexed.index.size(), keys.size());
      for (const std::string& p : probes) {
        size_t lower = std::lower_bound(sorted.begin(), sorted.end(), p) -
                       sorted.begin();
        size_t upper = std::upper_bound(sorted.begin(), sorted.end(), p) -
                       sorted.begin();
        ASSERT_EQ(LowerBound(plain, p), lower) << "round " << round;
        ASSERT_EQ(UpperBound(plain, p), upper) << "round " << round;
        ASSERT_EQ(LowerBound(indexed, p), lower)
            << "round " << round << " probe size " << p.size();
        ASSERT_EQ(UpperBound(indexed, p), upper)
            << "round " << round << " probe size " << p.size();
      }
    }
  }
}

TEST(NodeIndexTest, SharedPrefixIsSkipped) {
  Node n = MakeNode(true, {"user:0001", "user:0002", "user:0100"});
  n.BuildIndex();
  EXPECT_EQ(n.index_skip, 6u);  // "user:0"
  EXPECT_LT(n.index[0], n.index[1]);
  EXPECT_LT(n.index[1], n.index[2]);
}

TEST(ChildLinksTest, OnlyNodesAboveLevelOneLinkTheirChildren) {
  for (uint8_t level : {0, 1, 2, 3}) {
    Node n = MakeNode(level == 0, {"m"});
    n.level = level;
    n.BuildIndex();
    EXPECT_EQ(n.links != nullptr, level >= 2) << "level " << int(level);
    n.DropIndex();
    EXPECT_EQ(n.links, nullptr);
  }
}

TEST(ChildLinksTest, FirstLinkWins) {
  ChildLinks links(2);
  auto a = std::make_shared<const Node>();
  auto b = std::make_shared<const Node>();
  EXPECT_EQ(links.Get(0), nullptr);
  EXPECT_EQ(links.Link(0, a), a.get());
  EXPECT_EQ(links.Link(0, b), a.get());
  EXPECT_EQ(links.Get(0), a.get());
  EXPECT_EQ(links.GetRef(0), a);
  EXPECT_EQ(links.Get(1), nullptr);
  EXPECT_EQ(links.GetRef(1), nullptr);
}

TEST(NodeIndexTest, DroppedIndexFallsBackToPlainSearch) {
  Node n = MakeNode(true, {"b", "d", "f"});
  n.BuildIndex();
  n.DropIndex();
  EXPECT_TRUE(n.index.empty());
  EXPECT_EQ(LowerBound(n, "c"), 1u);
  EXPECT_EQ(UpperBound(n, "d"), 2u);
}

}  // namespace
}  // namespace cowdb::internal
