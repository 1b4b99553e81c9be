// The RADOS page store against a real Ceph cluster on loopback: the
// PageStore contract, fencing by epoch, bad configuration, and a whole
// database over it.

#include "engine/store/rados_page_store.h"

#include <cstdlib>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "gtest/gtest.h"
#include "tests/cluster/local_cluster.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"

namespace cowdb::internal {
namespace {

using ::cowdb::testing::LocalCeph;
using ::cowdb::testing::IsOkAndHolds;
using ::cowdb::testing::StatusIs;

class RadosStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<LocalCeph>> ceph = LocalCeph::Start(3);
    ASSERT_OK(ceph.status());
    ceph_ = std::move(*ceph).release();
  }
  static void TearDownTestSuite() {
    delete ceph_;
    ceph_ = nullptr;
  }

  // Options for a database of its own per test.
  RadosStoreOptions Options(std::string suffix = "") const {
    RadosStoreOptions o;
    o.conf_path = ceph_->conf_path();
    o.pool = ceph_->pool();
    // A random run id keeps reruns on one cluster apart.
    static const uint32_t run = std::random_device()();
    o.name = absl::StrCat(
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        suffix, ".", run);
    o.op_timeout_seconds = 20;
    return o;
  }

  std::unique_ptr<PageStore> Open(const RadosStoreOptions& o) {
    absl::StatusOr<std::unique_ptr<PageStore>> s = OpenRadosPageStore(o);
    EXPECT_OK(s.status());
    return s.ok() ? *std::move(s) : nullptr;
  }

  static LocalCeph* ceph_;
};

LocalCeph* RadosStoreTest::ceph_ = nullptr;

std::vector<std::string> ScanAll(PageStore& store, Space space,
                                 std::string_view start = "") {
  std::vector<std::string> seen;
  EXPECT_OK(store.Scan(space, start, [&](auto k, auto v) {
    seen.push_back(absl::StrCat(std::string(k), "=", std::string(v)));
    return true;
  }));
  return seen;
}

TEST_F(RadosStoreTest, SpacesAreSeparateAndBatchesApplyInOrder) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  StoreBatch b;
  b.Put(Space::kPages, "k", "page");
  b.Put(Space::kBlobs, "k", "blob");
  b.Put(Space::kTags, "a", "1");
  b.Put(Space::kTags, "b", "2");
  b.Put(Space::kTags, "c", "3");
  ASSERT_OK(store->Commit(b, true));
  StoreBatch d;
  d.Delete(Space::kTags, "b");
  d.Put(Space::kTags, "a", "4");
  d.Put(Space::kTags, "d", "5");
  d.Delete(Space::kTags, "d");
  ASSERT_OK(store->Commit(d, true));

  EXPECT_THAT(store->Get(Space::kPages, "k"), IsOkAndHolds(std::optional<std::string>("page")));
  EXPECT_THAT(store->Get(Space::kBlobs, "k"), IsOkAndHolds(std::optional<std::string>("blob")));
  EXPECT_THAT(store->Get(Space::kVersions, "k"), IsOkAndHolds(std::optional<std::string>()));
  EXPECT_EQ(ScanAll(*store, Space::kTags),
            (std::vector<std::string>{"a=4", "c=3"}));
  EXPECT_EQ(ScanAll(*store, Space::kTags, "b"), (std::vector<std::string>{"c=3"}));
  EXPECT_EQ(ScanAll(*store, Space::kTags, "c"), (std::vector<std::string>{"c=3"}));
  EXPECT_TRUE(ScanAll(*store, Space::kLog).empty());
  EXPECT_EQ(store->GetStats().commits, 2u);
}

// Binary keys (NUL and 0xff bytes), many of them, scanned from every kind
// of start: the hex encoding of omap keys must keep the order of bytes.
TEST_F(RadosStoreTest, ScansKeepByteOrderOfBinaryKeys) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  std::mt19937 rng(7);
  std::map<std::string, std::string> model;
  StoreBatch b;
  for (int i = 0; i < 1500; ++i) {  // more than one scan batch
    std::string key(1 + rng() % 9, '\0');
    for (char& c : key) c = static_cast<char>(rng() % 4 == 0 ? 0 : rng() % 256);
    model[key] = absl::StrCat(i);
    b.Put(Space::kLog, key, absl::StrCat(i));
  }
  ASSERT_OK(store->Commit(b, true));
  for (std::string start : {std::string(), std::string("\0", 1),
                            std::string("\x80"), std::string("\xff\xff"),
                            model.begin()->first, std::next(model.begin(), 700)->first}) {
    std::vector<std::string> want;
    for (auto it = model.lower_bound(start); it != model.end(); ++it) {
      want.push_back(absl::StrCat(it->first, "=", it->second));
    }
    EXPECT_EQ(ScanAll(*store, Space::kLog, start), want);
  }
}

TEST_F(RadosStoreTest, LargeValuesAndPageScans) {
  auto store = Open(Options());
  ASSERT_NE(store, nullptr);
  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  StoreBatch b;
  b.Put(Space::kBlobs, "big", big);
  b.Put(Space::kLog, "rec", big);  // a commit record of large values
  for (int i = 9; i >= 0; --i) b.Put(Space::kPages, std::string(1, char(i)), absl::StrCat("p", i));
  ASSERT_OK(store->Commit(b, true));
  EXPECT_THAT(store->Get(Space::kBlobs, "big"), IsOkAndHolds(std::optional<std::string>(big)));
  EXPECT_THAT(store->Get(Space::kLog, "rec"), IsOkAndHolds(std::optional<std::string>(big)));
  std::vector<std::string> pages = ScanAll(*store, Space::kPages, std::string(1, char(5)));
  EXPECT_EQ(pages, (std::vector<std::string>{
                       std::string("\x05=p5"), std::string("\x06=p6"),
                       std::string("\x07=p7"), std::string("\x08=p8"),
                       std::string("\x09=p9")}));
  StoreBatch d;
  d.Delete(Space::kBlobs, "big");
  d.Put(Space::kPages, std::string(1, char(5)), "gone");
  d.Delete(Space::kPages, std::string(1, char(5)));
  d.Delete(Space::kPages, std::string(1, char(6)));
  d.Put(Space::kPages, std::string(1, char(6)), "again");  // the last op wins
  ASSERT_OK(store->Commit(d, true));
  EXPECT_THAT(store->Get(Space::kBlobs, "big"), IsOkAndHolds(std::optional<std::string>()));
  EXPECT_THAT(store->Get(Space::kPages, std::string(1, char(5))),
              IsOkAndHolds(std::optional<std::string>()));
  EXPECT_THAT(store->Get(Space::kPages, std::string(1, char(6))),
              IsOkAndHolds(std::optional<std::string>("again")));
}

TEST_F(RadosStoreTest, DataPersistsAndEachOpenTakesANewEpoch) {
  RadosStoreOptions o = Options();
  {
    auto store = Open(o);
    ASSERT_NE(store, nullptr);
    StoreBatch b;
    b.Put(Space::kMeta, "m", "1");
    b.Put(Space::kPages, std::string("\0\0\0\0\0\0\0\1", 8), "page");
    ASSERT_OK(store->Commit(b, true));
  }
  EXPECT_THAT(ReadRadosEpoch(o), IsOkAndHolds(1u));
  auto again = Open(o);
  ASSERT_NE(again, nullptr);
  EXPECT_THAT(ReadRadosEpoch(o), IsOkAndHolds(2u));
  EXPECT_THAT(again->Get(Space::kMeta, "m"), IsOkAndHolds(std::optional<std::string>("1")));
  EXPECT_THAT(again->Get(Space::kPages, std::string("\0\0\0\0\0\0\0\1", 8)),
              IsOkAndHolds(std::optional<std::string>("page")));
}

// The heart of failover: once a newer writer opened the database, the old
// one can neither append to the head nor overwrite a page the new one
// wrote, and says so.
TEST_F(RadosStoreTest, ANewerWriterFencesTheOldOne) {
  RadosStoreOptions o = Options();
  o.epoch = 5;
  // Two handles of the old writer, so that each check below is the first
  // a handle meets (a handle that saw itself fenced refuses everything).
  auto old_appender = Open(o);
  auto old_pager = Open(o);
  ASSERT_NE(old_appender, nullptr);
  ASSERT_NE(old_pager, nullptr);
  StoreBatch first;
  first.Put(Space::kLog, "1", "old");
  ASSERT_OK(old_appender->Commit(first, true));

  o.epoch = 6;
  auto new_writer = Open(o);
  ASSERT_NE(new_writer, nullptr);
  StoreBatch page;
  page.Put(Space::kPages, "p", "new page");
  page.Put(Space::kLog, "2", "new");
  ASSERT_OK(new_writer->Commit(page, true));

  // The old writer does not know yet. Its append is refused by the head's
  // epoch, inside the OSD...
  StoreBatch append;
  append.Put(Space::kLog, "3", "stale");
  EXPECT_THAT(old_appender->Commit(append, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, "fenced"));
  EXPECT_THAT(old_appender->Commit(append, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, "fenced"));
  // ...and its page write (which precedes the head step) by the page's.
  StoreBatch overwrite;
  overwrite.Put(Space::kPages, "p", "stale page");
  EXPECT_THAT(old_pager->Commit(overwrite, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, "fenced"));

  EXPECT_THAT(new_writer->Get(Space::kPages, "p"),
              IsOkAndHolds(std::optional<std::string>("new page")));
  EXPECT_THAT(new_writer->Get(Space::kLog, "3"),
              IsOkAndHolds(std::optional<std::string>()));
  EXPECT_THAT(new_writer->Get(Space::kLog, "2"),
              IsOkAndHolds(std::optional<std::string>("new")));
  // A fresh handle of the old epoch is refused at open.
  o.epoch = 5;
  EXPECT_THAT(OpenRadosPageStore(o),
              StatusIs(absl::StatusCode::kFailedPrecondition, "older"));
  StoreBatch more;
  more.Put(Space::kLog, "4", "new");
  EXPECT_OK(new_writer->Commit(more, true));
}

// A page left by a writer that crashed before naming it is overwritten by
// the next writer that allocates the same id.
TEST_F(RadosStoreTest, OrphanObjectsOfAnOlderEpochAreOverwritten) {
  RadosStoreOptions o = Options();
  {
    auto crashed = Open(o);
    ASSERT_NE(crashed, nullptr);
    StoreBatch b;
    b.Put(Space::kPages, "p", "orphan");
    ASSERT_OK(crashed->Commit(b, true));
  }
  auto next = Open(o);
  ASSERT_NE(next, nullptr);
  StoreBatch b;
  b.Put(Space::kPages, "p", "live");
  ASSERT_OK(next->Commit(b, true));
  EXPECT_THAT(next->Get(Space::kPages, "p"),
              IsOkAndHolds(std::optional<std::string>("live")));
}

TEST_F(RadosStoreTest, ReadOnlyStoresFollowButCannotWrite) {
  RadosStoreOptions o = Options();
  RadosStoreOptions ro = o;
  ro.read_only = true;
  EXPECT_THAT(OpenRadosPageStore(ro), StatusIs(absl::StatusCode::kNotFound));
  auto writer = Open(o);
  ASSERT_NE(writer, nullptr);
  auto reader = Open(ro);
  ASSERT_NE(reader, nullptr);
  StoreBatch b;
  b.Put(Space::kLog, "1", "x");
  ASSERT_OK(writer->Commit(b, true));
  EXPECT_THAT(reader->Get(Space::kLog, "1"),
              IsOkAndHolds(std::optional<std::string>("x")));
  EXPECT_THAT(reader->Commit(b, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, "read-only"));
  EXPECT_THAT(ReadRadosEpoch(o), IsOkAndHolds(1u));  // readers take none
}

TEST_F(RadosStoreTest, BadConfigurationIsAClearError) {
  RadosStoreOptions o = Options();
  o.pool = "no-such-pool";
  EXPECT_THAT(OpenRadosPageStore(o),
              StatusIs(absl::StatusCode::kNotFound, "no-such-pool"));

  o = Options();
  o.create_if_missing = false;
  EXPECT_THAT(OpenRadosPageStore(o),
              StatusIs(absl::StatusCode::kNotFound, "does not exist"));

  o = Options();
  o.conf_path = "/nonexistent/ceph.conf";
  EXPECT_FALSE(OpenRadosPageStore(o).ok());

  o = Options();
  o.pool = "";
  EXPECT_THAT(OpenRadosPageStore(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

// The whole engine over RADOS: random commits with large values,
// checkpoints, reclamation and reopening, compared with a map per version.
TEST_F(RadosStoreTest, ADatabaseOverRadosKeepsEveryVersion) {
  cowdb::Options options = cowdb::testing::ManualMaintenanceOptions();
  RadosStoreOptions o = Options();
  std::map<uint64_t, std::map<std::string, std::string>> versions;
  std::map<std::string, std::string> state;
  std::mt19937 rng(11);
  uint64_t latest = 0;
  for (int round = 0; round < 3; ++round) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<PageStore> store, OpenRadosPageStore(o));
    ASSERT_OK_AND_ASSIGN(auto db, DBImpl::Open(options, std::move(store)));
    // Every version written so far reads back after the reopen.
    for (const auto& [v, want] : versions) {
      ReadOptions ro;
      ro.version = v;
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, db->NewIterator(ro));
      ASSERT_NO_FATAL_FAILURE(cowdb::testing::ExpectIteratesAs(*it, want));
    }
    for (int i = 0; i < 40; ++i) {
      WriteBatch b;
      for (int j = 0; j < 8; ++j) {
        std::string key = absl::StrCat("k", rng() % 200);
        if (rng() % 5 == 0) {
          b.Delete(key);
          state.erase(key);
        } else {
          std::string value(rng() % 3 == 0 ? 400 : 20, static_cast<char>('a' + rng() % 26));
          b.Put(key, value);
          state[key] = value;
        }
      }
      ASSERT_OK_AND_ASSIGN(latest, db->Write(b));
      versions[latest] = state;
      if (i % 15 == 14) ASSERT_OK(db->Checkpoint());
    }
    ASSERT_NO_FATAL_FAILURE(cowdb::testing::ExpectCheckedWithoutLeaks(*db));
  }
}

// Reclamation removes the objects of released versions: afterwards the
// pool holds exactly the pages and blobs the retained versions reach.
TEST_F(RadosStoreTest, ReclamationRemovesReleasedObjects) {
  cowdb::Options options = cowdb::testing::ManualMaintenanceOptions();
  options.retain_versions = 3;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PageStore> opened,
                       OpenRadosPageStore(Options()));
  std::shared_ptr<PageStore> store = std::move(opened);
  ASSERT_OK_AND_ASSIGN(auto db, DBImpl::Open(options, store));
  std::mt19937 rng(3);
  for (int i = 0; i < 60; ++i) {
    WriteBatch b;
    for (int j = 0; j < 10; ++j) {
      b.Put(absl::StrCat("k", rng() % 300), std::string(200, 'a' + i % 26));
    }
    ASSERT_OK(db->Write(b).status());
    if (i % 10 == 9) ASSERT_OK(db->Checkpoint());
  }
  ASSERT_OK_AND_ASSIGN(ReclaimStats reclaimed, db->Reclaim());
  EXPECT_GT(reclaimed.pages_deleted, 0u);
  ASSERT_OK_AND_ASSIGN(CheckReport report, db->Check());
  EXPECT_EQ(report.pages_leaked, 0u);
  EXPECT_EQ(report.blobs_leaked, 0u);
  EXPECT_EQ(ScanAll(*store, Space::kPages).size(), report.pages_stored);
  EXPECT_EQ(ScanAll(*store, Space::kBlobs).size(), report.blobs_stored);
}

// A replica follows its writer through the shared store: after CatchUp it
// reads every version the writer committed exactly as the writer does,
// across checkpoints, reclamation, forks and tags; it cannot write.
TEST_F(RadosStoreTest, AReplicaReadsWhatItsWriterCommitted) {
  cowdb::Options options = cowdb::testing::ManualMaintenanceOptions();
  options.retain_versions = 30;
  RadosOptions rados;
  rados.conf_path = ceph_->conf_path();
  rados.pool = ceph_->pool();
  rados.name = Options().name;
  cowdb::Options replica_options = options;
  replica_options.read_only = true;
  EXPECT_THAT(DB::OpenRados(replica_options, rados),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> writer, DB::OpenRados(options, rados));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> replica,
                       DB::OpenRados(replica_options, rados));
  std::mt19937 rng(5);
  for (int i = 0; i < 120; ++i) {
    WriteBatch b;
    for (int j = 0; j < 6; ++j) {
      b.Put(absl::StrCat("k", rng() % 100), std::string(rng() % 2 ? 300 : 10, 'a' + i % 26));
    }
    if (i % 7 == 0) b.Delete(absl::StrCat("k", rng() % 100));
    ASSERT_OK(writer->Write(b).status());
    if (i % 20 == 19) {
      ASSERT_OK(writer->Checkpoint());
      ASSERT_OK(writer->Reclaim().status());
    }
    if (i == 50) ASSERT_OK(writer->Tag("fifty", writer->LatestVersion()));
    if (i % 9 != 0) continue;
    ASSERT_OK_AND_ASSIGN(uint64_t caught_up, replica->CatchUp());
    ASSERT_EQ(caught_up, writer->LatestVersion());
    EXPECT_EQ(replica->OldestVersion(), writer->OldestVersion());
    for (uint64_t v = writer->OldestVersion(); v <= caught_up; ++v) {
      ReadOptions ro;
      ro.version = v;
      auto want = writer->NewIterator(ro);
      auto got = replica->NewIterator(ro);
      if (!want.ok()) {  // released (a tag keeps an older one)
        EXPECT_EQ(got.status().code(), want.status().code()) << "version " << v;
        continue;
      }
      ASSERT_OK(got.status()) << "version " << v;
      ASSERT_NO_FATAL_FAILURE(cowdb::testing::ExpectSameEntries(**want, **got))
          << "version " << v;
    }
  }
  ASSERT_OK(replica->CatchUp().status());
  EXPECT_EQ(replica->ListTags(), writer->ListTags());
  EXPECT_THAT(replica->Put("k", "v"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "read-only"));
  EXPECT_THAT(replica->Checkpoint(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "read-only"));
  EXPECT_THAT(writer->CatchUp(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// A replica's watchers wake when CatchUp brings new versions, and a read
// at a version it has not reached waits for it (bounded).
TEST_F(RadosStoreTest, ReplicaWatchesAndReadsWaitForCatchUp) {
  RadosOptions rados;
  rados.conf_path = ceph_->conf_path();
  rados.pool = ceph_->pool();
  rados.name = Options().name;
  cowdb::Options options;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> writer, DB::OpenRados(options, rados));
  ASSERT_OK(writer->Put("a", "1").status());
  cowdb::Options replica_options;
  replica_options.read_only = true;
  // Waits this test would sit out to the end (and time out) if CatchUp
  // did not wake waiters.
  replica_options.read_only_wait_millis = 3600 * 1000;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> replica,
                       DB::OpenRados(replica_options, rados));
  // Every change after version 1, the replica's latest.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Watcher> watcher, replica->Watch(1, "", ""));

  ASSERT_OK_AND_ASSIGN(uint64_t v, writer->Put("b", "2"));
  std::thread follower([&] {
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_OK(replica->CatchUp().status());
  });
  // Asked before the replica has it: waits for the catch-up, then reads.
  ReadOptions ro;
  ro.version = v;
  std::string value;
  EXPECT_OK(replica->Get(ro, "b", &value));
  EXPECT_EQ(value, "2");
  // The watcher was woken by the same catch-up.
  ASSERT_OK_AND_ASSIGN(WatchEvent e, watcher->Next(absl::Hours(1)));
  EXPECT_EQ(e.version, v);
  EXPECT_EQ(e.change.key, "b");
  follower.join();

  // Bounded: a version nobody commits is NotFound after the wait.
  replica_options.read_only_wait_millis = 100;
  ASSERT_OK_AND_ASSIGN(replica, DB::OpenRados(replica_options, rados));
  ro.version = v + 5;
  EXPECT_THAT(replica->Get(ro, "b", &value), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace cowdb::internal
