#include "engine/tree/btree.h"
#include "engine/tree/checkpoint.h"

#include <map>
#include <random>

#include "engine/format/page.h"
#include "engine/util/coding.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace cowdb::internal {
namespace {

using ::cowdb::testing::StatusIs;

// A tree over an in-memory store, committing each builder as one version.
class TreeTest : public ::testing::Test {
 protected:
  static constexpr size_t kPageSize = 512;

  TreeTest() : store_(NewMemoryPageStore()), cache_(1 << 20),
               src_(store_.get(), &cache_) {}

  // Applies `ops` (value nullopt = delete) as one commit; returns its root.
  Root Commit(const std::vector<std::pair<std::string,
                                          std::optional<std::string>>>& ops) {
    ++version_;
    TreeBuilder b(&src_, root_, version_, kPageSize, /*inline_limit=*/64,
                  /*hashed=*/true);
    for (const auto& [k, v] : ops) {
      EXPECT_OK(v ? b.Put(k, *v) : b.Delete(k));
    }
    // Each commit is checkpointed at once, so that the trees read back
    // are stored pages (the engine's tests cover trees held in memory).
    const Root built = b.Finish();
    CheckpointPlan plan = PlanCheckpoint(built, &next_id_);
    StoreBatch batch;
    EncodeCheckpoint(plan, &batch);
    EXPECT_OK(store_->Commit(batch, false));
    absl::StatusOr<Root> root = Root{plan.root.page_id, plan.root.count,
                                     plan.root.max_mod, built.hash, nullptr};
    last_written_ = plan.nodes.size();
    last_freed_ = b.freed();
    root_ = *root;
    return root_;
  }

  void ExpectEquals(const Root& root, const std::map<std::string, std::string>& model) {
    ASSERT_OK(VerifyTree(src_, root, kPageSize, /*strict=*/true));
    EXPECT_EQ(root.count, model.size());
    TreeCursor c(&src_, root);
    ASSERT_OK(c.SeekToFirst());
    auto it = model.begin();
    while (c.Valid()) {
      ASSERT_NE(it, model.end());
      EXPECT_EQ(c.entry().key, it->first);
      EXPECT_EQ(c.entry().value.data, it->second);
      ASSERT_OK(c.Next());
      ++it;
    }
    EXPECT_EQ(it, model.end());
    // Backwards.
    ASSERT_OK(c.SeekToLast());
    auto rit = model.rbegin();
    while (c.Valid()) {
      ASSERT_NE(rit, model.rend());
      EXPECT_EQ(c.entry().key, rit->first);
      ASSERT_OK(c.Prev());
      ++rit;
    }
    EXPECT_EQ(rit, model.rend());
  }

  static std::string Key(int i) {
    char buf[16];
    snprintf(buf, sizeof(buf), "k%06d", i);
    return buf;
  }

  std::shared_ptr<PageStore> store_;
  NodeCache cache_;
  NodeSource src_;
  Root root_;
  uint64_t version_ = 0;
  uint64_t next_id_ = 1;
  size_t last_written_ = 0;
  std::vector<FreedItem> last_freed_;
};

TEST_F(TreeTest, EmptyTree) {
  Root empty;
  ASSERT_OK(VerifyTree(src_, empty, kPageSize, true));
  TreeCursor c(&src_, empty);
  ASSERT_OK(c.SeekToFirst());
  EXPECT_FALSE(c.Valid());
  ASSERT_OK(c.Seek("a"));
  EXPECT_FALSE(c.Valid());
  ASSERT_OK_AND_ASSIGN(auto found, TreeGet(src_, empty, "a"));
  EXPECT_FALSE(found.has_value());
  ASSERT_OK_AND_ASSIGN(uint64_t n, TreeCount(src_, empty, "", ""));
  EXPECT_EQ(n, 0u);
}

TEST_F(TreeTest, InsertSplitsAndStaysOrdered) {
  std::map<std::string, std::string> model;
  std::mt19937 rng(1);
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<std::pair<std::string, std::optional<std::string>>> ops;
    for (int i = 0; i < 100; ++i) {
      std::string k = Key(rng() % 5000);
      std::string v(rng() % 40, 'a' + rng() % 26);
      ops.emplace_back(k, v);
      model[k] = v;
    }
    Commit(ops);
    ExpectEquals(root_, model);
  }
  ASSERT_OK_AND_ASSIGN(NodeRef root, src_.Load(root_.page_id));
  EXPECT_GE(root->level, 2) << "expected a tree of depth >= 3";
}

TEST_F(TreeTest, EraseMergesDownToEmpty) {
  std::map<std::string, std::string> model;
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 3000; ++i) {
    ops.emplace_back(Key(i), "value" + std::to_string(i));
    model[Key(i)] = "value" + std::to_string(i);
  }
  Commit(ops);
  ExpectEquals(root_, model);
  std::mt19937 rng(2);
  std::vector<int> order(3000);
  for (int i = 0; i < 3000; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int start = 0; start < 3000; start += 250) {
    ops.clear();
    for (int j = start; j < start + 250; ++j) {
      ops.emplace_back(Key(order[j]), std::nullopt);
      model.erase(Key(order[j]));
    }
    Commit(ops);
    ExpectEquals(root_, model);
  }
  EXPECT_EQ(root_.page_id, 0u);
  EXPECT_EQ(root_.count, 0u);
}

TEST_F(TreeTest, SeekAndCount) {
  std::map<std::string, std::string> model;
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 2000; i += 2) {
    ops.emplace_back(Key(i), "v");
    model[Key(i)] = "v";
  }
  Commit(ops);
  std::mt19937 rng(3);
  for (int t = 0; t < 500; ++t) {
    std::string a = Key(rng() % 2100), b = Key(rng() % 2100);
    TreeCursor c(&src_, root_);
    ASSERT_OK(c.Seek(a));
    auto it = model.lower_bound(a);
    ASSERT_EQ(c.Valid(), it != model.end());
    if (c.Valid()) {
      EXPECT_EQ(c.entry().key, it->first);
    }
    uint64_t expected = 0;
    for (auto j = model.lower_bound(a); j != model.end() && j->first < b; ++j) {
      ++expected;
    }
    ASSERT_OK_AND_ASSIGN(uint64_t n, TreeCount(src_, root_, a, b));
    EXPECT_EQ(n, expected) << a << " " << b;
  }
  ASSERT_OK_AND_ASSIGN(uint64_t all, TreeCount(src_, root_, "", ""));
  EXPECT_EQ(all, model.size());
}

TEST_F(TreeTest, DeleteOfAbsentKeyWritesNothing) {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 1000; ++i) ops.emplace_back(Key(i), "v");
  Root before = Commit(ops);
  Root after = Commit({{"absent", std::nullopt}, {Key(5000), std::nullopt}});
  EXPECT_EQ(after.page_id, before.page_id);
  EXPECT_EQ(last_written_, 0u);
  EXPECT_TRUE(last_freed_.empty());
}

TEST_F(TreeTest, OldRootsStayIntact) {
  std::map<std::string, std::string> model;
  std::vector<std::pair<Root, std::map<std::string, std::string>>> history;
  std::mt19937 rng(4);
  for (int round = 0; round < 30; ++round) {
    std::vector<std::pair<std::string, std::optional<std::string>>> ops;
    for (int i = 0; i < 50; ++i) {
      std::string k = Key(rng() % 800);
      if (rng() % 3 == 0) {
        ops.emplace_back(k, std::nullopt);
        model.erase(k);
      } else {
        ops.emplace_back(k, std::to_string(round));
        model[k] = std::to_string(round);
      }
    }
    history.emplace_back(Commit(ops), model);
  }
  for (const auto& [root, m] : history) ExpectEquals(root, m);
}

TEST_F(TreeTest, FreedRecordsNameReplacedPagesWithBirth) {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 1000; ++i) ops.emplace_back(Key(i), "v");
  Root v1 = Commit(ops);
  Commit({{Key(10), "w"}});
  // The old root (born at version 1) died at version 2.
  bool root_freed = false;
  for (const auto& f : last_freed_) {
    EXPECT_EQ(f.kind, FreedItem::kPage);
    EXPECT_EQ(f.birth, 1u);
    root_freed |= f.id == v1.page_id;
  }
  EXPECT_TRUE(root_freed);
  ASSERT_OK_AND_ASSIGN(NodeRef root, src_.Load(v1.page_id));
  EXPECT_EQ(last_freed_.size(), root->level + 1u) << "one page per level";
}

TEST_F(TreeTest, LargeValuesBecomeBlobs) {
  std::string big(1000, 'b');
  Commit({{"a", big}, {"b", "small"}});
  ASSERT_OK_AND_ASSIGN(auto found, TreeGet(src_, root_, "a"));
  ASSERT_TRUE(found.has_value());
  ASSERT_TRUE(found->entry->value.is_blob());
  EXPECT_EQ(found->entry->value.blob_size, 1000u);
  ASSERT_OK_AND_ASSIGN(std::string v, src_.LoadBlob(found->entry->value.blob_id));
  EXPECT_EQ(v, big);
  uint64_t blob_id = found->entry->value.blob_id;
  // Overwriting frees the blob (born at version 1).
  Commit({{"a", "now small"}});
  ASSERT_EQ(last_freed_.size(), 2u);  // the leaf page and the blob
  bool blob_freed = false;
  for (const auto& f : last_freed_) {
    if (f.kind == FreedItem::kBlob) {
      blob_freed = f.id == blob_id && f.birth == 1;
    }
  }
  EXPECT_TRUE(blob_freed);
}

TEST_F(TreeTest, BlobOverwrittenInSameCommitIsNeverWritten) {
  std::string big(1000, 'b');
  Commit({{"a", big}, {"a", "small"}});
  ASSERT_OK_AND_ASSIGN(auto found, TreeGet(src_, root_, "a"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->entry->value.data, "small");
  int blobs = 0;
  ASSERT_OK(store_->Scan(Space::kBlobs, "", [&](auto, auto) {
    ++blobs;
    return true;
  }));
  EXPECT_EQ(blobs, 0);
}

TEST_F(TreeTest, HugeKeysStillSplitAndVerify) {
  std::map<std::string, std::string> model;
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 60; ++i) {
    std::string k = Key(i) + std::string(300, 'k');
    ops.emplace_back(k, "v");
    model[k] = "v";
  }
  Commit(ops);
  ASSERT_OK(VerifyTree(src_, root_, kPageSize, /*strict=*/false));
  EXPECT_EQ(root_.count, 60u);
  for (int i = 0; i < 60; i += 2) {
    ops.clear();
    ops.emplace_back(Key(i) + std::string(300, 'k'), std::nullopt);
    Commit(ops);
    ASSERT_OK(VerifyTree(src_, root_, kPageSize, /*strict=*/false));
  }
  EXPECT_EQ(root_.count, 30u);
}

TEST_F(TreeTest, VerifyCatchesWrongCount) {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 500; ++i) ops.emplace_back(Key(i), "v");
  Root root = Commit(ops);
  root.count += 1;
  EXPECT_THAT(VerifyTree(src_, root, kPageSize, true),
              StatusIs(absl::StatusCode::kInternal, "count"));
}

TEST_F(TreeTest, CorruptPageIsDataLossNamingIt) {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 500; ++i) ops.emplace_back(Key(i), "v");
  Root root = Commit(ops);
  StoreBatch batch;
  batch.Put(Space::kPages, BigEndianKey(root.page_id), "garbage page");
  ASSERT_OK(store_->Commit(batch, false));
  NodeCache fresh_cache(1 << 20);
  NodeSource fresh(store_.get(), &fresh_cache);
  root.node = nullptr;  // as read from a version record: nothing pinned
  EXPECT_THAT(TreeGet(fresh, root, Key(1)),
              StatusIs(absl::StatusCode::kDataLoss,
                       "page " + std::to_string(root.page_id)));
}

// A page whose level contradicts its parent's (possible only through
// corruption behind a valid checksum) is DataLoss on the read path, both
// where the descent looks at nodes without a reference and at the leaf.
TEST_F(TreeTest, LevelMismatchIsDataLoss) {
  Node leaf;
  LeafEntry e;
  e.key = "a";
  e.writes = 1;
  leaf.entries.push_back(e);
  Node internal;  // level 1 over the leaf page
  internal.level = 1;
  internal.children.resize(1);
  internal.children[0].page_id = 900001;
  auto level2 = [](uint64_t child) {  // claims its child is at level 1
    Node n;
    n.level = 2;
    n.children.resize(1);
    n.children[0].page_id = child;
    return n;
  };
  auto level1 = [](uint64_t child) {  // claims its child is a leaf
    Node n;
    n.level = 1;
    n.children.resize(1);
    n.children[0].page_id = child;
    return n;
  };
  StoreBatch batch;
  batch.Put(Space::kPages, BigEndianKey(900001), EncodePage(leaf, 900001));
  batch.Put(Space::kPages, BigEndianKey(900002), EncodePage(level2(900001), 900002));
  batch.Put(Space::kPages, BigEndianKey(900003), EncodePage(level1(900004), 900003));
  batch.Put(Space::kPages, BigEndianKey(900004), EncodePage(internal, 900004));
  ASSERT_OK(store_->Commit(batch, false));

  for (bool cached : {false, true}) {
    NodeCache cache(1 << 20);
    NodeSource src(store_.get(), &cache);
    if (cached) {
      for (uint64_t id = 900001; id <= 900004; ++id) ASSERT_OK(src.Load(id));
    }
    // Level 2 says its child is internal, but page 900001 is a leaf.
    EXPECT_THAT(TreeGet(src, Root{900002, 1, 0, {}, nullptr}, "a"),
                StatusIs(absl::StatusCode::kDataLoss, "page 900001"));
    // Level 1 says its child is a leaf, but page 900004 is internal.
    EXPECT_THAT(TreeGet(src, Root{900003, 1, 0, {}, nullptr}, "a"),
                StatusIs(absl::StatusCode::kDataLoss, "page 900004"));
    std::string value;
    EXPECT_THAT(TreeRead(src, Root{900002, 1, 0, {}, nullptr}, "a", &value),
                StatusIs(absl::StatusCode::kDataLoss, "page 900001"));
    EXPECT_THAT(TreeRead(src, Root{900003, 1, 0, {}, nullptr}, "a", &value),
                StatusIs(absl::StatusCode::kDataLoss, "page 900004"));
  }
}

// TreeRead (copies out of the leaf) answers as TreeGet (holds the leaf),
// at the latest and at older roots, for inline values, blobs and absent
// keys, into a string reused across calls.
TEST_F(TreeTest, TreeReadAgreesWithTreeGet) {
  std::mt19937_64 rng(1127);
  std::vector<Root> roots;
  for (int commit = 0; commit < 30; ++commit) {
    std::vector<std::pair<std::string, std::optional<std::string>>> ops;
    for (int i = 0; i < 100; ++i) {
      std::string key = Key(rng() % 2000);
      if (rng() % 5 == 0) {
        ops.emplace_back(key, std::nullopt);
      } else {
        // Some values are above the inline limit (64): blobs.
        ops.emplace_back(key, std::string(rng() % 100, 'a' + commit % 26));
      }
    }
    roots.push_back(Commit(ops));
  }
  std::string value = std::string(500, '?');  // longer than any value
  auto check = [&](NodeSource& src, const Root& root) {
    for (int k = 0; k < 2000; k += 3) {
      const std::string key = Key(k);
      ASSERT_OK_AND_ASSIGN(std::optional<Found> want, TreeGet(src, root, key));
      EntryMeta meta;
      ASSERT_OK_AND_ASSIGN(bool found, TreeRead(src, root, key, &value, &meta));
      ASSERT_EQ(found, want.has_value()) << key;
      if (!found) continue;
      ASSERT_OK_AND_ASSIGN(std::string want_value,
                           src.ReadValue(want->entry->value));
      EXPECT_EQ(value, want_value) << key;
      EXPECT_EQ(meta.mod_version, want->entry->mod_version) << key;
      EXPECT_EQ(meta.create_version, want->entry->create_version) << key;
      EXPECT_EQ(meta.writes, want->entry->writes) << key;
      EXPECT_EQ(meta.lease, want->entry->lease) << key;
    }
  };
  // Also through a cache that keeps nothing, from roots that are not
  // pinned: every node then lives only as long as the read's references.
  NodeCache none(1);
  NodeSource cold(store_.get(), &none);
  for (const Root& root : roots) {
    check(src_, root);
    Root unpinned = root;
    unpinned.node = nullptr;
    check(cold, unpinned);
  }
}

// Nodes above level 1 link their children as reads pass through them;
// leaves' parents do not, so a tree's leaves are held only by the cache.
TEST_F(TreeTest, ReadsLinkInternalChildrenButNeverLeaves) {
  std::vector<std::pair<std::string, std::optional<std::string>>> ops;
  for (int i = 0; i < 5000; ++i) ops.emplace_back(Key(i), "value");
  Commit(ops);
  NodeCache tiny(1);  // keeps nothing
  NodeSource src(store_.get(), &tiny);
  ASSERT_OK_AND_ASSIGN(NodeRef top, src.Load(root_.page_id));
  ASSERT_GE(top->level, 2) << "the test needs a tree of three levels";
  ASSERT_NE(top->links, nullptr);
  Root pinned = root_;
  pinned.node = top;
  std::string value;
  for (int i = 0; i < 5000; ++i) {
    ASSERT_OK_AND_ASSIGN(bool found, TreeRead(src, pinned, Key(i), &value));
    ASSERT_TRUE(found);
  }
  // Every child of the root was linked, with its own links iff it is above
  // level 1; linked nodes are what their parent's page ids name.
  std::vector<const Node*> frontier = {top.get()};
  while (!frontier.empty()) {
    const Node* n = frontier.back();
    frontier.pop_back();
    if (n->level < 2) {
      EXPECT_EQ(n->links, nullptr) << "level " << int(n->level);
      continue;
    }
    ASSERT_NE(n->links, nullptr);
    for (size_t i = 0; i < n->children.size(); ++i) {
      const Node* child = n->links->Get(i);
      ASSERT_NE(child, nullptr) << "child " << i << " of a level " << int(n->level);
      EXPECT_EQ(child->level + 1, n->level);
      EXPECT_EQ(n->links->GetRef(i).get(), child);
      EXPECT_EQ(child->birth, n->children[i].max_mod);
      frontier.push_back(child);
    }
  }
  EXPECT_GT(tiny.GetStats().misses, 0u);
}

}  // namespace
}  // namespace cowdb::internal
