// Path copying shares everything a commit does not touch: one put writes
// about tree-depth pages, and a batch copies each touched node once. (A
// commit writes its log record; its pages are written by the checkpoint
// after it, which these tests take after every commit.)

#include <random>

#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

std::string Key(uint64_t i) {
  char buf[24];
  snprintf(buf, sizeof(buf), "key%012llu", static_cast<unsigned long long>(i));
  return buf;
}

class SharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options options;
    options.background_reclaim = false;  // the freed records are read below
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(options,
                                                     internal::NewMemoryPageStore()));
    // 100,000 keys with 100-byte values: a tree of depth 3 at 4 KiB pages.
    for (int b = 0; b < 100; ++b) {
      WriteBatch batch;
      for (int i = 0; i < 1000; ++i) {
        batch.Put(Key((b * 1000 + i) * 7919 % 100000), std::string(100, 'v'));
      }
      ASSERT_OK(Checkpointed(db_->Write(batch)));
    }
    ASSERT_OK_AND_ASSIGN(internal::Root root, db_->RootAt(db_->LatestVersion()));
    ASSERT_EQ(root.count, 100000u);
    ASSERT_OK(db_->VerifyVersion(db_->LatestVersion(), /*strict=*/true));
    depth_ = Depth();
  }

  int Depth() {
    internal::NodeCache cache(1 << 20);
    internal::NodeSource src(db_->store(), &cache);
    absl::StatusOr<internal::Root> root = db_->RootAt(db_->LatestVersion());
    absl::StatusOr<internal::NodeRef> node = src.Load(root->page_id);
    return (*node)->level + 1;
  }

  uint64_t PagesWritten() { return db_->GetStats().pages_written; }

  // A commit, then a checkpoint that writes its pages.
  absl::Status Checkpointed(absl::StatusOr<uint64_t> committed) {
    if (!committed.ok()) return committed.status();
    return db_->Checkpoint();
  }

  std::unique_ptr<internal::DBImpl> db_;
  int depth_ = 0;
};

TEST_F(SharingTest, OnePutWritesTreeDepthPages) {
  ASSERT_GE(depth_, 3);
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    uint64_t before = PagesWritten();
    ASSERT_OK(Checkpointed(db_->Put(Key(rng() % 100000), std::string(100, 'w'))));
    uint64_t written = PagesWritten() - before;
    // Exactly the path; one more level if that leaf happened to split.
    EXPECT_GE(written, static_cast<uint64_t>(depth_));
    EXPECT_LE(written, static_cast<uint64_t>(depth_ + 2));
    // And the freed record lists the replaced path, born earlier.
    ASSERT_OK_AND_ASSIGN(auto freed, db_->FreedAt(db_->LatestVersion()));
    EXPECT_EQ(freed.size(), static_cast<size_t>(depth_));
  }
}

TEST_F(SharingTest, BatchCopiesEachTouchedNodeOnce) {
  std::mt19937 rng(8);
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(Key(rng() % 100000));

  uint64_t before = PagesWritten();
  WriteBatch batch;
  for (const auto& k : keys) batch.Put(k, std::string(100, 'b'));
  ASSERT_OK(Checkpointed(db_->Write(batch)));
  uint64_t batched = PagesWritten() - before;

  before = PagesWritten();
  for (const auto& k : keys) ASSERT_OK(Checkpointed(db_->Put(k, std::string(100, 's'))));
  uint64_t single = PagesWritten() - before;

  // 1,000 singles write ~depth pages each; the batch writes each touched
  // node once: at most the number of distinct leaves plus their ancestors.
  EXPECT_GE(single, 1000u * depth_);
  ASSERT_OK_AND_ASSIGN(internal::Root root, db_->RootAt(db_->LatestVersion()));
  uint64_t leaves = root.count / 20;  // an upper bound on leaf pages
  EXPECT_LT(batched, leaves + 200) << "the batch copied nodes more than once";
  EXPECT_LT(batched * 3, single);
  std::cout << "pages written: batch of 1000 = " << batched
            << ", 1000 single puts = " << single << std::endl;
  ASSERT_OK(db_->VerifyVersion(db_->LatestVersion(), /*strict=*/true));
}

TEST_F(SharingTest, BatchOfAdjacentKeysWritesFewPages) {
  uint64_t before = PagesWritten();
  WriteBatch batch;
  for (int i = 0; i < 1000; ++i) batch.Put(Key(50000 + i), std::string(100, 'c'));
  ASSERT_OK(Checkpointed(db_->Write(batch)));
  uint64_t batched = PagesWritten() - before;
  // ~1000 entries of ~120 bytes fill ~30 leaves, plus their few parents.
  EXPECT_LT(batched, 60u);
  std::cout << "pages written: batch of 1000 adjacent keys = " << batched
            << std::endl;
}

TEST_F(SharingTest, UntouchedSubtreesKeepTheirPageIds) {
  ASSERT_OK_AND_ASSIGN(internal::Root before, db_->RootAt(db_->LatestVersion()));
  ASSERT_OK(Checkpointed(db_->Put(Key(0), "changed")));
  ASSERT_OK_AND_ASSIGN(internal::Root after, db_->RootAt(db_->LatestVersion()));
  internal::NodeCache cache(1 << 20);
  internal::NodeSource src(db_->store(), &cache);
  ASSERT_OK_AND_ASSIGN(internal::NodeRef a, src.Load(before.page_id));
  ASSERT_OK_AND_ASSIGN(internal::NodeRef b, src.Load(after.page_id));
  ASSERT_EQ(a->children.size(), b->children.size());
  EXPECT_NE(a->children[0].page_id, b->children[0].page_id);  // the path
  for (size_t i = 1; i < a->children.size(); ++i) {
    EXPECT_EQ(a->children[i].page_id, b->children[i].page_id) << i;
  }
}

}  // namespace
}  // namespace cowdb
