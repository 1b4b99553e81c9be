// The PageStore contract, run against both implementations.

#include "engine/store/page_store.h"

#include "engine/store/rocksdb_page_store.h"

#include <fstream>
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb::internal {
namespace {

using ::cowdb::testing::TempDir;

class PageStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDBPageStore(dir_.Sub("db"), {}));
      store_ = std::move(s);
    } else {
      store_ = NewMemoryPageStore();
    }
  }
  TempDir dir_;
  std::shared_ptr<PageStore> store_;
};

TEST_P(PageStoreTest, SpacesAreSeparate) {
  StoreBatch b;
  b.Put(Space::kPages, "k", "page");
  b.Put(Space::kBlobs, "k", "blob");
  ASSERT_OK(store_->Commit(b, true));
  ASSERT_OK_AND_ASSIGN(auto page, store_->Get(Space::kPages, "k"));
  ASSERT_OK_AND_ASSIGN(auto blob, store_->Get(Space::kBlobs, "k"));
  ASSERT_OK_AND_ASSIGN(auto none, store_->Get(Space::kVersions, "k"));
  EXPECT_EQ(page, "page");
  EXPECT_EQ(blob, "blob");
  EXPECT_EQ(none, std::nullopt);
}

TEST_P(PageStoreTest, BatchAppliesPutsAndDeletesInOrder) {
  StoreBatch b;
  b.Put(Space::kTags, "a", "1");
  b.Put(Space::kTags, "b", "2");
  b.Put(Space::kTags, "c", "3");
  ASSERT_OK(store_->Commit(b, false));
  StoreBatch d;
  d.Delete(Space::kTags, "b");
  d.Put(Space::kTags, "a", "4");
  ASSERT_OK(store_->Commit(d, false));
  std::vector<std::string> seen;
  ASSERT_OK(store_->Scan(Space::kTags, "", [&](auto k, auto v) {
    seen.push_back(std::string(k) + "=" + std::string(v));
    return true;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"a=4", "c=3"}));
  seen.clear();
  ASSERT_OK(store_->Scan(Space::kTags, "b", [&](auto k, auto) {
    seen.emplace_back(k);
    return false;  // stop after one
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"c"}));
  StoreStats s = store_->GetStats();
  EXPECT_EQ(s.commits, 2u);
  EXPECT_EQ(s.syncs, 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, PageStoreTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "RocksDB" : "Memory";
                         });

TEST(RocksDBPageStoreTest, DataPersistsAcrossReopen) {
  TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDBPageStore(dir.Sub("db"), {}));
    StoreBatch b;
    b.Put(Space::kPages, "p", "bytes");
    ASSERT_OK(s->Commit(b, true));
  }
  ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDBPageStore(dir.Sub("db"), {}));
  ASSERT_OK_AND_ASSIGN(auto v, s->Get(Space::kPages, "p"));
  EXPECT_EQ(v, "bytes");
}

TEST(RocksDBPageStoreTest, EmptyDirectoryBecomesADatabase) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto s, OpenRocksDBPageStore(dir.path(), {}));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/COWDB"));
}

TEST(RocksDBPageStoreTest, UnreadableMarkerIsRefused) {
  TempDir dir;
  { std::ofstream(dir.path() + "/COWDB") << "garbage"; }
  EXPECT_THAT(OpenRocksDBPageStore(dir.path(), {}),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition,
                                "unreadable cowdb marker"));
}

}  // namespace
}  // namespace cowdb::internal
