// One conformance suite for the client API, run against the in-process
// client (the embedded DB) and the remote client (a real cowdb_server
// process), so the two cannot drift apart.

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "client/local_client.h"
#include "gtest/gtest.h"
#include "tests/util/server_process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb::client {
namespace {

using ::cowdb::testing::IsOkAndHolds;
using ::cowdb::testing::StatusIs;

constexpr uint64_t kRetain = 20;

enum class Backend { kLocal, kRemote };

std::string Name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kLocal ? "Local" : "Remote";
}

class ConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kLocal) {
      Options options;
      options.retain_versions = kRetain;
      auto c = OpenLocal(dir_.Sub("db"), options);
      ASSERT_TRUE(c.ok()) << c.status();
      db_ = *std::move(c);
      return;
    }
    ASSERT_TRUE(server_.Start(dir_.Sub("db"), {absl::StrCat("--retain_versions=", kRetain),
                                               "--scan_page_size=3", "--shutdown_grace=300ms"}));
    ConnectOptions o;
    o.target = server_.addr();
    auto c = Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    db_ = *std::move(c);
  }

  void TearDown() override {
    db_.reset();
    if (server_.running()) EXPECT_TRUE(server_.Stop());
  }

  // The keys and values of a scan, "k=v" each.
  std::vector<std::string> Scan(const ScanOptions& o) {
    std::vector<std::string> out;
    auto kvs = db_->ScanAll(o);
    EXPECT_TRUE(kvs.ok()) << kvs.status();
    if (!kvs.ok()) return out;
    for (const KeyValue& kv : *kvs) out.push_back(kv.key + "=" + kv.value);
    return out;
  }

  testing::TempDir dir_;
  testing::ServerProcess server_;
  std::unique_ptr<Client> db_;
};

TEST_P(ConformanceTest, PutGetDeleteAtVersions) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("k", "one"));
  ASSERT_OK_AND_ASSIGN(uint64_t v2, db_->Put("k", "two"));
  EXPECT_EQ(v2, v1 + 1);
  ASSERT_OK_AND_ASSIGN(Entry e, db_->Get("k"));
  EXPECT_EQ(e.value, "two");
  EXPECT_EQ(e.mod_version, v2);
  EXPECT_EQ(e.version, v2);
  ASSERT_OK_AND_ASSIGN(Entry old, db_->Get("k", v1));
  EXPECT_EQ(old.value, "one");
  EXPECT_EQ(old.version, v1);
  ASSERT_OK_AND_ASSIGN(uint64_t v3, db_->Delete("k"));
  EXPECT_THAT(db_->Get("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Get("k", v2), IsOkAndHolds(::testing::Field(&Entry::value, "two")));
  EXPECT_THAT(db_->Get("k", v3 + 5), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Put("", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Put(std::string(5000, 'k'), "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK_AND_ASSIGN(ServerStatus before, db_->Status());
  for (int i = 0; i < 3; ++i) ASSERT_OK(db_->Put("s", std::to_string(i)).status());
  ASSERT_OK_AND_ASSIGN(ServerStatus after, db_->Status());
  EXPECT_EQ(after.latest_version, before.latest_version + 3);
  EXPECT_EQ(after.commits, before.commits + 3);
  EXPECT_EQ(after.syncs, before.syncs + 3);  // one at a time: nothing to group
  // A commit's durable form is its log record: no page is written until a
  // checkpoint.
  EXPECT_EQ(after.pages_written, before.pages_written);
  EXPECT_GT(after.bytes_written, before.bytes_written);
  EXPECT_EQ(after.entries, 1u);
}

TEST_P(ConformanceTest, TransactionsReadTheirOwnWrites) {
  ASSERT_OK(db_->Put("a", "1").status());
  ASSERT_OK(db_->Put("c", "3").status());
  ASSERT_OK_AND_ASSIGN(auto txn, db_->Begin());
  const uint64_t read_version = txn->read_version();
  ASSERT_OK(txn->Put("b", "2"));
  ASSERT_OK(txn->Delete("c"));
  ASSERT_OK_AND_ASSIGN(Entry b, txn->Get("b"));
  EXPECT_EQ(b.value, "2");
  EXPECT_EQ(b.mod_version, 0u);  // not yet committed
  EXPECT_THAT(txn->Get("c"), StatusIs(absl::StatusCode::kNotFound));
  std::vector<std::string> seen;
  ASSERT_OK_AND_ASSIGN(uint64_t v, txn->Scan({}, [&](const KeyValue& kv) {
    seen.push_back(kv.key + "=" + kv.value);
    return true;
  }));
  EXPECT_EQ(v, read_version);
  EXPECT_EQ(seen, (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_THAT(txn->Count({}), IsOkAndHolds(2u));
  EXPECT_THAT(db_->Get("b"), StatusIs(absl::StatusCode::kNotFound));  // not visible outside
  ASSERT_OK_AND_ASSIGN(uint64_t committed, txn->Commit());
  EXPECT_EQ(committed, read_version + 1);
  EXPECT_THAT(txn->Put("x", "y"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Scan({}), (std::vector<std::string>{"a=1", "b=2"}));

  ASSERT_OK_AND_ASSIGN(auto rolled, db_->Begin());
  ASSERT_OK(rolled->Put("z", "26"));
  ASSERT_OK(rolled->Rollback());
  EXPECT_THAT(db_->Get("z"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(ConformanceTest, SnapshotsAtVersions) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("k", "old"));
  ASSERT_OK(db_->Put("k", "new").status());
  ASSERT_OK(db_->Put("k2", "added").status());
  TransactionOptions o;
  o.read_only = true;
  o.read_version = v1;
  ASSERT_OK_AND_ASSIGN(auto snap, db_->Begin(o));
  EXPECT_EQ(snap->read_version(), v1);
  EXPECT_THAT(snap->Get("k"), IsOkAndHolds(::testing::Field(&Entry::value, "old")));
  EXPECT_THAT(snap->Get("k2"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(snap->Put("k", "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ScanOptions at;
  at.at = v1;
  EXPECT_EQ(Scan(at), (std::vector<std::string>{"k=old"}));
  EXPECT_THAT(db_->Count({}, v1), IsOkAndHolds(1u));
  EXPECT_THAT(db_->Count({}), IsOkAndHolds(2u));
}

TEST_P(ConformanceTest, ConflictsAbortAndRunTransactionRetries) {
  ASSERT_OK(db_->Put("k", "0").status());
  // Serializable: a read that changed aborts the commit.
  ASSERT_OK_AND_ASSIGN(auto t1, db_->Begin());
  ASSERT_OK(t1->Get("k").status());
  ASSERT_OK(db_->Put("k", "1").status());
  ASSERT_OK(t1->Put("other", "x"));
  EXPECT_THAT(t1->Commit(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(db_->Get("other"), StatusIs(absl::StatusCode::kNotFound));
  // Snapshot isolation: only written keys conflict.
  TransactionOptions si;
  si.snapshot_isolation = true;
  ASSERT_OK_AND_ASSIGN(auto t2, db_->Begin(si));
  ASSERT_OK(t2->Get("k").status());
  ASSERT_OK(db_->Put("k", "2").status());
  ASSERT_OK(t2->Put("other", "x"));
  EXPECT_OK(t2->Commit().status());
  ASSERT_OK_AND_ASSIGN(auto t3, db_->Begin(si));
  ASSERT_OK(t3->Put("k", "mine"));
  ASSERT_OK(db_->Put("k", "theirs").status());
  EXPECT_THAT(t3->Commit(), StatusIs(absl::StatusCode::kAborted));

  // Concurrent read-modify-write increments through RunTransaction: none lost.
  ASSERT_OK(db_->Put("counter", "0").status());
  constexpr int kThreads = 4, kIncrements = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        absl::StatusOr<uint64_t> v = RunTransaction(*db_, {}, [](Transaction& txn) {
          absl::StatusOr<Entry> e = txn.Get("counter");
          if (!e.ok()) return e.status();
          return txn.Put("counter", std::to_string(std::stoi(e->value) + 1));
        }, /*max_attempts=*/100);
        if (!v.ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(db_->Get("counter"), IsOkAndHolds(::testing::Field(
                                       &Entry::value, std::to_string(kThreads * kIncrements))));
}

TEST_P(ConformanceTest, CompareAndSwapTxn) {
  TxnRequest create;
  create.compares.push_back({"lock", Compare::Target::kExists, Compare::Op::kEqual, "", 0, false});
  create.success = {TxnOp::Put("lock", "alice")};
  create.failure = {TxnOp::Get("lock")};
  ASSERT_OK_AND_ASSIGN(TxnResult r1, db_->Txn(create));
  EXPECT_TRUE(r1.succeeded);
  ASSERT_OK_AND_ASSIGN(Entry lock, db_->Get("lock"));
  EXPECT_EQ(lock.mod_version, r1.version);

  create.success = {TxnOp::Put("lock", "bob")};
  ASSERT_OK_AND_ASSIGN(TxnResult r2, db_->Txn(create));
  EXPECT_FALSE(r2.succeeded);
  ASSERT_EQ(r2.gets.size(), 1u);
  EXPECT_EQ(r2.gets[0].value, "alice");
  EXPECT_EQ(r2.gets[0].mod_version, r1.version);

  TxnRequest by_version;
  by_version.compares.push_back(
      {"lock", Compare::Target::kModVersion, Compare::Op::kEqual, "", r1.version, true});
  by_version.compares.push_back(
      {"lock", Compare::Target::kValue, Compare::Op::kEqual, "alice", 0, true});
  by_version.success = {TxnOp::Delete("lock"), TxnOp::Put("log", "released"),
                        TxnOp::Get("log"), TxnOp::Get("absent")};
  ASSERT_OK_AND_ASSIGN(TxnResult r3, db_->Txn(by_version));
  EXPECT_TRUE(r3.succeeded);
  ASSERT_EQ(r3.gets.size(), 1u);  // absent keys are omitted
  EXPECT_EQ(r3.gets[0].value, "released");
  EXPECT_THAT(db_->Get("lock"), StatusIs(absl::StatusCode::kNotFound));

  TxnRequest bad;
  bad.compares.push_back({"k", Compare::Target::kExists, Compare::Op::kLess, "", 0, true});
  EXPECT_THAT(db_->Txn(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  TxnRequest empty_key;
  empty_key.success = {TxnOp::Put("", "v")};
  EXPECT_THAT(db_->Txn(empty_key), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(ConformanceTest, ScansWithEveryOption) {
  for (const char* k : {"a", "b1", "b2", "b3", "c", "d"}) {
    ASSERT_OK(db_->Put(k, std::string("v") + k).status());
  }
  using V = std::vector<std::string>;
  EXPECT_EQ(Scan({}), (V{"a=va", "b1=vb1", "b2=vb2", "b3=vb3", "c=vc", "d=vd"}));
  EXPECT_EQ(Scan({Range::Prefix("b")}), (V{"b1=vb1", "b2=vb2", "b3=vb3"}));
  EXPECT_EQ(Scan({Range{"b2", "d", ""}}), (V{"b2=vb2", "b3=vb3", "c=vc"}));
  ScanOptions o;
  o.range = Range{"b2", "", ""};
  o.limit = 2;
  EXPECT_EQ(Scan(o), (V{"b2=vb2", "b3=vb3"}));
  o.reverse = true;
  o.range = Range{"a", "c", ""};
  EXPECT_EQ(Scan(o), (V{"b3=vb3", "b2=vb2"}));
  o.limit = 0;
  o.keys_only = true;
  EXPECT_EQ(Scan(o), (V{"b3=", "b2=", "b1=", "a="}));
  o = ScanOptions();
  o.reverse = true;
  EXPECT_EQ(Scan(o).front(), "d=vd");
  // Stopping early (the server's stream is cancelled).
  int visited = 0;
  ASSERT_OK(db_->Scan({}, [&](const KeyValue&) { return ++visited < 4; }).status());
  EXPECT_EQ(visited, 4);
  EXPECT_THAT(db_->Count(Range::Prefix("b")), IsOkAndHolds(3u));
  EXPECT_THAT(db_->Count(Range{"b", "a", ""}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->ScanAll({Range{"x", "y", "p"}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(ConformanceTest, TagsKeepVersionsDiffAndWatch) {
  ASSERT_OK_AND_ASSIGN(uint64_t tagged, db_->Put("k", "tagged"));
  ASSERT_OK(db_->Tag("release", tagged));
  ASSERT_OK_AND_ASSIGN(uint64_t untagged, db_->Put("k", "untagged"));
  for (uint64_t i = 0; i < 2 * kRetain; ++i) {
    ASSERT_OK(db_->Put("n", std::to_string(i)).status());
  }
  // Versions outside the window are released by the background reclaimer,
  // soon after the commits: wait for it.
  std::vector<VersionInfo> versions;
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK_AND_ASSIGN(versions, db_->ListVersions());
    if (versions.size() <= kRetain + 1) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(versions.size(), kRetain + 1);  // the window and the tagged version
  EXPECT_EQ(versions.front().version, tagged);
  ASSERT_OK_AND_ASSIGN(auto tags, db_->ListTags());
  EXPECT_EQ(tags, (std::map<std::string, uint64_t>{{"release", tagged}}));
  EXPECT_THAT(db_->Get("k", tagged), IsOkAndHolds(::testing::Field(&Entry::value, "tagged")));
  EXPECT_THAT(db_->Get("k", untagged), StatusIs(absl::StatusCode::kOutOfRange));

  std::vector<std::string> changes;
  ASSERT_OK_AND_ASSIGN(ServerStatus st, db_->Status());
  ASSERT_OK(db_->Diff(tagged, st.latest_version, {}, [&](const Change& c) {
    changes.push_back(c.key + ":" + c.old_value.value_or("-") + ">" + c.new_value.value_or("-"));
    return true;
  }));
  EXPECT_EQ(changes, (std::vector<std::string>{
                         "k:tagged>untagged", absl::StrCat("n:->", 2 * kRetain - 1)}));
  ASSERT_OK(db_->Untag("release"));
  EXPECT_THAT(db_->Untag("release"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Tag("t", st.latest_version + 10), StatusIs(absl::StatusCode::kNotFound));

  // A watch from the latest version sees the next commits in order.
  std::vector<std::string> events;
  std::thread watcher([&] {
    absl::Status s = db_->Watch(st.latest_version, Range::Prefix("w"), [&](const WatchEvent& e) {
      events.push_back(absl::StrCat(e.version - st.latest_version, ":", e.change.key, "=",
                                    e.change.new_value.value_or("-")));
      return events.size() < 3;
    });
    EXPECT_OK(s);
  });
  ASSERT_OK(db_->Put("w1", "a").status());
  ASSERT_OK(db_->Put("skipped", "x").status());
  ASSERT_OK(db_->Put("w2", "b").status());
  ASSERT_OK(db_->Delete("w1").status());
  watcher.join();
  EXPECT_EQ(events, (std::vector<std::string>{"1:w1=a", "3:w2=b", "4:w1=-"}));
}

// A history as text: "version:value" or "version:-" for a delete.
std::vector<std::string> Changes(const KeyHistory& h) {
  std::vector<std::string> out;
  for (const KeyChange& c : h.changes) {
    out.push_back(absl::StrCat(c.version, ":", c.value.value_or("-")));
  }
  return out;
}

TEST_P(ConformanceTest, KeyHistoryAndReadsAsOfATime) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("k", "a"));
  absl::SleepFor(absl::Milliseconds(5));
  const absl::Time between = absl::Now();
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_OK_AND_ASSIGN(uint64_t v2, db_->Put("k", "b"));
  ASSERT_OK(db_->Put("j", "neighbour").status());
  ASSERT_OK_AND_ASSIGN(uint64_t v4, db_->Delete("k"));
  ASSERT_OK_AND_ASSIGN(uint64_t v5, db_->Put("k", "c"));
  ASSERT_OK_AND_ASSIGN(KeyHistory h, db_->History("k"));
  EXPECT_EQ(Changes(h), (std::vector<std::string>{absl::StrCat(v5, ":c"), absl::StrCat(v4, ":-"),
                                                  absl::StrCat(v2, ":b"), absl::StrCat(v1, ":a")}));
  EXPECT_EQ(h.to, v5);
  EXPECT_EQ(h.complete_from, 1u);
  EXPECT_FALSE(h.more);
  ASSERT_EQ(h.changes.size(), 4u);
  EXPECT_EQ(h.changes[2].create_version, v1);
  EXPECT_EQ(h.changes[2].writes, 2u);
  HistoryOptions o;
  o.to = v4 - 1;
  o.limit = 1;
  ASSERT_OK_AND_ASSIGN(h, db_->History("k", o));
  EXPECT_EQ(Changes(h), (std::vector<std::string>{absl::StrCat(v2, ":b")}));
  EXPECT_TRUE(h.more);
  EXPECT_EQ(h.complete_from, v2);
  o = HistoryOptions();
  o.from = v5 + 1;
  EXPECT_THAT(db_->History("k", o), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->History("", {}), StatusIs(absl::StatusCode::kInvalidArgument));
  o = HistoryOptions();
  o.to = v5 + 1;
  EXPECT_THAT(db_->History("k", o), StatusIs(absl::StatusCode::kNotFound));

  // As of a time: the version that was the latest then.
  EXPECT_THAT(db_->VersionAt(between), IsOkAndHolds(v1));
  EXPECT_THAT(db_->VersionAt(absl::Now()), IsOkAndHolds(v5));
  EXPECT_THAT(db_->VersionAt(absl::UnixEpoch()), StatusIs(absl::StatusCode::kOutOfRange));
}

// Verified reads: proofs of presence and absence, digests and the chain
// between them, checked by VerifiedReader, over either client.
TEST_P(ConformanceTest, VerifiedReads) {
  ASSERT_OK(db_->Put("k", "a").status());
  ASSERT_OK(db_->Put("blob", std::string(5000, 'b')).status());  // out of line
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("j", "neighbour"));
  VerifiedReader reader(db_.get());  // trusts the first answer
  ASSERT_OK_AND_ASSIGN(VerifiedValue got, reader.Get("k"));
  EXPECT_EQ(got.value, std::optional<std::string>("a"));
  EXPECT_EQ(got.version, v1);
  ASSERT_OK_AND_ASSIGN(VersionDigest d1, db_->Digest());
  EXPECT_EQ(d1.version, v1);
  EXPECT_EQ(got.digest, d1.digest);
  ASSERT_OK_AND_ASSIGN(got, reader.Get("blob"));
  EXPECT_EQ(got.value, std::optional<std::string>(std::string(5000, 'b')));
  ASSERT_OK_AND_ASSIGN(got, reader.Get("missing"));
  EXPECT_FALSE(got.value);

  // Later versions extend the trusted digest; older ones are reached back.
  ASSERT_OK(db_->Put("k", "b").status());
  ASSERT_OK_AND_ASSIGN(uint64_t v3, db_->Delete("j"));
  ASSERT_OK_AND_ASSIGN(got, reader.Get("j"));
  EXPECT_FALSE(got.value);
  EXPECT_EQ(got.version, v3);
  EXPECT_EQ(reader.trusted()->version, v3);
  ASSERT_OK_AND_ASSIGN(got, reader.Get("k", v1));
  EXPECT_EQ(got.value, std::optional<std::string>("a"));
  ASSERT_OK_AND_ASSIGN(std::vector<DigestLink> links, db_->DigestLinks(v1, v3));
  EXPECT_THAT(VerifyChain(v1, d1.digest, links), IsOkAndHolds(reader.trusted()->digest));

  // A digest that is not this database's: nothing verifies against it.
  TrustedDigest wrong{v1, d1.digest};
  wrong.digest[0] ^= 1;
  VerifiedReader doubting(db_.get(), wrong);
  EXPECT_THAT(doubting.Get("k"), StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  EXPECT_THAT(doubting.Get("k", v1),
              StatusIs(absl::StatusCode::kDataLoss, "verification failed"));

  EXPECT_THAT(db_->ProveGet(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Digest(v3 + 5), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->DigestLinks(v3, v1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->DigestLinks(v1, v3 + 5), StatusIs(absl::StatusCode::kNotFound));
}

// Verified scans: checked part by part (a server answers at most 1,000
// keys with a proof), all at one version.
TEST_P(ConformanceTest, VerifiedScans) {
  for (int batch = 0; batch < 3; ++batch) {
    TxnRequest t;
    for (int i = 0; i < 500; ++i) {
      char key[16];
      snprintf(key, sizeof(key), "s/%05d", batch * 500 + i);
      t.success.push_back(TxnOp::Put(key, i % 50 == 0 ? std::string(3000, 'b') : key));
    }
    ASSERT_OK(db_->Txn(t).status());
  }
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Put("t", "after"));
  VerifiedReader reader(db_.get());
  std::vector<std::string> keys;
  ScanOptions o;
  o.range.prefix = "s/";
  ASSERT_OK_AND_ASSIGN(uint64_t read, reader.Scan(o, [&](const KeyValue& kv) {
    keys.push_back(kv.key);
    return true;
  }));
  EXPECT_EQ(read, v);
  ASSERT_EQ(keys.size(), 1500u);
  EXPECT_EQ(keys.front(), "s/00000");
  EXPECT_EQ(keys.back(), "s/01499");
  // A limit, a bounded range, an older version, an empty range.
  keys.clear();
  o.limit = 1200;
  o.at = v - 1;
  ASSERT_OK_AND_ASSIGN(read, reader.Scan(o, [&](const KeyValue& kv) {
    keys.push_back(kv.key);
    return true;
  }));
  EXPECT_EQ(read, v - 1);
  EXPECT_EQ(keys.size(), 1200u);
  ScanOptions none;
  none.range = Range{"u", "v", ""};
  ASSERT_OK(reader.Scan(none, [](const KeyValue&) { return true; }).status());
  ScanOptions bad;
  bad.reverse = true;
  EXPECT_THAT(reader.Scan(bad, [](const KeyValue&) { return true; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->ProveScan(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  // The raw answer: its proof covers what it returned.
  ScanOptions one;
  one.range.prefix = "s/";
  one.limit = 10;
  ASSERT_OK_AND_ASSIGN(ProvedRange r, db_->ProveScan(one));
  ASSERT_EQ(r.kvs.size(), 10u);
  EXPECT_EQ(r.proved_end, std::string("s/00009") + std::string(1, '\0'));
  EXPECT_EQ(r.kvs[3].mod_version, 1u);  // the first Txn wrote it
}

TEST_P(ConformanceTest, CheckVerifiesEveryRetainedVersionWithProgress) {
  for (int i = 0; i < 5; ++i) ASSERT_OK(db_->Put("c" + std::to_string(i), "v").status());
  ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> versions, db_->ListVersions());
  uint64_t last_done = 0, last_total = 0, calls = 0;
  ASSERT_OK_AND_ASSIGN(CheckReport r, db_->Check([&](uint64_t done, uint64_t total) {
    EXPECT_LE(done, total);
    last_done = done;
    last_total = total;
    ++calls;
  }));
  EXPECT_EQ(r.versions_checked, versions.size());
  EXPECT_GT(calls, 0u);
  EXPECT_EQ(last_done, r.versions_checked);  // the last word is the total
  EXPECT_EQ(last_total, r.versions_checked);
  EXPECT_EQ(r.pages_leaked, 0u);
  EXPECT_OK(db_->Check().status());  // without progress
}

// A hot backup is a database: opened, it holds what was committed, every
// retained version included. A second backup into the same place is
// refused.
TEST_P(ConformanceTest, BackupIsADatabaseDirectory) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("b", "one"));
  ASSERT_OK(db_->Put("b", std::string(300000, 'x')).status());  // a blob
  const std::string dir = dir_.Sub("backup");
  uint64_t last_done = 0, last_total = 0;
  ASSERT_OK(db_->Backup(dir, [&](uint64_t done, uint64_t total) {
    last_done = done;
    last_total = total;
  }));
  EXPECT_GT(last_total, 0u);
  EXPECT_EQ(last_done, last_total);
  EXPECT_THAT(db_->Backup(dir), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> copy, OpenLocal(dir, Options()));
  EXPECT_THAT(copy->Get("b", v1), IsOkAndHolds(::testing::Field(&Entry::value, "one")));
  ASSERT_OK_AND_ASSIGN(Entry latest, copy->Get("b"));
  EXPECT_EQ(latest.value.size(), 300000u);
  ASSERT_OK_AND_ASSIGN(CheckReport report, copy->Check());
  EXPECT_EQ(report.pages_leaked, 0u);
}

// Export a version to a file, import it into another database; a damaged
// file is DataLoss and writes nothing.
TEST_P(ConformanceTest, ExportAndImportAVersion) {
  ASSERT_OK(db_->Put("e1", "one").status());
  ASSERT_OK_AND_ASSIGN(uint64_t v2, db_->Put("e2", std::string(200000, 'b')));
  ASSERT_OK(db_->Put("e3", "after").status());
  const std::string file = dir_.Sub("v2.export");
  uint64_t last_done = 0;
  ASSERT_OK(db_->Export(v2, file, [&](uint64_t done, uint64_t) { last_done = done; }));
  EXPECT_GT(last_done, 0u);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> other, OpenLocal(dir_.Sub("other"), Options()));
  EXPECT_THAT(other->Import(file), IsOkAndHolds(2u));
  EXPECT_THAT(other->Get("e2"), IsOkAndHolds(::testing::Field(&Entry::value,
                                                              std::string(200000, 'b'))));
  EXPECT_THAT(other->Get("e3"), StatusIs(absl::StatusCode::kNotFound));
  // Into this database too (over the wire for the remote client).
  EXPECT_THAT(db_->Import(file), IsOkAndHolds(2u));
  { std::ofstream(dir_.Sub("bad.export")) << "not an export"; }
  ASSERT_OK_AND_ASSIGN(ServerStatus before, db_->Status());
  absl::StatusOr<uint64_t> bad = db_->Import(dir_.Sub("bad.export"));
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(bad.status().message().find(".backup-staging"), std::string::npos)
      << bad.status();
  ASSERT_OK_AND_ASSIGN(ServerStatus after, db_->Status());
  EXPECT_EQ(after.latest_version, before.latest_version);
}

// The retention window can be read and narrowed while serving: the
// reclaimer then releases what falls outside it.
TEST_P(ConformanceTest, RetentionCanBeShownAndChanged) {
  ASSERT_OK_AND_ASSIGN(Retention r, db_->GetRetention());
  EXPECT_EQ(r.retain_versions, kRetain);
  EXPECT_EQ(r.retain_seconds, 0u);
  ASSERT_OK_AND_ASSIGN(r, db_->SetRetention(3, 0));
  EXPECT_EQ(r.retain_versions, 3u);
  for (int i = 0; i < 10; ++i) ASSERT_OK(db_->Put("r", std::to_string(i)).status());
  std::vector<VersionInfo> versions;
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK_AND_ASSIGN(versions, db_->ListVersions());
    if (versions.size() <= 3) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(versions.size(), 3u);
  ASSERT_OK_AND_ASSIGN(r, db_->GetRetention());
  EXPECT_EQ(r.oldest_version, r.latest_version - 2);
  ASSERT_OK_AND_ASSIGN(r, db_->SetRetention(0, 0));  // every version from now on
  EXPECT_EQ(r.retain_versions, 0u);
}

// The engine's figures come through Status (cowdb stats).
TEST_P(ConformanceTest, StatusCarriesTheEngineFigures) {
  for (int i = 0; i < 5; ++i) ASSERT_OK(db_->Put("s" + std::to_string(i), "v").status());
  ASSERT_OK_AND_ASSIGN(ServerStatus st, db_->Status());
  EXPECT_GE(st.commits, 5u);
  EXPECT_GT(st.log_bytes, 0u);
  EXPECT_GT(st.disk_bytes_log, 0u);      // the commit log's column family
  EXPECT_GT(st.disk_bytes_records, 0u);  // version records
  EXPECT_GT(st.cache_capacity, 0u);
  EXPECT_LE(st.release_floor, st.oldest_version + 1);
  EXPECT_LE(st.disk_bytes_pages + st.disk_bytes_blobs + st.disk_bytes_log +
                st.disk_bytes_records,
            2 * st.disk_bytes + 4096);
}

// The client's history arrives in pages (64 changes, 1 MiB of values per
// message): paged and limited, it is the engine's.
TEST(HistoryPagingTest, PagesAddUpToTheEngineHistory) {
  testing::TempDir dir;
  Options options;
  options.sync = false;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(options, dir.Sub("db")));
  for (int i = 0; i < 300; ++i) {
    if (i % 7 == 3) {
      ASSERT_OK(db->Delete("k").status());
    } else {
      // Some large values: several messages per page.
      const size_t len = i % 10 == 0 ? (300 << 10) : 8;
      ASSERT_OK(db->Put("k", std::string(len, static_cast<char>('a' + i % 26))).status());
    }
    // Neighbours' writes between some of them (most of the key's changes
    // are at consecutive versions).
    if (i % 3 == 0) ASSERT_OK(db->Put(absl::StrCat("n", i % 13), "x").status());
  }
  std::unique_ptr<Client> client = WrapLocal(db.get());
  for (uint64_t limit : {0, 1, 63, 64, 65, 128, 200, 1000}) {
    for (uint64_t to : {0, 333, 397}) {
      SCOPED_TRACE(absl::StrCat("limit ", limit, " to ", to));
      cowdb::HistoryOptions eo;
      eo.limit = limit;
      if (to != 0) eo.to = to;
      ASSERT_OK_AND_ASSIGN(cowdb::KeyHistory want, db->History("k", eo));
      HistoryOptions co;
      co.limit = limit;
      if (to != 0) co.to = to;
      ASSERT_OK_AND_ASSIGN(KeyHistory got, client->History("k", co));
      ASSERT_EQ(got.changes.size(), want.changes.size());
      for (size_t i = 0; i < got.changes.size(); ++i) {
        ASSERT_EQ(got.changes[i].version, want.changes[i].version) << i;
        ASSERT_EQ(got.changes[i].value, want.changes[i].value) << i;
        ASSERT_EQ(got.changes[i].writes, want.changes[i].meta.writes) << i;
      }
      EXPECT_EQ(got.to, want.to);
      EXPECT_EQ(got.more, want.more);
      EXPECT_EQ(got.complete_from, want.complete_from);
    }
  }
}

// ---- Branches.

// A scan of a tree as text, "k=v" each.
std::vector<std::string> ScanOf(Client& db, const std::string& branch) {
  ScanOptions o;
  o.branch = branch;
  std::vector<std::string> out;
  absl::StatusOr<std::vector<KeyValue>> kvs = db.ScanAll(o);
  EXPECT_TRUE(kvs.ok()) << kvs.status();
  if (kvs.ok()) {
    for (const KeyValue& kv : *kvs) out.push_back(kv.key + "=" + kv.value);
  }
  return out;
}

TEST_P(ConformanceTest, BranchesForkWriteReadListAndDelete) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("k", "base"));
  ASSERT_OK_AND_ASSIGN(uint64_t forked, db_->Fork("dev"));
  EXPECT_EQ(forked, v1 + 1);  // a fork is a commit
  EXPECT_THAT(db_->Fork("dev"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(db_->Fork("bad name"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork("main"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork(std::string(101, 'b')), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Fork("x", TreeAt("nope")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Fork("x", TreeAt("main", forked + 10)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Fork("x", TreeAt("dev", v1)), StatusIs(absl::StatusCode::kNotFound));

  // Writes on the branch leave main as it was, and make the next versions.
  ASSERT_OK_AND_ASSIGN(uint64_t v3, db_->Put("k", "dev", WriteOptions{"dev"}));
  EXPECT_EQ(v3, forked + 1);
  ASSERT_OK_AND_ASSIGN(uint64_t v4, db_->Put("only-dev", "1", WriteOptions{"dev"}));
  ASSERT_OK(db_->Put("only-main", "1").status());
  ASSERT_OK_AND_ASSIGN(Entry main_k, db_->Get("k"));
  EXPECT_EQ(main_k.value, "base");
  EXPECT_EQ(main_k.mod_version, v1);
  ASSERT_OK_AND_ASSIGN(Entry dev_k, db_->Get("k", TreeAt("dev")));
  EXPECT_EQ(dev_k.value, "dev");
  EXPECT_EQ(dev_k.mod_version, v3);
  EXPECT_EQ(dev_k.version, v4 + 1);  // versions are global
  EXPECT_THAT(db_->Get("k", TreeAt("dev", forked)),
              IsOkAndHolds(::testing::Field(&Entry::value, "base")));
  EXPECT_THAT(db_->Get("k", TreeAt("main", v4)),
              IsOkAndHolds(::testing::Field(&Entry::value, "base")));
  EXPECT_THAT(db_->Get("k", TreeAt("dev", v1)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Get("only-main", TreeAt("dev")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(ScanOf(*db_, "dev"), (std::vector<std::string>{"k=dev", "only-dev=1"}));
  EXPECT_EQ(ScanOf(*db_, ""), (std::vector<std::string>{"k=base", "only-main=1"}));
  EXPECT_EQ(ScanOf(*db_, "main"), ScanOf(*db_, ""));
  EXPECT_THAT(db_->Count({}, TreeAt("dev")), IsOkAndHolds(2u));
  EXPECT_THAT(db_->Count(Range::Prefix("only-dev"), TreeAt("dev")), IsOkAndHolds(1u));
  EXPECT_THAT(db_->Count(Range::Prefix("only-dev"), TreeAt("dev", forked)), IsOkAndHolds(0u));
  ScanOptions old_dev;
  old_dev.branch = "dev";
  old_dev.at = forked;
  EXPECT_EQ(Scan(old_dev), (std::vector<std::string>{"k=base"}));

  // An unknown branch is NotFound for every kind of call.
  EXPECT_THAT(db_->Get("k", TreeAt("nope")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Put("k", "v", WriteOptions{"nope"}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Delete("k", WriteOptions{"nope"}), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Count({}, TreeAt("nope")), StatusIs(absl::StatusCode::kNotFound));
  ScanOptions nope;
  nope.branch = "nope";
  EXPECT_THAT(db_->ScanAll(nope), StatusIs(absl::StatusCode::kNotFound));
  TransactionOptions on_nope;
  on_nope.branch = "nope";
  EXPECT_THAT(db_->Begin(on_nope), StatusIs(absl::StatusCode::kNotFound));
  TxnRequest txn_nope;
  txn_nope.branch = "nope";
  EXPECT_THAT(db_->Txn(txn_nope), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Merge("nope", "main"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->DeleteBranch("nope"), StatusIs(absl::StatusCode::kNotFound));

  // Compare-and-swap and an interactive transaction on the branch.
  TxnRequest cas;
  cas.branch = "dev";
  cas.compares.push_back({"k", Compare::Target::kValue, Compare::Op::kEqual, "dev"});
  cas.success = {TxnOp::Put("cas", "yes"), TxnOp::Get("k")};
  ASSERT_OK_AND_ASSIGN(TxnResult r, db_->Txn(cas));
  EXPECT_TRUE(r.succeeded);
  ASSERT_EQ(r.gets.size(), 1u);
  EXPECT_EQ(r.gets[0].value, "dev");
  EXPECT_THAT(db_->Get("cas", TreeAt("dev")), IsOkAndHolds(::testing::Field(&Entry::value, "yes")));
  EXPECT_THAT(db_->Get("cas"), StatusIs(absl::StatusCode::kNotFound));
  TransactionOptions on_dev;
  on_dev.branch = "dev";
  ASSERT_OK_AND_ASSIGN(auto txn, db_->Begin(on_dev));
  EXPECT_THAT(txn->Get("k"), IsOkAndHolds(::testing::Field(&Entry::value, "dev")));
  EXPECT_THAT(txn->Count({}), IsOkAndHolds(3u));
  ScanOptions in_txn;
  in_txn.branch = "dev";
  EXPECT_THAT(txn->Scan(in_txn, [](const KeyValue&) { return true; }),
              StatusIs(absl::StatusCode::kInvalidArgument));  // the transaction's branch
  ASSERT_OK(txn->Put("txn", "1"));
  // A commit to main does not conflict with a transaction on dev.
  ASSERT_OK(db_->Put("k", "main-again").status());
  ASSERT_OK(txn->Commit().status());
  EXPECT_THAT(db_->Get("txn", TreeAt("dev")), IsOkAndHolds(::testing::Field(&Entry::value, "1")));
  EXPECT_THAT(db_->Get("txn"), StatusIs(absl::StatusCode::kNotFound));
  // Verified reads cover main only.
  EXPECT_THAT(db_->ProveScan(old_dev), StatusIs(absl::StatusCode::kFailedPrecondition));
  VerifiedReader reader(db_.get());
  EXPECT_THAT(reader.Scan(old_dev, [](const KeyValue&) { return true; }),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // Versions say which branch their commit changed; branches are listed.
  ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> versions, db_->ListVersions());
  std::map<uint64_t, std::string> branch_of;
  for (const VersionInfo& v : versions) branch_of[v.version] = v.branch;
  EXPECT_EQ(branch_of[v1], "main");
  EXPECT_EQ(branch_of[forked], "dev");
  EXPECT_EQ(branch_of[v3], "dev");
  ASSERT_OK(db_->Fork("dev/feature-1.2_x", TreeAt("dev")).status());
  ASSERT_OK_AND_ASSIGN(std::vector<BranchInfo> branches, db_->ListBranches());
  ASSERT_EQ(branches.size(), 3u);
  EXPECT_EQ(branches[0].name, "main");
  EXPECT_EQ(branches[0].entries, 2u);
  EXPECT_EQ(branches[1].name, "dev");
  EXPECT_EQ(branches[1].created, forked);
  EXPECT_EQ(branches[1].source, "main");
  EXPECT_EQ(branches[1].source_version, v1);
  EXPECT_EQ(branches[1].entries, 4u);
  EXPECT_EQ(branches[2].name, "dev/feature-1.2_x");
  EXPECT_EQ(branches[2].source, "dev");

  // Deleting a branch is a commit; its earlier trees stay readable.
  ASSERT_OK_AND_ASSIGN(ServerStatus st, db_->Status());
  ASSERT_OK_AND_ASSIGN(uint64_t deleted, db_->DeleteBranch("dev"));
  EXPECT_EQ(deleted, st.latest_version + 1);
  EXPECT_THAT(db_->Get("k", TreeAt("dev")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->Get("k", TreeAt("dev", v3)),
              IsOkAndHolds(::testing::Field(&Entry::value, "dev")));
  EXPECT_THAT(db_->DeleteBranch("dev"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->DeleteBranch("main"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(branches, db_->ListBranches());
  EXPECT_EQ(branches.size(), 2u);

  // Older trees fork too: main before it changed, and the deleted branch
  // as it was.
  ASSERT_OK_AND_ASSIGN(uint64_t old_main, db_->Fork("old-main", TreeAt("main", v1)));
  EXPECT_EQ(old_main, deleted + 1);
  EXPECT_THAT(db_->Get("k", TreeAt("old-main")),
              IsOkAndHolds(::testing::Field(&Entry::value, "base")));
  EXPECT_EQ(ScanOf(*db_, "old-main"), (std::vector<std::string>{"k=base"}));
  ASSERT_OK(db_->Fork("dev-again", TreeAt("dev", v4)).status());
  EXPECT_EQ(ScanOf(*db_, "dev-again"), (std::vector<std::string>{"k=dev", "only-dev=1"}));
  ASSERT_OK(db_->Put("k", "again", WriteOptions{"dev-again"}).status());
  EXPECT_THAT(db_->Get("k", TreeAt("dev", v4)),
              IsOkAndHolds(::testing::Field(&Entry::value, "dev")));
  EXPECT_THAT(db_->Get("k"), IsOkAndHolds(::testing::Field(&Entry::value, "main-again")));
}

// A conflict as text: "key:base/ours/theirs", "-" for absent.
std::string ConflictText(const MergeConflict& c) {
  return absl::StrCat(c.key, ":", c.base.value_or("-"), "/", c.ours.value_or("-"), "/",
                      c.theirs.value_or("-"));
}

// Merges of `from` into `into` under each policy: each with the same
// conflicts (b changed on both sides; c changed on one, deleted on the
// other), and a change only `from` made (a) and one only `into` made (d).
TEST_P(ConformanceTest, MergeSettlesConflictsUnderEachPolicy) {
  ASSERT_OK(db_->Put("a", "1").status());
  ASSERT_OK(db_->Put("b", "1").status());
  ASSERT_OK(db_->Put("c", "1").status());
  for (MergePolicy policy : {MergePolicy::kFail, MergePolicy::kOurs, MergePolicy::kTheirs}) {
    const std::string n = std::to_string(static_cast<int>(policy));
    const std::string into = "into" + n, from = "from" + n;
    ASSERT_OK(db_->Fork(into).status());
    ASSERT_OK_AND_ASSIGN(uint64_t forked, db_->Fork(from, TreeAt(into)));
    ASSERT_OK(db_->Put("a", "2", WriteOptions{from}).status());
    ASSERT_OK(db_->Put("b", "theirs", WriteOptions{from}).status());
    ASSERT_OK(db_->Delete("c", WriteOptions{from}).status());
    ASSERT_OK(db_->Put("b", "ours", WriteOptions{into}).status());
    ASSERT_OK(db_->Put("c", "ours", WriteOptions{into}).status());
    ASSERT_OK(db_->Put("d", "ours", WriteOptions{into}).status());
    ASSERT_OK_AND_ASSIGN(ServerStatus before, db_->Status());

    ASSERT_OK_AND_ASSIGN(MergeResult r, db_->Merge(from, into, policy));
    std::vector<std::string> conflicts;
    for (const MergeConflict& c : r.conflicts) conflicts.push_back(ConflictText(c));
    EXPECT_EQ(conflicts, (std::vector<std::string>{"b:1/ours/theirs", "c:1/ours/-"})) << n;
    EXPECT_EQ(r.conflict_count, 2u);
    EXPECT_EQ(r.base_branch, from);
    EXPECT_EQ(r.base_version, forked);
    ASSERT_OK_AND_ASSIGN(ServerStatus after, db_->Status());
    if (policy == MergePolicy::kFail) {
      EXPECT_FALSE(r.merged);
      EXPECT_EQ(r.changes, 0u);
      EXPECT_EQ(after.latest_version, before.latest_version);  // nothing written
      EXPECT_EQ(ScanOf(*db_, into), (std::vector<std::string>{"a=1", "b=ours", "c=ours",
                                                                "d=ours"}));
      continue;
    }
    EXPECT_TRUE(r.merged);
    EXPECT_EQ(r.version, before.latest_version + 1);
    EXPECT_EQ(after.latest_version, r.version);
    if (policy == MergePolicy::kOurs) {
      EXPECT_EQ(r.changes, 1u);
      EXPECT_EQ(ScanOf(*db_, into), (std::vector<std::string>{"a=2", "b=ours", "c=ours",
                                                                "d=ours"}));
    } else {
      EXPECT_EQ(r.changes, 3u);
      EXPECT_EQ(ScanOf(*db_, into), (std::vector<std::string>{"a=2", "b=theirs", "d=ours"}));
    }
    EXPECT_EQ(ScanOf(*db_, from), (std::vector<std::string>{"a=2", "b=theirs"}));
    // The next merge starts from this one: nothing new, no conflict.
    ASSERT_OK_AND_ASSIGN(MergeResult again, db_->Merge(from, into, MergePolicy::kFail));
    EXPECT_TRUE(again.merged);
    EXPECT_EQ(again.changes, 0u);
    EXPECT_TRUE(again.conflicts.empty());
  }
  EXPECT_EQ(ScanOf(*db_, ""), (std::vector<std::string>{"a=1", "b=1", "c=1"}));
  EXPECT_THAT(db_->Merge("from1", "from1"), StatusIs(absl::StatusCode::kInvalidArgument));
  // Two forks of main: their ancestor is the earlier fork's first tree.
  ASSERT_OK_AND_ASSIGN(MergeResult siblings, db_->Merge("into2", "into1", MergePolicy::kFail));
  EXPECT_EQ(siblings.base_branch, "into1");
  // A fork of a fork and another fork of main: none is known.
  EXPECT_THAT(db_->Merge("from1", "into2"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_P(ConformanceTest, DiffAndWatchAcrossBranches) {
  ASSERT_OK(db_->Put("k1", "a").status());
  ASSERT_OK(db_->Put("k2", "a").status());
  ASSERT_OK_AND_ASSIGN(uint64_t forked, db_->Fork("dev"));
  ASSERT_OK(db_->Put("k2", "b", WriteOptions{"dev"}).status());
  ASSERT_OK(db_->Put("k3", "c", WriteOptions{"dev"}).status());
  ASSERT_OK_AND_ASSIGN(uint64_t latest, db_->Delete("k1"));
  auto diff = [&](const TreeAt& from, const TreeAt& to, const Range& range = {}) {
    std::vector<std::string> out;
    absl::Status s = db_->Diff(from, to, range, [&](const Change& c) {
      out.push_back(c.key + ":" + c.old_value.value_or("-") + ">" + c.new_value.value_or("-"));
      return true;
    });
    EXPECT_OK(s);
    return out;
  };
  // Main to dev, both at the latest version (unset), and at an explicit one.
  const std::vector<std::string> main_to_dev = {"k1:->a", "k2:a>b", "k3:->c"};
  EXPECT_EQ(diff(TreeAt("main"), TreeAt("dev")), main_to_dev);
  EXPECT_EQ(diff(TreeAt("", latest), TreeAt("dev", latest)), main_to_dev);
  EXPECT_EQ(diff(TreeAt("dev"), TreeAt("main")),
            (std::vector<std::string>{"k1:a>-", "k2:b>a", "k3:c>-"}));
  EXPECT_EQ(diff(TreeAt("main"), TreeAt("dev"), Range::Prefix("k2")),
            (std::vector<std::string>{"k2:a>b"}));
  // One branch at two versions; a version alone is main's.
  EXPECT_EQ(diff(TreeAt("dev", forked), TreeAt("dev")),
            (std::vector<std::string>{"k2:a>b", "k3:->c"}));
  EXPECT_EQ(diff(forked, latest), (std::vector<std::string>{"k1:a>-"}));
  // At the fork, dev is main's tree.
  EXPECT_TRUE(diff(TreeAt("main", forked), TreeAt("dev", forked)).empty());
  EXPECT_THAT(db_->Diff(TreeAt("nope"), TreeAt("dev"), {}, [](const Change&) { return true; }),
              StatusIs(absl::StatusCode::kNotFound));

  // A watch of dev sees dev's commits only.
  std::vector<std::string> events;
  ASSERT_OK(db_->Watch(TreeAt("dev", forked), {}, [&](const WatchEvent& e) {
    events.push_back(absl::StrCat(e.version - forked, ":", e.change.key, "=",
                                  e.change.new_value.value_or("-")));
    return events.size() < 2;
  }));
  EXPECT_EQ(events, (std::vector<std::string>{"1:k2=b", "2:k3=c"}));
  // From the latest (unset): the watch may start after some of the
  // writes below, so write to main (never seen) and to dev until it has
  // seen one.
  std::atomic<bool> seen{false};
  std::string first_key;
  std::thread watcher([&] {
    EXPECT_OK(db_->Watch(TreeAt("dev"), {}, [&](const WatchEvent& e) {
      first_key = e.change.key;
      seen = true;
      return false;
    }));
  });
  for (int i = 0; i < 200 && !seen; ++i) {
    ASSERT_OK(db_->Put("main-only", "x").status());
    ASSERT_OK(db_->Put("w", std::to_string(i), WriteOptions{"dev"}).status());
    absl::SleepFor(absl::Milliseconds(20));
  }
  watcher.join();
  EXPECT_EQ(first_key, "w");
  EXPECT_THAT(db_->Watch(TreeAt("nope", forked), {}, [](const WatchEvent&) { return false; }),
              StatusIs(absl::StatusCode::kNotFound));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest,
                         ::testing::Values(Backend::kLocal, Backend::kRemote), Name);

}  // namespace
}  // namespace cowdb::client
