// DB::WriteAsync: queued writes share group commits with blocking writers,
// complete in the order they were queued, report bad input at once, and are
// all done (and durable) when the database closes. Runs on RocksDB and, so
// that TSan sees the queue handoffs, in memory.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/latch.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

class AsyncWriteTest : public ::testing::TestWithParam<bool> {
 protected:
  bool on_rocksdb() const { return GetParam(); }

  void SetUp() override {
    if (on_rocksdb() && testing::kUnderTsan) {
      GTEST_SKIP() << "RocksDB is not instrumented for TSan";
    }
    options_.retain_versions = Options::kRetainAll;  // every acked version is read
    Open();
  }

  void Open() { ASSERT_OK_AND_ASSIGN(db_, testing::OpenTestDB(options_, on_rocksdb(), path())); }
  std::string path() { return dir_.Sub("db"); }

  // Every key of `acked` reads back at its acknowledged version.
  void ExpectAcked(const std::map<std::string, uint64_t>& acked) {
    for (const auto& [key, v] : acked) {
      ReadOptions ro;
      ro.version = v;
      ASSERT_OK_AND_ASSIGN(Entry e, db_->GetEntry(ro, key));
      EXPECT_EQ(e.mod_version, v) << key;
      EXPECT_EQ(e.value, "v:" + key);
    }
    ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ReadOptions(), "", ""));
    EXPECT_EQ(n, acked.size());
  }

  testing::TempDir dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_P(AsyncWriteTest, MixesWithBlockingWritersInQueueOrder) {
  constexpr int kAsyncThreads = 4, kBlockingThreads = 4, kEach = 50;
  std::mutex mu;
  std::map<std::string, uint64_t> acked;
  std::vector<std::vector<uint64_t>> async_versions(kAsyncThreads);
  std::atomic<int> failures{0};
  testing::Latch async_done(kAsyncThreads * kEach);
  const uint64_t commits_before = db_->GetStats().commits;
  std::vector<std::thread> threads;
  for (int t = 0; t < kAsyncThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Two keys per batch: both must land in one version.
        const std::string a = "a" + std::to_string(t) + "/" + std::to_string(i);
        const std::string b = a + "/second";
        WriteBatch batch;
        batch.Put(a, "v:" + a);
        batch.Put(b, "v:" + b);
        db_->WriteAsync(std::move(batch), [&, t, a, b](absl::StatusOr<uint64_t> v) {
          if (!v.ok()) {
            ++failures;
          } else {
            std::lock_guard<std::mutex> lock(mu);
            acked[a] = *v;
            acked[b] = *v;
            async_versions[t].push_back(*v);
          }
          async_done.CountDown();
        });
      }
    });
  }
  for (int t = 0; t < kBlockingThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string k = "b" + std::to_string(t) + "/" + std::to_string(i);
        absl::StatusOr<uint64_t> v = db_->Put(k, "v:" + k);
        if (!v.ok()) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu);
        acked[k] = *v;
      }
    });
  }
  for (auto& th : threads) th.join();
  async_done.Wait();
  ASSERT_EQ(failures, 0);
  ASSERT_EQ(acked.size(), size_t{kAsyncThreads * kEach * 2 + kBlockingThreads * kEach});
  // One thread's writes are queued in order, so they commit in order; their
  // callbacks may run in any order only across threads.
  for (const auto& versions : async_versions) {
    ASSERT_EQ(versions.size(), size_t{kEach});
    for (size_t i = 1; i < versions.size(); ++i) {
      EXPECT_LE(versions[i - 1], versions[i]) << "write " << i << " overtook its predecessor";
    }
  }
  const uint64_t commits = db_->GetStats().commits - commits_before;
  EXPECT_LE(commits, uint64_t{(kAsyncThreads + kBlockingThreads) * kEach});
  ASSERT_NO_FATAL_FAILURE(ExpectAcked(acked));
  if (!on_rocksdb()) return;
  db_.reset();
  Open();
  ASSERT_NO_FATAL_FAILURE(ExpectAcked(acked));
}

TEST_P(AsyncWriteTest, CloseWaitsForEveryQueuedWrite) {
  constexpr int kWrites = 300;
  std::map<std::string, uint64_t> acked;  // written by the committer only
  std::atomic<int> callbacks{0};
  for (int i = 0; i < kWrites; ++i) {
    const std::string k = "k" + std::to_string(i);
    WriteBatch batch;
    batch.Put(k, "v:" + k);
    db_->WriteAsync(std::move(batch), [&, k](absl::StatusOr<uint64_t> v) {
      ASSERT_OK(v);
      acked[k] = *v;
      ++callbacks;
    });
  }
  if (!on_rocksdb()) {
    // The memory store dies with the database: check before closing that
    // the writes finish, then that closing waits for none left behind.
    while (callbacks < kWrites) std::this_thread::yield();
    ASSERT_NO_FATAL_FAILURE(ExpectAcked(acked));
    db_.reset();
    return;
  }
  db_.reset();  // returns only once every callback has run
  EXPECT_EQ(callbacks, kWrites);
  Open();
  ASSERT_NO_FATAL_FAILURE(ExpectAcked(acked));
}

TEST_P(AsyncWriteTest, CallbacksMayQueueMoreWrites) {
  constexpr int kChain = 40;
  std::vector<uint64_t> versions;
  testing::Latch finished(1);
  std::function<void(int)> write_next = [&](int i) {
    const std::string k = "chain" + std::to_string(i);
    WriteBatch batch;
    batch.Put(k, "v:" + k);
    db_->WriteAsync(std::move(batch), [&, i](absl::StatusOr<uint64_t> v) {
      ASSERT_OK(v);
      versions.push_back(*v);
      if (i + 1 < kChain) {
        write_next(i + 1);
      } else {
        finished.CountDown();
      }
    });
  };
  write_next(0);
  finished.Wait();
  ASSERT_EQ(versions.size(), size_t{kChain});
  for (size_t i = 1; i < versions.size(); ++i) EXPECT_LT(versions[i - 1], versions[i]);
}

// Callbacks run on the leader between its rounds, so chained writes keep
// the queue busy: leadership then passes from blocking writers to the
// committer thread and back many times.
TEST_P(AsyncWriteTest, SustainedMixedWritersNeverStall) {
  constexpr int kChains = 4, kChainLength = 150, kBlockingThreads = 3, kEach = 100;
  testing::Latch chains_done(kChains);
  std::atomic<int> failures{0};
  std::vector<std::function<void(int)>> chains(kChains);
  for (int c = 0; c < kChains; ++c) {
    chains[c] = [&, c](int i) {
      const std::string k = "c" + std::to_string(c) + "/" + std::to_string(i);
      WriteBatch batch;
      batch.Put(k, "v:" + k);
      db_->WriteAsync(std::move(batch), [&, c, i](absl::StatusOr<uint64_t> v) {
        if (!v.ok()) ++failures;
        if (i + 1 < kChainLength) {
          chains[c](i + 1);
        } else {
          chains_done.CountDown();
        }
      });
    };
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kBlockingThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string k = "b" + std::to_string(t) + "/" + std::to_string(i);
        if (!db_->Put(k, "v:" + k).ok()) ++failures;
      }
    });
  }
  for (int c = 0; c < kChains; ++c) chains[c](0);
  // A missed handoff leaves the queue without a leader, and every writer
  // waits forever: fail with a message instead of hanging.
  testing::Latch finished(1);
  std::thread waiter([&] {
    for (auto& th : threads) th.join();
    chains_done.Wait();
    finished.CountDown();
  });
  if (!finished.WaitFor(std::chrono::seconds(60))) {
    std::cerr << "queued writes stalled: no thread leads the commit queue" << std::endl;
    std::_Exit(1);  // the writers can never finish; closing would hang too
  }
  waiter.join();
  EXPECT_EQ(failures, 0);
  ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ReadOptions(), "", ""));
  EXPECT_EQ(n, uint64_t{kChains * kChainLength + kBlockingThreads * kEach});
}

// A caller that does not want the outcome passes no callback; the request
// must still be led (the queue tells asynchronous requests by their
// callback), and the writers behind it must not wait forever.
TEST_P(AsyncWriteTest, WithoutCallbackTheWriteStillCommits) {
  WriteBatch batch;
  batch.Put("fire", "and forget");
  db_->WriteAsync(std::move(batch), nullptr);
  ASSERT_OK(db_->Put("after", "x"));  // queued behind it: it is done now
  // The queue is empty and nobody leads: the request must still be led.
  ASSERT_OK_AND_ASSIGN(auto txn, db_->Begin(TransactionOptions()));
  ASSERT_OK(txn->Put("txn", "no callback either"));
  txn->CommitAsync(nullptr);
  testing::Latch put_done(1);
  std::thread writer([&] {
    EXPECT_OK(db_->Put("after the txn", "x"));
    put_done.CountDown();
  });
  if (!put_done.WaitFor(std::chrono::seconds(30))) {
    std::cerr << "a write behind a request without a callback never returned" << std::endl;
    std::_Exit(1);
  }
  writer.join();
  EXPECT_EQ(db_->Get(ReadOptions(), "fire").value_or("NOT_FOUND"), "and forget");
  EXPECT_EQ(db_->Get(ReadOptions(), "txn").value_or("NOT_FOUND"), "no callback either");
}

TEST_P(AsyncWriteTest, BadInputFailsAtOnceAndCommitsNothing) {
  const uint64_t latest = db_->LatestVersion();
  auto call = [&](WriteBatch batch) {
    std::optional<absl::StatusOr<uint64_t>> got;
    db_->WriteAsync(std::move(batch), [&](absl::StatusOr<uint64_t> v) { got = v; });
    EXPECT_TRUE(got.has_value()) << "the callback did not run before WriteAsync returned";
    return got.value_or(absl::InternalError("no callback"));
  };
  WriteBatch bad;
  bad.Put("fine", "v");
  bad.Put("", "an empty key");
  absl::StatusOr<uint64_t> v = call(std::move(bad));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << v.status();
  v = call(WriteBatch());
  ASSERT_OK(v);
  EXPECT_EQ(*v, latest);
  EXPECT_EQ(db_->LatestVersion(), latest);
  EXPECT_EQ(db_->Get(ReadOptions(), "fine").status().code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Stores, AsyncWriteTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "RocksDB" : "Memory"; });

}  // namespace
}  // namespace cowdb
