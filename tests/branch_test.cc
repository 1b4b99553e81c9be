// Branches: O(1) forks that share pages, writes isolated per branch,
// versions numbered globally (a version holds every branch's tree), reads,
// transactions, snapshots, diff and watch on a branch, deletion, merges,
// and the reclamation rule extended to branches: nothing a retained
// version of any branch reaches is ever deleted, and what only a deleted
// branch reached is.
//
// The specification is ModelDB (tests/util/model_db.h): every test drives
// it beside the database, and ExpectAll compares every version with it
// (each retained one on every branch it has, with each key's metadata; a
// released one must fail as the model's does), with the branch list, the
// version list and the tags. RandomBranchOpsMatchTheModel drives random
// branch operations (forks of latest and older trees, deletions, merges
// with each policy, diffs between trees, transactions, watchers, tags,
// retention, reopens) and compares every result. The seed is printed;
// rerun one with COWDB_SEED=<seed>.

#include <cstdlib>
#include <iostream>
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
#include "tests/util/model_db.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

using ::cowdb::testing::GetStatus;
using ::cowdb::testing::ModelDB;
using ::cowdb::testing::StatusIs;

// Both calls, on the database and on the model, fail with `code`.
#define EXPECT_BOTH(code, call)                           \
  do {                                                    \
    EXPECT_THAT(db_->call, StatusIs(code)) << "engine";   \
    EXPECT_THAT(model_->call, StatusIs(code)) << "model"; \
  } while (0)

uint64_t Seed() {
  if (const char* s = std::getenv("COWDB_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device()();
}

std::string MetaString(const KeyMeta& m) {
  return absl::StrCat("{mod ", m.mod_version, " created ", m.create_version, " writes ",
                      m.writes, " lease ", m.lease, "}");
}

std::string ChangeString(const Change& c) {
  return absl::StrCat(c.key, ": ", c.old_value.value_or("(absent)").substr(0, 12), " ",
                      MetaString(c.old_meta), " -> ",
                      c.new_value.value_or("(absent)").substr(0, 12), " ",
                      MetaString(c.new_meta));
}

bool SameMeta(const KeyMeta& a, const KeyMeta& b) {
  return a.mod_version == b.mod_version && a.create_version == b.create_version &&
         a.writes == b.writes && a.lease == b.lease;
}

bool SameChange(const Change& a, const Change& b) {
  return a.key == b.key && a.old_value == b.old_value && a.new_value == b.new_value &&
         SameMeta(a.old_meta, b.old_meta) && SameMeta(a.new_meta, b.new_meta);
}

std::string StateString(const ModelDB::State& s) {
  std::string out;
  for (const auto& [k, v] : s) {
    absl::StrAppend(&out, k, "=", v.value.substr(0, 12), MetaString(v.meta()), " ");
  }
  return out;
}

// The same outcome of a merge: status code and every field of the result.
void ExpectSameMerge(const absl::StatusOr<MergeResult>& got,
                     const absl::StatusOr<MergeResult>& want, const std::string& what) {
  ASSERT_EQ(got.status().code(), want.status().code())
      << what << ": " << got.status() << ", the model's " << want.status();
  if (!want.ok()) return;
  EXPECT_EQ(got->merged, want->merged) << what;
  EXPECT_EQ(got->version, want->version) << what;
  EXPECT_EQ(got->base_version, want->base_version) << what;
  EXPECT_EQ(got->base_branch, want->base_branch) << what;
  EXPECT_EQ(got->changes, want->changes) << what;
  ASSERT_EQ(got->conflicts.size(), want->conflicts.size()) << what;
  for (size_t i = 0; i < want->conflicts.size(); ++i) {
    const MergeConflict& g = got->conflicts[i];
    const MergeConflict& w = want->conflicts[i];
    EXPECT_TRUE(g.key == w.key && g.base == w.base && g.ours == w.ours && g.theirs == w.theirs)
        << what << ": conflict " << i << " on " << g.key << ", the model's on " << w.key;
  }
}

class BranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = std::make_unique<ModelDB>(options_);
    Open();
  }

  void TearDown() override {
    db_.reset();  // before the model, as its pins
  }

  // Reopens. With `crash`, the closing checkpoint is skipped: the open
  // recovers from the last checkpoint plus the log, as after a crash. The
  // model takes the retention options (tests change them before opening).
  void Open(bool crash = false) {
    if (db_ && crash) db_->set_checkpoint_on_close(false);
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(options_, store_));
    ASSERT_OK(model_->SetRetention({options_.retain_versions, options_.retain_seconds}));
    ASSERT_EQ(db_->LatestVersion(), model_->LatestVersion());
    ASSERT_EQ(db_->ListTags(), model_->ListTags());
  }

  uint64_t Count(internal::Space space) {
    uint64_t n = 0;
    EXPECT_OK(store_->Scan(space, "", [&](auto, auto) {
      ++n;
      return true;
    }));
    return n;
  }

  uint64_t Latest() { return model_->LatestVersion(); }

  // The branches at `version` (by the model).
  std::vector<std::string> BranchesAt(uint64_t version) {
    absl::StatusOr<std::vector<std::string>> b = model_->BranchesAt(version);
    EXPECT_OK(b.status());
    return b.ok() ? *b : std::vector<std::string>();
  }

  // Commits `batch` to both: the same outcome.
  void Commit(const WriteBatch& batch) {
    absl::StatusOr<uint64_t> got = db_->Write(batch);
    absl::StatusOr<uint64_t> want = model_->Write(batch);
    ASSERT_EQ(got.status().code(), want.status().code()) << got.status();
    if (want.ok()) ASSERT_EQ(*got, *want);
  }

  void Put(const std::string& branch, const std::string& key, const std::string& value) {
    WriteBatch batch;
    batch.SetBranch(branch);
    batch.Put(key, value);
    ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
    ASSERT_OK_AND_ASSIGN(uint64_t want, model_->Write(batch));
    ASSERT_EQ(v, want);
  }

  // Forks `at` on both: the same outcome.
  void ForkTree(const std::string& name, const TreeAt& at) {
    absl::StatusOr<uint64_t> got = db_->Fork(name, at);
    absl::StatusOr<uint64_t> want = model_->Fork(name, at);
    ASSERT_EQ(got.status().code(), want.status().code())
        << "fork " << name << " of " << at.branch << " at " << at.version.value_or(Latest())
        << ": " << got.status() << ", the model's " << want.status();
    if (want.ok()) ASSERT_EQ(*got, *want);
    ASSERT_EQ(db_->ListTags(), model_->ListTags());
  }

  void Fork(const std::string& name, const std::string& from) {
    TreeAt at;
    at.branch = from;
    ASSERT_NO_FATAL_FAILURE(ForkTree(name, at));
    ASSERT_EQ(db_->ListBranches().size(), model_->ListBranches().size());
  }

  // Forks `from` as it was at `version` (an older tree: written with the
  // fork's checkpoint).
  void ForkAt(const std::string& name, const std::string& from, uint64_t version) {
    TreeAt at;
    at.branch = from;
    at.version = version;
    ASSERT_NO_FATAL_FAILURE(ForkTree(name, at));
  }

  void Drop(const std::string& name) {
    absl::StatusOr<uint64_t> got = db_->DeleteBranch(name);
    absl::StatusOr<uint64_t> want = model_->DeleteBranch(name);
    ASSERT_EQ(got.status().code(), want.status().code()) << "delete " << name << ": "
                                                         << got.status();
    if (want.ok()) ASSERT_EQ(*got, *want);
    ASSERT_EQ(db_->ListTags(), model_->ListTags());
  }

  // A reclamation pass on both: the same floor. Returns the database's.
  ReclaimStats Reclaim() {
    absl::StatusOr<ReclaimStats> got = db_->Reclaim();
    absl::StatusOr<ReclaimStats> want = model_->Reclaim();
    EXPECT_OK(got.status());
    EXPECT_OK(want.status());
    if (!got.ok() || !want.ok()) return ReclaimStats();
    EXPECT_EQ(got->floor, want->floor);
    return *got;
  }

  // One commit of random puts (some large: blobs) and deletes to `branch`.
  void RandomCommit(const std::string& branch, std::mt19937* rng) {
    WriteBatch batch;
    batch.SetBranch(branch);
    const int n = 1 + (*rng)() % 12;
    for (int i = 0; i < n; ++i) {
      std::string k = absl::StrCat("k", (*rng)() % 400);
      if ((*rng)() % 4 == 0) {
        batch.Delete(k);
      } else {
        size_t len = (*rng)() % 10 == 0 ? 200 + (*rng)() % 1500 : (*rng)() % 40;
        std::string v(len, static_cast<char>('a' + (*rng)() % 26));
        batch.Put(k, v);
      }
    }
    ASSERT_NO_FATAL_FAILURE(Commit(batch));
  }

  // The tree `ro` chooses, read through the database's iterator with each
  // key's metadata.
  absl::StatusOr<ModelDB::State> ReadState(DB& db, const ReadOptions& ro) {
    absl::StatusOr<std::unique_ptr<Iterator>> it = db.NewIterator(ro);
    if (!it.ok()) return it.status();
    ModelDB::State got;
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
      const KeyMeta m = (*it)->meta();
      got[std::string((*it)->key())] = ModelDB::Value{
          std::string((*it)->value()), m.mod_version, m.create_version, m.writes, m.lease};
    }
    if (!(*it)->status().ok()) return (*it)->status();
    return got;
  }

  ModelDB::State Read(const std::string& branch, std::optional<uint64_t> version) {
    ReadOptions ro;
    ro.branch = branch;
    ro.version = version;
    absl::StatusOr<ModelDB::State> got = ReadState(*db_, ro);
    EXPECT_OK(got.status()) << branch << " at " << version.value_or(0);
    return got.ok() ? *got : ModelDB::State();
  }

  // Every version reads as the model's: a retained one on every branch it
  // has (a branch it lacks is NotFound), a released one fails alike. The
  // branches, versions and tags are the model's, and Check passes with
  // nothing leaked.
  void ExpectAll() {
    for (uint64_t v = 0; v <= Latest(); ++v) {
      const absl::Status want = model_->CheckReadable(v);
      ReadOptions at;
      at.version = v;
      ASSERT_EQ(db_->NewIterator(at).status().code(), want.code()) << "version " << v;
      if (!want.ok()) continue;
      for (const std::string& branch : BranchesAt(v)) {
        ASSERT_OK_AND_ASSIGN(ModelDB::State expected, model_->StateAt(v, branch));
        const ModelDB::State got = Read(branch, v);
        ASSERT_TRUE(got == expected) << "branch " << branch << " at version " << v
                                     << "\n got:   " << StateString(got)
                                     << "\n model: " << StateString(expected);
      }
      ReadOptions ro;
      ro.branch = "no-such-branch";
      ro.version = v;
      EXPECT_THAT(db_->Get(ro, "k1").status(), StatusIs(absl::StatusCode::kNotFound));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectSameLists());
    ASSERT_NO_FATAL_FAILURE(testing::ExpectCheckedWithoutLeaks(*db_));
  }

  // ListBranches, ListVersions (but the commit times: the model's own
  // clock) and ListTags are the model's.
  void ExpectSameLists() {
    const std::vector<BranchInfo> got = db_->ListBranches();
    const std::vector<BranchInfo> want = model_->ListBranches();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].name, want[i].name) << i;
      EXPECT_EQ(got[i].created, want[i].created) << want[i].name;
      EXPECT_EQ(got[i].source, want[i].source) << want[i].name;
      EXPECT_EQ(got[i].source_version, want[i].source_version) << want[i].name;
      EXPECT_EQ(got[i].entries, want[i].entries) << want[i].name;
    }
    ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> versions, db_->ListVersions());
    ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> model_versions, model_->ListVersions());
    ASSERT_EQ(versions.size(), model_versions.size());
    for (size_t i = 0; i < versions.size(); ++i) {
      EXPECT_EQ(versions[i].version, model_versions[i].version) << i;
      EXPECT_EQ(versions[i].entries, model_versions[i].entries) << versions[i].version;
      EXPECT_EQ(versions[i].branch, model_versions[i].branch) << versions[i].version;
    }
    EXPECT_EQ(db_->ListTags(), model_->ListTags());
  }

  // The changes between two trees, or the status.
  absl::StatusOr<std::vector<Change>> DiffTrees(DB& db, const TreeAt& from, const TreeAt& to,
                                                const std::string& lo, const std::string& hi) {
    std::vector<Change> out;
    absl::Status s = db.DiffTrees(from, to, lo, hi, [&](const Change& c) {
      out.push_back(c);
      return true;
    });
    if (!s.ok()) return s;
    return out;
  }

  void ExpectSameDiff(const TreeAt& from, const TreeAt& to, const std::string& lo,
                      const std::string& hi) {
    const std::string what =
        absl::StrCat("diff ", from.branch, "@", from.version ? *from.version : Latest(), " .. ",
                     to.branch, "@", to.version ? *to.version : Latest(), " [", lo, ", ", hi, ")");
    absl::StatusOr<std::vector<Change>> got = DiffTrees(*db_, from, to, lo, hi);
    absl::StatusOr<std::vector<Change>> want = DiffTrees(*model_, from, to, lo, hi);
    ASSERT_EQ(got.status().code(), want.status().code())
        << what << ": " << got.status() << ", the model's " << want.status();
    if (!want.ok()) return;
    auto list = [](const std::vector<Change>& changes) {
      std::string out;
      for (const Change& c : changes) absl::StrAppend(&out, "\n  ", ChangeString(c));
      return out;
    };
    ASSERT_EQ(got->size(), want->size())
        << what << "\n got:" << list(*got) << "\n model:" << list(*want);
    for (size_t i = 0; i < want->size(); ++i) {
      ASSERT_TRUE(SameChange((*got)[i], (*want)[i]))
          << what << ": " << ChangeString((*got)[i]) << ", the model's "
          << ChangeString((*want)[i]);
    }
  }

  Options options_ = testing::ManualMaintenanceOptions();
  std::shared_ptr<internal::PageStore> store_ = internal::NewMemoryPageStore();
  std::unique_ptr<ModelDB> model_;  // outlives db_ (see TearDown)
  std::unique_ptr<internal::DBImpl> db_;
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
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, Fork("", main));
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, Fork("main", main));
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, Fork("a:b", main));
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, Fork(std::string(101, 'x'), main));
  Fork("dev", "main");
  EXPECT_BOTH(absl::StatusCode::kAlreadyExists, Fork("dev", main));
  TreeAt nowhere;
  nowhere.branch = "nowhere";
  EXPECT_BOTH(absl::StatusCode::kNotFound, Fork("x", nowhere));
  TreeAt future;
  future.version = Latest() + 1;
  EXPECT_BOTH(absl::StatusCode::kNotFound, Fork("x", future));
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, DeleteBranch("main"));
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, DeleteBranch(""));
  EXPECT_BOTH(absl::StatusCode::kNotFound, DeleteBranch("nowhere"));
  WriteBatch batch;
  batch.SetBranch("nowhere");
  batch.Put("a", "2");
  EXPECT_BOTH(absl::StatusCode::kNotFound, Write(batch));
  TransactionOptions to;
  to.branch = "nowhere";
  EXPECT_BOTH(absl::StatusCode::kNotFound, Begin(to));
  EXPECT_BOTH(absl::StatusCode::kNotFound, WatchBranch("nowhere", 0, "", ""));
  EXPECT_BOTH(absl::StatusCode::kNotFound, Merge("nowhere", "main", MergePolicy::kFail));
  EXPECT_BOTH(absl::StatusCode::kNotFound, Merge("main", "nowhere", MergePolicy::kFail));
  // A snapshot reads its own branch only.
  ReadOptions dev;
  dev.branch = "dev";
  ASSERT_OK_AND_ASSIGN(Snapshot snap, db_->SnapshotOf(dev));
  EXPECT_EQ(snap.branch(), "dev");
  ASSERT_OK_AND_ASSIGN(ModelDB::PinHandle pin, model_->Pin(snap.version()));
  ReadOptions mixed;
  mixed.snapshot = &snap;
  mixed.branch = "main";
  EXPECT_BOTH(absl::StatusCode::kInvalidArgument, Get(mixed, "a"));
  // Dev did not exist at version 1.
  ReadOptions dev_then = dev;
  dev_then.version = 1;
  EXPECT_BOTH(absl::StatusCode::kNotFound, Get(dev_then, "a"));
  EXPECT_BOTH(absl::StatusCode::kNotFound, SnapshotOf(dev_then));
  // A released version cannot be forked.
  TreeAt released;
  released.version = 0;
  Put("main", "a", "3");
  ASSERT_OK(db_->SetRetention({1, 0}));
  ASSERT_OK(model_->SetRetention({1, 0}));
  Reclaim();
  EXPECT_BOTH(absl::StatusCode::kOutOfRange, Fork("gone", released));
  // Reads of a branch cannot be proved (digests cover main).
  EXPECT_THAT(db_->ProveGet(dev, "a").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ExpectAll();
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
    const std::vector<std::string> names = BranchesAt(Latest());
    const std::string& branch = names[rng() % names.size()];
    const int op = rng() % 100;
    if (op < 70) {
      RandomCommit(branch, &rng);
    } else if (op < 74 && names.size() < 5) {
      Fork(absl::StrCat("b", forks++), branch);
    } else if (op < 77 && names.size() < 5) {
      // An older tree of some branch, from a version still retained.
      std::vector<uint64_t> retained;
      for (uint64_t v = 0; v <= Latest(); ++v) {
        if (model_->CheckReadable(v).ok()) retained.push_back(v);
      }
      const uint64_t v = retained[rng() % retained.size()];
      const std::vector<std::string> then = BranchesAt(v);
      ForkAt(absl::StrCat("b", forks++), then[rng() % then.size()], v);
      ++older_forks;
    } else if (op < 81 && branch != "main") {
      Drop(branch);
    } else if (op < 88) {
      ASSERT_OK(db_->Checkpoint());
    } else if (op < 95) {
      Reclaim();
    } else {
      Open(/*crash=*/rng() % 2 == 0);
    }
    if (step % 50 == 49) ExpectAll();
  }
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
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
  ASSERT_OK_AND_ASSIGN(const ModelDB::State yesterdays_main, model_->StateAt(yesterday));
  ASSERT_OK(db_->Tag("yesterday", yesterday));
  ASSERT_OK(model_->Tag("yesterday", yesterday));
  for (int i = 0; i < 200; ++i) {
    Put("main", absl::StrCat("k", i), std::string(i % 10 == 0 ? 300 : 30, 'b'));
  }
  ASSERT_OK(db_->Checkpoint());
  Reclaim();  // yesterday's pages are freed, kept by the tag
  const uint64_t pages = Count(internal::Space::kPages);
  ForkAt("replay", "main", yesterday);
  // Its tree was stored already: the fork wrote no page of it.
  EXPECT_EQ(Count(internal::Space::kPages), pages);
  ASSERT_OK(db_->Untag("yesterday"));
  ASSERT_OK(model_->Untag("yesterday"));
  // Nothing holds the old version now but the branch: its tree must stay.
  Put("main", "k0", "c");
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
  Open(/*crash=*/true);
  Reclaim();
  EXPECT_TRUE(Read("replay", std::nullopt) == yesterdays_main);
  Put("replay", "k1", "d");
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
  ExpectAll();
}

TEST_F(BranchTest, DeletingABranchReclaimsWhatOnlyItReached) {
  options_.retain_versions = 1;
  Open();
  for (int i = 0; i < 200; ++i) Put("main", absl::StrCat("k", i), std::string(30, 'm'));
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
  const uint64_t pages = Count(internal::Space::kPages);
  Fork("dev", "main");
  for (int i = 0; i < 200; ++i) Put("dev", absl::StrCat("d", i), std::string(300, 'd'));
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
  EXPECT_GT(Count(internal::Space::kPages), pages);
  EXPECT_EQ(Count(internal::Space::kBlobs), 200u);
  Drop("dev");
  ASSERT_OK(db_->Checkpoint());
  Put("main", "k0", "after");  // the versions with dev fall out
  ASSERT_OK(db_->Checkpoint());
  const ReclaimStats stats = Reclaim();
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> model_txn, model_->Begin(to));
  ASSERT_OK_AND_ASSIGN(std::string x, txn->Get("x"));
  EXPECT_EQ(*model_txn->Get("x"), x);
  ASSERT_OK(txn->Put("x", x + "+dev"));
  ASSERT_OK(model_txn->Put("x", x + "+dev"));
  Put("main", "x", "main");  // another branch: no conflict
  ASSERT_OK_AND_ASSIGN(uint64_t v, txn->Commit());
  EXPECT_THAT(model_txn->Commit(), ::cowdb::testing::IsOkAndHolds(v));
  ReadOptions dev;
  dev.branch = "dev";
  dev.version = v;
  EXPECT_EQ(*db_->Get(dev, "x"), "0+dev");
  EXPECT_EQ(*db_->Get(ReadOptions(), "x"), "main");

  ASSERT_OK_AND_ASSIGN(txn, db_->Begin(to));
  ASSERT_OK_AND_ASSIGN(model_txn, model_->Begin(to));
  ASSERT_OK(txn->Get("x").status());
  ASSERT_OK(model_txn->Get("x").status());
  ASSERT_OK(txn->Put("x", "lost"));
  ASSERT_OK(model_txn->Put("x", "lost"));
  Put("dev", "x", "first");  // the same branch: a conflict
  EXPECT_THAT(txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(model_txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));

  // A branch deleted under a transaction: its commit finds no branch.
  ASSERT_OK_AND_ASSIGN(txn, db_->Begin(to));
  ASSERT_OK_AND_ASSIGN(model_txn, model_->Begin(to));
  ASSERT_OK(txn->Put("y", "1"));
  ASSERT_OK(model_txn->Put("y", "1"));
  Drop("dev");
  EXPECT_THAT(txn->Commit().status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(model_txn->Commit().status(), StatusIs(absl::StatusCode::kNotFound));
  ExpectAll();
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
  // And as the model has them, both ways, with versions and ranges.
  ExpectSameDiff(main, dev, "", "");
  ExpectSameDiff(dev, main, "k1150", "");
  TreeAt dev_first = dev;
  dev_first.version = Latest() - 1;
  ExpectSameDiff(dev_first, main, "", "k1300");
  TreeAt main_before = main;
  main_before.version = 3;
  ExpectSameDiff(dev, main_before, "", "");
  ExpectSameDiff(main_before, dev_first, "", "");
}

// A fork of an older tree writes that tree's unwritten blobs with its
// checkpoint, under ids of their own: one write's blob is then stored
// twice, and a diff must not take two ids for two values.
TEST_F(BranchTest, ADiffOfAnOlderForkSkipsTheBlobsItShares) {
  Put("main", "blob", std::string(500, 'b'));
  const uint64_t v = Latest();
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
  ExpectSameDiff(main, old, "", "");
  ExpectAll();
}

TEST_F(BranchTest, AWatcherOnABranchSeesOnlyItsChangesUntilItIsDeleted) {
  Fork("dev", "main");
  const uint64_t from = db_->LatestVersion();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Watcher> w, db_->WatchBranch("dev", from, "", ""));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Watcher> mw, model_->WatchBranch("dev", from, "", ""));
  Put("main", "a", "main");
  Put("dev", "a", "dev");
  ASSERT_OK_AND_ASSIGN(WatchEvent e, w->Next(absl::Seconds(5)));
  EXPECT_EQ(e.version, db_->LatestVersion());
  EXPECT_EQ(e.change.key, "a");
  EXPECT_EQ(e.change.new_value, "dev");
  ASSERT_OK_AND_ASSIGN(WatchEvent me, mw->Next(absl::Seconds(5)));
  EXPECT_EQ(me.version, e.version);
  EXPECT_TRUE(SameChange(me.change, e.change)) << ChangeString(me.change);
  Drop("dev");
  EXPECT_THAT(w->Next(absl::Seconds(5)).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(mw->Next(absl::Seconds(5)).status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(w->position(), mw->position());
}

TEST_F(BranchTest, MergeAppliesTheOtherSidesChangesAndReportsConflicts) {
  Put("main", "shared", "base");
  Put("main", "both", "base");
  Fork("dev", "main");
  Put("dev", "dev-only", "1");
  Put("dev", "both", "dev");
  Put("main", "main-only", "1");
  Put("main", "both", "main");
  // Merges on both: the same result (the engine's is returned).
  auto merge = [&](const std::string& from, const std::string& into, MergePolicy policy) {
    absl::StatusOr<MergeResult> got = db_->Merge(from, into, policy);
    absl::StatusOr<MergeResult> want = model_->Merge(from, into, policy);
    ExpectSameMerge(got, want, absl::StrCat("merge ", from, " into ", into));
    EXPECT_EQ(db_->ListTags(), model_->ListTags());
    return got;
  };

  // Fail: the conflict is reported with all three values; nothing is written.
  const uint64_t before = db_->LatestVersion();
  ASSERT_OK_AND_ASSIGN(MergeResult r, merge("dev", "main", MergePolicy::kFail));
  EXPECT_FALSE(r.merged);
  EXPECT_EQ(db_->LatestVersion(), before);
  ASSERT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(r.conflicts[0].key, "both");
  EXPECT_EQ(r.conflicts[0].base, "base");
  EXPECT_EQ(r.conflicts[0].ours, "main");
  EXPECT_EQ(r.conflicts[0].theirs, "dev");
  EXPECT_EQ(r.base_branch, "dev");

  // Theirs: one commit with dev's changes.
  ASSERT_OK_AND_ASSIGN(r, merge("dev", "main", MergePolicy::kTheirs));
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
  ASSERT_OK_AND_ASSIGN(r, merge("dev", "main", MergePolicy::kFail));
  EXPECT_TRUE(r.merged);
  EXPECT_TRUE(r.conflicts.empty());
  EXPECT_EQ(*db_->Get(ReadOptions(), "both"), "main-again");
  EXPECT_EQ(*db_->Get(ReadOptions(), "dev-only"), "2");

  // Ours keeps main's value; merging back into dev brings main's changes.
  Put("dev", "both", "dev-again");
  ASSERT_OK_AND_ASSIGN(r, merge("dev", "main", MergePolicy::kOurs));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.conflicts.size(), 1u);
  EXPECT_EQ(*db_->Get(ReadOptions(), "both"), "main-again");
  ASSERT_OK_AND_ASSIGN(r, merge("main", "dev", MergePolicy::kTheirs));
  ReadOptions dev;
  dev.branch = "dev";
  EXPECT_EQ(*db_->Get(dev, "main-only"), "1");
  EXPECT_EQ(*db_->Get(dev, "both"), "main-again");
  // Nothing new on either side: merged, with no commit.
  const uint64_t idle = db_->LatestVersion();
  ASSERT_OK_AND_ASSIGN(r, merge("main", "dev", MergePolicy::kFail));
  EXPECT_TRUE(r.merged);
  EXPECT_EQ(r.version, idle);
  EXPECT_EQ(db_->LatestVersion(), idle);

  EXPECT_THAT(merge("dev", "dev", MergePolicy::kFail).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Two forks of one branch merge from the earlier fork's first tree.
  Fork("other", "main");
  Put("main", "later", "1");
  Fork("other2", "main");
  Put("other", "x", "other");
  ASSERT_OK_AND_ASSIGN(r, merge("other", "other2", MergePolicy::kFail));
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
  EXPECT_THAT(merge("grandchild", "dev", MergePolicy::kFail).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Deleting a branch takes its fork and merge tags along.
  Drop("dev");
  for (const auto& [tag, v] : db_->ListTags()) {
    EXPECT_EQ(tag.find("dev"), std::string::npos) << tag;
  }
  ExpectAll();
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
  ASSERT_OK(model_->Tag("s", s));
  ASSERT_OK_AND_ASSIGN(const ModelDB::State at_s, model_->StateAt(s));
  for (int i = 0; i < 50; ++i) Put("main", absl::StrCat("k", i), "d");
  ASSERT_OK(db_->Checkpoint());
  Open();  // versions after the checkpoint before s are rebuilt from now on
  ForkAt("a", "main", s);
  Drop("a");
  for (int i = 0; i < 3; ++i) {
    Put("main", "k99", absl::StrCat("e", i));
    ASSERT_OK(db_->Checkpoint());
    Reclaim();
  }
  ForkAt("b", "main", s);
  EXPECT_TRUE(Read("b", std::nullopt) == at_s);
  ASSERT_OK(db_->Checkpoint());
  Reclaim();
  ExpectAll();
  Open(/*crash=*/true);
  EXPECT_TRUE(Read("b", std::nullopt) == at_s);
  ExpectAll();
}

TEST_F(BranchTest, ABranchDeletedAndCreatedAgainIsAnotherBranch) {
  Put("main", "k", "0");
  Fork("x", "main");
  TransactionOptions to;
  to.branch = "x";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> txn, db_->Begin(to));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Transaction> model_txn, model_->Begin(to));
  ASSERT_OK(txn->Put("k", "from the old x"));
  ASSERT_OK(model_txn->Put("k", "from the old x"));
  Drop("x");
  Fork("x", "main");
  EXPECT_THAT(txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(model_txn->Commit().status(), StatusIs(absl::StatusCode::kAborted));
  // Nor is the new x's source the old one's: y was forked from the old x,
  // so y and the new x have no known common ancestor.
  Fork("y", "x");
  const uint64_t old_x = Latest();
  Drop("x");
  Put("main", "k", "1");
  Fork("x", "main");
  EXPECT_BOTH(absl::StatusCode::kFailedPrecondition, Merge("y", "x", MergePolicy::kFail));
  EXPECT_BOTH(absl::StatusCode::kFailedPrecondition, Merge("x", "y", MergePolicy::kFail));
  ForkAt("old-x", "x", old_x);  // the old x's tree, stored
  // A fork of an old branch's tree is no fork of the new one's latest,
  // even when the trees are the same: it records the version asked for.
  Fork("w", "main");
  const uint64_t old_w = Latest();
  Drop("w");
  Fork("w", "main");  // main's tree, as the old w's
  ForkAt("z", "w", old_w);
  const std::vector<BranchInfo> branches = db_->ListBranches();
  ASSERT_EQ(branches.back().name, "z");
  EXPECT_EQ(branches.back().source_version, old_w);
  ExpectAll();
}

// Random branch operations on the database and on the model: every
// result must be the model's (status codes, versions, values with their
// metadata, merge results, diffs, watch events, transaction outcomes), and
// every retained version of every branch reads as the model's.
TEST_F(BranchTest, RandomBranchOpsMatchTheModel) {
  const uint64_t seed = Seed();
  std::cout << "seed " << seed << " (rerun with COWDB_SEED=" << seed << ")" << std::endl;
  std::mt19937 rng(seed);
  options_.retain_versions = 24;
  Open();
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  // A branch name: mostly an existing one or one of a few others, rarely
  // "" (main) or one that never exists.
  auto any_branch = [&]() -> std::string {
    const int r = rng() % 20;
    if (r == 0) return "";
    if (r == 1) return "nowhere";
    if (r < 8) return absl::StrCat("b", rng() % 6);
    return pick(BranchesAt(Latest()));
  };
  auto key = [&] { return absl::StrCat("k", rng() % 24); };
  // Few values, so that both sides of a merge sometimes agree.
  auto value = [&]() -> std::string {
    if (rng() % 12 == 0) {  // a blob
      const size_t size = 150 + rng() % 200;
      return std::string(size, static_cast<char>('a' + rng() % 3));
    }
    return absl::StrCat("v", rng() % 5);
  };
  // A version: mostly retained, sometimes released or after the latest.
  auto version = [&]() -> uint64_t {
    const uint64_t latest = Latest();
    if (rng() % 10 == 0) return latest + 1;
    const uint64_t span = rng() % 2 ? 30 : latest + 1;  // mostly recent
    const uint64_t back = rng() % span;
    return back > latest ? 0 : latest - back;
  };
  auto tree = [&]() {
    TreeAt at;
    at.branch = rng() % 4 == 0 ? pick(BranchesAt(Latest())) : any_branch();
    if (rng() % 2) at.version = version();
    return at;
  };
  std::unique_ptr<Watcher> watcher, model_watcher;
  std::string watched;
  int merges = 0, merged = 0, older_forks = 0, conflicts = 0, txns = 0;
  for (int step = 0; step < 1500; ++step) {
    SCOPED_TRACE(absl::StrCat("step ", step, ", seed ", seed));
    const int op = rng() % 100;
    if (op < 30) {  // a batch on a branch
      WriteBatch batch;
      batch.SetBranch(rng() % 3 == 0 ? any_branch() : pick(BranchesAt(Latest())));
      const int n = rng() % 6;
      for (int i = 0; i < n; ++i) {
        if (rng() % 4 == 0) {
          batch.Delete(key());
        } else {
          const std::string k = key(), v = value();
          batch.Put(k, v, rng() % 5 == 0 ? 1 + rng() % 2 : 0);
        }
      }
      ASSERT_NO_FATAL_FAILURE(Commit(batch));
    } else if (op < 38) {  // a fork of a latest tree, or an older one
      TreeAt at;
      at.branch = rng() % 3 == 0 ? any_branch() : pick(BranchesAt(Latest()));
      if (rng() % 2) {
        at.version = version();
        ++older_forks;
      }
      std::string name = absl::StrCat("b", rng() % 6);
      if (rng() % 15 == 0) name = rng() % 2 ? "main" : "bad:name";
      ASSERT_NO_FATAL_FAILURE(ForkTree(name, at));
    } else if (op < 42) {
      ASSERT_NO_FATAL_FAILURE(Drop(any_branch()));
    } else if (op < 52) {  // a merge
      const std::string from = rng() % 3 == 0 ? any_branch() : pick(BranchesAt(Latest()));
      const std::string into = rng() % 3 == 0 ? any_branch() : pick(BranchesAt(Latest()));
      const MergePolicy policy = static_cast<MergePolicy>(rng() % 3);
      absl::StatusOr<MergeResult> got = db_->Merge(from, into, policy);
      absl::StatusOr<MergeResult> want = model_->Merge(from, into, policy);
      ASSERT_NO_FATAL_FAILURE(ExpectSameMerge(
          got, want, absl::StrCat("merge ", from, " into ", into, " policy ",
                                  static_cast<int>(policy))));
      ASSERT_EQ(db_->LatestVersion(), Latest());
      ASSERT_EQ(db_->ListTags(), model_->ListTags());
      ++merges;
      if (got.ok() && got->merged) ++merged;
      if (got.ok()) conflicts += got->conflicts.size();
    } else if (op < 58) {
      const TreeAt from = tree(), to = tree();
      const std::string lo = rng() % 2 ? "" : key();
      const std::string hi = rng() % 2 ? "" : key();
      ASSERT_NO_FATAL_FAILURE(ExpectSameDiff(from, to, lo, hi));
    } else if (op < 64) {  // reads of a tree
      ReadOptions ro;
      const TreeAt at = tree();
      ro.branch = at.branch;
      ro.version = at.version;
      absl::StatusOr<ModelDB::State> got = ReadState(*db_, ro);
      absl::StatusOr<ModelDB::State> want = ReadState(*model_, ro);
      ASSERT_EQ(got.status().code(), want.status().code()) << got.status();
      if (want.ok()) ASSERT_TRUE(*got == *want) << StateString(*got);
      const std::string k = key();
      absl::StatusOr<Entry> e = db_->GetEntry(ro, k);
      absl::StatusOr<Entry> me = model_->GetEntry(ro, k);
      ASSERT_EQ(e.status().code(), me.status().code()) << e.status();
      if (me.ok()) {
        EXPECT_EQ(e->value, me->value);
        EXPECT_EQ(e->version, me->version);
        EXPECT_EQ(e->mod_version, me->mod_version);
        EXPECT_EQ(e->create_version, me->create_version);
        EXPECT_EQ(e->writes, me->writes);
        EXPECT_EQ(e->lease, me->lease);
      }
      absl::StatusOr<uint64_t> n = db_->Count(ro, "k1", "k2");
      absl::StatusOr<uint64_t> mn = model_->Count(ro, "k1", "k2");
      ASSERT_EQ(n.status().code(), mn.status().code());
      if (mn.ok()) EXPECT_EQ(*n, *mn);
    } else if (op < 72) {  // a transaction on a branch, maybe with a commit meanwhile
      TransactionOptions to;
      to.branch = rng() % 4 == 0 ? any_branch() : pick(BranchesAt(Latest()));
      to.isolation = rng() % 2 ? Isolation::kSnapshot : Isolation::kSerializable;
      absl::StatusOr<std::unique_ptr<Transaction>> txn = db_->Begin(to);
      absl::StatusOr<std::unique_ptr<Transaction>> model_txn = model_->Begin(to);
      ASSERT_EQ(txn.status().code(), model_txn.status().code()) << txn.status();
      if (!txn.ok()) continue;
      ++txns;
      for (int i = rng() % 4; i > 0; --i) {
        const std::string k = key();
        absl::StatusOr<std::string> g = (*txn)->Get(k);
        absl::StatusOr<std::string> mg = (*model_txn)->Get(k);
        ASSERT_EQ(g.status().code(), mg.status().code());
        if (mg.ok()) ASSERT_EQ(*g, *mg);
      }
      for (int i = rng() % 4; i > 0; --i) {
        const std::string k = key(), v = value();
        ASSERT_OK((*txn)->Put(k, v));
        ASSERT_OK((*model_txn)->Put(k, v));
      }
      if (rng() % 2) {  // a commit to its branch or another
        WriteBatch batch;
        batch.SetBranch(rng() % 2 ? to.branch : pick(BranchesAt(Latest())));
        batch.Put(key(), value());
        ASSERT_NO_FATAL_FAILURE(Commit(batch));
      }
      if (rng() % 8 == 0 && to.branch != "" && to.branch != "main") {
        ASSERT_NO_FATAL_FAILURE(Drop(to.branch));
      }
      absl::StatusOr<uint64_t> c = (*txn)->Commit();
      absl::StatusOr<uint64_t> mc = (*model_txn)->Commit();
      ASSERT_EQ(c.status().code(), mc.status().code()) << c.status();
      if (mc.ok()) ASSERT_EQ(*c, *mc);
    } else if (op < 78) {  // a watcher on a branch: started, or drained
      if (watcher == nullptr || rng() % 4 == 0) {
        watcher.reset();
        model_watcher.reset();
        watched = rng() % 4 == 0 ? any_branch() : pick(BranchesAt(Latest()));
        const uint64_t from = version();
        absl::StatusOr<std::unique_ptr<Watcher>> w = db_->WatchBranch(watched, from, "", "");
        absl::StatusOr<std::unique_ptr<Watcher>> mw =
            model_->WatchBranch(watched, from, "", "");
        ASSERT_EQ(w.status().code(), mw.status().code())
            << "watch " << watched << " from " << from << ": " << w.status();
        if (!w.ok()) continue;
        watcher = *std::move(w);
        model_watcher = *std::move(mw);
      }
      for (int i = 0;; ++i) {
        absl::StatusOr<WatchEvent> e = watcher->Next(absl::ZeroDuration());
        absl::StatusOr<WatchEvent> me = model_watcher->Next(absl::ZeroDuration());
        ASSERT_EQ(e.status().code(), me.status().code())
            << "watch " << watched << ", event " << i << ": " << e.status();
        if (!me.ok()) break;
        ASSERT_TRUE(e->version == me->version && e->net == me->net &&
                    SameChange(e->change, me->change))
            << "watch " << watched << ", event " << i << ": " << ChangeString(e->change)
            << " at " << e->version << ", the model's " << ChangeString(me->change) << " at "
            << me->version;
      }
      ASSERT_EQ(watcher->position(), model_watcher->position());
    } else if (op < 83) {  // tags, the merge bookkeeping ones included
      const std::map<std::string, uint64_t> tags = model_->ListTags();
      if (!tags.empty() && rng() % 2) {
        const std::string name = std::next(tags.begin(), rng() % tags.size())->first;
        ASSERT_OK(db_->Untag(name));
        ASSERT_OK(model_->Untag(name));
      } else {
        const std::string name = absl::StrCat("t", rng() % 3);
        const uint64_t v = version();
        ASSERT_EQ(db_->Tag(name, v).code(), model_->Tag(name, v).code());
      }
      ASSERT_EQ(db_->ListTags(), model_->ListTags());
    } else if (op < 90) {
      Reclaim();
    } else if (op < 92) {
      const uint64_t v = version();
      ASSERT_EQ(db_->ReleaseBefore(v).code(), model_->ReleaseBefore(v).code());
    } else if (op < 94) {
      ASSERT_OK(db_->Checkpoint());
    } else if (op < 96) {
      watcher.reset();
      model_watcher.reset();
      Open(/*crash=*/rng() % 2 == 0);
    } else {
      ASSERT_NO_FATAL_FAILURE(ExpectSameLists());
    }
    if (step % 100 == 99) ASSERT_NO_FATAL_FAILURE(ExpectAll());
  }
  watcher.reset();
  model_watcher.reset();
  ASSERT_NO_FATAL_FAILURE(ExpectAll());
  std::cout << merges << " merges (" << merged << " merged, " << conflicts << " conflicts), "
            << older_forks << " forks of older trees, " << txns << " transactions, "
            << Latest() << " versions" << std::endl;
  EXPECT_GT(merged, 10);
  EXPECT_GT(conflicts, 0);
}

}  // namespace
}  // namespace cowdb
