// Server benchmark: cowdb_server and etcd side by side over loopback gRPC,
// driven by the same closed-loop load generator (each client issues its
// next call when the last one completes, through gRPC's callback API, so
// 256 clients need no 256 threads; clients spread over --conns
// connections).
//
//   bazel run --config=opt //bench/server:server_bench               # all
//   bazel run --config=opt //bench/server:server_bench -- --quick    # subset
//
// Workloads: put (durable single-key write), get (one key; etcd:
// serializable Range), range10 (the first 10 keys of a random range that
// holds about 20), cas (a
// compare-and-swap on the client's own key: compare the mod revision it
// last saw, then put). Both servers run with their default durability:
// cowdb syncs every commit (group commit), etcd fsyncs its WAL per raft
// batch. Before each workload both servers settle; etcd is also compacted
// at its current revision, because etcd 3.4 otherwise copies a read buffer
// left as large as the last burst of writes (the preload, the puts) into
// every read and runs gets 2-6x slower than it can (see EtcdTarget::Settle).
// Each figure is the median of --repeats runs; prints a table of
// throughput, p50/p99 latency and the CPU time each server process used per
// operation (the servers share the machine with the load generator, so at
// high client counts CPU per operation says more than throughput) with the
// cowdb/etcd ratio, and writes CSV rows to --csv.

#include <arpa/inet.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, targets, "cowdb,etcd",
          "servers to benchmark: cowdb, etcd, cowdb-etcd (cowdb_server's etcd face), "
          "cowdb-metrics (cowdb with --metrics_listen: every RPC counted and timed), "
          "cowdb-auth (cowdb with auth enabled: every call carries a user's token and "
          "is checked against its role's permissions)");
ABSL_FLAG(std::string, workloads, "put,get,range10,cas",
          "workloads to run: put, get, range10, cas, watch (etcd API targets: "
          "1 writer, `clients` watchers, events delivered per second)");
ABSL_FLAG(std::string, clients, "1,16,64,256", "concurrent clients per row");
ABSL_FLAG(int, conns, 8, "gRPC connections the clients share (at most one per client)");
ABSL_FLAG(int, keys, 100000, "keys preloaded for get and range10");
ABSL_FLAG(double, seconds, 3, "measured seconds per run");
ABSL_FLAG(int, repeats, 3, "runs per row (the median is reported)");
ABSL_FLAG(bool, quick, false, "a quick subset: 1 and 16 clients, 1 second, 1 repeat, 10,000 keys");
ABSL_FLAG(std::string, dir, "/var/tmp", "where the servers' data directories go");
ABSL_FLAG(std::string, csv, "", "also write the results as CSV here");
ABSL_FLAG(std::string, etcd, "/usr/bin/etcd", "the etcd binary");

namespace cowdb::bench {
namespace {

constexpr size_t kValueBytes = 100;

std::string Key(uint64_t i) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull));
  return std::string(buf, 16);
}

// The end of a range that starts at benchmark key `start` and holds about
// 20 of `keys` keys: bounded, because etcd counts every key of a range
// even under a limit.
std::string RangeEnd(const std::string& start, uint64_t keys) {
  const uint64_t from = std::stoull(start, nullptr, 16);
  const uint64_t span = ~0ull / keys * 20;
  const uint64_t to = from > ~0ull - span ? ~0ull : from + span;
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(to));
  return std::string(buf, 16);
}

[[noreturn]] void Die(const std::string& msg) {
  std::cerr << "server_bench: " << msg << std::endl;
  std::exit(1);
}

void Check(const grpc::Status& s, const char* what) {
  if (!s.ok()) Die(absl::StrCat(what, ": ", s.error_message(), " (code ", s.error_code(), ")"));
}

// A port nobody listens on right now.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) Die("bind");
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

uint64_t RssKiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      uint64_t kib = 0;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kib)) {
        return 0;
      }
      return kib;
    }
  }
  return 0;
}

// Bytes the process `pid` has caused to be written to storage so far
// (/proc/PID/io write_bytes: its own writes and its threads').
uint64_t WriteBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/io"));
  for (std::string line; std::getline(in, line);) {
    uint64_t n = 0;
    if (line.rfind("write_bytes:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(12)), &n)) {
      return n;
    }
  }
  return 0;
}

// CPU time (user + system) the process `pid` has used so far, in µs.
double CpuMicros(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::vector<std::string> f = absl::StrSplit(stat.substr(stat.rfind(')') + 2), ' ');
  uint64_t utime = 0, stime = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &utime) || !absl::SimpleAtoi(f[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) * 1e6 / sysconf(_SC_CLK_TCK);
}

// CPU time this process (the load generator) has used so far, in µs.
double SelfCpuMicros() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_sec * 1e6 +
         u.ru_stime.tv_usec;
}

// The completion of one asynchronous call.
using Done = std::function<void(const grpc::Status&)>;

// Runs one unary call through a stub's callback API: `start(ctx, req,
// resp, callback)` issues it; `then(status, resp)` runs when it completes.
template <typename Req, typename Resp, typename Start, typename Then>
void Unary(Req req, Start start, Then then) {
  struct Call {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
  };
  auto* c = new Call;
  c->req = std::move(req);
  start(&c->ctx, &c->req, &c->resp, [c, then = std::move(then)](grpc::Status s) {
    then(s, c->resp);
    delete c;
  });
}

grpc::Status CompareFailed() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "cas: the compare failed");
}

// Waits for an asynchronous call issued by `issue(done)`.
grpc::Status Wait(const std::function<void(Done)>& issue) {
  absl::Notification finished;
  grpc::Status status;
  issue([&](const grpc::Status& s) {
    status = s;
    finished.Notify();
  });
  finished.WaitForNotification();
  return status;
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  }
  return n;
}

// A server process and the client side of its API.
class Target {
 public:
  virtual ~Target() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  virtual std::string name() const = 0;
  // Starts the server and connects `conns` channels.
  virtual void Start(int conns) = 0;
  virtual void Preload(int keys) = 0;
  // Brings the server to a quiet state before a workload starts: by
  // default, half a second for background work the last one left.
  virtual void Settle() { absl::SleepFor(absl::Milliseconds(500)); }
  // The calls, asynchronous: each calls `done` once it completes, on one
  // of gRPC's threads.
  virtual void Put(int conn, const std::string& key, const std::string& value, Done done) = 0;
  virtual void Get(int conn, const std::string& key, Done done) = 0;
  // For the watch workload: opens `n` watch streams on the keys "watch/..."
  // that count the events they receive into `*events`; false if the
  // target has no such API. StopWatchers ends them.
  virtual bool StartWatchers(int n, std::atomic<uint64_t>* events) { return false; }
  virtual void StopWatchers() {}
  // Up to 10 keys of [start, end).
  virtual void Range10(int conn, const std::string& start, const std::string& end,
                       Done done) = 0;
  // Puts `value` under `key` if its mod revision is still *mod; updates *mod
  // before `done` runs. A compare that failed is reported to `done` as
  // FAILED_PRECONDITION: every client swaps only its own key, so in the
  // measured loop that is a harness fault, counted with the errors.
  virtual void Cas(int conn, const std::string& key, const std::string& value, int64_t* mod,
                   Done done) = 0;
  uint64_t rss_kib() const { return RssKiB(pid_); }
  double cpu_micros() const { return CpuMicros(pid_); }
  uint64_t write_bytes() const { return WriteBytes(pid_); }
  uint64_t disk_bytes() const { return DirBytes(dir_); }

 protected:
  // Forks `argv`; stdout goes to a pipe whose read end is returned.
  int Spawn(std::vector<std::string> argv) {
    dir_ = absl::StrCat(absl::GetFlag(FLAGS_dir), "/server_bench.", name(), ".", getpid());
    std::filesystem::remove_all(dir_);
    int out[2];
    if (pipe(out) != 0) Die("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      std::vector<char*> args;
      for (auto& a : argv) {
        a = absl::StrReplaceAll(a, {{"$DIR", dir_}});
        args.push_back(a.data());
      }
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    return out[0];
  }

  static std::vector<std::shared_ptr<grpc::Channel>> Channels(const std::string& addr, int n) {
    std::vector<std::shared_ptr<grpc::Channel>> out;
    for (int i = 0; i < n; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.channel_id", i);  // distinct args: one connection each
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto ch = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
      if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20))) {
        Die(absl::StrCat("cannot connect to ", addr));
      }
      out.push_back(ch);
    }
    return out;
  }

  pid_t pid_ = -1;
  std::string dir_;
};

class CowdbTarget final : public Target {
 public:
  enum class Mode { kPlain, kMetrics, kAuth };
  explicit CowdbTarget(Mode mode = Mode::kPlain) : mode_(mode) {}

 private:
  // A Scan read to its end; deletes itself.
  class ScanCall final : public grpc::ClientReadReactor<v1::ScanResponse> {
   public:
    ScanCall(v1::KV::Stub* stub, v1::ScanRequest req, const std::string& bearer, Done done)
        : req_(std::move(req)), done_(std::move(done)) {
      if (!bearer.empty()) ctx_.AddMetadata("authorization", bearer);
      stub->async()->Scan(&ctx_, &req_, this);
      StartRead(&page_);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (ok) StartRead(&page_);
    }
    void OnDone(const grpc::Status& s) override {
      done_(s);
      delete this;
    }

   private:
    grpc::ClientContext ctx_;
    v1::ScanRequest req_;
    v1::ScanResponse page_;
    Done done_;
  };

 public:
  std::string name() const override {
    return mode_ == Mode::kMetrics ? "cowdb-metrics" : mode_ == Mode::kAuth ? "cowdb-auth" : "cowdb";
  }

  void Start(int conns) override {
    std::vector<std::string> cmd = {"server/cowdb_server", "--data_dir=$DIR",
                                    "--listen=127.0.0.1:0", "--max_transaction_ops=1000000"};
    if (mode_ == Mode::kMetrics) cmd.push_back("--metrics_listen=127.0.0.1:0");
    int fd = Spawn(cmd);
    FILE* f = fdopen(fd, "r");
    char line[256] = {0};
    if (fgets(line, sizeof(line), f) == nullptr) Die("cowdb_server did not start");
    std::string s(line);
    std::string addr = s.substr(13, s.size() - 14);
    std::vector<std::shared_ptr<grpc::Channel>> channels = Channels(addr, conns);
    for (auto& ch : channels) stubs_.push_back(v1::KV::NewStub(ch));
    if (mode_ == Mode::kAuth) EnableAuth(channels[0]);
  }

  // A user whose role allows the benchmark's keys (and a few unrelated
  // ranges, so that the check searches), auth enabled, its token kept.
  void EnableAuth(const std::shared_ptr<grpc::Channel>& channel) {
    auto auth = v1::Auth::NewStub(channel);
    auto call = [&](auto method, v1::AuthRequest req, const char* what) {
      grpc::ClientContext ctx;
      v1::AuthResponse resp;
      Check(((*auth).*method)(&ctx, req, &resp), what);
      return resp;
    };
    v1::AuthRequest req;
    req.set_user("root");
    req.set_password("root-password");
    call(&v1::Auth::Stub::UserAdd, req, "add root");
    req.set_role("root");
    call(&v1::Auth::Stub::UserGrant, req, "grant root");
    req.set_user("bench");
    req.set_password("bench-password");
    call(&v1::Auth::Stub::UserAdd, req, "add bench");
    req.set_role("bench");
    call(&v1::Auth::Stub::RoleAdd, req, "add role");
    for (const auto& [key, end] : std::vector<std::pair<std::string, std::string>>{
             {"0", "g"}, {"audit/", "audit0"}, {"config/", "config0"}, {"watch/", "watch0"}}) {
      v1::AuthRequest grant = req;
      grant.mutable_permission()->set_type(v1::Permission::READWRITE);
      grant.mutable_permission()->set_key(key);
      grant.mutable_permission()->set_range_end(end);
      call(&v1::Auth::Stub::RoleGrant, grant, "grant permission");
    }
    call(&v1::Auth::Stub::UserGrant, req, "grant role");
    v1::AuthRequest on;
    on.set_enabled(true);
    call(&v1::Auth::Stub::AuthEnable, on, "enable auth");
    bearer_ = "Bearer " + call(&v1::Auth::Stub::Authenticate, req, "authenticate").token();
  }

  // Adds the token to a call (with auth on).
  void Authorize(grpc::ClientContext* ctx) const {
    if (!bearer_.empty()) ctx->AddMetadata("authorization", bearer_);
  }

  void Preload(int keys) override {
    const std::string value(kValueBytes, 'v');
    for (int i = 0; i < keys; i += 1000) {
      grpc::ClientContext ctx;
      Authorize(&ctx);
      v1::TxnRequest req;
      for (int j = i; j < std::min(keys, i + 1000); ++j) {
        auto* put = req.add_success()->mutable_mutation()->mutable_put();
        put->set_key(Key(j));
        put->set_value(value);
      }
      v1::TxnResponse resp;
      Check(stubs_[0]->Txn(&ctx, req, &resp), "preload");
    }
  }

  void Put(int conn, const std::string& key, const std::string& value, Done done) override {
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    Unary<v1::PutRequest, v1::PutResponse>(
        std::move(req),
        [this, stub = stubs_[conn].get()](grpc::ClientContext* ctx, auto... a) {
          Authorize(ctx);
          stub->async()->Put(ctx, a...);
        },
        [done = std::move(done)](const grpc::Status& s, const v1::PutResponse&) { done(s); });
  }

  void Get(int conn, const std::string& key, Done done) override {
    v1::GetRequest req;
    req.set_key(key);
    Unary<v1::GetRequest, v1::GetResponse>(
        std::move(req),
        [this, stub = stubs_[conn].get()](grpc::ClientContext* ctx, auto... a) {
          Authorize(ctx);
          stub->async()->Get(ctx, a...);
        },
        [done = std::move(done)](const grpc::Status& s, const v1::GetResponse&) { done(s); });
  }

  void Range10(int conn, const std::string& start, const std::string& end,
               Done done) override {
    v1::ScanRequest req;
    req.mutable_range()->set_start(start);
    req.mutable_range()->set_end(end);
    req.set_limit(10);
    new ScanCall(stubs_[conn].get(), std::move(req), bearer_, std::move(done));
  }

  void Cas(int conn, const std::string& key, const std::string& value, int64_t* mod,
           Done done) override {
    v1::TxnRequest req;
    auto* c = req.add_compares();
    c->set_key(key);
    c->set_target(v1::Compare::MOD_VERSION);
    c->set_op(v1::Compare::EQUAL);
    c->set_mod_version(*mod);
    auto* put = req.add_success()->mutable_mutation()->mutable_put();
    put->set_key(key);
    put->set_value(value);
    req.add_failure()->set_get_key(key);
    Unary<v1::TxnRequest, v1::TxnResponse>(
        std::move(req), [this, stub = stubs_[conn].get()](grpc::ClientContext* ctx, auto... a) {
          Authorize(ctx);
          stub->async()->Txn(ctx, a...);
        },
        [mod, done = std::move(done)](const grpc::Status& s, const v1::TxnResponse& resp) {
          if (s.ok() && resp.succeeded()) {
            *mod = resp.version();
          } else if (s.ok()) {
            *mod = resp.gets_size() > 0 ? resp.gets(0).mod_version() : 0;
            return done(CompareFailed());
          }
          done(s);
        });
  }

 private:
  const Mode mode_;
  std::vector<std::unique_ptr<v1::KV::Stub>> stubs_;
  std::string bearer_;  // "Bearer <token>" with auth on
};

// etcd, or cowdb_server's etcd face (`cowdb_face`): the same client code.
class EtcdTarget final : public Target {
 public:
  explicit EtcdTarget(bool cowdb_face) : cowdb_face_(cowdb_face) {}
  std::string name() const override { return cowdb_face_ ? "cowdb-etcd" : "etcd"; }

  void Start(int conns) override {
    const int client_port = FreePort(), peer_port = FreePort();
    const std::string client = absl::StrCat("http://127.0.0.1:", client_port);
    const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
    int fd = cowdb_face_
                 ? Spawn({"server/cowdb_server", "--data_dir=$DIR", "--listen=127.0.0.1:0",
                          absl::StrCat("--etcd_listen=127.0.0.1:", client_port),
                          "--etcd_max_txn_ops=1024"})
                 : Spawn({absl::GetFlag(FLAGS_etcd), "--name=bench", "--data-dir=$DIR",
                          "--listen-client-urls=" + client, "--advertise-client-urls=" + client,
                          "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
                          "--initial-cluster=bench=" + peer, "--log-level=error",
                          "--quota-backend-bytes=8589934592", "--max-txn-ops=1024"});
    close(fd);
    for (auto& ch : Channels(absl::StrCat("127.0.0.1:", client_port), conns)) {
      stubs_.push_back(etcdserverpb::KV::NewStub(ch));
      watch_stubs_.push_back(etcdserverpb::Watch::NewStub(ch));
    }
    // The member serves once it has elected itself leader.
    for (int i = 0;; ++i) {
      if (Wait([&](Done d) { Put(0, "ready", "1", std::move(d)); }).ok()) break;
      if (i == 200) Die("etcd did not become ready");
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  void Preload(int keys) override {
    const std::string value(kValueBytes, 'v');
    for (int i = 0; i < keys; i += 1000) {
      grpc::ClientContext ctx;
      etcdserverpb::TxnRequest req;
      for (int j = i; j < std::min(keys, i + 1000); ++j) {
        auto* put = req.add_success()->mutable_request_put();
        put->set_key(Key(j));
        put->set_value(value);
      }
      etcdserverpb::TxnResponse resp;
      Check(stubs_[0]->Txn(&ctx, req, &resp), "preload");
    }
  }

  // etcd 3.4 copies its backend read buffer into every read transaction
  // (Range, and the compares of a Txn), and that buffer keeps the size of
  // the largest burst of writes buffered in one 100 ms backend batch (the
  // 1000-put preload Txns, the 256-client puts) until a backend commit sees
  // no puts to the key bucket; until then each get copies hundreds of KiB.
  // A compaction writes only the meta bucket and force-commits, which drops
  // the stale buffer. (etcd 3.5 shares one copy instead: etcd PR #12933.)
  void Settle() override {
    absl::SleepFor(absl::Milliseconds(250));  // the backend commits the last writes
    int64_t rev = 0;
    {
      grpc::ClientContext ctx;
      etcdserverpb::RangeRequest req;
      req.set_key("ready");
      etcdserverpb::RangeResponse resp;
      Check(stubs_[0]->Range(&ctx, req, &resp), "settle: range");
      rev = resp.header().revision();
    }
    grpc::ClientContext ctx;
    etcdserverpb::CompactionRequest req;
    req.set_revision(rev);
    req.set_physical(true);
    etcdserverpb::CompactionResponse resp;
    grpc::Status s = stubs_[0]->Compact(&ctx, req, &resp);
    // "required revision has been compacted": nothing written since the last Settle.
    if (!s.ok() && s.error_code() != grpc::StatusCode::OUT_OF_RANGE) Check(s, "settle: compact");
    absl::SleepFor(absl::Milliseconds(250));  // and the compaction's own commit
  }

  void Put(int conn, const std::string& key, const std::string& value, Done done) override {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    Unary<etcdserverpb::PutRequest, etcdserverpb::PutResponse>(
        std::move(req),
        [stub = stubs_[conn].get()](auto... a) { stub->async()->Put(a...); },
        [done = std::move(done)](const grpc::Status& s, const etcdserverpb::PutResponse&) {
          done(s);
        });
  }

  void Get(int conn, const std::string& key, Done done) override {
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    req.set_serializable(true);
    Range(conn, std::move(req), std::move(done));
  }

  void Range10(int conn, const std::string& start, const std::string& end,
               Done done) override {
    etcdserverpb::RangeRequest req;
    req.set_key(start);
    req.set_range_end(end);
    req.set_limit(10);
    req.set_serializable(true);
    Range(conn, std::move(req), std::move(done));
  }

  void Cas(int conn, const std::string& key, const std::string& value, int64_t* mod,
           Done done) override {
    etcdserverpb::TxnRequest req;
    auto* c = req.add_compare();
    c->set_key(key);
    c->set_target(etcdserverpb::Compare::MOD);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_mod_revision(*mod);
    auto* put = req.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    req.add_failure()->mutable_request_range()->set_key(key);
    Unary<etcdserverpb::TxnRequest, etcdserverpb::TxnResponse>(
        std::move(req), [stub = stubs_[conn].get()](auto... a) { stub->async()->Txn(a...); },
        [mod, done = std::move(done)](const grpc::Status& s,
                                      const etcdserverpb::TxnResponse& resp) {
          if (s.ok() && resp.succeeded()) {
            *mod = resp.header().revision();
          } else if (s.ok()) {
            if (resp.responses_size() > 0) {
              const auto& r = resp.responses(0).response_range();
              *mod = r.kvs_size() > 0 ? r.kvs(0).mod_revision() : 0;
            }
            return done(CompareFailed());
          }
          done(s);
        });
  }

 private:
  void Range(int conn, etcdserverpb::RangeRequest req, Done done) {
    Unary<etcdserverpb::RangeRequest, etcdserverpb::RangeResponse>(
        std::move(req),
        [stub = stubs_[conn].get()](auto... a) { stub->async()->Range(a...); },
        [done = std::move(done)](const grpc::Status& s, const etcdserverpb::RangeResponse&) {
          done(s);
        });
  }

  bool StartWatchers(int n, std::atomic<uint64_t>* events) override {
    absl::BlockingCounter created(n);
    for (int i = 0; i < n; ++i) {
      auto w = std::make_unique<Watcher>();
      w->stream = watch_stubs_[i % watch_stubs_.size()]->Watch(&w->ctx);
      etcdserverpb::WatchRequest req;
      req.mutable_create_request()->set_key("watch/");
      req.mutable_create_request()->set_range_end("watch0");
      if (!w->stream->Write(req)) Die("watch: cannot create");
      w->reader = std::thread([s = w->stream.get(), events, &created] {
        etcdserverpb::WatchResponse resp;
        bool first = true;
        while (s->Read(&resp)) {
          if (first) created.DecrementCount();
          first = false;
          events->fetch_add(resp.events_size(), std::memory_order_relaxed);
        }
        if (first) created.DecrementCount();
      });
      watchers_.push_back(std::move(w));
    }
    created.Wait();
    return true;
  }
  void StopWatchers() override {
    for (auto& w : watchers_) w->ctx.TryCancel();
    for (auto& w : watchers_) w->reader.join();
    watchers_.clear();
  }

 private:
  struct Watcher {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest,
                                             etcdserverpb::WatchResponse>> stream;
    std::thread reader;
  };

  const bool cowdb_face_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs_;
  std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>> watch_stubs_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
};

struct Run {
  double ops_per_sec = 0;
  double bytes_per_op = 0;  // written by the server process
  double p50_us = 0;
  double p99_us = 0;
  double server_cpu_us_per_op = 0;  // user + system time of the server process
  double client_cpu_us_per_op = 0;  // the load generator's, for comparison
  uint64_t errors = 0;
};

// One closed-loop client: it issues its next call when the last completes.
struct Client {
  Target* target;
  std::string workload;
  int conn;
  int keys;
  std::mt19937_64 rng;
  std::string cas_key;
  int64_t mod = -1;
  const std::string value = std::string(kValueBytes, 'x');
  std::vector<float> latencies;
  std::atomic<uint64_t>* errors;
  const std::atomic<bool>* stop;
  absl::BlockingCounter* finished;
  std::chrono::steady_clock::time_point start;

  void Issue(Done done) {
    if (workload == "put") {
      target->Put(conn, Key(keys + rng() % 1000000000), value, std::move(done));
    } else if (workload == "watch") {
      target->Put(conn, "watch/" + Key(rng() % 1000), value, std::move(done));
    } else if (workload == "get") {
      target->Get(conn, Key(rng() % keys), std::move(done));
    } else if (workload == "range10") {
      const std::string k = Key(rng() % keys);
      target->Range10(conn, k, RangeEnd(k, keys), std::move(done));
    } else {
      target->Cas(conn, cas_key, value, &mod, std::move(done));
    }
  }

  void Next() {
    if (stop->load(std::memory_order_relaxed)) {
      finished->DecrementCount();
      return;
    }
    start = std::chrono::steady_clock::now();
    Issue([this](const grpc::Status& s) {
      const auto end = std::chrono::steady_clock::now();
      if (!s.ok()) errors->fetch_add(1, std::memory_order_relaxed);
      latencies.push_back(std::chrono::duration<float, std::micro>(end - start).count());
      Next();
    });
  }
};

// Runs `workload` with `clients` closed-loop clients for --seconds. The
// watch workload instead opens `clients` watchers and runs one writer; its
// ops are the events the watchers received.
Run Measure(Target& t, const std::string& workload, int clients, int conns, int keys) {
  const absl::Duration length = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  std::atomic<uint64_t> events{0};
  const bool watch = workload == "watch";
  if (watch) {
    if (!t.StartWatchers(clients, &events)) return Run();
    clients = 1;
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  absl::BlockingCounter finished(clients);
  std::vector<std::unique_ptr<Client>> all_clients;
  for (int c = 0; c < clients; ++c) {
    auto client = std::make_unique<Client>(Client{&t, workload, c % conns, keys,
                                                  std::mt19937_64(c * 7919 + 1),
                                                  absl::StrCat("cas/", c)});
    client->latencies.reserve(1 << 16);
    client->errors = &errors;
    client->stop = &stop;
    client->finished = &finished;
    if (workload == "cas") {  // learn the current mod revision
      Wait([&](Done d) { client->Issue(std::move(d)); });
    }
    all_clients.push_back(std::move(client));
  }
  const uint64_t written_before = t.write_bytes();
  const double server_cpu_before = t.cpu_micros();
  const double client_cpu_before = SelfCpuMicros();
  const absl::Time begin = absl::Now();
  for (auto& c : all_clients) c->Next();
  absl::SleepFor(length);
  stop = true;
  finished.Wait();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - begin);
  uint64_t delivered = events.load();
  if (watch) {
    // Events of the last writes may still be in flight: count them too.
    absl::SleepFor(absl::Milliseconds(500));
    delivered = events.load();
    t.StopWatchers();
  }
  std::vector<float> all;
  for (auto& c : all_clients) all.insert(all.end(), c->latencies.begin(), c->latencies.end());
  Run r;
  r.errors = errors;
  if (all.empty()) return r;
  std::sort(all.begin(), all.end());
  r.ops_per_sec = all.size() / elapsed;
  if (watch) r.ops_per_sec = delivered / elapsed;  // p50/p99: the writer's puts
  r.bytes_per_op = static_cast<double>(t.write_bytes() - written_before) / all.size();
  r.server_cpu_us_per_op = (t.cpu_micros() - server_cpu_before) / all.size();
  r.client_cpu_us_per_op = (SelfCpuMicros() - client_cpu_before) / all.size();
  r.p50_us = all[all.size() / 2];
  r.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return r;
}

// The run with the median throughput of `runs`.
Run MedianRun(std::vector<Run> runs) {
  std::sort(runs.begin(), runs.end(),
            [](const Run& a, const Run& b) { return a.ops_per_sec < b.ops_per_sec; });
  return runs[runs.size() / 2];
}

std::vector<int> ParseInts(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) Die(absl::StrCat("bad number \"", part, "\""));
    out.push_back(v);
  }
  return out;
}

int Main() {
  std::vector<int> client_counts = ParseInts(absl::GetFlag(FLAGS_clients));
  int keys = absl::GetFlag(FLAGS_keys);
  int repeats = absl::GetFlag(FLAGS_repeats);
  if (absl::GetFlag(FLAGS_quick)) {
    client_counts = {1, 16};
    keys = 10000;
    repeats = 1;
    absl::SetFlag(&FLAGS_seconds, 1);
  }
  const int max_clients = *std::max_element(client_counts.begin(), client_counts.end());
  const int conns = std::max(1, std::min(absl::GetFlag(FLAGS_conns), max_clients));
  std::vector<std::string> workloads = absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',');
  std::vector<std::string> names = absl::StrSplit(absl::GetFlag(FLAGS_targets), ',');

  // results[workload][clients][target]
  std::map<std::string, std::map<int, std::map<std::string, Run>>> results;
  std::map<std::string, uint64_t> peak_rss;
  std::map<std::string, uint64_t> disk;  // data directory bytes after all rows
  for (const std::string& name : names) {
    std::unique_ptr<Target> t;
    if (name == "cowdb" || name == "cowdb-metrics" || name == "cowdb-auth") {
      t = std::make_unique<CowdbTarget>(name == "cowdb-metrics" ? CowdbTarget::Mode::kMetrics
                                        : name == "cowdb-auth"  ? CowdbTarget::Mode::kAuth
                                                                : CowdbTarget::Mode::kPlain);
    } else if (name == "etcd") {
      if (access(absl::GetFlag(FLAGS_etcd).c_str(), X_OK) != 0) {
        Die("no etcd binary: apt-get install etcd-server, or --targets=cowdb");
      }
      t = std::make_unique<EtcdTarget>(/*cowdb_face=*/false);
    } else if (name == "cowdb-etcd") {
      t = std::make_unique<EtcdTarget>(/*cowdb_face=*/true);
    } else {
      Die(absl::StrCat("unknown target \"", name, "\""));
    }
    t->Start(conns);
    std::cerr << name << ": preloading " << keys << " keys" << std::endl;
    t->Preload(keys);
    for (const std::string& w : workloads) {
      t->Settle();
      for (int clients : client_counts) {
        std::vector<Run> runs;
        for (int r = 0; r < repeats; ++r) {
          runs.push_back(Measure(*t, w, clients, conns, keys));
          peak_rss[name] = std::max(peak_rss[name], t->rss_kib());
        }
        Run m = MedianRun(runs);
        results[w][clients][name] = m;
        std::cerr << absl::StrFormat(
            "%s %s clients=%d: %.0f ops/s p50 %.0f us p99 %.0f us, %.0f bytes written/op, "
            "CPU/op %.0f us server, %.0f us load generator%s\n",
            name, w, clients, m.ops_per_sec, m.p50_us, m.p99_us, m.bytes_per_op,
            m.server_cpu_us_per_op, m.client_cpu_us_per_op,
            m.errors ? absl::StrCat(" errors=", m.errors) : "");
      }
    }
    disk[name] = t->disk_bytes();
  }

  std::ofstream csv;
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    csv.open(absl::GetFlag(FLAGS_csv));
    csv << "workload,clients,target,ops_per_sec,p50_us,p99_us,bytes_written_per_op,errors,"
           "server_cpu_us_per_op,client_cpu_us_per_op\n";
  }
  std::cout << absl::StrFormat("%-8s %7s", "workload", "clients");
  for (const auto& n : names) {
    std::cout << absl::StrFormat(" | %10s %8s %8s %8s %9s", n + " op/s", "p50 us", "p99 us",
                                 "B/op", "cpu us/op");
  }
  if (names.size() == 2) std::cout << absl::StrFormat(" | %s/%s", names[0], names[1]);
  std::cout << "\n";
  for (const std::string& w : workloads) {
    for (int clients : client_counts) {
      std::cout << absl::StrFormat("%-8s %7d", w, clients);
      for (const auto& n : names) {
        const Run& r = results[w][clients][n];
        std::cout << absl::StrFormat(" | %10.0f %8.0f %8.0f %8.0f %9.1f", r.ops_per_sec,
                                     r.p50_us, r.p99_us, r.bytes_per_op,
                                     r.server_cpu_us_per_op);
        if (csv.is_open()) {
          csv << absl::StrFormat("%s,%d,%s,%.0f,%.0f,%.0f,%.0f,%d,%.1f,%.1f\n", w, clients, n,
                                 r.ops_per_sec, r.p50_us, r.p99_us, r.bytes_per_op, r.errors,
                                 r.server_cpu_us_per_op, r.client_cpu_us_per_op);
        }
      }
      if (names.size() == 2) {
        const double b = results[w][clients][names[1]].ops_per_sec;
        std::cout << absl::StrFormat(" | %.2fx", b > 0 ? results[w][clients][names[0]].ops_per_sec / b : 0);
      }
      std::cout << "\n";
    }
  }
  for (const auto& [n, kib] : peak_rss) {
    std::cout << n << ": peak RSS " << kib / 1024 << " MiB, data directory "
              << disk[n] / (1 << 20) << " MiB at the end\n";
  }
  std::cout << "(" << conns << " connections, " << repeats << " runs per row, "
            << absl::GetFlag(FLAGS_seconds) << " s each, " << keys << " keys preloaded)\n";
  return 0;
}

}  // namespace
}  // namespace cowdb::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  return cowdb::bench::Main();
}
