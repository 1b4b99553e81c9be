// Branches: O(1) forks that share pages, writes isolated per branch,
// versions numbered globally (a version holds every branch's tree), reads,
// transactions, snapshots, diff and watch on a branch, deletion, merges,
// and the reclamation rule extended to branches: nothing a retained
// version of any branch reaches is ever deleted, and what only a deleted
// branch reached is.
//
// ModelDB does not model branches; the model here is a map per version
// and branch, compared with every retained version of every branch.

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/proof.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

using ::cowdb::testing::StatusIs;
using Model = std::map<std::string, std::string>;
using Branches = std::map<std::string, Model>;  // branch -> its tree

class BranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Open();
    states_[0] = {{"main", {}}};
  }

  // Reopens. With `crash`, the closing checkpoint is skipped: the open
  // recovers from the last checkpoint plus the log, as after a crash.
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

  Branches Latest() { return states_.rbegin()->second; }

  // Commits `batch` to `branch` and records the new version's state.
  void Commit(const std::string& branch, const WriteBatch& batch, const Model& after) {
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
    Branches next = Latest();
    next[branch] = after;
    states_[v] = std::move(next);
  }

  void Put(const std::string& branch, const std::string& key, const std::string& value) {
    WriteBatch batch;
    batch.SetBranch(branch);
    batch.Put(key, value);
    Model m = Latest()[branch];
    m[key] = value;
    Commit(branch, batch, m);
  }

  void Fork(const std::string& name, const std::string& from) {
    TreeAt at;
    at.branch = from;
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Fork(name, at));
    Branches next = Latest();
    next[name] = next[from];
    states_[v] = std::move(next);
  }

  // Forks `from` as it was at `version` (an older tree: written with the
  // fork's checkpoint).
  void ForkAt(const std::string& name, const std::string& from, uint64_t version) {
    TreeAt at;
    at.branch = from;
    at.version = version;
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Fork(name, at));
    Branches next = Latest();
    next[name] = states_.at(version).at(from);
    states_[v] = std::move(next);
  }

  // The versions still readable: at or after the floor, or tagged.
  std::vector<uint64_t> Retained() {
    const uint64_t floor = db_->ReleaseFloor();
    std::set<uint64_t> tagged;
    for (const auto& [name, v] : db_->ListTags()) tagged.insert(v);
    std::vector<uint64_t> out;
    for (const auto& [v, branches] : states_) {
      if (v >= floor || tagged.count(v) != 0) out.push_back(v);
    }
    return out;
  }

  void Drop(const std::string& name) {
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->DeleteBranch(name));
    Branches next = Latest();
    next.erase(name);
    states_[v] = std::move(next);
  }

  // One commit of random puts (some large: blobs) and deletes to `branch`.
  void RandomCommit(const std::string& branch, std::mt19937* rng) {
    WriteBatch batch;
    batch.SetBranch(branch);
    Model m = Latest()[branch];
    const int n = 1 + (*rng)() % 12;
    for (int i = 0; i < n; ++i) {
      std::string k = absl::StrCat("k", (*rng)() % 400);
      if ((*rng)() % 4 == 0) {
        batch.Delete(k);
        m.erase(k);
      } else {
        size_t len = (*rng)() % 10 == 0 ? 200 + (*rng)() % 1500 : (*rng)() % 40;
        std::string v(len, static_cast<char>('a' + (*rng)() % 26));
        batch.Put(k, v);
        m[k] = v;
      }
    }
    Commit(branch, batch, m);
  }

  Model Read(const std::string& branch, std::optional<uint64_t> version) {
    ReadOptions ro;
    ro.branch = branch;
    ro.version = version;
    Model got;
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
    EXPECT_OK(it.status()) << branch << " at " << version.value_or(0);
    if (!it.ok()) return got;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      got[std::string((*it)->key())] = std::string((*it)->value());
    }
    EXPECT_OK((*it)->status());
    return got;
  }

  // Every retained version reads as its model on every branch it has (and
  // a branch it lacks is NotFound), and Check passes with nothing leaked.
  void ExpectAll() {
    for (uint64_t v : Retained()) {
      const Branches& branches = states_.at(v);
      for (const auto& [branch, model] : branches) {
        ASSERT_EQ(Read(branch, v), model) << "branch " << branch << " at version " << v;
      }
      ReadOptions ro;
      ro.branch = "no-such-branch";
      ro.version = v;
      EXPECT_THAT(db_->Get(ro, "k1").status(), StatusIs(absl::StatusCode::kNotFound));
    }
    ASSERT_NO_FATAL_FAILURE(testing::ExpectCheckedWithoutLeaks(*db_));
  }

  Options options_ = testing::ManualMaintenanceOptions();
  std::shared_ptr<internal::PageStore> store_ = internal::NewMemoryPageStore();
  std::unique_ptr<internal::DBImpl> db_;
  std::map<uint64_t, Branches> states_;  // version -> every branch's tree
};

TEST_F(BranchTest, AForkSharesEveryPageAndWritesStayOnTheirBranch) {
  for (int i = 0; i < 300; ++i) Put("main", absl::StrCat("k", i), std::string(30, 'm'));
  ASSERT_OK(db_->Checkpoint());
  const uint64_t pages = Count(internal::Space::kPages);
  Fork("dev", "main");
  // The fork is a log record: no page, no copy.
  EXPECT_EQ(Count(internal::Space::kPages), pages);
  ASSERT_OK(db_->Checkpoint());
  EXPECT_EQ(Count(internal::Space::kPages), pages);  // both trees are the same pages

  Put("dev", "k1", "dev-only");
  Put("main", "k2", "main-only");
  ReadOptions dev;
  dev.branch = "dev";
  EXPECT_EQ(*db_->Get(dev, "k1"), "dev-only");
  EXPECT_EQ(*db_->Get(dev, "k2"), std::string(30, 'm'));
  EXPECT_EQ(*db_->Get(ReadOptions(), "k1"), std::string(30, 'm'));
  EXPECT_EQ(*db_->Get(ReadOptions(), "k2"), "main-only");
  // Versions are global: the dev commit is a version of main too, where
  // main's tree did not change.
  ReadOptions at;
  at.version = db_->LatestVersion() - 1;
  EXPECT_EQ(*db_->Get(at, "k1"), std::string(30, 'm'));
  ExpectAll();

  std::vector<BranchInfo> branches = db_->ListBranches();
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0].name, "main");
  EXPECT_EQ(branches[1].name, "dev");
  EXPECT_EQ(branches[1].source, "main");
  EXPECT_EQ(branches[1].entries, 300u);
  ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> versions, db_->ListVersions());
  EXPECT_EQ(versions.back().branch, "main");
  EXPECT_EQ(versions[versions.size() - 2].branch, "dev");
}

TEST_F(BranchTest, BadBranchCallsFailClearly) {
  Put("main", "a", "1");
  TreeAt main;
  EXPECT_THAT(db_->Fork("", main).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork("main", main).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork("a:b", main).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork(std::string(101, 'x'), main).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Fork("dev", "main");
  EXPECT_THAT(db_->Fork("dev", main).status(), StatusIs(absl::StatusCode::kAlreadyExists));
  TreeAt nowhere;
  nowhere.branch = "nowhere";
  EXPECT_THAT(db_->Fork("x", nowhere).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->DeleteBranch("main").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->DeleteBranch("nowhere").status(), StatusIs(absl::StatusCode::kNotFound));
  WriteBatch batch;
  batch.SetBranch("nowhere");
  batch.Put("a", "2");
  EXPECT_THAT(db_->Write(batch).status(), StatusIs(absl::StatusCode::kNotFound));
  TransactionOptions to;
  to.branch = "nowhere";
  EXPECT_THAT(db_->Begin(to).status(), StatusIs(absl::StatusCode::kNotFound));
  // A snapshot reads its own branch only.
  ReadOptions dev;
  dev.branch = "dev";
  ASSERT_OK_AND_ASSIGN(Snapshot snap, db_->SnapshotOf(dev));
  EXPECT_EQ(snap.branch(), "dev");
  ReadOptions mixed;
  mixed.snapshot = &snap;
  mixed.branch = "main";
  EXPECT_THAT(db_->Get(mixed, "a").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  // A released version cannot be forked.
  TreeAt released;
  released.version = 0;
  Put("main", "a", "3");
  ASSERT_OK(db_->SetRetention({1, 0}));
  ASSERT_OK(db_->Reclaim());
  EXPECT_THAT(db_->Fork("gone", released).status(), StatusIs(absl::StatusCode::kOutOfRange));
  // Reads of a branch cannot be proved (digests cover main).
  EXPECT_THAT(db_->ProveGet(dev, "a").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(BranchTest, MainsProofsStillVerifyAfterCommitsToOtherBranches) {
  Put("main", "a", "1");
  Fork("dev", "main");
  Put("dev", "a", "2");
  ASSERT_OK_AND_ASSIGN(ProvedValue p, db_->ProveGet(ReadOptions(), "a"));
  ASSERT_OK_AND_ASSIGN(VersionDigest d, db_->GetDigest(db_->LatestVersion()));
  ASSERT_TRUE(p.value.has_value());
  EXPECT_EQ(*p.value, "1");
  EXPECT_OK(VerifyReadAgainst(p.proof, "a", p.value, d.digest));
}

TEST_F(BranchTest, RandomBranchesMatchTheModelThroughCheckpointsCrashesAndReclamation) {
  // Retention keeps the last 40 versions, so that reclamation really
  // deletes pages and blobs: it must never delete one that a retained
  // version of any branch reaches.
  options_.retain_versions = 40;
  Open();
  std::mt19937 rng(7);
  int forks = 0, older_forks = 0;
  for (int step = 0; step < 600; ++step) {
    Branches latest = Latest();
    std::vector<std::string> names;
    for (const auto& [name, m] : latest) names.push_back(name);
    const std::string& branch = names[rng() % names.size()];
    const int op = rng() % 100;
    if (op < 70) {
      RandomCommit(branch, &rng);
    } else if (op < 74 && latest.size() < 5) {
      Fork(absl::StrCat("b", forks++), branch);
    } else if (op < 77 && latest.size() < 5) {
      // An older tree of some branch, from a version still retained.
      std::vector<uint64_t> retained = Retained();
      const uint64_t v = retained[rng() % retained.size()];
      const Branches& then = states_.at(v);
      auto it = std::next(then.begin(), rng() % then.size());
      ForkAt(absl::StrCat("b", forks++), it->first, v);
      ++older_forks;
    } else if (op < 81 && branch != "main") {
      Drop(branch);
    } else if (op < 88) {
      ASSERT_OK(db_->Checkpoint());
    } else if (op < 95) {
      ASSERT_OK(db_->Reclaim());
    } else {
      Open(/*crash=*/rng() % 2 == 0);
    }
    if (step % 50 == 49) ExpectAll();
  }
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  ExpectAll();
  EXPECT_GT(forks, 3);
  EXPECT_GT(older_forks, 3);
}

TEST_F(BranchTest, AForkOfAnOlderTreeReadsAsThatTreeAndKeepsItsPages) {
  options_.retain_versions = 1;
  Open();
  for (int i = 0; i < 200; ++i) {
    Put("main", absl::StrCat("k", i), std::string(i % 10 == 0 ? 300 : 30, 'a'));
  }
  ASSERT_OK(db_->Checkpoint());
  const uint64_t yesterday = db_->LatestVersion();
  ASSERT_OK(db_->Tag("yesterday", yesterday));
  for (int i = 0; i < 200; ++i) {
    Put("main", absl::StrCat("k", i), std::string(i % 10 == 0 ? 300 : 30, 'b'));
  }
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());  // yesterday's pages are freed, kept by the tag
  const uint64_t pages = Count(internal::Space::kPages);
  ForkAt("replay", "main", yesterday);
  // Its tree was stored already: the fork wrote no page of it.
  EXPECT_EQ(Count(internal::Space::kPages), pages);
  ASSERT_OK(db_->Untag("yesterday"));
  // Nothing holds the old version now but the branch: its tree must stay.
  Put("main", "k0", "c");
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  Open(/*crash=*/true);
  ASSERT_OK(db_->Reclaim());
  EXPECT_EQ(Read("replay", std::nullopt), states_.at(yesterday).at("main"));
  Put("replay", "k1", "d");
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  ExpectAll();
}

TEST_F(BranchTest, DeletingABranchReclaimsWhatOnlyItReached) {
  options_.retain_versions = 1;
  Open();
  for (int i = 0; i < 200; ++i) Put("main", absl::StrCat("k", i), std::string(30, 'm'));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  const uint64_t pages = Count(internal::Space::kPages);
  Fork("dev", "main");
  for (int i = 0; i < 200; ++i) Put("dev", absl::StrCat("d", i), std::string(300, 'd'));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  EXPECT_GT(Count(internal::Space::kPages), pages);
  EXPECT_EQ(Count(internal::Space::kBlobs), 200u);
  Drop("dev");
  ASSERT_OK(db_->Checkpoint());
  Put("main", "k0", "after");  // the versions with dev fall out
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(ReclaimStats stats, db_->Reclaim());
  EXPECT_GT(stats.pages_deleted, 0u);
  EXPECT_EQ(stats.blobs_deleted, 200u);
  EXPECT_EQ(Count(internal::Space::kBlobs), 0u);
  // Main's pages stay: at most the one leaf and path its last put copied.
  EXPECT_LE(Count(internal::Space::kPages), pages + 3);
  ExpectAll();
}

TEST_F(BranchTest, TransactionsConflictOnlyWithinTheirBranch) {
  Put("main", "x", "0");
  Fork("dev", "main");
  TransactionOptions to;
  to.branch = "dev";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> txn, db_->Begin(to));
  ASSERT_OK_AND_ASSIGN(std::string x, txn->Get("x"));
  ASSERT_OK(txn->Put("x", x + "+dev"));
  Put("main", "x", "main");  // another branch: no conflict
  ASSERT_OK_AND_ASSIGN(uint64_t v, txn->Commit());
  ReadOptions dev;
  dev.branch = "dev";
  dev.version = v;
  EXPECT_EQ(*db_->Get(dev, "x"), "0+dev");
  EXPECT_EQ(*db_->Get(ReadOptions(), "x"), "main");

  ASSERT_OK_AND_ASSIGN(txn, db_->Begin(to));
  ASSERT_OK(txn->Get("x").status());
  ASSERT_OK(txn->Put("x", "lost"));
  Put("dev", "x", "first");  // the same branch: a conflict
  EXPECT_THAT(txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(BranchTest, DiffAcrossBranchesYieldsTheirDifferences) {
  for (int i = 0; i < 500; ++i) Put("main", absl::StrCat("k", 1000 + i), "v");
  ASSERT_OK(db_->Checkpoint());
  Fork("dev", "main");
  Put("dev", "k1100", "changed");
  Put("main", "k1200", "changed");
  std::vector<std::string> keys;
  TreeAt main, dev;
  dev.branch = "dev";
  ASSERT_OK(db_->DiffTrees(main, dev, "", "", [&](const Change& c) {
    keys.push_back(c.key);
    return true;
  }));
  EXPECT_EQ(keys, (std::vector<std::string>{"k1100", "k1200"}));
}

// A fork of an older tree writes that tree's unwritten blobs with its
// checkpoint, under ids of their own: one write's blob is then stored
// twice, and a diff must not take two ids for two values.
TEST_F(BranchTest, ADiffOfAnOlderForkSkipsTheBlobsItShares) {
  Put("main", "blob", std::string(500, 'b'));
  const uint64_t v = db_->LatestVersion();
  Put("main", "other", "x");
  ForkAt("old", "main", v);
  Open(/*crash=*/false);  // the pages as stored, blobs by id
  TreeAt main, old;
  old.branch = "old";
  std::vector<std::string> keys;
  ASSERT_OK(db_->DiffTrees(main, old, "", "", [&](const Change& c) {
    keys.push_back(c.key);
    return true;
  }));
  EXPECT_EQ(keys, std::vector<std::string>{"other"});
  ExpectAll();
}

TEST_F(BranchTest, AWatcherOnABranchSeesOnlyItsChangesUntilItIsDeleted) {
  Fork("dev", "main");
  const uint64_t from = db_->LatestVersion();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Watcher> w, db_->WatchBranch("dev", from, "", ""));
  Put("main", "a", "main");
  Put("dev", "a", "dev");
  ASSERT_OK_AND_ASSIGN(WatchEvent e, w->Next(absl::Seconds(5)));
  EXPECT_EQ(e.version, db_->LatestVersion());
  EXPECT_EQ(e.change.key, "a");
  EXPECT_EQ(e.change.new_value, "dev");
  Drop("dev");
  EXPECT_THAT(w->Next(absl::Seconds(5)).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(BranchTest, MergeAppliesTheOtherSidesChangesAndReportsConflicts) {
  Put("main", "shared", "base");
  Put("main", "both", "base");
  Fork("dev", "main");
  Put("dev", "dev-only", "1");
  Put("dev", "both", "dev");
  Put("main", "main-only", "1");
  Put("main", "both", "main");

  // Fail: the conflict is reported with all three values; nothing is written.
  const uint64_t before = db_->LatestVersion();
  ASSERT_OK_AND_ASSIGN(MergeResult r, db_->Merge("dev", "main", MergePolicy::kFail));
  EXPECT_FALSE(r.merged);
  EXPECT_EQ(db_->LatestVersion(), before);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(r.conflicts[0].key, "both");
  EXPECT_EQ(r.conflicts[0].base, "base");
  EXPECT_EQ(r.conflicts[0].ours, "main");
  EXPECT_EQ(r.conflicts[0].theirs, "dev");
  EXPECT_EQ(r.base_branch, "dev");

  // Theirs: one commit with dev's changes.
  ASSERT_OK_AND_ASSIGN(r, db_->Merge("dev", "main", MergePolicy::kTheirs));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.version, before + 1);
  EXPECT_EQ(r.changes, 2u);
  EXPECT_EQ(*db_->Get(ReadOptions(), "both"), "dev");
  EXPECT_EQ(*db_->Get(ReadOptions(), "dev-only"), "1");
  EXPECT_EQ(*db_->Get(ReadOptions(), "main-only"), "1");

  // The next merge starts from this one: main changing "both" again is
  // not a conflict with dev's old change.
  Put("main", "both", "main-again");
  Put("dev", "dev-only", "2");
  ASSERT_OK_AND_ASSIGN(r, db_->Merge("dev", "main", MergePolicy::kFail));
  EXPECT_TRUE(r.merged);
  EXPECT_TRUE(r.conflicts.empty());
  EXPECT_EQ(*db_->Get(ReadOptions(), "both"), "main-again");
  EXPECT_EQ(*db_->Get(ReadOptions(), "dev-only"), "2");

  // Ours keeps main's value; merging back into dev brings main's changes.
  Put("dev", "both", "dev-again");
  ASSERT_OK_AND_ASSIGN(r, db_->Merge("dev", "main", MergePolicy::kOurs));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(*db_->Get(ReadOptions(), "both"), "main-again");
  ASSERT_OK_AND_ASSIGN(r, db_->Merge("main", "dev", MergePolicy::kTheirs));
  ReadOptions dev;
  dev.branch = "dev";
  EXPECT_EQ(*db_->Get(dev, "main-only"), "1");
  EXPECT_EQ(*db_->Get(dev, "both"), "main-again");

  EXPECT_THAT(db_->Merge("dev", "dev", MergePolicy::kFail).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Two forks of one branch merge from the earlier fork's first tree.
  Fork("other", "main");
  Put("main", "later", "1");
  Fork("other2", "main");
  Put("other", "x", "other");
  ASSERT_OK_AND_ASSIGN(r, db_->Merge("other", "other2", MergePolicy::kFail));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.base_branch, "other");
  EXPECT_EQ(r.changes, 1u);  // "later" is in other2 already: not a change of other's
  ReadOptions other2;
  other2.branch = "other2";
  EXPECT_EQ(*db_->Get(other2, "x"), "other");
  EXPECT_EQ(*db_->Get(other2, "later"), "1");
  // A branch forked from another branch's fork has no known ancestor with
  // main's other forks.
  Fork("grandchild", "other2");
  EXPECT_THAT(db_->Merge("grandchild", "dev", MergePolicy::kFail).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(BranchTest, ForkingOneRebuiltTreeTwiceLeavesTheCachedTreeUntouched) {
  // A version that is neither held nor a checkpoint is rebuilt and cached
  // when forked; the fork must store copies of its nodes, not mark the
  // cached ones as written (a later fork from the cache would then store
  // nothing and point at pages reclaimed meanwhile).
  options_.retain_versions = 1;
  Open();
  for (int i = 0; i < 100; ++i) Put("main", absl::StrCat("k", i), std::string(30, 'a'));
  ASSERT_OK(db_->Checkpoint());
  Put("main", "k1", std::string(300, 'b'));  // a blob, held since its commit
  Put("main", "k2", "c");
  const uint64_t s = db_->LatestVersion();
  ASSERT_OK(db_->Tag("s", s));
  for (int i = 0; i < 50; ++i) Put("main", absl::StrCat("k", i), "d");
  ASSERT_OK(db_->Checkpoint());
  Open();  // versions after the checkpoint before s are rebuilt from now on
  ForkAt("a", "main", s);
  Drop("a");
  for (int i = 0; i < 3; ++i) {
    Put("main", "k99", absl::StrCat("e", i));
    ASSERT_OK(db_->Checkpoint());
    ASSERT_OK(db_->Reclaim());
  }
  ForkAt("b", "main", s);
  EXPECT_EQ(Read("b", std::nullopt), states_.at(s).at("main"));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK(db_->Reclaim());
  ExpectAll();
  Open(/*crash=*/true);
  EXPECT_EQ(Read("b", std::nullopt), states_.at(s).at("main"));
  ExpectAll();
}

TEST_F(BranchTest, ABranchDeletedAndCreatedAgainIsAnotherBranch) {
  Put("main", "k", "0");
  Fork("x", "main");
  TransactionOptions to;
  to.branch = "x";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> txn, db_->Begin(to));
  ASSERT_OK(txn->Put("k", "from the old x"));
  Drop("x");
  Fork("x", "main");
  EXPECT_THAT(txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));
  // Nor is the new x's source the old one's: y was forked from the old x,
  // so y and the new x have no known common ancestor.
  Fork("y", "x");
  Drop("x");
  Put("main", "k", "1");
  Fork("x", "main");
  EXPECT_THAT(db_->Merge("y", "x", MergePolicy::kFail).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectAll();
}

}  // namespace
}  // namespace cowdb
