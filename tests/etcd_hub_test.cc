// The etcd face's shared parts without gRPC, in memory, so that TSan can
// check them (gRPC and RocksDB are not instrumented): the watch hub under
// concurrent writers and subscribers, and lease revocation racing writes
// that attach keys.

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "gtest/gtest.h"
#include "server/etcd/internal.h"
#include "tests/util/db_test_util.h"

namespace cowdb {
namespace {

using server::etcd::Lessor;
using server::etcd::WatchHub;
using Event = std::pair<uint64_t, std::string>;  // version, key

std::unique_ptr<DB> OpenMemoryDB() {
  Options o;
  o.retain_versions = Options::kRetainAll;
  auto db = testing::OpenTestDB(o, /*on_rocksdb=*/false, "");
  EXPECT_TRUE(db.ok()) << db.status();
  return *std::move(db);
}

// Reads `n` events (or until 20 s pass without one).
std::vector<Event> Drain(Watcher& w, size_t n) {
  std::vector<Event> seen;
  while (seen.size() < n) {
    absl::StatusOr<WatchEvent> e = w.Next(absl::Seconds(20));
    if (!e.ok()) break;
    seen.emplace_back(e->version, e->change.key);
  }
  return seen;
}

// Subscribers that join while 3 writers commit (some queues kept small so
// that they fall back to their own engine watcher) each see every change
// after the version they joined at, once, in order.
TEST(EtcdHubTest, SubscribersJoiningUnderWritesSeeEveryLaterChange) {
  std::unique_ptr<DB> db = OpenMemoryDB();
  WatchHub hub(db.get(), /*max_queued=*/8);
  constexpr int kWriters = 3, kPuts = 200;
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kPuts; ++i) {
        ASSERT_TRUE(db->Put(absl::StrCat("k", w, "/", 1000 + i), "v").ok());
      }
    });
  }
  struct Sub {
    uint64_t from;
    std::unique_ptr<Watcher> w;
  };
  std::vector<Sub> subs;
  go = true;
  for (int i = 0; i < 6; ++i) {
    uint64_t from = db->LatestVersion();
    std::unique_ptr<Watcher> w = hub.Subscribe(from, "k", "l");
    if (w == nullptr) {  // the hub passed `from`: the face reads on its own
      auto own = db->Watch(from, "k", "l");
      ASSERT_TRUE(own.ok());
      w = *std::move(own);
    }
    subs.push_back({from, std::move(w)});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (std::thread& t : writers) t.join();
  // What each should see: every put after its version, by (version, key).
  std::vector<Event> all;
  {
    auto w = db->Watch(0, "k", "l");
    ASSERT_TRUE(w.ok());
    all = Drain(**w, kWriters * kPuts);
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kWriters * kPuts));
  for (Sub& s : subs) {
    std::vector<Event> want;
    for (const Event& e : all) {
      if (e.first > s.from) want.push_back(e);
    }
    EXPECT_EQ(Drain(*s.w, want.size()), want) << "subscriber from version " << s.from;
  }
  subs.clear();
  hub.Stop();
}

// Revocations race puts that attach keys to the lease: no key is left
// carrying a revoked lease.
TEST(EtcdHubTest, RevocationNeverMissesAKeyAttachedMeanwhile) {
  std::unique_ptr<DB> db = OpenMemoryDB();
  server::etcd::EtcdOptions options;
  auto lessor = Lessor::Create(db.get(), options);
  ASSERT_TRUE(lessor.ok()) << lessor.status();
  for (int round = 0; round < 20; ++round) {
    auto g = (*lessor)->Grant(0, 60);
    ASSERT_TRUE(g.ok());
    const int64_t id = g->id;
    std::thread putter([&] {
      for (int i = 0; i < 50; ++i) {
        if (!(*lessor)->Hold(id)) break;
        WriteBatch b;
        std::string key = absl::StrCat("r", round, "/", i);
        b.Put(key, "v", static_cast<uint64_t>(id));
        ASSERT_TRUE(db->Write(b).ok());
        (*lessor)->Attach(id, key);
        (*lessor)->Release(id);
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(200 * round));
    ASSERT_TRUE((*lessor)->Revoke(id).ok());
    putter.join();
    auto it = db->NewIterator(ReadOptions());
    ASSERT_TRUE(it.ok());
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      EXPECT_NE((*it)->meta().lease, static_cast<uint64_t>(id))
          << (*it)->key() << " still carries revoked lease " << id;
    }
  }
  (*lessor)->Stop();
}

}  // namespace
}  // namespace cowdb
