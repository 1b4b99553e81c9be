// Randomized differential test of the etcd face: the same seeded sequence
// of Range / Put / DeleteRange / Txn / Compact / lease requests goes to a
// real etcd 3.4 (started on loopback) and to cowdb's etcd face, and every
// answer is compared field by field: status code and message, or the whole
// response after normalizing what legitimately differs (cluster and member
// ids, raft term, and the revision offset: etcd's empty store is revision
// 1, cowdb's is version 0).
//
// Env: COWDB_SEED (default fixed), COWDB_ETCD_DIFF_OPS (default 3000).
// Skips when /usr/bin/etcd is missing.

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/db.h"
#include "etcd/rpc.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/util/etcd_face_server.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

namespace pb = ::etcdserverpb;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr char kEtcd[] = "/usr/bin/etcd";

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A real etcd on loopback, killed with the test.
class EtcdProcess {
 public:
  explicit EtcdProcess(const std::string& dir) {
    const int client_port = FreePort(), peer_port = FreePort();
    addr_ = absl::StrCat("127.0.0.1:", client_port);
    std::string client = "http://" + addr_;
    std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
    std::vector<std::string> args = {kEtcd,
                                     "--name=diff",
                                     "--data-dir=" + dir,
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=diff=" + peer,
                                     "--log-level=error"};
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kEtcd, argv.data());
      _exit(127);
    }
  }
  ~EtcdProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& addr() const { return addr_; }

 private:
  pid_t pid_ = -1;
  std::string addr_;
};

// Puts a message in cowdb's revision space: etcd's revisions are one
// ahead. Clears what names the cluster, and a lease's remaining TTL (the
// two servers' clocks run apart by a few milliseconds).
void Normalize(Message* m, bool from_etcd) {
  const auto* d = m->GetDescriptor();
  const auto* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string& n = f->name();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int j = 0; j < r->FieldSize(*m, f); ++j) {
          Normalize(r->MutableRepeatedMessage(m, f, j), from_etcd);
        }
      } else if (r->HasField(*m, f)) {
        Normalize(r->MutableMessage(m, f), from_etcd);
      }
      continue;
    }
    if (f->is_repeated()) {
      // etcd lists a lease's keys in map order.
      if (d->name() == "LeaseTimeToLiveResponse" && n == "keys") {
        auto* keys = r->MutableRepeatedPtrField<std::string>(m, f);
        std::sort(keys->begin(), keys->end());
      }
      continue;
    }
    if (n == "cluster_id" || n == "member_id" || n == "raft_term") {
      r->ClearField(m, f);
    } else if (from_etcd && f->cpp_type() == FieldDescriptor::CPPTYPE_INT64 &&
               (n == "revision" || n == "create_revision" || n == "mod_revision" ||
                n == "compact_revision")) {
      int64_t v = r->GetInt64(*m, f);
      if (v > 0) r->SetInt64(m, f, v - 1);
    } else if (d->name() == "LeaseTimeToLiveResponse" && n == "TTL") {
      r->ClearField(m, f);
    }
  }
}

std::string Show(const grpc::Status& st, const Message& m) {
  if (!st.ok()) return absl::StrCat("error ", st.error_code(), ": ", st.error_message());
  std::string text;
  google::protobuf::TextFormat::PrintToString(m, &text);
  return text;
}

// The two servers and the random requests sent to both.
class EtcdDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kEtcd, X_OK) != 0) GTEST_SKIP() << "SKIPPED: no " << kEtcd;
    dir_ = tmp_.path();
    etcd_ = std::make_unique<EtcdProcess>(dir_ + "/etcd");
    Options o;
    o.retain_versions = Options::kRetainAll;  // only Compact releases, as in etcd
    auto db = DB::Open(o, dir_ + "/cowdb");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    absl::Status started = face_.Start(db_.get(), server::etcd::EtcdOptions());
    ASSERT_TRUE(started.ok()) << started;
    auto cow = face_.channel();
    auto etc = grpc::CreateChannel(etcd_->addr(), grpc::InsecureChannelCredentials());
    kv_[0] = pb::KV::NewStub(etc);
    kv_[1] = pb::KV::NewStub(cow);
    lease_[0] = pb::Lease::NewStub(etc);
    lease_[1] = pb::Lease::NewStub(cow);
    watch_[0] = pb::Watch::NewStub(etc);
    watch_[1] = pb::Watch::NewStub(cow);
    // etcd serves once it has elected itself leader.
    for (int i = 0;; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
      pb::RangeRequest req;
      req.set_key("ready");
      pb::RangeResponse resp;
      if (kv_[0]->Range(&ctx, req, &resp).ok()) break;
      ASSERT_LT(i, 200) << "etcd did not start";
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  void TearDown() override {
    face_.Stop();
    db_.reset();
    etcd_.reset();
  }

  // Sends `req` to both with `call` and compares the outcomes.
  template <typename Req, typename Resp, typename Call>
  void Both(const std::string& what, const Req& req, Call call, Resp* etcd_resp = nullptr) {
    Resp resp[2];
    grpc::Status st[2];
    for (int i = 0; i < 2; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      Req copy = req;
      if (i == 1) ToCowdb(&copy);
      st[i] = call(i, &ctx, copy, &resp[i]);
      if (st[i].ok()) Normalize(&resp[i], i == 0);
    }
    ++compared_;
    std::string a = Show(st[0], resp[0]), b = Show(st[1], resp[1]);
    if (a != b) {
      std::string text;
      google::protobuf::TextFormat::PrintToString(req, &text);
      ADD_FAILURE() << "op " << compared_ << " " << what << " differs\nrequest:\n"
                    << text << "\netcd:\n" << a << "\ncowdb:\n" << b;
      ++mismatches_;
    }
    if (etcd_resp != nullptr) *etcd_resp = resp[0];
  }

  // Requests name revisions in etcd's space; cowdb's are one lower.
  static void ToCowdb(Message* m) {
    const auto* d = m->GetDescriptor();
    const auto* r = m->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (f->is_repeated()) {
          for (int j = 0; j < r->FieldSize(*m, f); ++j) {
            ToCowdb(r->MutableRepeatedMessage(m, f, j));
          }
        } else if (r->HasField(*m, f)) {
          ToCowdb(r->MutableMessage(m, f));
        }
        continue;
      }
      if (f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_INT64) continue;
      const std::string& n = f->name();
      if (n == "revision" || n == "create_revision" || n == "mod_revision" ||
          n == "min_mod_revision" || n == "max_mod_revision" ||
          n == "min_create_revision" || n == "max_create_revision") {
        if (!r->HasField(*m, f) && f->containing_oneof() != nullptr) continue;
        int64_t v = r->GetInt64(*m, f);
        if (v > 0) r->SetInt64(m, f, v - 1);
      }
    }
  }

  cowdb::testing::TempDir tmp_;
  std::string dir_;
  std::unique_ptr<EtcdProcess> etcd_;
  std::unique_ptr<DB> db_;
  testing::EtcdFaceServer face_;
  std::unique_ptr<pb::KV::Stub> kv_[2];
  std::unique_ptr<pb::Lease::Stub> lease_[2];
  std::unique_ptr<pb::Watch::Stub> watch_[2];
  int compared_ = 0;
  int mismatches_ = 0;
};

// The random generator of requests. Revisions are drawn in etcd's space,
// never 1 (etcd's empty initial revision, which cowdb cannot name: its
// version 0 reads as "latest").
class Gen {
 public:
  Gen(uint64_t seed) : rng_(seed) {}
  int Int(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Int(100) < percent; }
  std::string Key() { return absl::StrCat("k", Int(3), Int(6)); }
  std::string Value() { return absl::StrCat("v", Int(50)); }
  // A range end for `key`: one key, a prefix's end, everything after, or
  // a key bound.
  std::string RangeEnd(const std::string& key) {
    switch (Int(5)) {
      case 0:
      case 1:
        return "";
      case 2:
        return std::string(1, '\0');
      case 3: {
        std::string p = key.substr(0, 2);
        p.back()++;
        return p;
      }
      default:
        return Key();
    }
  }
  int64_t Rev(int64_t current) {
    if (Chance(50)) return 0;
    int64_t r = 2 + Int(static_cast<int>(current));  // 2 .. current + 1
    return r;
  }
  std::mt19937_64 rng_;
};

TEST_F(EtcdDiffTest, RandomRequestsAnswerAsEtcd) {
  const char* seed_env = std::getenv("COWDB_SEED");
  const char* ops_env = std::getenv("COWDB_ETCD_DIFF_OPS");
  uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10) : 20261201;
  int ops = ops_env != nullptr ? std::atoi(ops_env) : 3000;
  std::cout << "seed " << seed << ", " << ops << " ops" << std::endl;
  Gen g(seed);
  int64_t current = 1;  // etcd's revision
  int64_t compacted = 0;
  std::vector<int64_t> leases;

  auto range = [&](pb::RangeRequest* r) {
    r->set_key(g.Key());
    r->set_range_end(g.RangeEnd(r->key()));
    if (g.Chance(30)) {
      r->set_revision(g.Rev(current));  // may be compacted: both refuse
      if (g.Chance(5)) r->set_revision(current + 3);  // future
    }
    if (g.Chance(30)) r->set_limit(1 + g.Int(4));
    if (g.Chance(30)) {
      r->set_sort_order(static_cast<pb::RangeRequest::SortOrder>(g.Int(3)));
      r->set_sort_target(static_cast<pb::RangeRequest::SortTarget>(g.Int(5)));
      // Ties sort in an unspecified order in etcd: only key order is
      // compared with a limit.
      if (r->sort_target() != pb::RangeRequest::KEY) r->clear_limit();
    }
    if (g.Chance(10)) r->set_keys_only(true);
    if (g.Chance(10)) r->set_count_only(true);
    if (g.Chance(10)) r->set_min_mod_revision(g.Rev(current));
    if (g.Chance(10)) r->set_max_mod_revision(g.Rev(current));
    if (g.Chance(10)) r->set_min_create_revision(g.Rev(current));
    if (g.Chance(10)) r->set_max_create_revision(g.Rev(current));
  };
  // In a Txn, no ignore_value / ignore_lease: etcd 3.4 panics (and exits)
  // when an earlier op of the same Txn deleted the key such a put needs
  // (its applier treats the put's "key not found" as impossible). cowdb
  // answers "key not found".
  auto put = [&](pb::PutRequest* p, bool in_txn = false) {
    p->set_key(g.Key());
    p->set_value(g.Value());
    if (g.Chance(30)) p->set_prev_kv(true);
    if (!leases.empty() && g.Chance(20)) p->set_lease(leases[g.Int(leases.size())]);
    if (g.Chance(3)) p->set_lease(999);  // not granted
    if (g.Chance(5) && !in_txn) {
      p->set_ignore_value(true);
      p->clear_value();
    }
    if (g.Chance(5) && !in_txn) {
      p->set_ignore_lease(true);
      p->clear_lease();
    }
    if (g.Chance(2)) p->clear_key();  // bad input
  };
  auto del = [&](pb::DeleteRangeRequest* d) {
    d->set_key(g.Key());
    d->set_range_end(g.RangeEnd(d->key()));
    if (g.Chance(50)) d->set_prev_kv(true);
  };
  std::function<void(pb::TxnRequest*, int)> txn = [&](pb::TxnRequest* t, int depth) {
    int compares = g.Int(3);
    for (int i = 0; i < compares; ++i) {
      pb::Compare* c = t->add_compare();
      c->set_key(g.Key());
      if (g.Chance(20)) c->set_range_end(g.RangeEnd(c->key()));
      c->set_result(static_cast<pb::Compare::CompareResult>(g.Int(4)));
      c->set_target(static_cast<pb::Compare::CompareTarget>(g.Int(5)));
      switch (c->target()) {
        case pb::Compare::VERSION:
          c->set_version(g.Int(4));
          break;
        case pb::Compare::CREATE:
          c->set_create_revision(g.Rev(current));
          break;
        case pb::Compare::MOD:
          c->set_mod_revision(g.Rev(current));
          break;
        case pb::Compare::VALUE:
          c->set_value(g.Value());
          break;
        case pb::Compare::LEASE:
          c->set_lease(leases.empty() || g.Chance(50) ? 0 : leases[g.Int(leases.size())]);
          break;
        default:
          break;
      }
    }
    for (auto* ops : {t->mutable_success(), t->mutable_failure()}) {
      int n = g.Int(4);
      for (int i = 0; i < n; ++i) {
        pb::RequestOp* op = ops->Add();
        int kind = g.Int(depth < 1 ? 4 : 3);
        if (kind == 0) range(op->mutable_request_range());
        if (kind == 1) put(op->mutable_request_put(), /*in_txn=*/true);
        if (kind == 2) del(op->mutable_request_delete_range());
        if (kind == 3) txn(op->mutable_request_txn(), depth + 1);
      }
    }
  };

  for (int i = 0; i < ops && mismatches_ < 10; ++i) {
    int what = g.Int(100);
    if (what < 30) {
      pb::RangeRequest r;
      range(&r);
      Both<pb::RangeRequest, pb::RangeResponse>(
          "Range", r, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->Range(c, q, a);
          });
    } else if (what < 55) {
      pb::PutRequest p;
      put(&p);
      Both<pb::PutRequest, pb::PutResponse>(
          "Put", p, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->Put(c, q, a);
          });
    } else if (what < 65) {
      pb::DeleteRangeRequest d;
      del(&d);
      Both<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(
          "DeleteRange", d, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->DeleteRange(c, q, a);
          });
    } else if (what < 90) {
      pb::TxnRequest t;
      txn(&t, 0);
      Both<pb::TxnRequest, pb::TxnResponse>(
          "Txn", t, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->Txn(c, q, a);
          });
    } else if (what < 92) {
      if (current - 1 > compacted) {
        pb::CompactionRequest c;
        c.set_revision(compacted + 1 + g.Int(static_cast<int>(current - 1 - compacted)) + 1);
        if (c.revision() > current) c.set_revision(current);
        // Refused (at etcd's revision 2 cowdb accepts it: docs/ETCD.md).
        if (compacted > 2 && g.Chance(20)) c.set_revision(compacted);
        if (g.Chance(5)) c.set_revision(current + 2);                   // future
        if (c.revision() > compacted && c.revision() <= current) compacted = c.revision();
        Both<pb::CompactionRequest, pb::CompactionResponse>(
            "Compact", c, [&](int s, grpc::ClientContext* cx, const auto& q, auto* a) {
              return kv_[s]->Compact(cx, q, a);
            });
      }
    } else if (what < 95) {
      pb::LeaseGrantRequest l;
      l.set_id(1000 + g.Int(20));
      l.set_ttl(600);
      pb::LeaseGrantResponse out;
      Both<pb::LeaseGrantRequest, pb::LeaseGrantResponse>(
          "LeaseGrant", l,
          [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return lease_[s]->LeaseGrant(c, q, a);
          },
          &out);
      if (out.error().empty() && out.id() != 0) leases.push_back(out.id());
    } else if (what < 97) {
      pb::LeaseRevokeRequest l;
      l.set_id(leases.empty() || g.Chance(20) ? 4242 : leases[g.Int(leases.size())]);
      Both<pb::LeaseRevokeRequest, pb::LeaseRevokeResponse>(
          "LeaseRevoke", l, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return lease_[s]->LeaseRevoke(c, q, a);
          });
    } else {
      pb::LeaseTimeToLiveRequest l;
      l.set_id(leases.empty() || g.Chance(20) ? 4242 : leases[g.Int(leases.size())]);
      l.set_keys(true);
      Both<pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse>(
          "LeaseTimeToLive", l,
          [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return lease_[s]->LeaseTimeToLive(c, q, a);
          });
    }
    // Follow etcd's revision.
    grpc::ClientContext ctx;
    pb::RangeRequest probe;
    probe.set_key("k");
    probe.set_count_only(true);
    pb::RangeResponse resp;
    ASSERT_TRUE(kv_[0]->Range(&ctx, probe, &resp).ok());
    current = resp.header().revision();
  }
  std::cout << compared_ << " requests compared, " << mismatches_ << " mismatches, "
            << "final revision " << current << std::endl;
  EXPECT_EQ(mismatches_, 0);
  EXPECT_GT(current, ops / 4) << "the sequence wrote too little to mean much";
}

// Bad requests get etcd's code and message, and leave both servers
// serving the same state.
TEST_F(EtcdDiffTest, BadInputIsRefusedAsEtcdRefusesIt) {
  auto put = [&](pb::PutRequest p) {
    Both<pb::PutRequest, pb::PutResponse>(
        "Put", p, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
          return kv_[s]->Put(c, q, a);
        });
  };
  auto range = [&](pb::RangeRequest r) {
    Both<pb::RangeRequest, pb::RangeResponse>(
        "Range", r, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
          return kv_[s]->Range(c, q, a);
        });
  };
  auto txn = [&](pb::TxnRequest t) {
    Both<pb::TxnRequest, pb::TxnResponse>(
        "Txn", t, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
          return kv_[s]->Txn(c, q, a);
        });
  };
  pb::PutRequest ok;
  ok.set_key("k");
  ok.set_value("v");
  put(ok);
  pb::PutRequest p = ok;
  p.clear_key();
  put(p);  // key is not provided
  p = ok;
  p.set_ignore_value(true);
  put(p);  // value is provided
  p = ok;
  p.set_ignore_lease(true);
  p.set_lease(5);
  put(p);  // lease is provided
  p = ok;
  p.set_key("missing");
  p.clear_value();
  p.set_ignore_value(true);
  put(p);  // key not found
  p = ok;
  p.set_lease(77);
  put(p);  // requested lease not found
  p = ok;
  p.set_value(std::string(1800 * 1024, 'x'));
  put(p);  // request is too large (over 1.5 MiB, under gRPC's 2 MiB limit)
  pb::RangeRequest r;
  range(r);  // key is not provided
  r.set_key("k");
  r.set_revision(1000);
  range(r);  // future revision
  r.set_revision(-3);
  range(r);  // negative: the latest, as etcd
  pb::TxnRequest t;
  for (int i = 0; i < 129; ++i) {
    auto* c = t.add_compare();
    c->set_key("k");
    c->set_target(pb::Compare::VERSION);
  }
  txn(t);  // too many operations
  t.Clear();
  t.add_success()->mutable_request_put()->set_key("d");
  t.add_success()->mutable_request_put()->set_key("d");
  txn(t);  // duplicate key
  t.Clear();
  t.add_success()->mutable_request_put()->set_key("a1");
  auto* del = t.add_success()->mutable_request_delete_range();
  del->set_key("a");
  del->set_range_end("b");
  txn(t);  // put inside a deleted range: duplicate key
  t.Clear();
  t.add_compare();  // a compare without a key
  txn(t);
  pb::LeaseGrantRequest g;
  g.set_ttl(9000000001);
  Both<pb::LeaseGrantRequest, pb::LeaseGrantResponse>(
      "LeaseGrant", g, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
        return lease_[s]->LeaseGrant(c, q, a);
      });  // too large lease TTL
  g.set_ttl(10);
  g.set_id(4000);
  for (int i = 0; i < 2; ++i) {  // the second: lease already exists
    Both<pb::LeaseGrantRequest, pb::LeaseGrantResponse>(
        "LeaseGrant", g, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
          return lease_[s]->LeaseGrant(c, q, a);
        });
  }
  pb::CompactionRequest c;
  c.set_revision(1000);
  Both<pb::CompactionRequest, pb::CompactionResponse>(
      "Compact", c, [&](int s, grpc::ClientContext* cx, const auto& q, auto* a) {
        return kv_[s]->Compact(cx, q, a);
      });  // future revision
  // Both still serve, with the same state.
  pb::RangeRequest all;
  all.set_key(std::string(1, '\0'));
  all.set_range_end(std::string(1, '\0'));
  range(all);
  EXPECT_EQ(mismatches_, 0);
}

// Watches on both servers, under the same writes: the same events (after
// normalizing), in the same order, for every watch; the same answers to
// create, cancel and a start below the compacted revision.
TEST_F(EtcdDiffTest, WatchesSeeTheSameEvents) {
  using Rw = grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>;
  grpc::ClientContext ctx[2];
  std::unique_ptr<Rw> rw[2];
  for (int s = 0; s < 2; ++s) rw[s] = watch_[s]->Watch(&ctx[s]);

  auto create = [&](pb::WatchCreateRequest c) {
    for (int s = 0; s < 2; ++s) {
      pb::WatchRequest req;
      *req.mutable_create_request() = c;
      if (s == 1) ToCowdb(req.mutable_create_request());
      // start_revision is in etcd's space, as the other revisions.
      if (s == 1 && c.start_revision() > 0) {
        req.mutable_create_request()->set_start_revision(c.start_revision() - 1);
      }
      ASSERT_TRUE(rw[s]->Write(req));
    }
  };
  // A write, sent to both.
  auto put = [&](const std::string& k, const std::string& v) {
    pb::PutRequest p;
    p.set_key(k);
    p.set_value(v);
    Both<pb::PutRequest, pb::PutResponse>(
        "Put", p, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
          return kv_[s]->Put(c, q, a);
        });
  };
  put("a/1", "x");  // etcd revision 2
  put("a/2", "y");  // 3
  // Watch 0: prefix a/ with prev_kv, from revision 2 (history first).
  pb::WatchCreateRequest w0;
  w0.set_key("a/");
  w0.set_range_end("a0");
  w0.set_start_revision(2);
  w0.set_prev_kv(true);
  create(w0);
  // Watch 1: one key, puts only, from now.
  pb::WatchCreateRequest w1;
  w1.set_key("a/1");
  w1.add_filters(pb::WatchCreateRequest::NODELETE);
  create(w1);
  // Watch 7 (chosen id): everything from "b", from now.
  pb::WatchCreateRequest w7;
  w7.set_key("b");
  w7.set_range_end(std::string(1, '\0'));
  w7.set_watch_id(7);
  create(w7);

  std::mt19937_64 rng(7);
  for (int i = 0; i < 150; ++i) {
    std::string k = absl::StrCat(rng() % 2 ? "a/" : "b/", rng() % 4);
    if (rng() % 4 == 0) {
      pb::DeleteRangeRequest d;
      d.set_key(k);
      Both<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(
          "DeleteRange", d, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->DeleteRange(c, q, a);
          });
    } else if (rng() % 5 == 0) {  // two keys in one revision
      pb::TxnRequest t;
      auto* p1 = t.add_success()->mutable_request_put();
      p1->set_key("a/1");
      p1->set_value(absl::StrCat("t", i));
      auto* p2 = t.add_success()->mutable_request_put();
      p2->set_key("b/9");
      p2->set_value(absl::StrCat("t", i));
      Both<pb::TxnRequest, pb::TxnResponse>(
          "Txn", t, [&](int s, grpc::ClientContext* c, const auto& q, auto* a) {
            return kv_[s]->Txn(c, q, a);
          });
    } else {
      put(k, absl::StrCat("v", i));
    }
  }
  // Cancel watch 7 and read until each stream has answered that.
  for (int s = 0; s < 2; ++s) {
    pb::WatchRequest req;
    req.mutable_cancel_request()->set_watch_id(7);
    ASSERT_TRUE(rw[s]->Write(req));
  }
  // Collect: created/canceled answers in order, events per watch.
  std::vector<std::string> control[2];
  std::map<int64_t, std::vector<std::string>> events[2];
  for (int s = 0; s < 2; ++s) {
    pb::WatchResponse resp;
    while (rw[s]->Read(&resp)) {
      Normalize(&resp, s == 0);
      if (resp.created() || resp.canceled()) {
        control[s].push_back(absl::StrCat("watch ", resp.watch_id(), resp.created() ? " created" : "",
                                          resp.canceled() ? " canceled" : "", " compact ",
                                          resp.compact_revision()));
      }
      for (const mvccpb::Event& e : resp.events()) {
        std::string text;
        google::protobuf::TextFormat::PrintToString(e, &text);
        events[s][resp.watch_id()].push_back(text);
      }
      if (resp.canceled() && resp.watch_id() == 7) break;
    }
  }
  EXPECT_EQ(control[0], control[1]);
  for (int64_t id : {0, 1, 7}) {
    SCOPED_TRACE(absl::StrCat("watch ", id));
    // Events still in flight after the cancel: compare what both have.
    size_t n = std::min(events[0][id].size(), events[1][id].size());
    EXPECT_GT(n, 10u);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(events[0][id][i], events[1][id][i]) << "event " << i;
    }
  }

  // A start below the compacted revision: created, then canceled with the
  // compact revision.
  pb::CompactionRequest c;
  c.set_revision(20);
  Both<pb::CompactionRequest, pb::CompactionResponse>(
      "Compact", c, [&](int s, grpc::ClientContext* cx, const auto& q, auto* a) {
        return kv_[s]->Compact(cx, q, a);
      });
  pb::WatchCreateRequest old;
  old.set_key("a/1");
  old.set_start_revision(5);
  old.set_watch_id(9);
  create(old);
  std::string seen[2];
  int64_t compact[2] = {0, 0};
  for (int s = 0; s < 2; ++s) {
    pb::WatchResponse resp;
    while (rw[s]->Read(&resp)) {
      Normalize(&resp, s == 0);
      if (resp.watch_id() != 9) continue;
      absl::StrAppend(&seen[s], resp.created() ? "created " : "",
                      resp.canceled() ? "canceled " : "", resp.events_size(), " events; ");
      compact[s] = std::max(compact[s], resp.compact_revision());
      if (resp.canceled()) break;
    }
    rw[s]->WritesDone();
    ctx[s].TryCancel();
  }
  EXPECT_EQ(compact[1], compact[0]);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(mismatches_, 0);
}

}  // namespace
}  // namespace cowdb
