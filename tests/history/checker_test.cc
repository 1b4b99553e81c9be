// The history checker on hand-made histories: valid ones pass, and each
// kind of anomaly is flagged with a message that names it.

#include "tests/history/checker.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cowdb::history {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

KeyRead Found(std::string key, std::string value, uint64_t mod) {
  return KeyRead{std::move(key), true, std::move(value), mod};
}
KeyRead Absent(std::string key) { return KeyRead{std::move(key), false, "", 0}; }

// Builds a history; times are in arbitrary units, versions as given.
class Builder {
 public:
  Op& Add(OpType type, int64_t invoke, int64_t complete, Outcome outcome = Outcome::kOk) {
    Op op;
    op.id = h_.size() + 1;
    op.client = static_cast<int>(h_.size());
    op.type = type;
    op.invoke_ns = invoke;
    op.complete_ns = complete;
    op.outcome = outcome;
    h_.push_back(op);
    return h_.back();
  }
  Op& Put(int64_t t0, int64_t t1, std::string key, std::string value, uint64_t version,
          Outcome outcome = Outcome::kOk) {
    Op& op = Add(OpType::kPut, t0, t1, outcome);
    op.writes = {{std::move(key), std::move(value)}};
    op.commit_version = version;
    return op;
  }
  Op& Delete(int64_t t0, int64_t t1, std::string key, uint64_t version,
             Outcome outcome = Outcome::kOk) {
    Op& op = Add(OpType::kDelete, t0, t1, outcome);
    op.writes = {{std::move(key), std::nullopt}};
    op.commit_version = version;
    return op;
  }
  Op& Get(int64_t t0, int64_t t1, KeyRead read, uint64_t read_version) {
    Op& op = Add(OpType::kGet, t0, t1);
    op.reads = {std::move(read)};
    op.read_version = read_version;
    return op;
  }
  // A serializable read-write transaction.
  Op& Txn(int64_t t0, int64_t t1, uint64_t read_version, std::vector<KeyRead> reads,
          std::vector<KeyWrite> writes, uint64_t commit_version,
          Outcome outcome = Outcome::kOk) {
    Op& op = Add(OpType::kTxn, t0, t1, outcome);
    op.read_version = read_version;
    op.reads = std::move(reads);
    op.writes = std::move(writes);
    op.commit_version = commit_version;
    op.serializable = true;
    return op;
  }

  const History& history() const { return h_; }

 private:
  History h_;
};

std::string Messages(const CheckResult& r) { return absl::StrJoin(r.violations, "\n"); }

// Checks `h` and expects exactly violations that contain `what`.
void ExpectFlagged(const History& h, const std::string& what) {
  CheckResult r = CheckHistory(h);
  ASSERT_FALSE(r.ok()) << "not flagged; expected: " << what;
  EXPECT_THAT(r.violations, Contains(HasSubstr(what))) << Messages(r);
}

TEST(CheckerTest, SequentialHistoryIsValid) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Get(2, 3, Found("k", "a", 1), 1);
  b.Put(4, 5, "k", "b", 2);
  b.Get(6, 7, Found("k", "b", 2), 2);
  b.Get(8, 9, Found("k", "a", 1), 1).at_version = 1;  // an old version stays readable
  b.Delete(10, 11, "k", 3);
  b.Get(12, 13, Absent("k"), 3);
  Op& scan = b.Add(OpType::kScan, 14, 15);
  scan.read_version = 3;
  scan.ranges = {RangeRead{"a", "z", {}}};
  CheckResult r = CheckHistory(b.history());
  EXPECT_TRUE(r.ok()) << Messages(r);
  EXPECT_EQ(r.stats.ops, 8u);
  EXPECT_EQ(r.stats.versions_written, 3u);
}

TEST(CheckerTest, ConcurrentReadMaySeeEitherSide) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Put(2, 10, "k", "b", 2);
  b.Get(3, 4, Found("k", "a", 1), 1);  // overlaps the second put
  b.Get(5, 6, Found("k", "b", 2), 2);
  EXPECT_TRUE(CheckHistory(b.history()).ok()) << Messages(CheckHistory(b.history()));
}

TEST(CheckerTest, GroupCommitSharesAVersion) {
  Builder b;
  // Two concurrent write sets committed together at version 1 ...
  b.Put(0, 5, "x", "x1", 1);
  b.Put(1, 5, "y", "y1", 1);
  // ... and two blind puts of one key at version 2: either may be last,
  // and the first read pins which.
  b.Put(6, 9, "k", "k1", 2);
  b.Put(6, 9, "k", "k2", 2);
  b.Get(10, 11, Found("k", "k2", 2), 2);
  b.Get(12, 13, Found("x", "x1", 1), 2);
  CheckResult r = CheckHistory(b.history());
  EXPECT_TRUE(r.ok()) << Messages(r);
  EXPECT_EQ(r.stats.shared_versions, 2u);

  b.Get(14, 15, Found("k", "k1", 2), 2);  // now contradicts the first read
  ExpectFlagged(b.history(), "wrong read");
}

TEST(CheckerTest, UnknownOutcomesMayOrMayNotApply) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Put(2, 3, "k", "lost-in-crash", 0, Outcome::kUnknown);  // never seen: not applied
  b.Put(4, 5, "j", "j1", 2, Outcome::kUnknown).commit_version = 0;  // seen below
  b.Get(6, 7, Found("j", "j1", 2), 2);
  b.Get(6, 7, Found("k", "a", 1), 2);
  b.Delete(8, 9, "k", 0, Outcome::kUnknown);  // explains the absent read below
  b.Get(10, 11, Absent("k"), 3);
  b.Put(10, 11, "z", "z1", 3);
  b.Get(12, 13, Absent("k"), 3);
  CheckResult r = CheckHistory(b.history());
  EXPECT_TRUE(r.ok()) << Messages(r);
  EXPECT_EQ(r.stats.unknown, 3u);
  EXPECT_EQ(r.stats.unknown_writes_applied, 1u);
}

TEST(CheckerTest, AbsentReadWithoutAVersionIsCheckedAgainstLaterVersions) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Delete(2, 3, "k", 2);
  b.Get(4, 5, Absent("k"), 0);  // a Get of a missing key does not say its version
  EXPECT_TRUE(CheckHistory(b.history()).ok());

  Builder bad;
  bad.Put(0, 1, "k", "a", 1);
  bad.Get(4, 5, Absent("k"), 0);
  ExpectFlagged(bad.history(), "which the model never has");
}

TEST(CheckerTest, SerializableTransactionsAndCompareAndSwap) {
  Builder b;
  b.Put(0, 1, "x", "x1", 1);
  b.Txn(2, 5, 1, {Found("x", "x1", 1), Absent("y")}, {{"y", "y1"}}, 2);
  Op& cas = b.Add(OpType::kCas, 6, 7);
  cas.cas_key = "y";
  cas.cas_expected_mod = 2;
  cas.cas_succeeded = true;
  cas.serializable = true;
  cas.reads = {Found("y", "y1", 2)};
  cas.writes = {{"y", "y2"}, {"x", "x2"}};
  cas.commit_version = 3;
  Op& failed_cas = b.Add(OpType::kCas, 8, 9);
  failed_cas.cas_key = "y";
  failed_cas.cas_expected_mod = 2;
  failed_cas.cas_succeeded = false;
  failed_cas.reads = {Found("y", "y2", 3)};
  failed_cas.writes = {{"y", "never"}};
  failed_cas.read_version = 3;
  b.Txn(10, 12, 3, {Found("x", "x2", 3)}, {{"z", "z1"}}, 0, Outcome::kFailed);  // aborted
  CheckResult r = CheckHistory(b.history());
  EXPECT_TRUE(r.ok()) << Messages(r);
}

TEST(CheckerTest, LostWrite) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Put(2, 3, "k", "b", 2);
  b.Put(4, 5, "other", "o", 3);
  b.Get(6, 7, Found("k", "a", 1), 3);  // "b" vanished (e.g. after a restart)
  ExpectFlagged(b.history(), "a lost write");
}

TEST(CheckerTest, LostDelete) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Delete(2, 3, "k", 2);
  b.Get(4, 5, Found("k", "a", 1), 2);
  ExpectFlagged(b.history(), "a lost write");
}

TEST(CheckerTest, StaleRead) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Put(2, 3, "k", "b", 2);
  b.Get(4, 5, Found("k", "a", 1), 1);  // invoked after version 2 was acknowledged
  ExpectFlagged(b.history(), "stale read");
}

TEST(CheckerTest, ReadOfANeverWrittenValue) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Get(2, 3, Found("k", "garbage", 1), 1);
  ExpectFlagged(b.history(), "never written");
}

TEST(CheckerTest, ReadOfAFailedWrite) {
  Builder b;
  b.Txn(0, 1, 0, {}, {{"k", "aborted"}}, 0, Outcome::kFailed);
  b.Get(2, 3, Found("k", "aborted", 1), 1);
  ExpectFlagged(b.history(), "read of a failed write");
}

TEST(CheckerTest, FracturedTransaction) {
  Builder b;
  b.Put(0, 1, "y", "y0", 1);
  // Unknown outcome; its x is seen at version 2, so all of it is at 2 ...
  b.Txn(2, 3, 1, {}, {{"x", "x1"}, {"y", "y1"}}, 0, Outcome::kUnknown);
  b.Get(4, 5, Found("x", "x1", 2), 2);
  // ... but its y is not.
  b.Get(4, 5, Found("y", "y0", 1), 2);
  ExpectFlagged(b.history(), "fractured");
}

TEST(CheckerTest, ReadOfAPartOfAnAcknowledgedTransaction) {
  Builder b;
  b.Txn(0, 1, 0, {}, {{"x", "x1"}, {"y", "y1"}}, 1);
  b.Get(2, 3, Found("x", "x1", 1), 1);
  b.Get(2, 3, Absent("y"), 1);
  ExpectFlagged(b.history(), "wrong read");
}

TEST(CheckerTest, WriteSkewAcrossVersions) {
  Builder b;
  b.Put(0, 1, "x", "x0", 1);
  b.Put(0, 1, "y", "y0", 1);
  // Each reads both and writes one: both saw version 1.
  b.Txn(2, 5, 1, {Found("x", "x0", 1), Found("y", "y0", 1)}, {{"x", "x1"}}, 2);
  b.Txn(2, 6, 1, {Found("x", "x0", 1), Found("y", "y0", 1)}, {{"y", "y1"}}, 3);
  ExpectFlagged(b.history(), "not serializable");
}

TEST(CheckerTest, WriteSkewInsideOneCommitGroup) {
  Builder b;
  b.Put(0, 1, "x", "x0", 1);
  b.Put(0, 1, "y", "y0", 1);
  b.Txn(2, 5, 1, {Found("x", "x0", 1), Found("y", "y0", 1)}, {{"x", "x1"}}, 2);
  b.Txn(2, 5, 1, {Found("x", "x0", 1), Found("y", "y0", 1)}, {{"y", "y1"}}, 2);
  ExpectFlagged(b.history(), "no serial order inside version 2");
}

TEST(CheckerTest, ScanMissesAKey) {
  Builder b;
  b.Put(0, 1, "a", "a1", 1);
  b.Put(0, 1, "b", "b1", 1);
  Op& scan = b.Add(OpType::kScan, 2, 3);
  scan.read_version = 1;
  scan.ranges = {RangeRead{"a", "", {Found("b", "b1", 1)}}};  // "a" is missing
  ExpectFlagged(b.history(), "read a=<absent>");
}

TEST(CheckerTest, RealTimeViolation) {
  Builder b;
  b.Put(0, 1, "k", "a", 5);
  b.Put(2, 3, "j", "b", 4);  // invoked after version 5 was acknowledged
  ExpectFlagged(b.history(), "real-time");
}

TEST(CheckerTest, VersionReuse) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  // After a restart the server hands out version 1 again.
  b.Put(2, 3, "j", "b", 1);
  ExpectFlagged(b.history(), "reused version");
}

TEST(CheckerTest, AcknowledgedWithTheWrongVersion) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  b.Put(2, 3, "k", "b", 1);  // the server said 1, the value carries 2
  b.Get(4, 5, Found("k", "b", 2), 2);
  ExpectFlagged(b.history(), "wrong version");
}

TEST(CheckerTest, UnknownWriteSeenAtTwoVersions) {
  Builder b;
  b.Txn(0, 1, 0, {}, {{"x", "x1"}, {"y", "y1"}}, 0, Outcome::kUnknown);
  b.Get(2, 3, Found("x", "x1", 1), 2);
  b.Get(2, 3, Found("y", "y1", 2), 2);
  ExpectFlagged(b.history(), "one write set at two versions");
}

TEST(CheckerTest, CompareAndSwapTookTheWrongBranch) {
  Builder b;
  b.Put(0, 1, "k", "a", 1);
  Op& cas = b.Add(OpType::kCas, 2, 3);
  cas.cas_key = "k";
  cas.cas_expected_mod = 7;  // does not hold, yet it "succeeded"
  cas.cas_succeeded = true;
  cas.serializable = true;
  cas.reads = {Found("k", "a", 1)};
  cas.writes = {{"k", "b"}};
  cas.commit_version = 2;
  ExpectFlagged(b.history(), "wrong branch");
}

}  // namespace
}  // namespace cowdb::history
