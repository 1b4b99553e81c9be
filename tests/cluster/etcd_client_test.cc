// EtcdClient against real etcd members (LocalEtcd, in
// tests/cluster/local_cluster.h): KV and compare-and-swap semantics, leases
// (expiry, keep-alive, loss), watches (order, history, resumption), failover
// when a member of three dies, and bounded, clear errors when no etcd
// answers.

#include "server/cluster/etcd_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "etcd/rpc.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/cluster/local_cluster.h"
#include "tests/cluster/shared_etcd.h"
#include "tests/util/status_matchers.h"

namespace cowdb::cluster {
namespace {

using ::cowdb::testing::EtcdInstalled;
using ::cowdb::testing::kNoEtcdSkipMessage;
using ::cowdb::testing::LocalEtcd;
using ::cowdb::testing::SharedEtcdTest;
using ::cowdb::testing::StatusIs;
using ::testing::HasSubstr;
using Compare = EtcdClient::Compare;
using Op = EtcdClient::Op;
using WatchEvent = EtcdClient::WatchEvent;

constexpr absl::Duration kTimeout = absl::Seconds(2);

// Polls `done` every 50 ms until it holds or `within` passes.
bool WaitUntil(const std::function<bool()>& done, absl::Duration within) {
  const absl::Time deadline = absl::Now() + within;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// Collects a watch's events (and its final error, if any).
class EventLog {
 public:
  EtcdClient::WatchCallback Callback() {
    return [this](absl::StatusOr<WatchEvent> e) {
      std::lock_guard<std::mutex> lock(mu_);
      if (e.ok()) {
        events_.push_back(*std::move(e));
      } else {
        error_ = e.status();
      }
      cv_.notify_all();
    };
  }
  // Waits (up to `within`) for at least `n` events; returns them all.
  std::vector<WatchEvent> WaitFor(size_t n, absl::Duration within) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(within),
                 [&] { return events_.size() >= n; });
    return events_;
  }
  // Waits (up to `within`) for an event at `revision` or later.
  std::vector<WatchEvent> WaitForRevision(int64_t revision,
                                          absl::Duration within) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(within), [&] {
      return !events_.empty() && events_.back().kv.mod_revision >= revision;
    });
    return events_;
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }
  absl::Status error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchEvent> events_;
  absl::Status error_;
};

// One etcd member for the whole suite; each test uses keys of its own.
class EtcdClientTest : public SharedEtcdTest {
 protected:
  void SetUp() override {
    SharedEtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(client_,
                         EtcdClient::Connect(etcd().endpoints(), kTimeout));
    prefix_ = absl::StrCat(
        "/test/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "/");
  }
  std::string Key(const std::string& name) const { return prefix_ + name; }

  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
};

TEST_F(EtcdClientTest, GetOfMissingKey) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("missing")));
  EXPECT_FALSE(got.kv.has_value());
  EXPECT_GT(got.revision, 0);
}

TEST_F(EtcdClientTest, PutThenGet) {
  ASSERT_OK_AND_ASSIGN(int64_t rev,
                       client_->Put(Key("k"), std::string("v\0x", 3)));
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("k")));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->key, Key("k"));
  EXPECT_EQ(got.kv->value, std::string("v\0x", 3));
  EXPECT_EQ(got.kv->mod_revision, rev);
  EXPECT_EQ(got.kv->create_revision, rev);
  EXPECT_EQ(got.kv->version, 1);
  EXPECT_EQ(got.kv->lease, 0);
  EXPECT_GE(got.revision, rev);

  ASSERT_OK_AND_ASSIGN(int64_t rev2, client_->Put(Key("k"), "w"));
  EXPECT_GT(rev2, rev);
  ASSERT_OK_AND_ASSIGN(got, client_->Get(Key("k")));
  EXPECT_EQ(got.kv->value, "w");
  EXPECT_EQ(got.kv->mod_revision, rev2);
  EXPECT_EQ(got.kv->create_revision, rev);
  EXPECT_EQ(got.kv->version, 2);
}

TEST_F(EtcdClientTest, PutIfIsCompareAndSwap) {
  // 0: the key must not exist.
  ASSERT_OK_AND_ASSIGN(bool done, client_->PutIf(Key("k"), "a", 0));
  EXPECT_TRUE(done);
  ASSERT_OK_AND_ASSIGN(done, client_->PutIf(Key("k"), "b", 0));
  EXPECT_FALSE(done);

  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("k")));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->value, "a");
  const int64_t mod = got.kv->mod_revision;

  ASSERT_OK_AND_ASSIGN(done, client_->PutIf(Key("k"), "c", mod - 1));
  EXPECT_FALSE(done);
  ASSERT_OK_AND_ASSIGN(done, client_->PutIf(Key("k"), "c", mod + 1));
  EXPECT_FALSE(done);
  ASSERT_OK_AND_ASSIGN(got, client_->Get(Key("k")));
  EXPECT_EQ(got.kv->value, "a");

  ASSERT_OK_AND_ASSIGN(done, client_->PutIf(Key("k"), "c", mod));
  EXPECT_TRUE(done);
  // The same expectation again: the swap happened, the revision moved.
  ASSERT_OK_AND_ASSIGN(done, client_->PutIf(Key("k"), "d", mod));
  EXPECT_FALSE(done);
  ASSERT_OK_AND_ASSIGN(got, client_->Get(Key("k")));
  EXPECT_EQ(got.kv->value, "c");
  EXPECT_GT(got.kv->mod_revision, mod);
}

TEST_F(EtcdClientTest, TxnAppliesAllOrNothing) {
  ASSERT_OK_AND_ASSIGN(int64_t rev_a, client_->Put(Key("a"), "1"));
  ASSERT_OK(client_->Put(Key("gone"), "x").status());

  // One false comparison among true ones: nothing is written.
  ASSERT_OK_AND_ASSIGN(
      EtcdClient::TxnResult r,
      client_->Txn({Compare::ModRevisionIs(Key("a"), rev_a),
                    Compare::ValueIs(Key("a"), "2")},
                   {Op::Put(Key("a"), "A"), Op::Put(Key("b"), "B"),
                    Op::Delete(Key("gone"))}));
  EXPECT_FALSE(r.succeeded);
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult a, client_->Get(Key("a")));
  EXPECT_EQ(a.kv->value, "1");
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult b, client_->Get(Key("b")));
  EXPECT_FALSE(b.kv.has_value());

  // All true: every op is applied, at one revision.
  ASSERT_OK_AND_ASSIGN(
      r, client_->Txn(
             {Compare::ModRevisionIs(Key("a"), rev_a),
              Compare::CreateRevisionIs(Key("a"), rev_a),
              Compare::ValueIs(Key("a"), "1"), Compare::LeaseIs(Key("a"), 0),
              Compare::CreateRevisionIs(Key("b"), 0)},
             {Op::Put(Key("a"), "A"), Op::Put(Key("b"), "B"),
              Op::Delete(Key("gone"))}));
  EXPECT_TRUE(r.succeeded);
  ASSERT_OK_AND_ASSIGN(a, client_->Get(Key("a")));
  ASSERT_OK_AND_ASSIGN(b, client_->Get(Key("b")));
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult gone, client_->Get(Key("gone")));
  EXPECT_EQ(a.kv->value, "A");
  EXPECT_EQ(b.kv->value, "B");
  EXPECT_FALSE(gone.kv.has_value());
  EXPECT_EQ(a.kv->mod_revision, r.revision);
  EXPECT_EQ(b.kv->mod_revision, r.revision);
}

TEST_F(EtcdClientTest, ValueCompareOnMissingKeyIsFalse) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::TxnResult r,
                       client_->Txn({Compare::ValueIs(Key("none"), "")},
                                    {Op::Put(Key("x"), "1")}));
  EXPECT_FALSE(r.succeeded);
}

TEST_F(EtcdClientTest, InvalidTxnIsAClearError) {
  // etcd refuses two writes of one key in a transaction.
  EXPECT_THAT(
      client_->Txn({}, {Op::Put(Key("k"), "1"), Op::Put(Key("k"), "2")}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("etcd at ", etcd().endpoints()[0], ": Txn: ")));
}

TEST_F(EtcdClientTest, LeaseExpiryDeletesItsKeys) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(2));
  EXPECT_NE(lease.id, 0);
  EXPECT_GE(lease.ttl_seconds, 2);
  EXPECT_LE(lease.expires_by, absl::Now() + absl::Seconds(lease.ttl_seconds));
  ASSERT_OK(client_->Put(Key("k"), "v", lease.id).status());
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("k")));
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->lease, lease.id);

  // No keep-alive: gone after the TTL (etcd checks expiry every 500 ms).
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<EtcdClient::GetResult> g = client_->Get(Key("k"));
        return g.ok() && !g->kv.has_value();
      },
      absl::Seconds(15)));
  EXPECT_GE(absl::Now(), lease.expires_by);
}

TEST_F(EtcdClientTest, KeepAliveHoldsTheLeaseAcrossManyTtls) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(2));
  ASSERT_OK(client_->Put(Key("k"), "v", lease.id).status());
  std::atomic<bool> lost_called{false};
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      client_->KeepAlive(lease, [&] { lost_called = true; });
  EXPECT_EQ(keeper->lease_id(), lease.id);

  // More than three TTLs.
  absl::SleepFor(absl::Seconds(3.5 * lease.ttl_seconds));
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("k")));
  EXPECT_TRUE(got.kv.has_value());
  EXPECT_FALSE(keeper->lost());
  EXPECT_FALSE(lost_called);

  // Without the keeper (not revoked), the lease lapses.
  keeper.reset();
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<EtcdClient::GetResult> g = client_->Get(Key("k"));
        return g.ok() && !g->kv.has_value();
      },
      absl::Seconds(15)));
  EXPECT_FALSE(lost_called);
}

TEST_F(EtcdClientTest, KeepAliveReportsARevokedLease) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(3));
  std::mutex mu;
  std::condition_variable cv;
  bool lost = false;
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      client_->KeepAlive(lease, [&] {
        std::lock_guard<std::mutex> lock(mu);
        lost = true;
        cv.notify_all();
      });
  ASSERT_OK(client_->LeaseRevoke(lease.id));
  // The next renewal (within TTL/3) is answered with TTL 0.
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(
      cv.wait_for(lock, std::chrono::seconds(15), [&] { return lost; }));
  EXPECT_TRUE(keeper->lost());
}

TEST_F(EtcdClientTest, PausedKeepAliveReportsLossAtTheDeadline) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(2));
  ASSERT_OK(client_->Put(Key("k"), "v", lease.id).status());
  std::atomic<bool> lost_called{false};
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      client_->KeepAlive(lease, [&] { lost_called = true; });
  absl::SleepFor(absl::Seconds(lease.ttl_seconds));  // renewed meanwhile
  keeper->PauseForTesting(true);
  EXPECT_TRUE(WaitUntil([&] { return keeper->lost(); }, absl::Seconds(15)));
  EXPECT_TRUE(lost_called);
  // etcd's view agrees: the key goes too.
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<EtcdClient::GetResult> g = client_->Get(Key("k"));
        return g.ok() && !g->kv.has_value();
      },
      absl::Seconds(15)));
}

TEST_F(EtcdClientTest, KeeperMayBeDestroyedFromItsCallback) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(2));
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper;
  {
    std::lock_guard<std::mutex> lock(mu);
    keeper = client_->KeepAlive(lease, [&] {
      std::unique_ptr<EtcdClient::LeaseKeeper> self;
      {
        std::lock_guard<std::mutex> lock(mu);
        self = std::move(keeper);
      }
      self.reset();
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      cv.notify_all();
    });
  }
  ASSERT_OK(client_->LeaseRevoke(lease.id));
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(
      cv.wait_for(lock, std::chrono::seconds(15), [&] { return done; }));
}

TEST_F(EtcdClientTest, RevokeDeletesKeysAndIsIdempotent) {
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client_->LeaseGrant(60));
  ASSERT_OK(client_->Put(Key("k"), "v", lease.id).status());
  ASSERT_OK(client_->LeaseRevoke(lease.id));
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client_->Get(Key("k")));
  EXPECT_FALSE(got.kv.has_value());
  EXPECT_OK(client_->LeaseRevoke(lease.id));
  // A put on a revoked lease is refused, naming the endpoint.
  EXPECT_THAT(
      client_->Put(Key("k"), "v", lease.id),
      StatusIs(absl::StatusCode::kNotFound,
               absl::StrCat("etcd at ", etcd().endpoints()[0], ": Put")));
}

TEST_F(EtcdClientTest, BadLeaseTtlIsInvalidArgument) {
  EXPECT_THAT(client_->LeaseGrant(0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EtcdClientTest, WatchDeliversEventsInOrder) {
  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client_->Watch(Key("w"), 0, log.Callback()));
  EXPECT_EQ(watch->endpoint(), etcd().endpoints()[0]);
  // Other keys are not seen.
  ASSERT_OK(client_->Put(Key("other"), "x").status());
  std::vector<int64_t> revisions;
  for (int i = 0; i < 20; ++i) {
    if (i % 5 == 4) {
      ASSERT_OK_AND_ASSIGN(EtcdClient::TxnResult r,
                           client_->Txn({}, {Op::Delete(Key("w"))}));
      revisions.push_back(r.revision);
    } else {
      ASSERT_OK_AND_ASSIGN(int64_t rev,
                           client_->Put(Key("w"), absl::StrCat(i)));
      revisions.push_back(rev);
    }
  }
  std::vector<WatchEvent> events = log.WaitFor(20, absl::Seconds(15));
  ASSERT_EQ(events.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(events[i].kv.key, Key("w"));
    EXPECT_EQ(events[i].kv.mod_revision, revisions[i]);
    if (i % 5 == 4) {
      EXPECT_EQ(events[i].type, WatchEvent::Type::kDelete);
    } else {
      EXPECT_EQ(events[i].type, WatchEvent::Type::kPut);
      EXPECT_EQ(events[i].kv.value, absl::StrCat(i));
    }
  }
  EXPECT_OK(log.error());
}

TEST_F(EtcdClientTest, WatchFromARevisionReplaysHistory) {
  ASSERT_OK_AND_ASSIGN(int64_t first, client_->Put(Key("w"), "1"));
  ASSERT_OK(client_->Put(Key("w"), "2").status());
  ASSERT_OK(client_->Put(Key("w"), "3").status());
  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client_->Watch(Key("w"), first + 1, log.Callback()));
  std::vector<WatchEvent> events = log.WaitFor(2, absl::Seconds(15));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.value, "2");
  EXPECT_EQ(events[1].kv.value, "3");
}

TEST_F(EtcdClientTest, DestroyedWatchDeliversNoMore) {
  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client_->Watch(Key("w"), 0, log.Callback()));
  ASSERT_OK(client_->Put(Key("w"), "1").status());
  ASSERT_EQ(log.WaitFor(1, absl::Seconds(15)).size(), 1u);
  watch.reset();
  ASSERT_OK(client_->Put(Key("w"), "2").status());
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(log.size(), 1u);
}

TEST_F(EtcdClientTest, WatchOfACompactedRevisionIsOutOfRange) {
  ASSERT_OK_AND_ASSIGN(int64_t first, client_->Put(Key("w"), "1"));
  ASSERT_OK_AND_ASSIGN(int64_t second, client_->Put(Key("w"), "2"));
  {
    // EtcdClient has no Compact; the raw stub does it.
    auto channel = grpc::CreateChannel(etcd().endpoints()[0],
                                       grpc::InsecureChannelCredentials());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    etcdserverpb::CompactionRequest req;
    req.set_revision(second);
    req.set_physical(true);
    etcdserverpb::CompactionResponse resp;
    ASSERT_TRUE(
        etcdserverpb::KV::NewStub(channel)->Compact(&ctx, req, &resp).ok());
  }
  // etcd creates the watch, then cancels it: the callback gets the error.
  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client_->Watch(Key("w"), first, log.Callback()));
  EXPECT_TRUE(WaitUntil([&] { return !log.error().ok(); }, absl::Seconds(15)));
  EXPECT_THAT(log.error(),
              StatusIs(absl::StatusCode::kOutOfRange,
                       absl::StrCat("revision ", first, " was compacted")));
  EXPECT_EQ(log.size(), 0u);
}

TEST_F(EtcdClientTest, BadWatchArgumentsAreInvalid) {
  EventLog log;
  EXPECT_THAT(client_->Watch("", 0, log.Callback()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(client_->Watch(Key("w"), -1, log.Callback()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------
// No etcd

// A port that nothing listens on.
std::string ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
}

// A socket that accepts connections (the kernel does, from its backlog)
// and never says a word: a hung server.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 16);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }
  ~SilentServer() { close(fd_); }
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
};

TEST(EtcdClientNoServerTest, ConnectFailsClearlyWhenNothingListens) {
  const std::string a = ClosedPort();
  const std::string b = ClosedPort();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Connect({a, b}, absl::Seconds(1));
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(client,
              StatusIs(absl::StatusCode::kUnavailable, "no endpoint answered"));
  EXPECT_THAT(std::string(client.status().message()), HasSubstr(a));
  EXPECT_THAT(std::string(client.status().message()), HasSubstr(b));
  EXPECT_LT(took, absl::Seconds(10));
  std::printf("Connect to two closed ports failed in %s: %s\n",
              absl::FormatDuration(took).c_str(),
              client.status().ToString().c_str());
}

TEST(EtcdClientNoServerTest, ConnectToAHungServerIsBounded) {
  SilentServer silent;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Connect({silent.address()}, absl::Seconds(1));
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(client,
              StatusIs(absl::StatusCode::kUnavailable, silent.address()));
  EXPECT_LT(took, absl::Seconds(10));
  std::printf("Connect to a silent server failed in %s: %s\n",
              absl::FormatDuration(took).c_str(),
              client.status().ToString().c_str());
}

TEST(EtcdClientNoServerTest, BadArguments) {
  EXPECT_THAT(EtcdClient::Connect({}, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(EtcdClient::Connect({"127.0.0.1:1"}, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Calls and watches on a client whose only member died fail in bounded
// time with errors that name it.
TEST(EtcdClientLossTest, CallsFailBoundedWhenEtcdDies) {
  if (!EtcdInstalled()) GTEST_SKIP() << kNoEtcdSkipMessage;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd, LocalEtcd::Start(1));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<EtcdClient> client,
      EtcdClient::Connect(etcd->endpoints(), absl::Seconds(1)));
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client->LeaseGrant(2));
  std::atomic<bool> lost{false};
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      client->KeepAlive(lease, [&] { lost = true; });
  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client->Watch("/w", 0, log.Callback()));
  ASSERT_OK(etcd->KillMember(0));

  absl::Time start = absl::Now();
  absl::StatusOr<EtcdClient::GetResult> got = client->Get("/k");
  absl::Duration took = absl::Now() - start;
  EXPECT_THAT(got,
              StatusIs(absl::StatusCode::kUnavailable, etcd->endpoints()[0]));
  EXPECT_LT(took, absl::Seconds(10));
  std::printf("Get with etcd dead failed in %s: %s\n",
              absl::FormatDuration(took).c_str(),
              got.status().ToString().c_str());

  start = absl::Now();
  EXPECT_THAT(client->Watch("/w2", 0, log.Callback()),
              StatusIs(absl::StatusCode::kUnavailable, "not created"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  // The keeper cannot renew: it reports the loss by the lease's deadline.
  EXPECT_TRUE(WaitUntil([&] { return lost.load(); }, absl::Seconds(10)));
  // The old watch keeps trying; destroying it returns promptly.
  start = absl::Now();
  watch.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

// ---------------------------------------------------------------------------
// Three members

// Which member is the raft leader (by the members' own Status), or -1.
// A member that is down answers nothing (on loopback, the connection is
// refused at once) and is passed over.
int LeaderOf(const LocalEtcd& etcd) {
  for (int i = 0; i < static_cast<int>(etcd.endpoints().size()); ++i) {
    auto channel = grpc::CreateChannel(etcd.endpoints()[i],
                                       grpc::InsecureChannelCredentials());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    etcdserverpb::StatusResponse resp;
    if (etcdserverpb::Maintenance::NewStub(channel)
            ->Status(&ctx, etcdserverpb::StatusRequest(), &resp)
            .ok() &&
        resp.leader() == resp.header().member_id()) {
      return i;
    }
  }
  return -1;
}

TEST(EtcdClientThreeMembersTest, ConnectSkipsADeadMember) {
  if (!EtcdInstalled()) GTEST_SKIP() << kNoEtcdSkipMessage;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd, LocalEtcd::Start(3));
  ASSERT_OK(etcd->KillMember(0));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient> client,
                       EtcdClient::Connect(etcd->endpoints(), kTimeout));
  EXPECT_NE(client->current_endpoint(), etcd->endpoints()[0]);
  // If member 0 led, the other two elect a leader first (about a second,
  // longer on a loaded machine); until then a call may fail "no leader".
  absl::Status put = client->Put("/k", "v").status();
  for (absl::Time end = absl::Now() + absl::Seconds(30);
       !put.ok() && absl::Now() < end;) {
    absl::SleepFor(absl::Milliseconds(200));
    put = client->Put("/k", "v").status();
  }
  ASSERT_OK(put);
}

// The loss of one member of three — first the one the client uses, then
// (after it is back) the raft leader — is invisible: calls succeed, the
// watch delivers every event once and in order, the lease stays alive.
TEST(EtcdClientThreeMembersTest, LosingOneMemberIsInvisible) {
  if (!EtcdInstalled()) GTEST_SKIP() << kNoEtcdSkipMessage;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd, LocalEtcd::Start(3));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<EtcdClient> client,
      EtcdClient::Connect(etcd->endpoints(), absl::Seconds(5)));
  ASSERT_EQ(client->current_endpoint(), etcd->endpoints()[0]);

  // The TTL and the call timeout span a leader election (1-2 s here).
  ASSERT_OK_AND_ASSIGN(EtcdClient::Lease lease, client->LeaseGrant(5));
  ASSERT_OK(client->Put("/leased", "v", lease.id).status());
  std::atomic<bool> lost{false};
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      client->KeepAlive(lease, [&] { lost = true; });

  EventLog log;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       client->Watch("/w", 0, log.Callback()));
  ASSERT_EQ(watch->endpoint(), etcd->endpoints()[0]);

  std::vector<int64_t> revisions;
  int next_value = 0;
  auto put_some = [&](int n) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<int64_t> rev =
          client->Put("/w", absl::StrCat(next_value++));
      ASSERT_OK(rev.status());
      revisions.push_back(*rev);
    }
  };
  put_some(3);
  ASSERT_EQ(log.WaitFor(3, absl::Seconds(15)).size(), 3u);

  // 1. The member that serves the client and the watch.
  ASSERT_OK(etcd->KillMember(0));
  put_some(3);
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult got, client->Get("/w"));
  EXPECT_EQ(got.kv->value, "5");
  EXPECT_NE(client->current_endpoint(), etcd->endpoints()[0]);
  ASSERT_OK_AND_ASSIGN(bool swapped, client->PutIf("/cas", "1", 0));
  EXPECT_TRUE(swapped);
  ASSERT_EQ(log.WaitForRevision(revisions.back(), absl::Seconds(15))
                .back()
                .kv.mod_revision,
            revisions.back());
  EXPECT_TRUE(
      WaitUntil([&] { return !watch->endpoint().empty(); }, absl::Seconds(10)));
  EXPECT_NE(watch->endpoint(), etcd->endpoints()[0]);

  // 2. Back to three, then the raft leader goes.
  ASSERT_OK(etcd->StartMember(0));
  const int leader = LeaderOf(*etcd);
  ASSERT_GE(leader, 0);
  std::printf("killing the raft leader, member %d (%s); the client uses %s\n",
              leader, etcd->endpoints()[leader].c_str(),
              client->current_endpoint().c_str());
  ASSERT_OK(etcd->KillMember(leader));
  put_some(3);
  ASSERT_OK_AND_ASSIGN(swapped, client->PutIf("/cas", "2", 0));
  EXPECT_FALSE(swapped);

  // Every write once, in order. (A put whose attempt failed with
  // "leader changed" may have been applied and then retried: then its
  // value shows twice, at two revisions, as a second put would.)
  std::vector<WatchEvent> events =
      log.WaitForRevision(revisions.back(), absl::Seconds(15));
  ASSERT_FALSE(events.empty());
  size_t r = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    SCOPED_TRACE(i);
    if (i > 0) {
      EXPECT_GT(events[i].kv.mod_revision, events[i - 1].kv.mod_revision);
      EXPECT_GE(std::stoi(events[i].kv.value),
                std::stoi(events[i - 1].kv.value));
    }
    if (r < revisions.size() && events[i].kv.mod_revision == revisions[r]) {
      EXPECT_EQ(events[i].kv.value, absl::StrCat(r));
      ++r;
    }
  }
  EXPECT_EQ(r, revisions.size()) << "a write's event is missing";
  EXPECT_EQ(events.back().kv.mod_revision, revisions.back());
  EXPECT_OK(log.error());

  // The keeper held the lease across both losses.
  ASSERT_OK_AND_ASSIGN(got, client->Get("/leased"));
  EXPECT_TRUE(got.kv.has_value());
  EXPECT_FALSE(lost);
  EXPECT_FALSE(keeper->lost());
}

}  // namespace
}  // namespace cowdb::cluster
