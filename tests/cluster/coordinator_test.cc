// Coordinator against a real etcd (tests/cluster/shared_etcd.h): the root
// encoding, writer acquisition (one winner per race, epoch + 1 each time),
// fencing of PublishRoot once the lease is gone, standby takeover when the
// writer's lease lapses or it resigns, and root watches.

#include "server/cluster/coordinator.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cluster/etcd_client.h"
#include "tests/cluster/shared_etcd.h"
#include "tests/util/status_matchers.h"

namespace cowdb::cluster {
namespace {

using ::cowdb::testing::SharedEtcdTest;
using ::cowdb::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(2);
constexpr absl::Duration kTtl = absl::Seconds(2);

bool WaitUntil(const std::function<bool()>& done, absl::Duration within) {
  const absl::Time deadline = absl::Now() + within;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return done();
}

// ---------------------------------------------------------------------------
// Root encoding (no etcd)

TEST(RootEncodingTest, RoundTrips) {
  for (const Root& root :
       {Root{}, Root{1, 2, 3, "10.0.0.1:7000"},
        Root{UINT64_MAX, UINT64_MAX - 1, 10, "a b=c\n\0"}, Root{7, 0, 0, ""}}) {
    ASSERT_OK_AND_ASSIGN(Root decoded, DecodeRoot(EncodeRoot(root)));
    EXPECT_EQ(decoded, root) << EncodeRoot(root);
  }
  // The format is stable: version 1 looks like this, byte for byte.
  EXPECT_EQ(EncodeRoot(Root{3, 120, 345, "10.0.0.1:7000"}),
            "cowdb.root.v1 epoch=3 checkpoint=120 log_version=345 "
            "writer=10.0.0.1:7000");
}

TEST(RootEncodingTest, RejectsWhatItDidNotWrite) {
  const char* bad[] = {
      "",
      "garbage",
      "cowdb.root.v1",
      "cowdb.root.v1 ",
      "cowdb.root.v1 epoch=1 checkpoint=2 log_version=3",
      "cowdb.root.v1 epoch=1 checkpoint=2 log_version=3 writer",
      "cowdb.root.v1 epoch=01 checkpoint=2 log_version=3 writer=",
      "cowdb.root.v1 epoch=+1 checkpoint=2 log_version=3 writer=",
      "cowdb.root.v1 epoch=-1 checkpoint=2 log_version=3 writer=",
      "cowdb.root.v1 epoch= checkpoint=2 log_version=3 writer=",
      "cowdb.root.v1 epoch=18446744073709551616 checkpoint=2 log_version=3 "
      "writer=",
      "cowdb.root.v1 epoch=1  checkpoint=2 log_version=3 writer=",
      "cowdb.root.v1 checkpoint=2 epoch=1 log_version=3 writer=",
      "cowdb.root.v1 epoch=1 checkpoint=2 log_version=3x writer=",
      "cowdb.root.v10epoch=1 checkpoint=2 log_version=3 writer=",
      "{\"epoch\":1}",
  };
  for (const char* b : bad) {
    EXPECT_THAT(DecodeRoot(b),
                StatusIs(absl::StatusCode::kDataLoss, "undecodable"))
        << b;
  }
  EXPECT_THAT(DecodeRoot("cowdb.root.v2 epoch=1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "does not read"));
  EXPECT_THAT(DecodeRoot("cowdb.root.v"),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(DecodeRoot("cowdb"), StatusIs(absl::StatusCode::kDataLoss));
}

// ---------------------------------------------------------------------------
// Against etcd

// One etcd member for the suite; each test uses a cluster of its own.
class CoordinatorTest : public SharedEtcdTest {
 protected:
  void SetUp() override {
    SharedEtcdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cluster_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_OK_AND_ASSIGN(etcd_client_, Client());
  }

  // A client of its own, as another process would have.
  static absl::StatusOr<std::shared_ptr<EtcdClient>> Client() {
    absl::StatusOr<std::unique_ptr<EtcdClient>> c =
        EtcdClient::Connect(etcd().endpoints(), kTimeout);
    if (!c.ok()) return c.status();
    return std::shared_ptr<EtcdClient>(*std::move(c));
  }
  // A coordinator of the test's cluster, over a client of its own.
  std::unique_ptr<Coordinator> NewCoordinator() {
    absl::StatusOr<std::shared_ptr<EtcdClient>> client = Client();
    EXPECT_OK(client.status());
    if (!client.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<Coordinator>> c =
        Coordinator::Create(*client, cluster_);
    EXPECT_OK(c.status());
    return c.ok() ? *std::move(c) : nullptr;
  }
  bool LeaderKeyExists(const Coordinator& c) {
    absl::StatusOr<EtcdClient::GetResult> got =
        etcd_client_->Get(c.leader_key());
    EXPECT_OK(got.status());
    return got.ok() && got->kv.has_value();
  }

  std::string cluster_;
  std::shared_ptr<EtcdClient> etcd_client_;  // for looking at the keys
};

TEST_F(CoordinatorTest, BadClusterNames) {
  for (const char* name : {"", "a/b", "a b", "\xff"}) {
    EXPECT_THAT(Coordinator::Create(etcd_client_, name),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << name;
  }
  EXPECT_THAT(Coordinator::Create(nullptr, "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CoordinatorTest, FirstWriterGetsEpochOne) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  EXPECT_EQ(a->root_key(), "/cowdb/" + cluster_ + "/root");
  EXPECT_EQ(a->leader_key(), "/cowdb/" + cluster_ + "/leader");
  ASSERT_OK_AND_ASSIGN(Root before, a->ReadRoot());
  EXPECT_EQ(before, Root{});
  EXPECT_FALSE(a->is_writer());

  ASSERT_OK_AND_ASSIGN(Root root, a->AcquireWriter("10.0.0.1:7000", kTtl));
  EXPECT_EQ(root, (Root{1, 0, 0, "10.0.0.1:7000"}));
  EXPECT_TRUE(a->is_writer());
  EXPECT_FALSE(a->lease_lost());
  ASSERT_OK_AND_ASSIGN(Root stored, a->ReadRoot());
  EXPECT_EQ(stored, root);

  // The leader key: the address, on a lease, created with the root.
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult leader,
                       etcd_client_->Get(a->leader_key()));
  ASSERT_TRUE(leader.kv.has_value());
  EXPECT_EQ(leader.kv->value, "10.0.0.1:7000");
  EXPECT_NE(leader.kv->lease, 0);
  ASSERT_OK_AND_ASSIGN(EtcdClient::GetResult root_kv,
                       etcd_client_->Get(a->root_key()));
  EXPECT_EQ(root_kv.kv->mod_revision, leader.kv->create_revision);

  // Twice: refused.
  EXPECT_THAT(
      a->AcquireWriter("10.0.0.1:7000", kTtl),
      StatusIs(absl::StatusCode::kFailedPrecondition, "already the writer"));
  EXPECT_OK(a->Resign());
  EXPECT_FALSE(a->is_writer());
  EXPECT_OK(a->Resign());  // idempotent
}

TEST_F(CoordinatorTest, SecondWriterIsRefusedNamingTheFirst) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::unique_ptr<Coordinator> b = NewCoordinator();
  ASSERT_OK(a->AcquireWriter("host-a:1", kTtl).status());
  EXPECT_THAT(b->AcquireWriter("host-b:1", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "has a live writer at \"host-a:1\""));
  EXPECT_FALSE(b->is_writer());
  ASSERT_OK_AND_ASSIGN(Root root, b->ReadRoot());
  EXPECT_EQ(root.epoch, 1u);
  EXPECT_EQ(root.writer, "host-a:1");
  EXPECT_OK(a->Resign());
}

// The invariant: racing processes never both become the writer, and each
// acquisition raises the epoch by exactly one. Contenders start a few
// milliseconds apart (random), so that one's reads often straddle
// another's acquisition, the case the leader-key comparison is for.
TEST_F(CoordinatorTest, RacingAcquisitionsHaveExactlyOneWinner) {
  constexpr int kContenders = 4;
  constexpr int kRounds = 30;
  const uint32_t seed = static_cast<uint32_t>(absl::ToUnixNanos(absl::Now()));
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  std::vector<std::unique_ptr<Coordinator>> coords;
  for (int i = 0; i < kContenders; ++i) coords.push_back(NewCoordinator());
  uint64_t epoch = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round, ", seed ", seed));
    std::mutex mu;
    std::condition_variable cv;
    bool go = false;
    std::vector<absl::StatusOr<Root>> results(kContenders,
                                              absl::UnknownError(""));
    std::vector<std::thread> threads;
    for (int i = 0; i < kContenders; ++i) {
      const absl::Duration delay = absl::Microseconds(rng() % 20000);
      threads.emplace_back([&, i, delay] {
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return go; });
        }
        absl::SleepFor(delay);
        results[i] =
            coords[i]->AcquireWriter(absl::StrCat("host-", i, ":1"), kTtl);
      });
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      go = true;
    }
    cv.notify_all();
    for (std::thread& t : threads) t.join();

    int winner = -1;
    int winners = 0;
    for (int i = 0; i < kContenders; ++i) {
      if (results[i].ok()) {
        ++winners;
        winner = i;
      } else {
        // A loser saw the winner's key, or the root it changed.
        EXPECT_TRUE(absl::IsFailedPrecondition(results[i].status()) ||
                    absl::IsAborted(results[i].status()))
            << results[i].status();
        EXPECT_FALSE(coords[i]->is_writer());
      }
    }
    ASSERT_EQ(winners, 1);
    EXPECT_EQ(results[winner]->epoch, epoch + 1);
    EXPECT_EQ(results[winner]->writer, absl::StrCat("host-", winner, ":1"));
    ASSERT_OK_AND_ASSIGN(Root stored, coords[winner]->ReadRoot());
    EXPECT_EQ(stored, *results[winner]);
    epoch = stored.epoch;
    ASSERT_OK(coords[winner]->Resign());
  }
  EXPECT_EQ(epoch, static_cast<uint64_t>(kRounds));
}

TEST_F(CoordinatorTest, PublishRootAndWatchRoot) {
  std::unique_ptr<Coordinator> writer = NewCoordinator();
  std::unique_ptr<Coordinator> replica = NewCoordinator();
  ASSERT_OK_AND_ASSIGN(Root root, writer->AcquireWriter("w:1", kTtl));

  std::mutex mu;
  std::condition_variable cv;
  std::vector<absl::StatusOr<Root>> seen;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       replica->WatchRoot([&](absl::StatusOr<Root> r) {
                         std::lock_guard<std::mutex> lock(mu);
                         seen.push_back(std::move(r));
                         cv.notify_all();
                       }));
  std::vector<Root> published = {root};
  for (uint64_t i = 1; i <= 5; ++i) {
    Root next = published.back();
    next.checkpoint = 10 * i;
    next.log_version = 10 * i + 7;
    next.writer = "ignored";  // PublishRoot sets the writer's own address
    ASSERT_OK(writer->PublishRoot(next));
    next.writer = "w:1";
    published.push_back(next);
    ASSERT_OK_AND_ASSIGN(Root stored, replica->ReadRoot());
    EXPECT_EQ(stored, next);
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(15),
                          [&] { return seen.size() >= published.size(); }));
  ASSERT_EQ(seen.size(), published.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_OK(seen[i].status());
    EXPECT_EQ(*seen[i], published[i]) << i;
  }
  lock.unlock();
  EXPECT_OK(writer->Resign());
}

TEST_F(CoordinatorTest, PublishRootChecksItsArguments) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  EXPECT_THAT(
      a->PublishRoot(Root{1, 0, 0, ""}),
      StatusIs(absl::StatusCode::kFailedPrecondition, "not the writer"));
  ASSERT_OK_AND_ASSIGN(Root root, a->AcquireWriter("a:1", kTtl));
  root.epoch += 1;
  EXPECT_THAT(a->PublishRoot(root),
              StatusIs(absl::StatusCode::kInvalidArgument, "epoch"));
  EXPECT_OK(a->Resign());
}

TEST_F(CoordinatorTest, KeepAliveHoldsTheWriterAcrossManyTtls) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::atomic<bool> lost{false};
  a->SetLeaseLostCallback([&] { lost = true; });
  ASSERT_OK_AND_ASSIGN(Root root, a->AcquireWriter("a:1", kTtl));
  absl::SleepFor(3.5 * kTtl);
  EXPECT_FALSE(a->lease_lost());
  EXPECT_FALSE(lost);
  EXPECT_TRUE(LeaderKeyExists(*a));
  root.checkpoint = 1;
  EXPECT_OK(a->PublishRoot(root));
  EXPECT_OK(a->Resign());
  EXPECT_FALSE(LeaderKeyExists(*a));
}

// The invariant: a writer whose lease lapsed cannot publish.
TEST_F(CoordinatorTest, WriterWhoseLeaseLapsedIsFenced) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::atomic<int> lost_calls{0};
  a->SetLeaseLostCallback([&] { ++lost_calls; });
  ASSERT_OK_AND_ASSIGN(Root root, a->AcquireWriter("a:1", kTtl));
  root.checkpoint = 5;
  ASSERT_OK(a->PublishRoot(root));

  a->PauseKeepAliveForTesting(true);
  EXPECT_TRUE(WaitUntil([&] { return a->lease_lost(); }, absl::Seconds(15)));
  EXPECT_EQ(lost_calls, 1);
  // etcd expires the lease by its own clock, a little after this process
  // gave it up.
  EXPECT_TRUE(
      WaitUntil([&] { return !LeaderKeyExists(*a); }, absl::Seconds(15)));

  Root later = root;
  later.checkpoint = 6;
  absl::Status s = a->PublishRoot(later);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition, "fenced: "));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("no writer holds the lease now"));
  ASSERT_OK_AND_ASSIGN(Root stored, a->ReadRoot());
  EXPECT_EQ(stored, root);
  EXPECT_EQ(lost_calls, 1);  // once per tenure
  EXPECT_OK(a->Resign());
}

// The invariant, once a standby took over: the old writer cannot publish
// over the new one's root.
TEST_F(CoordinatorTest, DeposedWriterIsFencedAfterTakeover) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::unique_ptr<Coordinator> b = NewCoordinator();
  ASSERT_OK_AND_ASSIGN(Root root_a, a->AcquireWriter("a:1", kTtl));
  a->PauseKeepAliveForTesting(true);  // as if a's process hung

  const absl::Time start = absl::Now();
  ASSERT_OK(b->WaitForVacancy(absl::Now() + absl::Seconds(20)));
  std::printf("the standby saw the vacancy after %s (TTL %s)\n",
              absl::FormatDuration(absl::Now() - start).c_str(),
              absl::FormatDuration(kTtl).c_str());
  ASSERT_OK_AND_ASSIGN(Root root_b, b->AcquireWriter("b:1", kTtl));
  EXPECT_EQ(root_b.epoch, root_a.epoch + 1);

  root_a.checkpoint = 99;
  EXPECT_THAT(a->PublishRoot(root_a),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "the writer now is \"b:1\""));
  EXPECT_TRUE(a->lease_lost());
  ASSERT_OK_AND_ASSIGN(Root stored, b->ReadRoot());
  EXPECT_EQ(stored, root_b);
  root_b.checkpoint = 100;
  EXPECT_OK(b->PublishRoot(root_b));
  EXPECT_OK(b->Resign());
}

TEST_F(CoordinatorTest, StandbyTakesOverWhenTheWriterDiesWithoutResigning) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::unique_ptr<Coordinator> b = NewCoordinator();
  ASSERT_OK_AND_ASSIGN(Root root_a, a->AcquireWriter("a:1", kTtl));
  EXPECT_THAT(b->AcquireWriter("b:1", kTtl),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  std::thread crash([&] {
    absl::SleepFor(absl::Milliseconds(500));
    a.reset();  // no Resign: the lease lapses after its TTL
  });
  const absl::Time start = absl::Now();
  absl::Status vacancy = b->WaitForVacancy(absl::Now() + absl::Seconds(20));
  const absl::Duration waited = absl::Now() - start;
  crash.join();
  ASSERT_OK(vacancy);
  std::printf("vacancy after %s (crash at 0.5 s, TTL %s)\n",
              absl::FormatDuration(waited).c_str(),
              absl::FormatDuration(kTtl).c_str());
  ASSERT_OK_AND_ASSIGN(Root root_b, b->AcquireWriter("b:1", kTtl));
  EXPECT_EQ(root_b.epoch, root_a.epoch + 1);
  EXPECT_OK(b->Resign());
}

TEST_F(CoordinatorTest, ResignHandsOverAtOnce) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::unique_ptr<Coordinator> b = NewCoordinator();
  // A long lease: only the revocation can end it within the test.
  ASSERT_OK(a->AcquireWriter("a:1", absl::Seconds(60)).status());
  std::thread resign([&] {
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_OK(a->Resign());
  });
  const absl::Time start = absl::Now();
  EXPECT_OK(b->WaitForVacancy(absl::Now() + absl::Seconds(30)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  resign.join();
  ASSERT_OK_AND_ASSIGN(Root root_b, b->AcquireWriter("b:1", kTtl));
  EXPECT_EQ(root_b.epoch, 2u);
  EXPECT_OK(b->Resign());
}

TEST_F(CoordinatorTest, WaitForVacancyReturnsAtOnceWithoutAWriter) {
  std::unique_ptr<Coordinator> b = NewCoordinator();
  EXPECT_OK(b->WaitForVacancy(absl::Now() + absl::Seconds(5)));
}

TEST_F(CoordinatorTest, WaitForVacancyEndsAtTheDeadlineOrOnCancel) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::unique_ptr<Coordinator> b = NewCoordinator();
  ASSERT_OK(a->AcquireWriter("a:1", kTtl).status());
  EXPECT_THAT(
      b->WaitForVacancy(absl::Now() + absl::Seconds(1)),
      StatusIs(absl::StatusCode::kDeadlineExceeded, "\"a:1\" still held"));

  std::thread cancel([&] {
    absl::SleepFor(absl::Milliseconds(500));
    b->CancelWaits();
  });
  EXPECT_THAT(b->WaitForVacancy(absl::Now() + absl::Seconds(60)),
              StatusIs(absl::StatusCode::kCancelled));
  cancel.join();
  EXPECT_OK(a->Resign());
}

// A server's step-down may resign from the lease-lost callback.
TEST_F(CoordinatorTest, ResignFromTheLeaseLostCallback) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  std::mutex mu;
  std::condition_variable cv;
  bool resigned = false;
  absl::Status resign_status;
  a->SetLeaseLostCallback([&] {
    absl::Status s = a->Resign();
    std::lock_guard<std::mutex> lock(mu);
    resign_status = s;
    resigned = true;
    cv.notify_all();
  });
  ASSERT_OK(a->AcquireWriter("a:1", kTtl).status());
  a->PauseKeepAliveForTesting(true);
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(
      cv.wait_for(lock, std::chrono::seconds(15), [&] { return resigned; }));
  EXPECT_OK(resign_status);
  EXPECT_FALSE(a->is_writer());
}

TEST_F(CoordinatorTest, UndecodableRootIsDataLoss) {
  std::unique_ptr<Coordinator> a = NewCoordinator();
  ASSERT_OK(etcd_client_->Put(a->root_key(), "not a root").status());
  EXPECT_THAT(a->ReadRoot(),
              StatusIs(absl::StatusCode::kDataLoss, "not a root"));
  EXPECT_THAT(a->AcquireWriter("a:1", kTtl),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(a->is_writer());
  EXPECT_FALSE(LeaderKeyExists(*a));

  std::mutex mu;
  std::vector<absl::StatusOr<Root>> seen;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdClient::WatchHandle> watch,
                       a->WatchRoot([&](absl::StatusOr<Root> r) {
                         std::lock_guard<std::mutex> lock(mu);
                         seen.push_back(std::move(r));
                       }));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(),
            1u);  // the current root, delivered before WatchRoot returns
  EXPECT_THAT(seen[0], StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace cowdb::cluster
