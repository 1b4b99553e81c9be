// Failover with real processes: a writer, a standby and a replica
// (cowdb_server --rados_pool) over a local Ceph (3 memstore OSDs) and etcd
// (3 members). In each cycle a client keeps writing new keys to whichever
// server is the writer while the test takes the writer down, in turn:
//   - SIGKILL;
//   - SIGSTOP across its lease's expiry, then SIGCONT: it must find itself
//     deposed and exit (75), and nothing it did after the pause may count;
//   - SIGKILL together with an OSD or an etcd member (restarted after).
// The standby takes over; the old writer comes back as the new standby.
// After each cycle:
//   - every acknowledged write reads back from the writer, at the latest
//     version and at the version its acknowledgement named;
//   - acknowledgements name increasing versions (one client, in order);
//   - the replica, caught up, reads every acknowledged write at the
//     writer's latest version as the writer does.
// Cycles: $COWDB_FAILOVER_CYCLES (default 3; docs/TESTING.md has the
// 100-cycle run). Failover times are printed, not asserted (the benchmark
// reports them); a takeover that never happens fails the test.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <tuple>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster/local_cluster.h"
#include "tests/history/checker.h"
#include "tests/history/load_generator.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb::testing {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// One cowdb_server process in the cluster, on a fixed port (a standby
// listens only once it is the writer), its output appended to a log.
class ClusterServer {
 public:
  ClusterServer(std::string name, std::vector<std::string> common, std::string log)
      : name_(std::move(name)), common_(std::move(common)), log_(std::move(log)),
        addr_(absl::StrCat("127.0.0.1:", FreePort())) {}
  ~ClusterServer() { Kill(); }

  void Start(const std::string& role) {
    role_ = role;
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<std::string> args = {"cowdb_server", "--role=" + role,
                                       "--listen=" + addr_};
      args.insert(args.end(), common_.begin(), common_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv("server/cowdb_server", argv.data());
      _exit(127);
    }
  }
  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // The exit status if it exits within `timeout`.
  std::optional<int> WaitExit(absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (pid_ > 0 && absl::Now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return std::nullopt;
  }
  const std::string& addr() const { return addr_; }
  const std::string& name() const { return name_; }

 private:
  const std::string name_;
  const std::vector<std::string> common_;
  const std::string log_;
  const std::string addr_;
  std::string role_;
  pid_t pid_ = -1;
};

absl::StatusOr<std::unique_ptr<client::Client>> ConnectTo(const std::string& addr) {
  client::ConnectOptions o;
  o.target = addr;
  o.connect_timeout = absl::Milliseconds(500);
  o.timeout = absl::Seconds(2);
  return client::Connect(o);
}

struct Ack {
  std::string value;
  uint64_t version;
};

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(ceph_, LocalCeph::Start(3));
    ASSERT_OK_AND_ASSIGN(etcd_, LocalEtcd::Start(3));
    std::vector<std::string> common = {
        "--rados_pool=" + ceph_->pool(), "--rados_name=failover",
        "--ceph_conf=" + ceph_->conf_path(),
        "--etcd=" + absl::StrJoin(etcd_->endpoints(), ","),
        "--lease_ttl=" + LeaseTtl(), "--data_dir=" + dir_.Sub("unused"),
        "--retain_versions=0"};  // every version: acknowledgements are read at theirs
    common_ = common;
    servers_[0] = std::make_unique<ClusterServer>("a", common, dir_.Sub("a.log"));
    servers_[1] = std::make_unique<ClusterServer>("b", common, dir_.Sub("b.log"));
    replica_ = std::make_unique<ClusterServer>("r", common, dir_.Sub("r.log"));
  }

  // $COWDB_FAILOVER_LEASE, or 2s (the servers' default is 5s).
  static std::string LeaseTtl() {
    const char* env = std::getenv("COWDB_FAILOVER_LEASE");
    return env != nullptr ? env : "2s";
  }

  // Runs a server with `flags` (after the common ones, so they win) that
  // must fail; returns its exit status and log.
  std::pair<int, std::string> RunFailing(const std::string& name,
                                         const std::vector<std::string>& flags,
                                         const std::string& role) {
    std::vector<std::string> all = common_;
    all.insert(all.end(), flags.begin(), flags.end());
    ClusterServer s(name, all, dir_.Sub(name + ".log"));
    s.Start(role);
    std::optional<int> exit = s.WaitExit(absl::Seconds(60));
    EXPECT_TRUE(exit.has_value()) << name << " did not exit";
    std::ifstream in(dir_.Sub(name + ".log"));
    std::string log((std::istreambuf_iterator<char>(in)), {});
    return {exit.value_or(-1), log};
  }

  // Writes one new key through whichever server answers as the writer;
  // records it if acknowledged. Returns the server index that took it.
  std::optional<int> WriteOnce(int n) {
    const std::string key = absl::StrCat("k", n);
    for (int i : {writer_hint_, 1 - writer_hint_}) {
      absl::StatusOr<std::unique_ptr<client::Client>> c = ConnectTo(servers_[i]->addr());
      if (!c.ok()) continue;
      // A value per attempt: the checker attributes each value to one write.
      const std::string value = absl::StrCat("v", n, "-", i, "-", rng_());
      absl::StatusOr<uint64_t> v = RecordedPut(**c, key, value, /*client=*/0);
      if (!v.ok()) continue;  // not acknowledged: it may or may not be there
      // One client, one write at a time: its acknowledgements name
      // increasing versions.
      EXPECT_GT(*v, main_last_version_) << "acknowledged versions must increase";
      main_last_version_ = *v;
      writer_hint_ = i;
      return i;
    }
    return std::nullopt;
  }

  // A Put, recorded in the history (and, if acknowledged, in acked_).
  absl::StatusOr<uint64_t> RecordedPut(client::Client& c, const std::string& key,
                                       const std::string& value, int client) {
    history::Op op;
    op.client = client;
    op.type = history::OpType::kPut;
    op.writes = {{key, value}};
    op.invoke_ns = NowNs();
    absl::StatusOr<uint64_t> v = c.Put(key, value);
    op.complete_ns = NowNs();
    absl::MutexLock lock(&mu_);
    if (v.ok()) {
      op.commit_version = *v;
      last_acked_version_ = std::max(last_acked_version_, *v);
      acked_[key] = Ack{value, *v};
    } else {
      op.outcome = history::OutcomeOf(v.status());
      op.error = v.status().ToString();
    }
    op.id = history_.size() + 1;
    history_.push_back(std::move(op));
    return v;
  }

  // Keeps Puts in flight on `addr` (connected before the writer goes
  // down) until stopped, so that kills and pauses hit writes mid-call.
  std::thread WriteInFlight(const std::string& addr, int cycle, std::atomic<bool>* stop) {
    return std::thread([this, addr, cycle, stop] {
      absl::StatusOr<std::unique_ptr<client::Client>> c = ConnectTo(addr);
      if (!c.ok()) return;
      for (int i = 0; !stop->load(); ++i) {
        if (!RecordedPut(**c, absl::StrCat("f", cycle, "-", i),
                         absl::StrCat("fv", cycle, "-", i), /*client=*/1)
                 .ok()) {
          absl::SleepFor(absl::Milliseconds(50));
        }
      }
    });
  }

  // Writes until server `to` takes a write; returns how long it took.
  absl::StatusOr<absl::Duration> WriteUntilTakenBy(int to, int* n, absl::Time since) {
    while (absl::Now() - since < absl::Seconds(60)) {
      std::optional<int> took = WriteOnce((*n)++);
      if (took == to) return absl::Now() - since;
      if (!took) absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError("no takeover within 60 s");
  }

  static int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

  // A Get, recorded in the history for the checker.
  absl::StatusOr<client::Entry> RecordedGet(client::Client& c, const std::string& key,
                                            std::optional<uint64_t> at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    history::Op op;
    op.client = 2;  // the verifier
    op.type = history::OpType::kGet;
    op.at_version = at;
    op.invoke_ns = NowNs();
    absl::StatusOr<client::Entry> e = c.Get(key, at);
    op.complete_ns = NowNs();
    if (e.ok()) {
      op.read_version = e->version;
      op.reads = {{key, true, e->value, e->mod_version}};
    } else if (absl::IsNotFound(e.status())) {
      op.reads = {{key, false, "", 0}};
    } else {
      op.outcome = history::Outcome::kFailed;
      op.error = e.status().ToString();
    }
    op.id = history_.size() + 1;
    history_.push_back(std::move(op));
    return e;
  }

  // Every acknowledged write, read back from `addr` at the latest version
  // and at its own version.
  void VerifyAcked(const std::string& addr, bool at_own_versions) {
    ASSERT_OK_AND_ASSIGN(auto c, ConnectTo(addr));
    absl::MutexLock lock(&mu_);
    for (const auto& [key, ack] : acked_) {
      absl::StatusOr<client::Entry> e = RecordedGet(*c, key, std::nullopt);
      ASSERT_OK(e.status()) << key << " acknowledged at version " << ack.version;
      EXPECT_EQ(e->value, ack.value) << key;
      if (!at_own_versions) continue;
      absl::StatusOr<client::Entry> then = RecordedGet(*c, key, ack.version);
      ASSERT_OK(then.status()) << key << " at " << ack.version;
      EXPECT_EQ(then->value, ack.value) << key;
    }
  }

  TempDir dir_;
  std::vector<std::string> common_;
  std::unique_ptr<LocalCeph> ceph_;
  std::unique_ptr<LocalEtcd> etcd_;
  std::unique_ptr<ClusterServer> servers_[2];
  std::unique_ptr<ClusterServer> replica_;
  std::mt19937 rng_{42};
  int writer_hint_ = 0;
  absl::Mutex mu_;
  std::map<std::string, Ack> acked_ ABSL_GUARDED_BY(mu_);
  history::History history_ ABSL_GUARDED_BY(mu_);
  uint64_t last_acked_version_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t main_last_version_ = 0;  // WriteOnce's own
};

TEST_F(FailoverTest, NoAcknowledgedWriteIsLostAcrossFailovers) {
  const char* env = std::getenv("COWDB_FAILOVER_CYCLES");
  const int cycles = env != nullptr ? std::atoi(env) : 3;
  servers_[0]->Start("writer");
  int n = 0;
  ASSERT_OK(WriteUntilTakenBy(0, &n, absl::Now()).status());
  servers_[1]->Start("standby");
  replica_->Start("replica");
  int writer = 0;
  std::vector<double> failover_seconds;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    for (int i = 0; i < 20; ++i) WriteOnce(n++);
    ClusterServer& old = *servers_[writer];
    const int mode = cycle % 3;
    std::atomic<bool> stop_in_flight{false};
    std::thread in_flight = WriteInFlight(old.addr(), cycle, &stop_in_flight);
    absl::SleepFor(absl::Milliseconds(30));
    const absl::Time down = absl::Now();
    if (mode == 1) {
      old.Signal(SIGSTOP);
    } else {
      old.Kill();
      if (mode == 2 && cycle % 2 == 0) EXPECT_OK(ceph_->KillOsd(cycle % 3));
      if (mode == 2 && cycle % 2 == 1) EXPECT_OK(etcd_->KillMember(cycle % 3));
    }
    absl::StatusOr<absl::Duration> took = WriteUntilTakenBy(1 - writer, &n, down);
    stop_in_flight = true;
    if (!took.ok()) in_flight.join();  // its calls end at their deadlines
    ASSERT_OK(took.status()) << "cycle " << cycle << " mode " << mode;
    failover_seconds.push_back(absl::ToDoubleSeconds(*took));
    // Deposed while paused: on waking it must step down, and the call it
    // had in flight must not be acknowledged over the new writer's.
    if (mode == 1) old.Signal(SIGCONT);
    in_flight.join();
    if (mode == 1) {
      std::optional<int> exit = old.WaitExit(absl::Seconds(20));
      ASSERT_TRUE(exit.has_value()) << "a deposed writer kept running";
      EXPECT_EQ(*exit, 75);
    }
    if (mode == 2 && cycle % 2 == 0) ASSERT_OK(ceph_->StartOsd(cycle % 3));
    if (mode == 2 && cycle % 2 == 1) ASSERT_OK(etcd_->StartMember(cycle % 3));
    writer = 1 - writer;
    old.Start("standby");
    for (int i = 0; i < 10; ++i) WriteOnce(n++);
    ASSERT_NO_FATAL_FAILURE(VerifyAcked(servers_[writer]->addr(), cycle % 2 == 0));
    std::cout << "cycle " << cycle << " mode " << mode << ": failover "
              << failover_seconds.back() << " s" << std::endl;
  }

  // The replica, caught up to the writer's latest version, reads the same.
  ASSERT_OK_AND_ASSIGN(auto w, ConnectTo(servers_[writer]->addr()));
  ASSERT_OK_AND_ASSIGN(auto r, ConnectTo(replica_->addr()));
  uint64_t latest;
  std::string last_key;
  {
    absl::MutexLock lock(&mu_);
    latest = last_acked_version_;
    for (const auto& [key, ack] : acked_) {
      if (ack.version == latest) last_key = key;
    }
  }
  const absl::Time end = absl::Now() + absl::Seconds(30);
  absl::StatusOr<client::Entry> probe = absl::UnknownError("");
  while (absl::Now() < end) {
    probe = r->Get(last_key, latest);  // NotFound until it has `latest`
    if (probe.ok() || !absl::IsNotFound(probe.status())) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_OK(probe.status()) << "the replica did not reach version " << latest;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, ack] : acked_) {
    absl::StatusOr<client::Entry> mine = RecordedGet(*r, key, latest);
    absl::StatusOr<client::Entry> theirs = RecordedGet(*w, key, latest);
    ASSERT_OK(mine.status()) << key;
    ASSERT_OK(theirs.status()) << key;
    EXPECT_EQ(mine->value, theirs->value) << key;
    EXPECT_EQ(mine->value, ack.value) << key;
  }
  // The whole history (writes of every outcome, the reads that verified
  // them) against the checker: one serial order by version, reads exact at
  // their versions, no stale read after an acknowledgement, and every
  // write of unknown outcome applied whole or not at all.
  history::CheckResult check = history::CheckHistory(history_);
  EXPECT_TRUE(check.ok()) << absl::StrJoin(check.violations, "\n");
  std::cout << "history: " << check.stats.ops << " operations, " << check.stats.unknown
            << " of unknown outcome (" << check.stats.unknown_writes_applied
            << " applied), " << check.stats.key_reads_checked << " key reads checked"
            << std::endl;
  std::sort(failover_seconds.begin(), failover_seconds.end());
  std::cout << "failovers: " << failover_seconds.size() << ", median "
            << failover_seconds[failover_seconds.size() / 2] << " s, max "
            << failover_seconds.back() << " s; acknowledged writes " << acked_.size()
            << std::endl;
}

// Bad configuration is a clear error and an exit, and changes nothing: a
// second writer while one lives, a pool that does not exist, no etcd, a
// standby without etcd, an unknown role.
TEST_F(FailoverTest, BadConfigurationIsRefusedClearly) {
  servers_[0]->Start("writer");
  int n = 0;
  ASSERT_OK(WriteUntilTakenBy(0, &n, absl::Now()).status());

  auto [code, log] = RunFailing("second", {}, "writer");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, ::testing::HasSubstr("has a live writer at"));
  std::tie(code, log) = RunFailing("nopool", {"--rados_pool=no-such-pool",
                                              "--cluster=elsewhere"}, "writer");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, ::testing::HasSubstr("pool 'no-such-pool' does not exist"));
  std::tie(code, log) = RunFailing("noetcd", {"--etcd=127.0.0.1:1"}, "writer");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, ::testing::HasSubstr("127.0.0.1:1"));
  std::tie(code, log) = RunFailing("standalone", {"--etcd="}, "standby");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, ::testing::HasSubstr("needs etcd endpoints"));
  std::tie(code, log) = RunFailing("role", {}, "leader");
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, ::testing::HasSubstr("unknown role"));

  // The writer serves on, and what it acknowledged is there.
  WriteOnce(n++);
  ASSERT_NO_FATAL_FAILURE(VerifyAcked(servers_[0]->addr(), true));
}

}  // namespace
}  // namespace cowdb::testing
