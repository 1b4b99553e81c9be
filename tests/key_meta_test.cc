// Per-key metadata (KeyMeta: mod_version, create_version, writes, lease)
// and DB::ReleaseBefore.
//
// Hand-checked sequences (create, overwrite, delete, recreate, repeats
// within a batch) through every read path: GetEntry, iterators, Diff's old
// and new metadata, a transaction's reads and its own writes. Then a
// random workload checked against ModelDB at every version after
// checkpoints, reopens that replay the log and reopens after a checkpoint,
// with values stored inline and as blobs. ReleaseBefore: OutOfRange below,
// tagged versions kept, never lowered, NotFound after the latest,
// persistent. Key history (DB::History): hand-checked, and every key's
// against the model's in the random workload. Upgrades: a format-2 database (format-1 pages, log records
// without leases) opens as the latest format and reads with the documented defaults;
// a newer format is refused.

#include <xxhash.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/format/page.h"
#include "engine/store/page_store.h"
#include "engine/util/coding.h"
#include "engine/version/records.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/legacy_page.h"
#include "tests/util/model_db.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using ::cowdb::testing::ModelDB;
using ::cowdb::testing::StatusIs;

KeyMeta Meta(uint64_t mod, uint64_t create, uint64_t writes, uint64_t lease) {
  return KeyMeta{mod, create, writes, lease};
}

std::string ToString(const KeyMeta& m) {
  return absl::StrCat("{mod ", m.mod_version, ", created ", m.create_version,
                      ", writes ", m.writes, ", lease ", m.lease, "}");
}

// KeyMeta has no operator== (it is a plain public struct); compare as text
// so that failures print both sides.
#define EXPECT_META(got, want) EXPECT_EQ(ToString(got), ToString(want))

// A history as text: "[complete_from, to] more? v:put(value){meta} v:del ...".
std::string HistoryString(const KeyHistory& h) {
  std::string out = absl::StrCat("[", h.complete_from, ", ", h.to, "]",
                                 h.more ? " more" : "");
  for (const KeyChange& c : h.changes) {
    absl::StrAppend(&out, " ", c.version, ":",
                    c.value ? absl::StrCat("put(", c.value->substr(0, 12), ")",
                                           ToString(c.meta))
                            : "del");
  }
  return out;
}

KeyMeta MetaOf(const Entry& e) {
  return KeyMeta{e.mod_version, e.create_version, e.writes, e.lease};
}

class KeyMetaTest : public ::testing::Test {
 protected:
  KeyMetaTest() {
    options_.sync = false;
    options_.retain_versions = Options::kRetainAll;
    options_.page_size = 1024;
    options_.inline_value_limit = 128;
    options_.background_reclaim = false;
    options_.background_checkpoint = false;  // checkpoints where tests say
  }

  void SetUp() override { Open(); }

  // (Re)opens over the same store. With `crash`, the closing checkpoint is
  // skipped: the next open replays the log after the last checkpoint.
  void Open(bool crash = false) {
    if (db_ && crash) db_->set_checkpoint_on_close(false);
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(options_, store_));
  }

  // The metadata of `key` at `version` (0 = latest) by GetEntry, checked
  // against what an iterator positioned on it says.
  KeyMeta MetaAt(std::string_view key, uint64_t version = 0) {
    ReadOptions ro;
    if (version != 0) ro.version = version;
    absl::StatusOr<Entry> e = db_->GetEntry(ro, key);
    EXPECT_OK(e) << key << " at " << version;
    if (!e.ok()) return KeyMeta();
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
    EXPECT_OK(it);
    if (!it.ok()) return KeyMeta();
    (*it)->Seek(key);
    EXPECT_TRUE((*it)->Valid() && (*it)->key() == key) << key;
    if (!(*it)->Valid()) return KeyMeta();
    EXPECT_META((*it)->meta(), MetaOf(*e));
    EXPECT_EQ((*it)->mod_version(), e->mod_version);
    return MetaOf(*e);
  }

  // The changes between two versions.
  std::vector<Change> DiffOf(uint64_t from, uint64_t to) {
    std::vector<Change> out;
    EXPECT_OK(db_->Diff(from, to, "", "", [&](const Change& c) {
      out.push_back(c);
      return true;
    }));
    return out;
  }

  uint64_t Put(std::string_view k, std::string_view v, uint64_t lease = 0) {
    WriteBatch b;
    b.Put(k, v, lease);
    absl::StatusOr<uint64_t> version = db_->Write(b);
    EXPECT_OK(version);
    return version.value_or(0);
  }

  Options options_;
  std::shared_ptr<internal::PageStore> store_ = internal::NewMemoryPageStore();
  std::unique_ptr<internal::DBImpl> db_;
};

TEST_F(KeyMetaTest, CreateOverwriteDeleteRecreate) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("k", "a"));  // created
  ASSERT_EQ(v1, 1u);
  EXPECT_META(MetaAt("k"), Meta(1, 1, 1, 0));
  EXPECT_EQ(Put("k", "b", /*lease=*/7), 2u);  // overwritten with a lease
  EXPECT_META(MetaAt("k"), Meta(2, 1, 2, 7));
  ASSERT_OK(db_->Put("k", "c"));  // the lease goes with the next write
  EXPECT_META(MetaAt("k"), Meta(3, 1, 3, 0));
  ASSERT_OK_AND_ASSIGN(uint64_t v4, db_->Delete("k"));
  EXPECT_THAT(db_->GetEntry(ReadOptions(), "k"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Put("k", "d", 9), 5u);  // recreated: starts over
  EXPECT_META(MetaAt("k"), Meta(5, 5, 1, 9));
  ASSERT_OK(db_->Put("other", "x"));  // does not touch k
  EXPECT_META(MetaAt("k"), Meta(5, 5, 1, 9));
  EXPECT_META(MetaAt("other"), Meta(6, 6, 1, 0));
  // Old versions keep theirs.
  EXPECT_META(MetaAt("k", 2), Meta(2, 1, 2, 7));
  EXPECT_META(MetaAt("k", 3), Meta(3, 1, 3, 0));
  ReadOptions at4;
  at4.version = v4;
  EXPECT_THAT(db_->GetEntry(at4, "k"), StatusIs(absl::StatusCode::kNotFound));
  // A lease of every width survives.
  EXPECT_EQ(Put("k", "e", ~uint64_t{0}), 7u);
  EXPECT_META(MetaAt("k"), Meta(7, 5, 2, ~uint64_t{0}));
}

// Every put counts, in the order a commit applies them: twice in one batch
// is two writes; a delete and a put in one batch recreate the key.
TEST_F(KeyMetaTest, EveryPutOfABatchCounts) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("b", "1"));
  WriteBatch batch;
  batch.Put("a", "2", 3);
  batch.Put("a", "3");      // the last put's lease (none) wins
  batch.Delete("b");
  batch.Put("b", "2", 4);   // recreated in this version
  batch.Put("c", "1");
  batch.Put("c", "2", 5);   // created and overwritten in one version
  batch.Put("d", "1");
  batch.Delete("d");        // created and deleted: absent
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
  ASSERT_EQ(v, 3u);
  EXPECT_META(MetaAt("a"), Meta(3, 1, 3, 0));
  EXPECT_META(MetaAt("b"), Meta(3, 3, 1, 4));
  EXPECT_META(MetaAt("c"), Meta(3, 3, 2, 5));
  EXPECT_THAT(db_->Get(ReadOptions(), "d"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(KeyMetaTest, DiffReportsOldAndNewMeta) {
  ASSERT_OK(db_->Put("gone", "1"));                    // 1
  ASSERT_OK(db_->Put("kept", "1"));                    // 2
  ASSERT_OK(db_->Put("re", "1"));                      // 3
  ASSERT_OK(db_->Put("re", "2"));                      // 4
  const uint64_t from = db_->LatestVersion();
  WriteBatch batch;
  batch.Delete("gone");
  batch.Put("kept", "2", 11);
  batch.Delete("re");
  batch.Put("re", "3");
  batch.Put("new", std::string(300, 'n'), 12);  // a blob
  ASSERT_OK_AND_ASSIGN(uint64_t to, db_->Write(batch));
  std::vector<Change> changes = DiffOf(from, to);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[0].key, "gone");
  EXPECT_META(changes[0].old_meta, Meta(1, 1, 1, 0));
  EXPECT_META(changes[0].new_meta, KeyMeta());  // absent: zero
  EXPECT_EQ(changes[1].key, "kept");
  EXPECT_META(changes[1].old_meta, Meta(2, 2, 1, 0));
  EXPECT_META(changes[1].new_meta, Meta(5, 2, 2, 11));
  EXPECT_EQ(changes[2].key, "new");
  EXPECT_META(changes[2].old_meta, KeyMeta());
  EXPECT_META(changes[2].new_meta, Meta(5, 5, 1, 12));
  EXPECT_EQ(changes[2].new_value, std::string(300, 'n'));
  EXPECT_EQ(changes[3].key, "re");
  EXPECT_META(changes[3].old_meta, Meta(4, 3, 2, 0));
  EXPECT_META(changes[3].new_meta, Meta(5, 5, 1, 0));  // recreated
  // Not the other way round.
  EXPECT_THAT(db_->Diff(to, from, "", "", [](const Change&) { return true; }),
              StatusIs(absl::StatusCode::kInvalidArgument, "after to version"));
  // Watchers deliver the same changes.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Watcher> w, db_->Watch(from, "", ""));
  ASSERT_OK_AND_ASSIGN(WatchEvent e, w->Next(absl::Seconds(5)));
  EXPECT_EQ(e.change.key, "gone");
  ASSERT_OK_AND_ASSIGN(e, w->Next(absl::Seconds(5)));
  EXPECT_META(e.change.new_meta, Meta(5, 2, 2, 11));
}

TEST_F(KeyMetaTest, TransactionReadsAndOwnWrites) {
  ASSERT_OK(db_->Put("a", "1"));
  EXPECT_EQ(Put("a", "2", 4), 2u);
  ASSERT_OK(db_->Put("b", "1"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> txn,
                       db_->Begin(TransactionOptions()));
  // Reads from the snapshot carry the metadata.
  ASSERT_OK_AND_ASSIGN(Entry a, txn->GetEntry("a"));
  EXPECT_META(MetaOf(a), Meta(2, 1, 2, 4));
  // Own writes: the lease they attach, the rest 0 until committed.
  ASSERT_OK(txn->Put("a", "3", 8));
  ASSERT_OK(txn->Put("c", "1"));  // the overload without a lease
  ASSERT_OK_AND_ASSIGN(a, txn->GetEntry("a"));
  EXPECT_EQ(a.value, "3");
  EXPECT_META(MetaOf(a), Meta(0, 0, 0, 8));
  ASSERT_OK_AND_ASSIGN(Entry c, txn->GetEntry("c"));
  EXPECT_META(MetaOf(c), Meta(0, 0, 0, 0));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, txn->NewIterator());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  EXPECT_META(it->meta(), Meta(0, 0, 0, 8));
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");  // from the snapshot
  EXPECT_META(it->meta(), Meta(3, 3, 1, 0));
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  EXPECT_META(it->meta(), Meta(0, 0, 0, 0));
  it.reset();
  // Writing a key again replaces the buffered lease.
  ASSERT_OK(txn->Put("a", "4", 9));
  ASSERT_OK_AND_ASSIGN(uint64_t v, txn->Commit());
  ASSERT_EQ(v, 4u);
  EXPECT_META(MetaAt("a"), Meta(4, 1, 3, 9));  // one write per key committed
  EXPECT_META(MetaAt("c"), Meta(4, 4, 1, 0));
  EXPECT_META(MetaAt("b"), Meta(3, 3, 1, 0));
}

// A random workload (puts with and without leases, deletes, repeats within
// batches, blobs) checked against ModelDB at every version, across
// checkpoints, reopens that replay the log, and reopens after a
// checkpoint.
class KeyMetaPersistenceTest : public KeyMetaTest {
 protected:
  static constexpr int kKeys = 60;  // several leaves of 1 KiB

  void Workload(int commits) {
    for (int i = 0; i < commits; ++i) {
      WriteBatch batch;
      for (int n = 1 + rng_() % 5; n > 0; --n) {
        std::string k = absl::StrCat("key", rng_() % kKeys);
        if (rng_() % 5 == 0) {
          batch.Delete(k);
          continue;
        }
        // Blobs: longer than options_.inline_value_limit.
        size_t len = rng_() % 4 == 0 ? 200 + rng_() % 400 : rng_() % 60;
        uint64_t lease = rng_() % 3 == 0 ? 0 : 1 + rng_() % 1000000;
        batch.Put(k, std::string(len, static_cast<char>('a' + rng_() % 26)),
                  lease);
      }
      ASSERT_OK_AND_ASSIGN(uint64_t got, db_->Write(batch));
      ASSERT_OK_AND_ASSIGN(uint64_t want, model_.Write(batch));
      ASSERT_EQ(got, want);
    }
  }

  // Every version: each key's value and metadata by GetEntry and by
  // iterator, as the model's.
  void ExpectAllVersions(uint64_t from = 1) {
    ASSERT_EQ(db_->LatestVersion(), model_.LatestVersion());
    for (uint64_t v = from; v <= model_.LatestVersion(); ++v) {
      SCOPED_TRACE(absl::StrCat("version ", v));
      ReadOptions ro;
      ro.version = v;
      for (int k = 0; k < kKeys; ++k) {
        const std::string key = absl::StrCat("key", k);
        absl::StatusOr<Entry> want = model_.GetEntry(ro, key);
        absl::StatusOr<Entry> got = db_->GetEntry(ro, key);
        ASSERT_EQ(got.status().code(), want.status().code()) << key;
        if (!want.ok()) continue;
        ASSERT_EQ(got->value, want->value) << key;
        ASSERT_EQ(ToString(MetaOf(*got)), ToString(MetaOf(*want))) << key;
      }
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, db_->NewIterator(ro));
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> mit,
                           model_.NewIterator(ro));
      for (it->SeekToFirst(), mit->SeekToFirst(); mit->Valid();
           it->Next(), mit->Next()) {
        ASSERT_TRUE(it->Valid());
        ASSERT_EQ(it->key(), mit->key());
        ASSERT_EQ(it->value(), mit->value());
        ASSERT_EQ(ToString(it->meta()), ToString(mit->meta())) << mit->key();
      }
      ASSERT_FALSE(it->Valid());
      ASSERT_OK(it->status());
      ASSERT_OK(db_->VerifyVersion(v, /*strict=*/false));
    }
  }

  // Every key's history (DB::History) as the model's: the whole of it,
  // then from and to random versions with random limits, paging through
  // `more` to the end.
  void ExpectAllHistories() {
    const uint64_t latest = model_.LatestVersion();
    for (int k = 0; k < kKeys; ++k) {
      const std::string key = absl::StrCat("key", k);
      for (int round = 0; round < 3; ++round) {
        HistoryOptions o;
        if (round > 0) {
          o.to = 1 + rng_() % latest;
          o.from = rng_() % (*o.to + 1);
          o.limit = round == 2 ? 1 + rng_() % 3 : 0;
        }
        SCOPED_TRACE(absl::StrCat(key, " from ", o.from, " to ", o.to.value_or(0),
                                  " limit ", o.limit));
        for (int page = 0;; ++page) {
          ASSERT_OK_AND_ASSIGN(KeyHistory got, db_->History(key, o));
          ASSERT_OK_AND_ASSIGN(KeyHistory want, model_.History(key, o));
          ASSERT_EQ(HistoryString(got), HistoryString(want)) << "page " << page;
          if (!got.more || got.changes.back().version <= o.from) break;
          o.to = got.changes.back().version - 1;
        }
      }
    }
  }

  // Commits that change the key "hot" in each way its history must tell
  // apart, between commits to other keys, with a checkpoint every few
  // commits: puts inline and as blobs, with and without a lease, twice in
  // one batch; deletes, also of the absent key; a batch that deletes it
  // and puts it again (it starts over) or puts and deletes it; a
  // transaction that deletes it and puts it again (committed as a delete
  // and a put: it starts over).
  void HotWorkload(int commits) {
    for (int i = 0; i < commits; ++i) {
      const uint64_t before = model_.LatestVersion();
      const std::string value = absl::StrCat(
          "hot", before + 1, "-",
          std::string(rng_() % 3 == 0 ? 200 + rng_() % 300 : rng_() % 20,
                      static_cast<char>('a' + rng_() % 26)));
      const uint64_t lease = rng_() % 2 == 0 ? 0 : 1 + rng_() % 1000;
      WriteBatch batch;
      switch (rng_() % 9) {
        case 0: {  // a transaction: delete, then put again
          ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> got,
                               db_->Begin(TransactionOptions()));
          ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> want,
                               model_.Begin(TransactionOptions()));
          for (Transaction* t : {got.get(), want.get()}) {
            ASSERT_OK(t->Delete("hot"));
            ASSERT_OK(t->Put("hot", value, lease));
          }
          ASSERT_OK_AND_ASSIGN(uint64_t g, got->Commit());
          ASSERT_OK_AND_ASSIGN(uint64_t w, want->Commit());
          ASSERT_EQ(g, w);
          break;
        }
        case 1:
          batch.Delete("hot");
          batch.Put("hot", value, lease);
          break;
        case 2:
          batch.Put("hot", value, lease);
          batch.Delete("hot");
          break;
        case 3:
          batch.Delete("hot");
          break;
        case 4:
          batch.Put("hot", value);
          batch.Put("hot", absl::StrCat(value, "+"), lease);
          break;
        case 5:
        case 6:
          batch.Put("hot", value, lease);
          break;
        default:
          ASSERT_NO_FATAL_FAILURE(Workload(1));  // other keys only
      }
      if (batch.Count() != 0) {
        if (rng_() % 2 == 0) batch.Put(absl::StrCat("key", rng_() % kKeys), "x");
        ASSERT_OK_AND_ASSIGN(uint64_t got, db_->Write(batch));
        ASSERT_OK_AND_ASSIGN(uint64_t want, model_.Write(batch));
        ASSERT_EQ(got, want);
      }
      if (rng_() % 5 == 0) ASSERT_OK(db_->Checkpoint());
    }
  }

  // The history of "hot" as the model's, values compared whole, for every
  // `to` (0: the latest), `from` the start, a random version or `to`
  // itself, and several limits, paging through `more`.
  void ExpectHotHistories() {
    const uint64_t latest = model_.LatestVersion();
    for (uint64_t to = 0; to <= latest; ++to) {
      const uint64_t top = to == 0 ? latest : to;
      for (uint64_t from : {uint64_t{0}, rng_() % (top + 1), top}) {
        for (uint64_t limit : {0, 2, 7}) {
          HistoryOptions o;
          o.from = from;
          if (to != 0) o.to = to;  // else the latest
          o.limit = limit;
          SCOPED_TRACE(absl::StrCat("from ", from, " to ", to, " limit ", limit));
          for (int page = 0;; ++page) {
            absl::StatusOr<KeyHistory> got = db_->History("hot", o);
            absl::StatusOr<KeyHistory> want = model_.History("hot", o);
            ASSERT_EQ(got.status().code(), want.status().code())
                << got.status() << " page " << page;
            if (!want.ok()) break;
            ASSERT_EQ(HistoryString(*got), HistoryString(*want)) << "page " << page;
            for (size_t i = 0; i < want->changes.size(); ++i) {
              ASSERT_EQ(got->changes[i].value, want->changes[i].value)
                  << "page " << page << " change " << i;
            }
            if (!got->more || got->changes.back().version <= o.from) break;
            o.to = got->changes.back().version - 1;
          }
        }
      }
    }
  }

  uint64_t Rebuilds() { return db_->versions().GetStats().rebuilds; }

  std::mt19937_64 rng_{20261201};
  ModelDB model_{options_};
};

// History behind checkpoints: "hot" changes across many checkpoint
// intervals, read from the versions held since their commit, from stored
// checkpoints and from the log (intervals found with one pass over their
// records), after thinning merged intervals, after reopens (clean, and
// replaying the log) and after a release. History rebuilds no version.
TEST_F(KeyMetaPersistenceTest, HistoryBehindCheckpoints) {
  ASSERT_NO_FATAL_FAILURE(HotWorkload(150));
  ASSERT_GT(db_->versions().GetStats().checkpoints, 15u);
  const uint64_t rebuilds = Rebuilds();
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
  ASSERT_NO_FATAL_FAILURE(ExpectAllHistories());
  EXPECT_EQ(Rebuilds(), rebuilds);
  // Thinning (checkpoints less than checkpoint_log_bytes apart) merges
  // the intervals: fewer, longer ones.
  const size_t checkpoints = db_->versions().Checkpoints().size();
  ASSERT_OK(db_->Reclaim().status());
  ASSERT_LT(db_->versions().Checkpoints().size(), checkpoints);
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
  ASSERT_NO_FATAL_FAILURE(Open());  // nothing held, nothing rebuilt
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
  ASSERT_NO_FATAL_FAILURE(HotWorkload(40));
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));  // replays after the last
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
  ASSERT_NO_FATAL_FAILURE(ExpectAllHistories());
  EXPECT_EQ(Rebuilds(), 0u);
  // Released versions: the floor falls inside an interval whose log
  // records before the floor's base are deleted.
  const uint64_t floor = model_.LatestVersion() / 2;
  ASSERT_OK(db_->ReleaseBefore(floor));
  ASSERT_OK(model_.ReleaseBefore(floor));
  ASSERT_OK(db_->Reclaim().status());
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
  EXPECT_EQ(Rebuilds(), 0u);
  // Versions read (rebuilt) first, then history through them: the same.
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions(floor));
  ASSERT_NO_FATAL_FAILURE(ExpectHotHistories());
}

TEST_F(KeyMetaPersistenceTest, SurvivesCheckpointsAndReopens) {
  ASSERT_NO_FATAL_FAILURE(Workload(60));
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());  // held in memory
  ASSERT_OK(db_->Checkpoint());
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());  // the latest from pages
  ASSERT_NO_FATAL_FAILURE(Workload(60));
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));  // replays 60 log records
  EXPECT_EQ(db_->GetStats().replayed_commits, 60u);
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  ASSERT_NO_FATAL_FAILURE(ExpectAllHistories());  // held and replayed
  ASSERT_NO_FATAL_FAILURE(Open());  // a clean close checkpoints
  EXPECT_EQ(db_->GetStats().replayed_commits, 0u);
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());  // pages, rebuilt versions
  ASSERT_NO_FATAL_FAILURE(ExpectAllHistories());
  ASSERT_NO_FATAL_FAILURE(Workload(20));
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
  EXPECT_EQ(report.pages_leaked, 0u);
  // This build writes the latest page format only.
  size_t pages = 0;
  ASSERT_OK(store_->Scan(internal::Space::kPages, "",
                         [&](std::string_view, std::string_view page) {
                           ++pages;
                           EXPECT_EQ(page[4], internal::kPageFormatVersion);
                           return true;
                         }));
  EXPECT_GT(pages, 3u);
}

// --------------------------------------------------------------- history

// Hand-checked: puts, a delete and recreation, neighbours' writes (which
// must not show), the tree emptied and refilled; newest first, limits and
// bounds, released versions, bad input.
TEST_F(KeyMetaTest, History) {
  ASSERT_OK(db_->Put("k", "a"));              // 1
  ASSERT_OK(db_->Put("j", "x"));              // 2: a neighbour
  ASSERT_OK(db_->Put("k", "b"));              // 3
  ASSERT_OK(db_->Delete("k"));                // 4
  ASSERT_OK(db_->Delete("k"));                // 5: already absent
  ASSERT_OK(db_->Put("l", "y"));              // 6: a neighbour
  ASSERT_OK(db_->Put("k", "c"));              // 7: recreated
  ASSERT_OK(db_->Delete("j"));                // 8
  ASSERT_OK(db_->Delete("l"));                // 9
  ASSERT_OK(db_->Delete("k"));                // 10: the tree is empty
  ASSERT_OK(db_->Put("m", "z"));              // 11
  ASSERT_OK(db_->Put("k", "d"));              // 12
  // [from, to] (to 0: the latest), at most `limit` changes (0: all).
  auto Range = [](uint64_t from, uint64_t to, uint64_t limit) {
    HistoryOptions o;
    o.from = from;
    if (to != 0) o.to = to;
    o.limit = limit;
    return o;
  };
  auto history = [&](HistoryOptions o) {
    absl::StatusOr<KeyHistory> h = db_->History("k", o);
    EXPECT_OK(h);
    return h.ok() ? HistoryString(*h) : h.status().ToString();
  };
  EXPECT_EQ(history(Range(0, 0, 0)),
            "[1, 12] 12:put(d){mod 12, created 12, writes 1, lease 0} 10:del "
            "7:put(c){mod 7, created 7, writes 1, lease 0} 4:del "
            "3:put(b){mod 3, created 1, writes 2, lease 0} "
            "1:put(a){mod 1, created 1, writes 1, lease 0}");
  EXPECT_EQ(history(Range(4, 9, 0)),
            "[4, 9] 7:put(c){mod 7, created 7, writes 1, lease 0} 4:del");
  EXPECT_EQ(history(Range(5, 6, 0)), "[5, 6]");
  EXPECT_EQ(history(Range(0, 0, 2)),
            "[10, 12] more 12:put(d){mod 12, created 12, writes 1, lease 0} 10:del");
  EXPECT_EQ(history(Range(0, 9, 2)),
            "[4, 9] more 7:put(c){mod 7, created 7, writes 1, lease 0} 4:del");
  EXPECT_EQ(history(Range(0, 2, 2)),
            "[1, 2] 1:put(a){mod 1, created 1, writes 1, lease 0}");
  ASSERT_OK_AND_ASSIGN(KeyHistory other, db_->History("nothing", Range(0, 0, 0)));
  EXPECT_EQ(HistoryString(other), "[1, 12]");
  // After a checkpoint and reopen (stored births), and as after a crash
  // (replayed ones): the same.
  const std::string all = history(Range(0, 0, 0));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(history(Range(0, 0, 0)), all);
  ASSERT_OK(db_->Put("k", "e"));  // 13
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  EXPECT_EQ(history(Range(0, 12, 0)), all);
  // Released versions: what version 4 changed needs version 3.
  ASSERT_OK(db_->ReleaseBefore(4));
  EXPECT_EQ(history(Range(0, 12, 0)),
            "[5, 12] 12:put(d){mod 12, created 12, writes 1, lease 0} 10:del "
            "7:put(c){mod 7, created 7, writes 1, lease 0}");
  // Bad input.
  EXPECT_THAT(db_->History("", Range(0, 0, 0)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->History("k", Range(9, 8, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, "after to version 8"));
  EXPECT_THAT(db_->History("k", Range(0, 14, 0)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->History("k", Range(0, 2, 0)), StatusIs(absl::StatusCode::kOutOfRange));
}

// --------------------------------------------------------------- release

TEST_F(KeyMetaTest, ReleaseBefore) {
  for (int i = 1; i <= 10; ++i) ASSERT_OK(db_->Put("k", std::to_string(i)));
  ASSERT_OK(db_->Tag("keep", 3));
  EXPECT_THAT(db_->ReleaseBefore(11), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(db_->ReleaseFloor(), 0u);
  ASSERT_OK(db_->ReleaseBefore(6));
  auto code_at = [&](uint64_t v) {
    ReadOptions ro;
    ro.version = v;
    return db_->Get(ro, "k").status().code();
  };
  auto expect_released_below = [&](uint64_t floor) {
    for (uint64_t v = 1; v <= 10; ++v) {
      const bool kept = v >= floor || v == 3;
      EXPECT_EQ(code_at(v), kept ? absl::StatusCode::kOk
                                 : absl::StatusCode::kOutOfRange)
          << "version " << v;
    }
    EXPECT_EQ(db_->OldestVersion(), 3u);
    EXPECT_EQ(db_->ReleaseFloor(), floor);  // tags do not lower it
  };
  expect_released_below(6);
  ReadOptions at5;
  at5.version = 5;
  EXPECT_THAT(db_->Get(at5, "k"),
              StatusIs(absl::StatusCode::kOutOfRange,
                       "oldest retained version is 3"));
  ASSERT_OK(db_->ReleaseBefore(4));  // lowering: no effect
  expect_released_below(6);
  // Persistent before any reclamation pass (as after a crash: no closing
  // checkpoint).
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  expect_released_below(6);
  // Retention options that keep everything do not bring them back, and a
  // pass deletes what only they needed.
  ASSERT_OK_AND_ASSIGN(ReclaimStats stats, db_->Reclaim());
  EXPECT_EQ(stats.floor, 6u);
  EXPECT_GT(stats.versions_released, 0u);
  expect_released_below(6);
  // Persistent: after a reopen as after a crash, and after a clean one.
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  expect_released_below(6);
  ASSERT_NO_FATAL_FAILURE(Open());
  expect_released_below(6);
  ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> listed, db_->ListVersions());
  std::vector<uint64_t> versions;
  for (const VersionInfo& i : listed) versions.push_back(i.version);
  EXPECT_EQ(versions, (std::vector<uint64_t>{3, 6, 7, 8, 9, 10}));
  // Untagged, the tagged version goes too.
  ASSERT_OK(db_->Untag("keep"));
  ASSERT_OK(db_->Reclaim().status());
  EXPECT_EQ(code_at(3), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(db_->OldestVersion(), 6u);
  // Up to the latest: only it stays.
  ASSERT_OK(db_->ReleaseBefore(10));
  EXPECT_EQ(code_at(9), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(code_at(10), absl::StatusCode::kOk);
  ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
  EXPECT_EQ(report.pages_leaked, 0u);
  EXPECT_EQ(report.blobs_leaked, 0u);
}

// An open snapshot keeps its version readable, as under the retention
// window; once released it goes.
TEST_F(KeyMetaTest, ReleaseBeforeLeavesOpenSnapshots) {
  ASSERT_OK(db_->Put("k", "1"));
  Snapshot s = db_->GetSnapshot();
  ASSERT_OK(db_->Put("k", "2"));
  ASSERT_OK(db_->ReleaseBefore(2));
  ReadOptions ro;
  ro.snapshot = &s;
  EXPECT_OK(db_->Get(ro, "k"));
  s = Snapshot();
  ReadOptions at1;
  at1.version = 1;
  EXPECT_THAT(db_->Get(at1, "k"), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(KeyMetaRocksDBTest, ReleaseBeforeSurvivesReopen) {
  if (testing::kUnderTsan) GTEST_SKIP() << "RocksDB is not instrumented";
  testing::TempDir dir;
  Options options;
  options.retain_versions = Options::kRetainAll;
  options.background_reclaim = false;  // only ReleaseBefore writes the floor
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db,
                         DB::Open(options, dir.Sub("db")));
    for (int i = 0; i < 5; ++i) ASSERT_OK(db->Put("k", std::to_string(i)));
    ASSERT_OK(db->ReleaseBefore(4));
  }
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db,
                       DB::Open(options, dir.Sub("db")));
  ReadOptions at3;
  at3.version = 3;
  EXPECT_THAT(db->Get(at3, "k"), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(db->OldestVersion(), 4u);
}

// ------------------------------------------------------------ log records

// A put with a lease is op 2; without one, op 0 as format 2 wrote it, so
// that a record of a format-2 database decodes unchanged.
TEST(LogRecordTest, LeaseIsOpTwoAndOldRecordsDecode) {
  using internal::Mutation;
  std::vector<Mutation> ops = {Mutation{false, "a", "1", 0},
                               Mutation{true, "b", "", 0},
                               Mutation{false, "c", "22", 300}};
  std::string record = internal::EncodeLogRecord(9, 1234, {}, ops);
  ASSERT_OK_AND_ASSIGN(internal::LogRecord back,
                       internal::DecodeLogRecord(record, 9));
  ASSERT_EQ(back.ops.size(), 3u);
  EXPECT_EQ(back.commit_micros, 1234);
  EXPECT_EQ(back.ops[0].lease, 0u);
  EXPECT_TRUE(back.ops[1].is_delete);
  EXPECT_EQ(back.ops[2].key, "c");
  EXPECT_EQ(back.ops[2].value, "22");
  EXPECT_EQ(back.ops[2].lease, 300u);
  // The body, byte by byte: micros, count, then the ops.
  std::string body;
  internal::PutVarint64(&body, 1234);
  internal::PutVarint64(&body, 3);
  body += std::string("\0\1a\1" "1", 5);    // op 0: put a = 1
  body += std::string("\1\1b", 3);          // op 1: delete b
  body += std::string("\2\1c\2" "22", 6);  // op 2: put c = 22
  internal::PutVarint64(&body, 300);         // ... with lease 300
  EXPECT_EQ(record.substr(0, record.size() - 8), body);
  // A record as format 2 wrote it (no lease anywhere) is the same bytes.
  ops[2].lease = 0;
  record = internal::EncodeLogRecord(9, 1234, {}, ops);
  EXPECT_EQ(record[record.size() - 8 - 6], '\0');  // op 0 again for c
}

TEST(LogRecordTest, BadOpsAreDataLoss) {
  auto with_checksum = [](std::string body, uint64_t version) {
    internal::PutFixed64LE(&body, XXH3_64bits_withSeed(body.data(),
                                                       body.size(), version));
    return body;
  };
  std::string head;
  internal::PutVarint64(&head, 1);  // micros
  internal::PutVarint64(&head, 1);  // one op
  // An unknown op.
  EXPECT_THAT(internal::DecodeLogRecord(
                  with_checksum(head + std::string("\3\1a\1" "1", 5), 5), 5),
              StatusIs(absl::StatusCode::kDataLoss, "version 5"));
  // Op 2 without its lease.
  EXPECT_THAT(internal::DecodeLogRecord(
                  with_checksum(head + std::string("\2\1a\1" "1", 5), 5), 5),
              StatusIs(absl::StatusCode::kDataLoss, "bad mutation"));
}

// ------------------------------------------------------------- upgrades

class UpgradeTest : public KeyMetaTest {
 protected:
  // What older formats wrote has no hashes (format 4 added them).
  UpgradeTest() { options_.verifiable = false; }

  internal::MetaRecord ReadMeta() {
    absl::StatusOr<std::optional<std::string>> bytes =
        store_->Get(internal::Space::kMeta, internal::kMetaKey);
    EXPECT_OK(bytes);
    EXPECT_TRUE(bytes.ok() && bytes->has_value());
    absl::StatusOr<internal::MetaRecord> meta =
        internal::DecodeMeta(bytes.ok() && *bytes ? **bytes : "");
    EXPECT_OK(meta);
    return meta.value_or(internal::MetaRecord());
  }

  void WriteMeta(internal::MetaRecord meta) {
    internal::StoreBatch batch;
    batch.Put(internal::Space::kMeta, internal::kMetaKey,
              internal::EncodeMeta(meta));
    ASSERT_OK(store_->Commit(batch, /*sync=*/true));
  }

  // Rewrites every stored page as format 1, as a build before page format
  // 2 wrote it. Returns how many there are.
  size_t RewritePagesAsFormat1() {
    std::map<uint64_t, std::string> pages;
    EXPECT_OK(store_->Scan(internal::Space::kPages, "",
                           [&](std::string_view k, std::string_view v) {
                             uint64_t id;
                             EXPECT_TRUE(internal::ParseBigEndianKey(k, &id));
                             pages[id] = std::string(v);
                             return true;
                           }));
    internal::StoreBatch batch;
    for (const auto& [id, bytes] : pages) {
      absl::StatusOr<internal::NodeRef> node = internal::DecodePage(bytes, id);
      EXPECT_OK(node);
      if (!node.ok()) continue;
      batch.Put(internal::Space::kPages, internal::BigEndianKey(id),
                testing::EncodeFormat1Page(**node, id));
    }
    EXPECT_OK(store_->Commit(batch, /*sync=*/true));
    return pages.size();
  }

  // The number of stored pages of each format.
  std::map<int, size_t> PageFormats() {
    std::map<int, size_t> formats;
    EXPECT_OK(store_->Scan(internal::Space::kPages, "",
                           [&](std::string_view, std::string_view page) {
                             ++formats[page[4]];
                             return true;
                           }));
    return formats;
  }
};

// A format-2 database: page format 1 and log records without leases. It
// opens as the latest format (the meta record rewritten, nothing else); what its
// pages hold reads with the defaults of page.h, and what its log replays
// gets the metadata replay computes.
TEST_F(UpgradeTest, Format2DatabaseOpensWithDefaults) {
  // Enough keys for several leaves, some values blobs: key00..key59,
  // key k written at versions 2k+1 and 2k+2.
  for (int i = 0; i < 120; ++i) {
    char key[8];
    snprintf(key, sizeof(key), "key%02d", i / 2);
    ASSERT_OK(db_->Put(key, std::string(i % 7 == 0 ? 300 : 30, 'v')));
  }
  ASSERT_OK(db_->Checkpoint());  // at version 120
  ASSERT_OK(db_->Put("key00", "after"));  // 121: in the log only
  ASSERT_OK(db_->Put("fresh", "new"));    // 122
  ASSERT_OK(db_->Delete("key01"));        // 123
  db_->set_checkpoint_on_close(false);
  db_.reset();
  // Now make it what a format-2 build left.
  EXPECT_GT(RewritePagesAsFormat1(), 3u);
  internal::MetaRecord meta = ReadMeta();
  ASSERT_EQ(meta.format, internal::kDatabaseFormatVersion);
  meta.format = 2;
  ASSERT_NO_FATAL_FAILURE(WriteMeta(meta));

  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(ReadMeta().format, internal::kDatabaseFormatVersion);  // in place
  EXPECT_FALSE(ReadMeta().hashed);  // its pages have no hashes to build on
  EXPECT_EQ(db_->GetStats().replayed_commits, 3u);
  // From format-1 pages: created by their last write, one write, no lease.
  EXPECT_META(MetaAt("key05"), Meta(12, 12, 1, 0));
  EXPECT_META(MetaAt("key05", 120), Meta(12, 12, 1, 0));
  // Replayed on top of them.
  EXPECT_META(MetaAt("key00"), Meta(121, 2, 2, 0));
  EXPECT_META(MetaAt("fresh"), Meta(122, 122, 1, 0));
  // Versions before the checkpoint are rebuilt by replaying the log from
  // the checkpoint before them (version 0 here): the replay counts every
  // write it applies.
  EXPECT_META(MetaAt("key05", 12), Meta(12, 11, 2, 0));
  // New writes are counted from there, with leases.
  EXPECT_EQ(Put("key05", "x", 3), 124u);
  EXPECT_META(MetaAt("key05"), Meta(124, 12, 2, 3));
  ASSERT_OK(db_->Checkpoint());
  // Lazy: the leaves no commit touched stay format 1.
  std::map<int, size_t> formats = PageFormats();
  EXPECT_GT(formats[1], 0u);
  EXPECT_GT(formats[internal::kPageFormatVersion], 0u);
  EXPECT_EQ(formats.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_META(MetaAt("key05"), Meta(124, 12, 2, 3));
  EXPECT_META(MetaAt("key50"), Meta(102, 102, 1, 0));
  EXPECT_META(MetaAt("key00"), Meta(121, 2, 2, 0));
  ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
  EXPECT_EQ(report.pages_leaked, 0u);
}

TEST_F(UpgradeTest, NewerFormatIsRefused) {
  ASSERT_OK(db_->Put("k", "v"));
  db_.reset();
  internal::MetaRecord meta = ReadMeta();
  meta.format = internal::kDatabaseFormatVersion + 1;
  ASSERT_NO_FATAL_FAILURE(WriteMeta(meta));
  EXPECT_THAT(internal::DBImpl::Open(options_, store_),
              StatusIs(absl::StatusCode::kFailedPrecondition, "Upgrade cowdb"));
}

}  // namespace
}  // namespace cowdb
