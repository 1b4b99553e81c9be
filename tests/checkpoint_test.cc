// The commit log and checkpoints: a commit writes its log record and no
// page; a checkpoint writes the latest tree; every retained version reads
// the same before and after checkpoints, reopens and crashes (reopens
// without the closing checkpoint); reclamation drops what no retained
// version needs; a damaged log record is DataLoss naming its version.

#include <map>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "engine/util/coding.h"
#include "engine/version/records.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

using ::cowdb::testing::StatusIs;
using Model = std::map<std::string, std::string>;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  // Reopens. With `crash`, the closing checkpoint is skipped, so the open
  // recovers as after a crash: the last checkpoint plus the log.
  void Open(bool crash = false) {
    if (db_ && crash) db_->set_checkpoint_on_close(false);
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(options_, store_));
  }

  uint64_t Count(internal::Space space) {
    uint64_t n = 0;
    EXPECT_OK(store_->Scan(space, "", [&](auto, auto) {
      ++n;
      return true;
    }));
    return n;
  }

  // One commit of random puts (some large: blobs) and deletes.
  void RandomCommit(std::mt19937* rng) {
    WriteBatch batch;
    Model m = models_.empty() ? Model() : models_.rbegin()->second;
    const int n = 1 + (*rng)() % 20;
    for (int i = 0; i < n; ++i) {
      std::string k = absl::StrCat("k", (*rng)() % 300);
      if ((*rng)() % 4 == 0) {
        batch.Delete(k);
        m.erase(k);
      } else {
        size_t len = (*rng)() % 10 == 0 ? 300 + (*rng)() % 2000 : (*rng)() % 40;
        std::string v(len, static_cast<char>('a' + (*rng)() % 26));
        batch.Put(k, v);
        m[k] = v;
      }
    }
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
    models_[v] = std::move(m);
  }

  // Every version in `models_` reads as its model, and Check passes.
  void ExpectAllVersions() {
    for (const auto& [v, m] : models_) {
      ReadOptions ro;
      ro.version = v;
      ASSERT_OK_AND_ASSIGN(auto it, db_->NewIterator(ro));
      Model got;
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        got[std::string(it->key())] = std::string(it->value());
      }
      ASSERT_OK(it->status());
      ASSERT_EQ(got, m) << "version " << v;
      ASSERT_OK(db_->VerifyVersion(v, /*strict=*/false)) << "version " << v;
    }
    ASSERT_NO_FATAL_FAILURE(testing::ExpectCheckedWithoutLeaks(*db_));
  }

  Options options_ = testing::ManualMaintenanceOptions();
  std::shared_ptr<internal::PageStore> store_ = internal::NewMemoryPageStore();
  std::unique_ptr<internal::DBImpl> db_;
  std::map<uint64_t, Model> models_;
};

TEST_F(CheckpointTest, ACommitWritesItsLogRecordAndNoPage) {
  const uint64_t pages = Count(internal::Space::kPages);
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("b", std::string(1000, 'x')));  // a blob
  EXPECT_EQ(Count(internal::Space::kPages), pages);
  EXPECT_EQ(Count(internal::Space::kBlobs), 0u);
  EXPECT_EQ(Count(internal::Space::kLog), 2u);
  ASSERT_OK(db_->Checkpoint());
  EXPECT_GT(Count(internal::Space::kPages), pages);
  EXPECT_EQ(Count(internal::Space::kBlobs), 1u);
  EXPECT_EQ(db_->GetStats().checkpoint_version, 2u);
  // Nothing new: a second checkpoint writes nothing.
  const uint64_t written = db_->GetStats().pages_written;
  ASSERT_OK(db_->Checkpoint());
  EXPECT_EQ(db_->GetStats().pages_written, written);
}

TEST_F(CheckpointTest, AHotLeafIsWrittenOncePerCheckpoint) {
  for (int i = 0; i < 200; ++i) ASSERT_OK(db_->Put("hot", std::to_string(i)));
  ASSERT_OK(db_->Checkpoint());
  EXPECT_EQ(db_->GetStats().pages_written, 1u);  // one leaf, not 200
}

TEST_F(CheckpointTest, ACheckpointLetsGoOfWhatItWrote) {
  std::mt19937 rng(10);
  for (int i = 0; i < 40; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  EXPECT_GT(db_->HeldNodesOfLatest().held, 10u);
  ASSERT_OK(db_->Checkpoint());
  // Everything the latest reached was written; it now reaches it by page
  // id, through the cache, which can evict it.
  EXPECT_EQ(db_->HeldNodesOfLatest().held, 0u);
  ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  internal::DBImpl::HeldCount after = db_->HeldNodesOfLatest();
  EXPECT_GT(after.held, 0u);       // the commit's new path
  EXPECT_EQ(after.written, 0u);    // and nothing written
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
}

TEST_F(CheckpointTest, EveryVersionSurvivesCheckpointsReopensAndCrashes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 12; ++round) {
    const int commits = 1 + rng() % 25;
    for (int i = 0; i < commits; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
    switch (round % 4) {
      case 0: ASSERT_OK(db_->Checkpoint()); break;
      case 1: ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true)); break;
      case 2: ASSERT_NO_FATAL_FAILURE(Open()); break;
      case 3: break;  // versions held in memory only
    }
    ASSERT_NO_FATAL_FAILURE(ExpectAllVersions()) << "round " << round;
  }
  // Recovery replays exactly the commits after the last checkpoint.
  const uint64_t checkpoint = db_->GetStats().checkpoint_version;
  const uint64_t latest = db_->LatestVersion();
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  EXPECT_EQ(db_->GetStats().replayed_commits, latest - checkpoint);
  EXPECT_EQ(db_->LatestVersion(), latest);
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
}

TEST_F(CheckpointTest, ReclamationDropsLogRecordsAndCheckpointsNoVersionNeeds) {
  options_.retain_versions = 5;
  ASSERT_NO_FATAL_FAILURE(Open());
  std::mt19937 rng(8);
  for (int i = 0; i < 200; ++i) {
    ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
    if (i % 10 == 9) ASSERT_OK(db_->Checkpoint());
  }
  ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));  // not a checkpoint: needs log
  Snapshot pinned = db_->GetSnapshot();  // kept below the floor
  const uint64_t pinned_version = pinned.version();
  for (int i = 0; i < 100; ++i) {
    ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
    if (i % 10 == 3) ASSERT_OK(db_->Checkpoint());
  }
  ASSERT_OK_AND_ASSIGN(ReclaimStats st, db_->Reclaim());
  EXPECT_GT(st.log_records_deleted, 0u);
  EXPECT_GT(st.checkpoints_deleted, 0u);
  // Kept: the pinned version's base and its log; the window's base and
  // the log after it. At most 10 records after each base.
  EXPECT_LE(Count(internal::Space::kLog), 2u * 10 + 5);
  EXPECT_LE(Count(internal::Space::kCheckpoints), 4u);
  // Everything retained still reads as it was, after a crash too.
  std::map<uint64_t, Model> retained;
  for (const auto& [v, m] : models_) {
    if (v == pinned_version || v >= db_->LatestVersion() - 4) retained[v] = m;
  }
  models_ = retained;
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  pinned = Snapshot();
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  models_.erase(pinned_version);
  ASSERT_OK(db_->Reclaim());
  EXPECT_LE(Count(internal::Space::kLog), 10u + 5);
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
}

TEST_F(CheckpointTest, CheckpointsAreThinnedButNeverUnderATreeThatUsesThem) {
  options_.retain_versions = 200;
  options_.checkpoint_log_bytes = 1 << 20;  // thinning keeps one per MiB
  options_.cache_bytes = 16 << 10;  // reads go to the store
  ASSERT_NO_FATAL_FAILURE(Open());
  std::mt19937 rng(12);
  for (int i = 0; i < 40; ++i) {
    ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
    ASSERT_OK(db_->Checkpoint());  // a checkpoint per commit
  }
  // A snapshot of a version rebuilt from its checkpoint uses that
  // checkpoint: it must survive thinning and keep reading.
  ASSERT_OK_AND_ASSIGN(Snapshot snap, db_->SnapshotAt(17));  // checkpoint 17
  const Model at_17 = models_[17];
  const uint64_t before = Count(internal::Space::kCheckpoints);
  for (int i = 0; i < 40; ++i) {
    ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
    ASSERT_OK(db_->Checkpoint());
  }
  ASSERT_OK_AND_ASSIGN(ReclaimStats st, db_->Reclaim());
  EXPECT_GT(st.checkpoints_deleted, 0u);
  EXPECT_LT(Count(internal::Space::kCheckpoints), before + 40)
      << "no checkpoint was thinned";
  ReadOptions ro;
  ro.snapshot = &snap;
  ASSERT_OK_AND_ASSIGN(auto it, db_->NewIterator(ro));
  Model got;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    got[std::string(it->key())] = std::string(it->value());
  }
  ASSERT_OK(it->status());
  EXPECT_EQ(got, at_17);
  // Every version reads as it was (rebuilt from the checkpoints kept),
  // Check is clean, also after a crash.
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
}

// A checkpoint leaves the nodes it wrote in the cache in page form, their
// blobs named by id but their bytes still in memory: Check counted only
// the blobs it would have to load, so it reported these as leaked.
TEST_F(CheckpointTest, CheckCountsTheBlobsOfPagesACheckpointJustWrote) {
  ASSERT_OK(db_->Put("a", std::string(1000, 'x')));
  ASSERT_OK(db_->Put("b", "small"));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(CheckReport r, db_->Check());
  EXPECT_EQ(r.blobs_stored, 1u);
  EXPECT_EQ(r.blobs_reachable, 1u);
  EXPECT_EQ(r.blobs_leaked, 0u);
}

TEST_F(CheckpointTest, CheckFindsAReachablePageRecordedAsFreed) {
  std::mt19937 rng(11);
  for (int i = 0; i < 30; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  ASSERT_OK(db_->Checkpoint());
  const uint64_t c = db_->LatestVersion();
  ASSERT_NO_FATAL_FAILURE(ExpectAllVersions());
  // A freed record claiming the checkpoint's own root died with it.
  ASSERT_OK_AND_ASSIGN(internal::Root root, db_->RootAt(c));
  ASSERT_NE(root.page_id, 0u);
  internal::StoreBatch b;
  b.Put(internal::Space::kFreed, internal::BigEndianKey(c),
        internal::EncodeFreed({{internal::FreedItem::kPage, root.page_id, 1}}));
  ASSERT_OK(store_->Commit(b, false));
  EXPECT_THAT(db_->Check(),
              StatusIs(absl::StatusCode::kInternal,
                       absl::StrCat("reachable from checkpoint ", c)));
}

// A log record that decodes but is not the commit's (here: another
// database's record of the same version) replays to a tree whose hash is
// not the one the version's record holds: recovery refuses it. (Recovery
// reads the version records ahead in batches; this is what checks them.)
TEST_F(CheckpointTest, ALogRecordThatReplaysToAnotherTreeIsDataLoss) {
  auto other_store = internal::NewMemoryPageStore();
  ASSERT_OK_AND_ASSIGN(auto other, internal::DBImpl::Open(options_, other_store));
  for (int i = 1; i <= 20; ++i) {
    const std::string key = absl::StrCat("k", i % 7);
    ASSERT_OK(db_->Put(key, absl::StrCat("v", i)).status());
    ASSERT_OK(other->Put(key, absl::StrCat(i == 15 ? "w" : "v", i)).status());
    if (i == 10) ASSERT_OK(db_->Checkpoint());
  }
  db_->set_checkpoint_on_close(false);
  db_.reset();
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> theirs,
                       other_store->Get(internal::Space::kLog, internal::BigEndianKey(15)));
  ASSERT_TRUE(theirs.has_value());
  internal::StoreBatch b;
  b.Put(internal::Space::kLog, internal::BigEndianKey(15), *theirs);
  ASSERT_OK(store_->Commit(b, false));
  EXPECT_THAT(internal::DBImpl::Open(options_, store_).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "version 15 replayed to a tree whose hash"));
}

TEST_F(CheckpointTest, ADamagedLogRecordIsDataLossNamingItsVersion) {
  std::mt19937 rng(9);
  for (int i = 0; i < 10; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  ASSERT_OK(db_->Checkpoint());  // at version 10
  for (int i = 0; i < 10; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  db_->set_checkpoint_on_close(false);
  db_.reset();
  auto damage = [&](uint64_t version) {
    ASSERT_OK_AND_ASSIGN(std::optional<std::string> rec,
                         store_->Get(internal::Space::kLog,
                                     internal::BigEndianKey(version)));
    ASSERT_TRUE(rec.has_value());
    (*rec)[rec->size() / 2] ^= 1;
    internal::StoreBatch b;
    b.Put(internal::Space::kLog, internal::BigEndianKey(version), *rec);
    ASSERT_OK(store_->Commit(b, false));
  };
  // A record recovery replays: the open fails, naming it.
  ASSERT_NO_FATAL_FAILURE(damage(15));
  EXPECT_THAT(internal::DBImpl::Open(options_, store_).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "corrupt log record of version 15"));
  // A record only an older version's rebuild needs: that read fails.
  models_.clear();
  store_ = internal::NewMemoryPageStore();
  ASSERT_NO_FATAL_FAILURE(Open());
  for (int i = 0; i < 10; ++i) ASSERT_NO_FATAL_FAILURE(RandomCommit(&rng));
  ASSERT_OK(db_->Checkpoint());
  db_.reset();
  ASSERT_NO_FATAL_FAILURE(damage(4));
  ASSERT_NO_FATAL_FAILURE(Open());
  ReadOptions ro;
  ro.version = 6;
  EXPECT_THAT(db_->NewIterator(ro).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       "corrupt log record of version 4"));
  ro.version = 3;
  EXPECT_OK(db_->NewIterator(ro).status());
  ro.version = 10;
  EXPECT_OK(db_->NewIterator(ro).status());  // the checkpoint itself
}

}  // namespace
}  // namespace cowdb
