// Readers and a writer at once: snapshots stay consistent and stable while
// commits land, and readers never wait for the writer; the same with
// branches. Runs under TSan over
// the in-memory store (Debian's RocksDB is not instrumented); the RocksDB
// variant runs in the normal and ASan builds.

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

constexpr int kAccounts = 2000;
constexpr int64_t kInitial = 1000;

std::string Account(int i) { return "acct" + std::to_string(i); }

class ConcurrencyTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    Options o;
    o.sync = false;
    o.retain_versions = Options::kRetainAll;
    o.page_size = 1024;  // deeper trees, more pages copied per commit
    o.inline_value_limit = 64;
    o.cache_bytes = 2 << 20;
    if (GetParam() && testing::kUnderTsan) {
      GTEST_SKIP() << "RocksDB is not instrumented for TSan";
    }
    ASSERT_OK_AND_ASSIGN(db_, testing::OpenTestDB(o, GetParam(), dir_.Sub("db")));
    WriteBatch batch;
    for (int i = 0; i < kAccounts; ++i) {
      batch.Put(Account(i), std::to_string(kInitial));
    }
    ASSERT_OK(db_->Write(batch));
  }

  // Sum of all balances and a hash of the whole content of `snap`.
  std::pair<int64_t, uint64_t> Scan(const Snapshot& snap) {
    ReadOptions ro;
    ro.snapshot = &snap;
    auto it = db_->NewIterator(ro);
    EXPECT_OK(it);
    int64_t sum = 0;
    uint64_t hash = 1469598103934665603ull;
    int n = 0;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next(), ++n) {
      sum += std::stoll(std::string((*it)->value()));
      for (char c : (*it)->key()) hash = (hash ^ c) * 1099511628211ull;
      for (char c : (*it)->value()) hash = (hash ^ c) * 1099511628211ull;
    }
    EXPECT_OK((*it)->status());
    EXPECT_EQ(n, kAccounts);
    return {sum, hash};
  }

  testing::TempDir dir_;
  std::unique_ptr<DB> db_;
};

TEST_P(ConcurrencyTest, SnapshotsStayConsistentWhileCommitsLand) {
  std::atomic<bool> stop{false};
  std::atomic<int> commits{0};
  std::thread writer([&] {
    std::mt19937 rng(1);
    std::map<int, int64_t> balance;
    for (int i = 0; i < kAccounts; ++i) balance[i] = kInitial;
    while (!stop.load()) {
      // A batch of transfers; the total is unchanged in every version.
      WriteBatch batch;
      std::map<int, int64_t> changed;
      for (int t = 0; t < 1 + static_cast<int>(rng() % 20); ++t) {
        int from = rng() % kAccounts, to = rng() % kAccounts;
        int64_t amount = rng() % 100;
        balance[from] -= amount;
        balance[to] += amount;
        changed[from] = balance[from];
        changed[to] = balance[to];
      }
      for (const auto& [a, b] : changed) batch.Put(Account(a), std::to_string(b));
      ASSERT_OK(db_->Write(batch));
      commits.fetch_add(1);
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 rng(100 + r);
      for (int round = 0; round < 40; ++round) {
        Snapshot snap = db_->GetSnapshot();
        auto [sum1, hash1] = Scan(snap);
        EXPECT_EQ(sum1, kAccounts * kInitial) << "version " << snap.version();
        // Point reads and counts agree with the snapshot while it is held.
        ReadOptions ro;
        ro.snapshot = &snap;
        absl::StatusOr<uint64_t> n = db_->Count(ro, "", "");
        EXPECT_OK(n);
        EXPECT_EQ(*n, static_cast<uint64_t>(kAccounts));
        int start = commits.load();
        while (commits.load() < start + 3 && !stop.load()) std::this_thread::yield();
        auto [sum2, hash2] = Scan(snap);
        EXPECT_EQ(hash1, hash2) << "snapshot changed under a reader";
        EXPECT_EQ(sum2, sum1);
        // An old version by number reads the same as well.
        if (snap.version() > 1) {
          ReadOptions old;
          old.version = snap.version() - 1;
          absl::StatusOr<std::string> v = db_->Get(old, Account(rng() % kAccounts));
          EXPECT_OK(v);
        }
      }
    });
  }
  for (auto& t : readers) t.join();
  stop.store(true);
  writer.join();
  EXPECT_GT(commits.load(), 10);
  auto [sum, hash] = Scan(db_->GetSnapshot());
  EXPECT_EQ(sum, kAccounts * kInitial);
}

TEST_P(ConcurrencyTest, LongIterationStaysConsistentWhileThousandsOfCommitsLand) {
  Snapshot snap = db_->GetSnapshot();
  auto [sum_before, hash_before] = Scan(snap);
  ReadOptions ro;
  ro.snapshot = &snap;
  ASSERT_OK_AND_ASSIGN(auto it, db_->NewIterator(ro));
  it->SeekToFirst();
  std::atomic<int> commits{0};
  std::thread writer([&] {
    std::mt19937 rng(3);
    for (int i = 0; i < 3000; ++i) {
      WriteBatch batch;
      batch.Put(Account(rng() % kAccounts), std::to_string(i));
      batch.Delete(Account(rng() % kAccounts));
      batch.Put("new" + std::to_string(i), "x");
      ASSERT_OK(db_->Write(batch));
      commits.fetch_add(1);
    }
  });
  // Iterate slowly, interleaved with the commits.
  int n = 0;
  int64_t sum = 0;
  for (; it->Valid(); it->Next(), ++n) {
    ASSERT_EQ(it->version(), snap.version());
    sum += std::stoll(std::string(it->value()));
    if (n % 100 == 0) {
      while (commits.load() < n && commits.load() < 3000) std::this_thread::yield();
    }
  }
  writer.join();
  ASSERT_OK(it->status());
  EXPECT_EQ(n, kAccounts);
  EXPECT_EQ(sum, sum_before);
  EXPECT_EQ(db_->LatestVersion(), snap.version() + 3000);
  EXPECT_EQ(Scan(snap).second, hash_before);
}

// Branches at once: transfers on three branches from two threads each,
// a thread forking and deleting a scratch branch (of latest and older
// trees), checkpoints, and readers summing snapshots of random branches.
// Every branch keeps its total at every snapshot (transfers conserve
// money; a transaction is serializable on its branch), and group commits
// that mix branches make one version per branch.
TEST_P(ConcurrencyTest, BranchesTransferConcurrentlyAndKeepTheirTotals) {
  const std::vector<std::string> branches = {"a", "b", "c"};
  for (const std::string& b : branches) ASSERT_OK(db_->Fork(b, TreeAt()).status());
  const int64_t total = kAccounts * kInitial;
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      TransactionOptions to;
      to.branch = branches[t % branches.size()];
      for (int i = 0; i < 150; ++i) {
        auto txn = db_->Begin(to);
        ASSERT_OK(txn);
        const std::string from = Account(rng() % kAccounts), into = Account(rng() % kAccounts);
        if (from == into) continue;
        auto a = (*txn)->Get(from);
        auto b = (*txn)->Get(into);
        ASSERT_OK(a);
        ASSERT_OK(b);
        ASSERT_OK((*txn)->Put(from, std::to_string(std::stoll(*a) - 7)));
        ASSERT_OK((*txn)->Put(into, std::to_string(std::stoll(*b) + 7)));
        absl::Status s = (*txn)->Commit().status();
        if (s.ok()) {
          committed.fetch_add(1);
        } else {
          ASSERT_EQ(s.code(), absl::StatusCode::kAborted) << s;
        }
      }
    });
  }
  std::thread forker([&] {
    for (int i = 0; !stop.load(); ++i) {
      TreeAt from;
      from.branch = "a";
      if (i % 2 == 1) from.version = db_->LatestVersion() > 20 ? db_->LatestVersion() - 20 : 0;
      absl::Status s = db_->Fork("scratch", from).status();
      ASSERT_TRUE(s.ok() || absl::IsNotFound(s)) << s;  // "a" may not exist that far back
      if (s.ok()) ASSERT_OK(db_->DeleteBranch("scratch").status());
      if (i % 5 == 0) ASSERT_OK(db_->Checkpoint());
    }
  });
  std::thread reader([&] {
    std::mt19937 rng(99);
    while (!stop.load()) {
      ReadOptions ro;
      ro.branch = branches[rng() % branches.size()];
      auto snap = db_->SnapshotOf(ro);
      ASSERT_OK(snap);
      EXPECT_EQ(Scan(*snap).first, total);
    }
  });
  for (int t = 0; t < 6; ++t) threads[t].join();
  stop = true;
  forker.join();
  reader.join();
  EXPECT_GT(committed.load(), 100);
  for (const std::string& b : branches) {
    ReadOptions ro;
    ro.branch = b;
    auto snap = db_->SnapshotOf(ro);
    ASSERT_OK(snap);
    EXPECT_EQ(Scan(*snap).first, total) << b;
  }
  EXPECT_EQ(Scan(db_->GetSnapshot()).first, total);  // main untouched
  ASSERT_OK(db_->Check().status());
}

INSTANTIATE_TEST_SUITE_P(Stores, ConcurrencyTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "RocksDB" : "Memory";
                         });

}  // namespace
}  // namespace cowdb
