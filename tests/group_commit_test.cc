// Group commit: many concurrent durable committers share syncs, and every
// acknowledged commit is present after reopen.

#include <atomic>
#include <map>
#include <thread>

#include "engine/db.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

TEST(GroupCommitTest, ConcurrentCommittersShareSyncsAndAllSurviveReopen) {
  testing::TempDir dir;
  constexpr int kThreads = 16;
  constexpr int kCommitsEach = 40;
  std::vector<std::vector<std::pair<std::string, uint64_t>>> acked(kThreads);
  uint64_t syncs = 0;
  {
    Options o;
    o.retain_versions = Options::kRetainAll;  // every acked version is read
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(o, dir.Sub("db")));
    uint64_t syncs_before = db->GetStats().syncs;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kCommitsEach; ++i) {
          std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
          if (i % 2 == 0) {
            absl::StatusOr<uint64_t> v = db->Put(key, "blind");
            ASSERT_OK(v);
            acked[t].emplace_back(key, *v);
          } else {
            auto txn = db->Begin(TransactionOptions());
            ASSERT_OK(txn);
            ASSERT_OK((*txn)->Put(key, "txn"));
            absl::StatusOr<uint64_t> v = (*txn)->Commit();
            ASSERT_OK(v);
            acked[t].emplace_back(key, *v);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    syncs = db->GetStats().syncs - syncs_before;
  }
  const uint64_t total = kThreads * kCommitsEach;
  std::map<uint64_t, int> per_version;
  for (const auto& list : acked) {
    for (const auto& [key, v] : list) ++per_version[v];
  }
  std::cout << total << " commits, " << syncs << " syncs, "
            << per_version.size() << " versions" << std::endl;
  EXPECT_LT(syncs, total) << "no commits were grouped";
  EXPECT_EQ(syncs, per_version.size()) << "one sync per version";

  Options o;
  o.retain_versions = Options::kRetainAll;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(o, dir.Sub("db")));
  for (const auto& list : acked) {
    for (const auto& [key, v] : list) {
      ReadOptions ro;
      ro.version = v;
      ASSERT_OK_AND_ASSIGN(Entry e, db->GetEntry(ro, key));
      EXPECT_EQ(e.mod_version, v) << key;
    }
  }
  ASSERT_OK_AND_ASSIGN(uint64_t n, db->Count(ReadOptions(), "", ""));
  EXPECT_EQ(n, total);
}

}  // namespace
}  // namespace cowdb
