// Concurrency stress: bank transfers between accounts under SERIALIZABLE
// with retries on Aborted, from 8 threads on 2 cores, while readers check
// that every snapshot sums to the initial total and hashes the same before
// and after commits land. Runs under TSan over the in-memory store; the
// RocksDB variant runs in the normal and ASan builds.

#include <atomic>
#include <random>
#include <thread>

#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

constexpr int kAccounts = 64;
constexpr int64_t kInitial = 1000;
constexpr int kWriters = 6;
constexpr int kReaders = 2;
constexpr int kTransfersPerWriter = 300;

std::string Account(int i) { return "acct" + std::to_string(1000 + i); }

class BankTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    Options o;
    o.sync = false;
    o.retain_versions = Options::kRetainAll;  // every version is audited
    o.page_size = 512;
    o.inline_value_limit = 64;
    if (GetParam() && testing::kUnderTsan) {
      GTEST_SKIP() << "RocksDB is not instrumented for TSan";
    }
    ASSERT_OK_AND_ASSIGN(db_, testing::OpenTestDB(o, GetParam(), dir_.Sub("db")));
    WriteBatch batch;
    for (int i = 0; i < kAccounts; ++i) batch.Put(Account(i), std::to_string(kInitial));
    ASSERT_OK(db_->Write(batch));
  }

  // Sum and hash of all accounts at `version`, through a read-only
  // transaction.
  std::pair<int64_t, uint64_t> Audit(uint64_t version) {
    TransactionOptions o;
    o.read_only = true;
    o.read_version = version;
    auto t = db_->Begin(o);
    EXPECT_OK(t);
    auto it = (*t)->NewIterator();
    EXPECT_OK(it);
    int64_t sum = 0;
    uint64_t hash = 1469598103934665603ull;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      sum += std::stoll(std::string((*it)->value()));
      for (char c : (*it)->value()) hash = (hash ^ c) * 1099511628211ull;
      hash = (hash ^ (*it)->mod_version()) * 1099511628211ull;
    }
    EXPECT_OK((*it)->status());
    return {sum, hash};
  }

  testing::TempDir dir_;
  std::unique_ptr<DB> db_;
};

TEST_P(BankTest, TransfersPreserveTheTotalAtEveryVersion) {
  std::atomic<int> writers_done{0};
  std::atomic<uint64_t> commits{0}, aborts{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(w + 1);
      for (int n = 0; n < kTransfersPerWriter; ++n) {
        int from = rng() % kAccounts, to = rng() % kAccounts;
        if (from == to) continue;
        int64_t amount = rng() % 50;
        for (;;) {  // retry on conflict
          auto t = db_->Begin(TransactionOptions());
          ASSERT_OK(t);
          absl::StatusOr<std::string> a = (*t)->Get(Account(from));
          absl::StatusOr<std::string> b = (*t)->Get(Account(to));
          ASSERT_OK(a);
          ASSERT_OK(b);
          ASSERT_OK((*t)->Put(Account(from), std::to_string(std::stoll(*a) - amount)));
          ASSERT_OK((*t)->Put(Account(to), std::to_string(std::stoll(*b) + amount)));
          absl::StatusOr<uint64_t> v = (*t)->Commit();
          if (v.ok()) {
            commits.fetch_add(1);
            break;
          }
          ASSERT_THAT(v, testing::StatusIs(absl::StatusCode::kAborted));
          aborts.fetch_add(1);
        }
      }
      writers_done.fetch_add(1);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(100 + r);
      while (writers_done.load() < kWriters) {
        uint64_t latest = db_->LatestVersion();
        uint64_t v = rng() % (latest + 1);
        if (v == 0) continue;  // before the accounts existed
        auto [sum1, hash1] = Audit(v);
        EXPECT_EQ(sum1, kAccounts * kInitial) << "at version " << v;
        uint64_t seen = db_->LatestVersion();
        while (db_->LatestVersion() < seen + 2 && writers_done.load() < kWriters) {
          std::this_thread::yield();
        }
        auto [sum2, hash2] = Audit(v);
        EXPECT_EQ(hash1, hash2) << "version " << v << " changed";
      }
    });
  }
  for (auto& t : threads) t.join();
  // Every version, one by one, still sums to the total.
  for (uint64_t v = 1; v <= db_->LatestVersion(); ++v) {
    ASSERT_EQ(Audit(v).first, kAccounts * kInitial) << "at version " << v;
  }
  std::cout << commits.load() << " transfers committed, " << aborts.load()
            << " aborted and retried, " << db_->LatestVersion()
            << " versions" << std::endl;
  EXPECT_GT(commits.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, BankTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "RocksDB" : "Memory";
                         });

}  // namespace
}  // namespace cowdb
