// Transactions: read-your-writes, rollback, misuse, conflicts on keys and
// ranges (phantoms), write skew under both isolation levels.

#include "engine/transaction.h"

#include <map>
#include <random>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/latch.h"
#include "tests/util/model_db.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

using ::cowdb::testing::StatusIs;

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o;
    o.page_size = 512;  // several levels with few keys
    o.inline_value_limit = 64;
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(o, internal::NewMemoryPageStore()));
  }

  std::unique_ptr<Transaction> Begin(Isolation iso = Isolation::kSerializable) {
    TransactionOptions o;
    o.isolation = iso;
    auto t = db_->Begin(o);
    EXPECT_OK(t);
    return *std::move(t);
  }

  std::string Read(const std::string& key) {
    absl::StatusOr<std::string> v = db_->Get(ReadOptions(), key);
    return v.ok() ? *v : "NOT_FOUND";
  }

  // All key=value pairs an iterator yields forward; checks backward agrees.
  static std::string Dump(Iterator* it) {
    std::string fwd, bwd;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      fwd += std::string(it->key()) + "=" + std::string(it->value()) + " ";
    }
    std::vector<std::string> parts;
    for (it->SeekToLast(); it->Valid(); it->Prev()) {
      parts.push_back(std::string(it->key()) + "=" + std::string(it->value()) + " ");
    }
    for (auto p = parts.rbegin(); p != parts.rend(); ++p) bwd += *p;
    EXPECT_EQ(fwd, bwd) << "backward iteration disagrees";
    return fwd;
  }

  std::unique_ptr<internal::DBImpl> db_;
};

TEST_F(TransactionTest, ReadsYourOwnWrites) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("b", "2"));
  ASSERT_OK(db_->Put("c", "3"));
  auto t = Begin();
  ASSERT_OK(t->Put("b", "20"));
  ASSERT_OK(t->Delete("c"));
  ASSERT_OK(t->Put("d", "4"));
  ASSERT_OK(t->Put("0", "0"));
  EXPECT_EQ(*t->Get("a"), "1");
  EXPECT_EQ(*t->Get("b"), "20");
  EXPECT_THAT(t->Get("c"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*t->Get("d"), "4");
  ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator());
  EXPECT_EQ(Dump(it.get()), "0=0 a=1 b=20 d=4 ");
  it->Seek("b");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  EXPECT_EQ(it->mod_version(), 0u) << "own write";
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "d");  // c is deleted
  it->Prev();
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "a");
  EXPECT_EQ(it->mod_version(), 1u);
  ASSERT_OK_AND_ASSIGN(uint64_t n, t->Count("", ""));
  EXPECT_EQ(n, 4u);
  ASSERT_OK_AND_ASSIGN(n, t->Count("a", "c"));
  EXPECT_EQ(n, 2u);
  // Others see nothing before commit.
  EXPECT_EQ(Read("d"), "NOT_FOUND");
  ASSERT_OK_AND_ASSIGN(uint64_t v, t->Commit());
  EXPECT_EQ(v, 4u);
  EXPECT_EQ(Read("b"), "20");
  EXPECT_EQ(Read("c"), "NOT_FOUND");
  ASSERT_OK_AND_ASSIGN(Entry e, db_->GetEntry(ReadOptions(), "d"));
  EXPECT_EQ(e.value, "4");
  EXPECT_EQ(e.mod_version, 4u);
  EXPECT_EQ(e.version, 4u);
}

// The transaction's merged iterator against ModelDB's (tests/util/
// model_db.h): the same keys, values and mod_versions (0 for own writes)
// both ways and after random seeks and steps, the same counts; odd rounds
// commit on both and the new versions must agree.
TEST_F(TransactionTest, IteratorMatchesModelOfSnapshotPlusWrites) {
  std::mt19937 rng(5);
  Options o;
  o.page_size = 512;
  o.inline_value_limit = 64;
  testing::ModelDB model(o);
  WriteBatch batch;
  for (int i = 0; i < 300; ++i) {
    batch.Put("k" + std::to_string(rng() % 500), "base" + std::to_string(i));
  }
  ASSERT_OK(db_->Write(batch));
  ASSERT_OK(model.Write(batch));
  for (int round = 0; round < 20; ++round) {
    auto t = Begin();
    ASSERT_OK_AND_ASSIGN(auto m, model.Begin(TransactionOptions()));
    for (int i = 0; i < 60; ++i) {
      std::string k = "k" + std::to_string(rng() % 500);
      if (rng() % 3 == 0) {
        ASSERT_OK(t->Delete(k));
        ASSERT_OK(m->Delete(k));
      } else {
        ASSERT_OK(t->Put(k, "own" + std::to_string(i)));
        ASSERT_OK(m->Put(k, "own" + std::to_string(i)));
      }
    }
    ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator());
    ASSERT_OK_AND_ASSIGN(auto mit, m->NewIterator());
    ASSERT_EQ(Dump(it.get()), Dump(mit.get()));
    // Random seeks with mixed steps.
    for (int s = 0; s < 50; ++s) {
      std::string target = "k" + std::to_string(rng() % 520);
      it->Seek(target);
      mit->Seek(target);
      for (int step = 0; step < 6; ++step) {
        ASSERT_EQ(it->Valid(), mit->Valid()) << target << " step " << step;
        if (!mit->Valid()) break;
        ASSERT_EQ(it->key(), mit->key());
        ASSERT_EQ(it->value(), mit->value());
        ASSERT_EQ(it->mod_version(), mit->mod_version()) << it->key();
        if (rng() % 2 == 0) {
          it->Next();
          mit->Next();
        } else {
          it->Prev();
          mit->Prev();
        }
      }
    }
    ASSERT_OK_AND_ASSIGN(uint64_t n, t->Count("k1", "k4"));
    ASSERT_OK_AND_ASSIGN(uint64_t want, m->Count("k1", "k4"));
    EXPECT_EQ(n, want);
    EXPECT_GT(n, 0u);
    it.reset();
    mit.reset();
    if (round % 2 == 1) {
      ASSERT_OK_AND_ASSIGN(uint64_t v, t->Commit());
      ASSERT_OK_AND_ASSIGN(uint64_t mv, m->Commit());
      ASSERT_EQ(v, mv);
      ASSERT_OK_AND_ASSIGN(auto latest, db_->NewIterator(ReadOptions()));
      ASSERT_OK_AND_ASSIGN(auto model_latest, model.NewIterator(ReadOptions()));
      ASSERT_EQ(Dump(latest.get()), Dump(model_latest.get()));
    } else {
      ASSERT_OK(t->Rollback());
      ASSERT_OK(m->Rollback());
    }
  }
}

TEST_F(TransactionTest, RollbackAndDestructionApplyNothing) {
  ASSERT_OK(db_->Put("a", "1"));
  {
    auto t = Begin();
    ASSERT_OK(t->Put("a", "2"));
    ASSERT_OK(t->Rollback());
  }
  {
    auto t = Begin();
    ASSERT_OK(t->Put("a", "3"));
  }  // destroyed while open
  EXPECT_EQ(Read("a"), "1");
  EXPECT_EQ(db_->LatestVersion(), 1u);
}

TEST_F(TransactionTest, FinishedTransactionIsFailedPrecondition) {
  auto t = Begin();
  ASSERT_OK(t->Put("a", "1"));
  ASSERT_OK(t->Commit());
  const auto kFP = absl::StatusCode::kFailedPrecondition;
  EXPECT_THAT(t->Get("a"), StatusIs(kFP));
  EXPECT_THAT(t->Put("a", "2"), StatusIs(kFP));
  EXPECT_THAT(t->Delete("a"), StatusIs(kFP));
  EXPECT_THAT(t->NewIterator(), StatusIs(kFP));
  EXPECT_THAT(t->Count("", ""), StatusIs(kFP));
  EXPECT_THAT(t->Commit(), StatusIs(kFP));
  EXPECT_THAT(t->Rollback(), StatusIs(kFP));
  auto r = Begin();
  ASSERT_OK(r->Rollback());
  EXPECT_THAT(r->Commit(), StatusIs(kFP));
}

TEST_F(TransactionTest, ReadOnlyTransactions) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("a", "2"));
  TransactionOptions o;
  o.read_only = true;
  o.read_version = 1;
  ASSERT_OK_AND_ASSIGN(auto t, db_->Begin(o));
  EXPECT_EQ(t->read_version(), 1u);
  EXPECT_EQ(*t->Get("a"), "1");
  EXPECT_THAT(t->Put("b", "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(uint64_t v, t->Commit());
  EXPECT_EQ(v, 1u);
  TransactionOptions rw;
  rw.read_version = 1;
  EXPECT_THAT(db_->Begin(rw), StatusIs(absl::StatusCode::kInvalidArgument));
  o.read_version = 99;
  EXPECT_THAT(db_->Begin(o), StatusIs(absl::StatusCode::kNotFound, "latest is 2"));
}

TEST_F(TransactionTest, LimitsApplyToBufferedWrites) {
  auto t = Begin();
  EXPECT_THAT(t->Put("", "v"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t->Put(std::string(5000, 'k'), "v"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(TransactionTest, ReadKeyChangedByOtherCommitAborts) {
  ASSERT_OK(db_->Put("x", "1"));
  auto t = Begin();
  ASSERT_OK(t->Get("x"));
  ASSERT_OK(t->Put("y", "from t"));
  ASSERT_OK(db_->Put("x", "2"));
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted, "\"x\""));
  EXPECT_EQ(Read("y"), "NOT_FOUND") << "an aborted transaction applied writes";
}

TEST_F(TransactionTest, ReadOfAbsentKeyThenInsertAborts) {
  auto t = Begin();
  EXPECT_THAT(t->Get("x"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(t->Put("y", "1"));
  ASSERT_OK(db_->Put("x", "appeared"));
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(TransactionTest, UnrelatedCommitDoesNotConflict) {
  ASSERT_OK(db_->Put("x", "1"));
  auto t = Begin();
  ASSERT_OK(t->Get("x"));
  ASSERT_OK(t->Put("x", "2"));
  ASSERT_OK(db_->Put("other", "1"));
  EXPECT_OK(t->Commit());
  EXPECT_EQ(Read("x"), "2");
}

TEST_F(TransactionTest, PhantomInScannedRangeAborts) {
  for (const char* k : {"a", "c", "e", "g"}) ASSERT_OK(db_->Put(k, "v"));
  auto t = Begin();
  ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator());
  int n = 0;
  for (it->Seek("b"); it->Valid() && it->key() < "f"; it->Next()) ++n;
  EXPECT_EQ(n, 2);  // c, e; the scan stopped at g
  ASSERT_OK(t->Put("summary", std::to_string(n)));
  ASSERT_OK(db_->Put("d", "phantom"));
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(TransactionTest, InsertOutsideScannedRangeDoesNotConflict) {
  for (const char* k : {"a", "c", "e", "g"}) ASSERT_OK(db_->Put(k, "v"));
  auto t = Begin();
  ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator());
  for (it->Seek("b"); it->Valid() && it->key() < "f"; it->Next()) {
  }
  ASSERT_OK(t->Put("summary", "2"));
  ASSERT_OK(db_->Put("h", "after the scan stopped at g"));
  ASSERT_OK(db_->Put("a", "before the scan started at b"));
  EXPECT_OK(t->Commit());
}

TEST_F(TransactionTest, ScanToTheEndConflictsWithAppend) {
  ASSERT_OK(db_->Put("a", "v"));
  auto t = Begin();
  ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator());
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
  }
  ASSERT_OK(t->Put("count", "1"));
  ASSERT_OK(db_->Put("zzz", "appended"));
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
}

// A bounded iterator observes only its bounds: a write just past a range
// scanned to its end, or just before one scanned in reverse, does not
// conflict (an unbounded iterator saw that key); a phantom inside still
// does. Forward, reverse, and the bounds as a prefix's range.
TEST_F(TransactionTest, BoundedIteratorObservesOnlyItsBounds) {
  for (const char* k : {"a1", "b1", "d1"}) ASSERT_OK(db_->Put(k, "v"));
  auto scan = [&](Transaction& t, IterateBounds b, bool reverse) {
    auto it = t.NewIterator(b);
    EXPECT_OK(it);
    std::string seen;
    if (reverse) {
      for ((*it)->SeekToLast(); (*it)->Valid(); (*it)->Prev()) seen += (*it)->key();
    } else {
      for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) seen += (*it)->key();
    }
    EXPECT_OK((*it)->status());
    return seen;
  };
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "reverse" : "forward");
    // The black-box test's case: scan [b, c), write z, someone puts c1.
    auto t = Begin();
    EXPECT_EQ(scan(*t, IterateBounds{"b", "c"}, reverse), "b1");
    ASSERT_OK(t->Put("z", "w"));
    ASSERT_OK(db_->Put(reverse ? "a2" : "c1", "outside the range"));
    EXPECT_OK(t->Commit());
    // Inside the range: a phantom aborts.
    t = Begin();
    EXPECT_EQ(scan(*t, IterateBounds{"b", "c"}, reverse), "b1");
    ASSERT_OK(t->Put("z", "w"));
    ASSERT_OK(db_->Put("b2", "phantom"));
    EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
    ASSERT_OK(db_->Delete("b2"));
  }
  // Seeks outside the bounds see nothing and observe nothing; own writes
  // outside are not visited.
  auto t = Begin();
  ASSERT_OK(t->Put("b0", "own"));
  ASSERT_OK(t->Put("c0", "own, outside"));
  ASSERT_OK_AND_ASSIGN(auto it, t->NewIterator(IterateBounds{"b", "c"}));
  it->Seek("c");
  EXPECT_FALSE(it->Valid());
  it->Seek("a");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b0");
  EXPECT_EQ(scan(*t, IterateBounds{"b", "c"}, false), "b0b1");
  EXPECT_EQ(scan(*t, IterateBounds{"b", ""}, false), "b0b1c0c1d1z");
  ASSERT_OK(db_->Put("c2", "outside"));
  ASSERT_OK(db_->Put("a3", "outside"));
  EXPECT_THAT(t->NewIterator(IterateBounds{"c", "b"}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  it.reset();
  // The unbounded scan of [b, ...) saw c2: that aborts.
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(TransactionTest, CountedRangeConflicts) {
  auto t = Begin();
  ASSERT_OK(t->Count("m", "n"));
  ASSERT_OK(t->Put("x", "1"));
  ASSERT_OK(db_->Put("m5", "new"));
  EXPECT_THAT(t->Commit(), StatusIs(absl::StatusCode::kAborted));
}

TEST_F(TransactionTest, SnapshotIsolationValidatesOnlyWrites) {
  ASSERT_OK(db_->Put("x", "1"));
  auto t = Begin(Isolation::kSnapshot);
  ASSERT_OK(t->Get("x"));
  ASSERT_OK(t->Put("y", "1"));
  ASSERT_OK(db_->Put("x", "2"));
  EXPECT_OK(t->Commit()) << "a read is not validated under SNAPSHOT";

  auto u = Begin(Isolation::kSnapshot);
  ASSERT_OK(u->Put("x", "from u"));
  ASSERT_OK(db_->Put("x", "first committer"));
  EXPECT_THAT(u->Commit(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(Read("x"), "first committer");
}

// Two transactions each read both x and y and write one of them.
void WriteSkew(TransactionTest* test, internal::DBImpl* db, Isolation iso,
               int* committed) {
  ASSERT_OK(db->Put("x", "1"));
  ASSERT_OK(db->Put("y", "1"));
  TransactionOptions o;
  o.isolation = iso;
  ASSERT_OK_AND_ASSIGN(auto t1, db->Begin(o));
  ASSERT_OK_AND_ASSIGN(auto t2, db->Begin(o));
  for (auto* t : {t1.get(), t2.get()}) {
    ASSERT_OK(t->Get("x"));
    ASSERT_OK(t->Get("y"));
  }
  ASSERT_OK(t1->Put("x", "0"));
  ASSERT_OK(t2->Put("y", "0"));
  *committed = t1->Commit().ok() + t2->Commit().ok();
}

TEST_F(TransactionTest, WriteSkewAllowedUnderSnapshotIsolation) {
  int committed = 0;
  WriteSkew(this, db_.get(), Isolation::kSnapshot, &committed);
  EXPECT_EQ(committed, 2);
  EXPECT_EQ(Read("x"), "0");
  EXPECT_EQ(Read("y"), "0");
}

TEST_F(TransactionTest, WriteSkewPreventedUnderSerializable) {
  int committed = 0;
  WriteSkew(this, db_.get(), Isolation::kSerializable, &committed);
  EXPECT_EQ(committed, 1);
}

// CommitAsync's outcome, waited for.
absl::StatusOr<uint64_t> CommitAndWait(Transaction& t) {
  testing::Latch done(1);
  absl::StatusOr<uint64_t> result = absl::InternalError("no callback");
  t.CommitAsync([&](absl::StatusOr<uint64_t> v) {
    result = std::move(v);
    done.CountDown();
  });
  done.Wait();
  return result;
}

TEST_F(TransactionTest, CommitAsyncValidatesAndAppliesLikeCommit) {
  ASSERT_OK(db_->Put("k", "0"));
  auto t = Begin();
  ASSERT_OK_AND_ASSIGN(std::string v, t->Get("k"));
  ASSERT_OK(t->Put("k", v + "1"));
  ASSERT_OK_AND_ASSIGN(uint64_t version, CommitAndWait(*t));
  EXPECT_EQ(version, db_->LatestVersion());
  EXPECT_EQ(Read("k"), "01");
  EXPECT_THAT(CommitAndWait(*t), StatusIs(absl::StatusCode::kFailedPrecondition));

  // A read changed by another commit aborts, and nothing is applied.
  auto a = Begin();
  ASSERT_OK(a->Get("k").status());
  ASSERT_OK(a->Put("other", "x"));
  ASSERT_OK(db_->Put("k", "2"));
  EXPECT_THAT(CommitAndWait(*a), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(Read("other"), "NOT_FOUND");

  // Without writes: the read version, no commit.
  auto r = Begin();
  const uint64_t read_version = r->read_version();
  ASSERT_OK_AND_ASSIGN(uint64_t got, CommitAndWait(*r));
  EXPECT_EQ(got, read_version);
}

TEST_F(TransactionTest, CommitAsyncCallbackMayDestroyTheTransaction) {
  std::shared_ptr<Transaction> t = Begin();
  ASSERT_OK(t->Put("a", "1"));
  testing::Latch done(1);
  absl::StatusOr<uint64_t> result = absl::InternalError("no callback");
  Transaction* raw = t.get();
  raw->CommitAsync([&, t = std::move(t)](absl::StatusOr<uint64_t> v) mutable {
    result = std::move(v);
    t.reset();  // the last reference: the transaction and its request go
    done.CountDown();
  });
  done.Wait();
  ASSERT_OK(result);
  EXPECT_EQ(Read("a"), "1");
}

TEST_F(TransactionTest, CommitWithoutWritesReturnsReadVersion) {
  ASSERT_OK(db_->Put("x", "1"));
  auto t = Begin();
  ASSERT_OK(t->Get("x"));
  ASSERT_OK(db_->Put("x", "2"));
  ASSERT_OK_AND_ASSIGN(uint64_t v, t->Commit());
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(db_->LatestVersion(), 2u);
}

}  // namespace
}  // namespace cowdb
