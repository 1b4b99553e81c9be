// The etcd face on its own (no etcd needed): lease expiry and restarts,
// what cowdb adds (reads at a tagged version below a compaction), and the
// services it does not serve. The answers etcd itself gives are checked by
// etcd_diff_test.

#include <algorithm>
#include <fstream>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/db.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/etcd/etcd.h"
#include "server/service.h"
#include "tests/util/etcd_face_server.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

namespace pb = ::etcdserverpb;

class EtcdFaceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start(uint64_t max_inflight_writes = server::etcd::EtcdOptions().max_inflight_writes) {
    Options o;
    o.retain_versions = Options::kRetainAll;
    auto db = DB::Open(o, tmp_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    server::etcd::EtcdOptions eo;
    eo.lease_file = tmp_.path() + "/leases";
    eo.lease_tick = absl::Milliseconds(50);
    eo.max_queued_watch_events = 16;  // so that a slow watch falls back
    eo.max_inflight_writes = max_inflight_writes;
    absl::Status started = face_.Start(db_.get(), eo);
    ASSERT_TRUE(started.ok()) << started;
    auto ch = face_.channel();
    kv_ = pb::KV::NewStub(ch);
    lease_ = pb::Lease::NewStub(ch);
    watch_ = pb::Watch::NewStub(ch);
    auth_stub_ = pb::Auth::NewStub(ch);
  }
  void Stop() {
    face_.Stop();
    db_.reset();
  }

  pb::PutResponse Put(const std::string& k, const std::string& v, int64_t lease = 0) {
    grpc::ClientContext ctx;
    pb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_lease(lease);
    pb::PutResponse resp;
    grpc::Status st = kv_->Put(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }
  grpc::Status Range(const std::string& k, int64_t rev, pb::RangeResponse* resp) {
    grpc::ClientContext ctx;
    pb::RangeRequest req;
    req.set_key(k);
    req.set_revision(rev);
    return kv_->Range(&ctx, req, resp);
  }
  int64_t Grant(int64_t ttl) {
    grpc::ClientContext ctx;
    pb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    pb::LeaseGrantResponse resp;
    EXPECT_TRUE(lease_->LeaseGrant(&ctx, req, &resp).ok());
    return resp.id();
  }

  cowdb::testing::TempDir tmp_;
  std::unique_ptr<DB> db_;
  testing::EtcdFaceServer face_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Lease::Stub> lease_;
  std::unique_ptr<pb::Watch::Stub> watch_;
  std::unique_ptr<pb::Auth::Stub> auth_stub_;
};

TEST_F(EtcdFaceTest, ExpiredLeaseDeletesItsKeysInOneRevision) {
  int64_t id = Grant(1);  // raised to etcd's minimum, 2 s
  ASSERT_NE(id, 0);
  Put("held/1", "a", id);
  Put("held/2", "b", id);
  Put("held/3", "c");             // no lease
  Put("held/4", "d", id);
  int64_t before = Put("held/4", "e").header().revision();  // detached
  // Wait for the expiry (2 s TTL).
  pb::RangeResponse resp;
  for (int i = 0; i < 100; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(Range("held/1", 0, &resp).ok());
    if (resp.kvs_size() == 0) break;
  }
  ASSERT_EQ(resp.kvs_size(), 0) << "the lease did not expire";
  // One new revision deleted both leased keys; the others stayed.
  EXPECT_EQ(resp.header().revision(), before + 1);
  ASSERT_TRUE(Range("held/2", 0, &resp).ok());
  EXPECT_EQ(resp.kvs_size(), 0);
  ASSERT_TRUE(Range("held/3", 0, &resp).ok());
  EXPECT_EQ(resp.kvs_size(), 1);
  ASSERT_TRUE(Range("held/4", 0, &resp).ok());
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).value(), "e");
  grpc::ClientContext ctx;
  pb::LeaseTimeToLiveRequest ttl;
  ttl.set_id(id);
  pb::LeaseTimeToLiveResponse out;
  ASSERT_TRUE(lease_->LeaseTimeToLive(&ctx, ttl, &out).ok());
  EXPECT_EQ(out.ttl(), -1);  // gone
}

TEST_F(EtcdFaceTest, LeasesAndTheirKeysSurviveARestart) {
  int64_t id = Grant(300);
  Put("k", "v", id);
  Stop();
  Start();
  grpc::ClientContext ctx;
  pb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  req.set_keys(true);
  pb::LeaseTimeToLiveResponse resp;
  ASSERT_TRUE(lease_->LeaseTimeToLive(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.grantedttl(), 300);
  ASSERT_EQ(resp.keys_size(), 1);
  EXPECT_EQ(resp.keys(0), "k");
  // Revoking after the restart still finds the key.
  grpc::ClientContext ctx2;
  pb::LeaseRevokeRequest rev;
  rev.set_id(id);
  pb::LeaseRevokeResponse rresp;
  ASSERT_TRUE(lease_->LeaseRevoke(&ctx2, rev, &rresp).ok());
  pb::RangeResponse r;
  ASSERT_TRUE(Range("k", 0, &r).ok());
  EXPECT_EQ(r.kvs_size(), 0);
}

TEST_F(EtcdFaceTest, ATaggedVersionStaysReadableBelowACompaction) {
  int64_t v1 = Put("k", "old").header().revision();
  ASSERT_TRUE(db_->Tag("before", static_cast<uint64_t>(v1)).ok());
  Put("k", "mid");
  int64_t v3 = Put("k", "new").header().revision();
  grpc::ClientContext ctx;
  pb::CompactionRequest c;
  c.set_revision(v3);
  pb::CompactionResponse cr;
  ASSERT_TRUE(kv_->Compact(&ctx, c, &cr).ok());
  pb::RangeResponse r;
  grpc::Status st = Range("k", v3 - 1, &r);  // released
  EXPECT_EQ(st.error_code(), grpc::OUT_OF_RANGE);
  EXPECT_EQ(st.error_message(), "etcdserver: mvcc: required revision has been compacted");
  ASSERT_TRUE(Range("k", v1, &r).ok());  // tagged: kept
  ASSERT_EQ(r.kvs_size(), 1);
  EXPECT_EQ(r.kvs(0).value(), "old");
}

// Watches that start now share one engine watcher; one whose client does
// not read falls behind (more than 16 events queued here), reads the
// engine with its own watcher from where its queue stopped, and still sees
// every change once, in order. A second, reading watch is not held back.
TEST_F(EtcdFaceTest, ASlowWatchFallsBackWithoutLosingEvents) {
  using Rw = grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>;
  grpc::ClientContext slow_ctx, fast_ctx;
  std::unique_ptr<Rw> slow = watch_->Watch(&slow_ctx);
  std::unique_ptr<Rw> fast = watch_->Watch(&fast_ctx);
  pb::WatchRequest create;
  create.mutable_create_request()->set_key("w/");
  create.mutable_create_request()->set_range_end("w0");
  ASSERT_TRUE(slow->Write(create));
  ASSERT_TRUE(fast->Write(create));
  pb::WatchResponse resp;
  ASSERT_TRUE(slow->Read(&resp));
  ASSERT_TRUE(resp.created());
  ASSERT_TRUE(fast->Read(&resp));
  ASSERT_TRUE(resp.created());
  // Large values fill the slow stream's flow-control window, so its
  // sender blocks and its queue overflows.
  constexpr int kPuts = 300;
  const std::string big(16 * 1024, 'v');
  std::vector<int64_t> revisions;
  for (int i = 0; i < kPuts; ++i) {
    revisions.push_back(Put(absl::StrCat("w/", i % 7), absl::StrCat(i, big)).header().revision());
  }
  auto collect = [&](Rw* rw) {
    std::vector<std::pair<int64_t, std::string>> seen;
    pb::WatchResponse r;
    while (seen.size() < kPuts && rw->Read(&r)) {
      for (const mvccpb::Event& e : r.events()) {
        seen.emplace_back(e.kv().mod_revision(), e.kv().value().substr(0, 4));
      }
    }
    return seen;
  };
  for (Rw* rw : {fast.get(), slow.get()}) {
    std::vector<std::pair<int64_t, std::string>> seen = collect(rw);
    ASSERT_EQ(seen.size(), static_cast<size_t>(kPuts));
    for (int i = 0; i < kPuts; ++i) {
      EXPECT_EQ(seen[i].first, revisions[i]) << "event " << i;
      EXPECT_EQ(seen[i].second, absl::StrCat(i, big).substr(0, 4)) << "event " << i;
    }
  }
  slow_ctx.TryCancel();
  fast_ctx.TryCancel();
}

// Under concurrent writers (group commit puts several in one revision),
// watches that start now (shared engine watcher), one from the past (its
// own) and one that disconnects midway and resumes at last-seen + 1 each
// see every change exactly once, in revision order, keys ordered within a
// revision.
TEST_F(EtcdFaceTest, WatchesUnderConcurrentWritesLoseNothingAcrossReconnects) {
  using Rw = grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>;
  using Event = std::pair<int64_t, std::string>;  // revision, key
  const int64_t start = Put("c/start", "x").header().revision() + 1;
  struct Reader {
    grpc::ClientContext ctx;
    std::unique_ptr<Rw> rw;
    std::vector<Event> seen;
  };
  auto open = [&](Reader* r, int64_t from) {
    // A lost event ends the reads at the deadline instead of hanging.
    r->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    r->rw = watch_->Watch(&r->ctx);
    pb::WatchRequest req;
    req.mutable_create_request()->set_key("c/w");
    req.mutable_create_request()->set_range_end("c/x");
    req.mutable_create_request()->set_start_revision(from);
    ASSERT_TRUE(r->rw->Write(req));
    pb::WatchResponse resp;
    ASSERT_TRUE(r->rw->Read(&resp));
    ASSERT_TRUE(resp.created());
  };
  // Reads until `n` events or the stream ends.
  auto read = [](Reader* r, size_t n) {
    pb::WatchResponse resp;
    while (r->seen.size() < n && r->rw->Read(&resp)) {
      for (const mvccpb::Event& e : resp.events()) {
        r->seen.emplace_back(e.kv().mod_revision(), e.kv().key());
      }
    }
  };
  Reader now[3], past, resumed;
  for (Reader& r : now) open(&r, 0);
  open(&past, 1);

  constexpr int kWriters = 4, kPuts = 150;
  std::vector<std::vector<Event>> acked(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPuts; ++i) {
        std::string key = absl::StrCat("c/w", w, "/", 1000 + i);
        acked[w].emplace_back(Put(key, "v").header().revision(), key);
      }
    });
  }
  // The resuming watch reads some events, drops its stream and comes back
  // at the revision after the last one it saw (events of that revision it
  // already has are not sent again).
  open(&resumed, start);
  read(&resumed, 100);
  resumed.ctx.TryCancel();
  std::vector<Event> first = resumed.seen;
  const int64_t last = first.back().first;
  while (!first.empty() && first.back().first == last) first.pop_back();  // re-read that revision whole
  Reader again;
  open(&again, last);
  for (std::thread& t : writers) t.join();

  std::vector<Event> want;
  for (const auto& a : acked) want.insert(want.end(), a.begin(), a.end());
  std::sort(want.begin(), want.end());
  const size_t n = want.size();
  for (Reader* r : {&now[0], &now[1], &now[2], &past}) {
    read(r, n);
    // A watch from revision 1 also saw c/start's revision? No: it is
    // outside the range. It saw exactly the writers' puts.
    EXPECT_EQ(r->seen, want);
  }
  read(&again, n - first.size());
  std::vector<Event> joined = first;
  joined.insert(joined.end(), again.seen.begin(), again.seen.end());
  EXPECT_EQ(joined, want);
  for (Reader* r : {&now[0], &now[1], &now[2], &past, &again}) r->ctx.TryCancel();
}

// Snapshot streams etcd's frame (what etcdctl snapshot save checks: a
// multiple of 512 bytes plus a SHA-256) around an export that cowdb's
// Import reads back.
TEST_F(EtcdFaceTest, SnapshotIsAnImportableExportInEtcdsFrame) {
  for (int i = 0; i < 100; ++i) Put(absl::StrCat("snap/", i), std::string(i, 'x'));
  auto ch = face_.channel();
  auto stub = pb::Maintenance::NewStub(ch);
  grpc::ClientContext ctx;
  auto reader = stub->Snapshot(&ctx, pb::SnapshotRequest());
  std::string bytes;
  pb::SnapshotResponse part;
  uint64_t last_remaining = UINT64_MAX;
  while (reader->Read(&part)) {
    bytes += part.blob();
    EXPECT_LT(part.remaining_bytes(), last_remaining);
    last_remaining = part.remaining_bytes();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last_remaining, 0u);
  EXPECT_EQ(bytes.size() % 512, 32u);
  std::string path = tmp_.path() + "/snapshot.db";
  {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
  }
  auto restored = DB::Open(Options(), tmp_.path() + "/restored");
  ASSERT_TRUE(restored.ok()) << restored.status();
  absl::StatusOr<uint64_t> n = (*restored)->Import(path);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 100u);
  absl::StatusOr<std::string> v = (*restored)->Get(ReadOptions(), "snap/42");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, std::string(42, 'x'));
  // A flipped byte inside the export is found by its own checksum.
  bytes[20] ^= 1;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  EXPECT_EQ((*restored)->Import(path).status().code(), absl::StatusCode::kDataLoss);
}

// Writes in flight are bounded as on the cowdb API: over the bound, etcd's
// own overload answer. 48 puts sent at once by one client that may hold 2.
TEST_F(EtcdFaceTest, WritesInFlightAreBounded) {
  Stop();
  Start(/*max_inflight_writes=*/8);
  struct Call {
    grpc::ClientContext ctx;
    pb::PutRequest req;
    pb::PutResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Call>> calls;
  std::mutex mu;
  std::condition_variable cv;
  int pending = 48;
  for (int i = 0; i < 48; ++i) {
    calls.push_back(std::make_unique<Call>());
    Call* c = calls.back().get();
    c->req.set_key("k" + std::to_string(i));
    c->req.set_value(std::string(64 << 10, 'v'));
    kv_->async()->Put(&c->ctx, &c->req, &c->resp, [&, c](grpc::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      c->status = std::move(s);
      if (--pending == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return pending == 0; });
  }
  int ok = 0, refused = 0;
  for (const auto& c : calls) {
    if (c->status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(c->status.error_code(), grpc::RESOURCE_EXHAUSTED);
      EXPECT_EQ(c->status.error_message(), "etcdserver: too many requests");
      ++refused;
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  // Once answered, the places are free again.
  Put("after", "v");
}

TEST_F(EtcdFaceTest, AuthenticateWhileAuthIsOffSaysSo) {
  grpc::ClientContext ctx;
  pb::AuthenticateRequest req;
  req.set_name("root");
  req.set_password("pw");
  pb::AuthenticateResponse resp;
  grpc::Status st = auth_stub_->Authenticate(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "etcdserver: authentication is not enabled");
}

}  // namespace
}  // namespace cowdb
