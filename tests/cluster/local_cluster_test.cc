// The local-cluster fixture (tests/cluster/local_cluster.h) against real
// daemons: objects and keys make a round trip through each cluster with
// its own command-line client, before and after a daemon is killed and
// restarted; a restarted OSD really holds the data again (backfilled); two
// clusters of each kind run side by side without seeing each other; and
// once a fixture is destroyed, no process it started is left.
//
// Skips (saying so) where ceph or etcd is not installed.

#include "tests/cluster/local_cluster.h"

#include <sys/types.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/util/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace cowdb::testing {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

// A client call that hangs fails the test instead.
constexpr absl::Duration kClientTimeout = absl::Seconds(60);

#define SKIP_UNLESS_INSTALLED(installed, packages)          \
  if (!(installed)) {                                       \
    GTEST_SKIP() << "SKIPPED: needs the packages " packages \
                    " (tools/setup.sh installs them)";      \
  }

// Fails unless `result` says the command exited 0.
absl::Status Succeeded(const std::string& what, const CommandResult& result) {
  if (result.exit_code == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(what, " exited with ", result.exit_code, ": ", result.err));
}

// The processes among `pids` that still run.
std::vector<pid_t> StillRunning(const std::set<pid_t>& pids) {
  std::vector<pid_t> running;
  for (pid_t pid : pids) {
    if (ProcessRunning(pid)) running.push_back(pid);
  }
  return running;
}

// ------------------------------------------------------------------ Ceph

absl::StatusOr<CommandResult> Rados(const LocalCeph& ceph,
                                    std::vector<std::string> args,
                                    const std::string& input = "") {
  args.insert(args.begin(),
              {"rados", "-c", ceph.conf_path(), "-p", ceph.pool()});
  return RunCommand(args, input, kClientTimeout);
}

absl::Status RadosPut(const LocalCeph& ceph, const std::string& object,
                      const std::string& value) {
  ASSIGN_OR_RETURN(CommandResult put, Rados(ceph, {"put", object, "-"}, value));
  return Succeeded("rados put " + object, put);
}

absl::StatusOr<std::string> RadosGet(const LocalCeph& ceph,
                                     const std::string& object) {
  ASSIGN_OR_RETURN(CommandResult get, Rados(ceph, {"get", object, "-"}));
  RETURN_IF_ERROR(Succeeded("rados get " + object, get));
  return get.out;
}

// `ceph -c CONF args...`, which must succeed; its output.
absl::StatusOr<std::string> CephCli(const LocalCeph& ceph,
                                    std::vector<std::string> args) {
  args.insert(args.begin(), {"ceph", "-c", ceph.conf_path()});
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(args, "", kClientTimeout));
  RETURN_IF_ERROR(Succeeded(absl::StrJoin(args, " "), result));
  return result.out;
}

// Waits until every PG of the pool (pool 1, 8 PGs) is active+clean: the
// cluster has finished recovery and backfill. There is no manager to ask
// for a summary, so each PG's primary is asked.
absl::Status WaitForCleanPgs(const LocalCeph& ceph, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int pg = 0; pg < 8; ++pg) {
    const std::string id = absl::StrCat("1.", pg);
    std::string state;
    while (true) {
      ASSIGN_OR_RETURN(std::string json,
                       CephCli(ceph, {"pg", id, "query", "-f", "json"}));
      // The first "state" is the PG's own (its peers' come later).
      const std::string key = "\"state\":\"";
      size_t at = json.find(key);
      if (at != std::string::npos) {
        at += key.size();
        state = json.substr(at, json.find('"', at) - at);
      }
      if (state == "active+clean") break;
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("pg ", id, " is ", state));
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }
  return absl::OkStatus();
}

TEST(LocalClusterTest, CephRoundTripsSurviveAnOsdCrash) {
  SKIP_UNLESS_INSTALLED(CephInstalled(), "ceph");
  std::set<pid_t> seen;  // every daemon this test saw running
  {
    const absl::Time start = absl::Now();
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalCeph> ceph, LocalCeph::Start(3));
    std::printf("LocalCeph::Start(3): %s\n",
                absl::FormatDuration(absl::Now() - start).c_str());
    const std::vector<pid_t> all = ceph->DaemonPids();
    ASSERT_THAT(all, SizeIs(4));  // mon.a and osd.0..2
    for (pid_t pid : all) EXPECT_TRUE(ProcessRunning(pid)) << pid;
    seen.insert(all.begin(), all.end());

    ASSERT_OK(RadosPut(*ceph, "before", "written with 3 OSDs"));
    EXPECT_THAT(RadosGet(*ceph, "before"),
                IsOkAndHolds(std::string("written with 3 OSDs")));

    // Two copies remain, min_size is 2: reads and writes go on.
    ASSERT_OK(ceph->KillOsd(1));
    std::set<pid_t> after_kill;
    for (pid_t pid : ceph->DaemonPids()) after_kill.insert(pid);
    ASSERT_THAT(after_kill, SizeIs(3));
    for (pid_t pid : all) {
      if (after_kill.count(pid) == 0) {
        EXPECT_FALSE(ProcessRunning(pid)) << "osd.1, " << pid;
      }
    }
    ASSERT_OK(RadosPut(*ceph, "during", "written with osd.1 down"));
    EXPECT_THAT(RadosGet(*ceph, "during"),
                IsOkAndHolds(std::string("written with osd.1 down")));
    EXPECT_THAT(RadosGet(*ceph, "before"),
                IsOkAndHolds(std::string("written with 3 OSDs")));

    ASSERT_OK(ceph->StartOsd(1));
    const std::vector<pid_t> restarted = ceph->DaemonPids();
    ASSERT_THAT(restarted, SizeIs(4));
    seen.insert(restarted.begin(), restarted.end());
    ASSERT_OK(RadosPut(*ceph, "after", "written after the restart"));
    EXPECT_THAT(RadosGet(*ceph, "after"),
                IsOkAndHolds(std::string("written after the restart")));

    // The restarted OSD came back empty (memstore); once the PGs are clean
    // it holds every object again: with the other two killed, it alone
    // serves all three.
    ASSERT_OK(WaitForCleanPgs(*ceph, absl::Seconds(60)));
    ASSERT_OK(
        CephCli(*ceph, {"osd", "pool", "set", ceph->pool(), "min_size", "1"})
            .status());
    ASSERT_OK(ceph->KillOsd(0));
    ASSERT_OK(ceph->KillOsd(2));
    ASSERT_THAT(ceph->DaemonPids(), SizeIs(2));  // mon.a, osd.1
    EXPECT_THAT(RadosGet(*ceph, "before"),
                IsOkAndHolds(std::string("written with 3 OSDs")));
    EXPECT_THAT(RadosGet(*ceph, "during"),
                IsOkAndHolds(std::string("written with osd.1 down")));
    EXPECT_THAT(RadosGet(*ceph, "after"),
                IsOkAndHolds(std::string("written after the restart")));
  }
  EXPECT_THAT(StillRunning(seen), IsEmpty()) << "daemons left after ~LocalCeph";
}

// ------------------------------------------------------------------ etcd

// `etcdctl --endpoints=ENDPOINTS args...`
absl::StatusOr<CommandResult> Etcdctl(const std::string& endpoints,
                                      std::vector<std::string> args) {
  args.insert(args.begin(), {"etcdctl", "--endpoints=" + endpoints,
                             "--dial-timeout=2s", "--command-timeout=3s"});
  return RunCommand(args, "", kClientTimeout);
}

absl::Status EtcdPut(const std::string& endpoints, const std::string& key,
                     const std::string& value) {
  ASSIGN_OR_RETURN(CommandResult put, Etcdctl(endpoints, {"put", key, value}));
  return Succeeded("etcdctl put " + key, put);
}

// Retries until `timeout`: after a leader's crash, requests fail until the
// others have elected a new one (and etcd does not retry a put itself).
absl::Status EtcdPutWithin(const std::string& endpoints, const std::string& key,
                           const std::string& value, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::Status put = EtcdPut(endpoints, key, value);
    if (put.ok() || absl::Now() > deadline) return put;
    absl::SleepFor(absl::Milliseconds(200));
  }
}

// A linearizable read (it goes through the leader, whichever member
// `endpoints` names).
absl::StatusOr<std::string> EtcdGet(const std::string& endpoints,
                                    const std::string& key) {
  ASSIGN_OR_RETURN(CommandResult get,
                   Etcdctl(endpoints, {"get", key, "--print-value-only"}));
  RETURN_IF_ERROR(Succeeded("etcdctl get " + key, get));
  return get.out;
}

TEST(LocalClusterTest, EtcdRoundTripsSurviveAMemberCrash) {
  SKIP_UNLESS_INSTALLED(EtcdInstalled(), "etcd-server and etcd-client");
  std::set<pid_t> seen;
  {
    const absl::Time start = absl::Now();
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd, LocalEtcd::Start(3));
    std::printf("LocalEtcd::Start(3): %s\n",
                absl::FormatDuration(absl::Now() - start).c_str());
    const std::vector<std::string>& endpoints = etcd->endpoints();
    ASSERT_THAT(endpoints, SizeIs(3));
    for (const std::string& e : endpoints) {
      EXPECT_EQ(e.rfind("127.0.0.1:", 0), 0u) << e;
    }
    const std::vector<pid_t> all = etcd->DaemonPids();
    ASSERT_THAT(all, SizeIs(3));
    for (pid_t pid : all) EXPECT_TRUE(ProcessRunning(pid)) << pid;
    seen.insert(all.begin(), all.end());

    ASSERT_OK(EtcdPut(etcd->endpoints_flag(), "k", "one"));
    for (const std::string& e : endpoints) {
      EXPECT_THAT(EtcdGet(e, "k"), IsOkAndHolds(std::string("one\n"))) << e;
    }

    // Member 0 may have been the leader: the put waits out the election.
    ASSERT_OK(etcd->KillMember(0));
    ASSERT_THAT(etcd->DaemonPids(), SizeIs(2));
    std::vector<pid_t> gone;
    for (pid_t pid : all) {
      if (!ProcessRunning(pid)) gone.push_back(pid);
    }
    EXPECT_THAT(gone, SizeIs(1)) << "member 0's process, and only it, is gone";
    ASSERT_OK(
        EtcdPutWithin(etcd->endpoints_flag(), "k", "two", absl::Seconds(30)));
    EXPECT_THAT(EtcdGet(endpoints[1], "k"), IsOkAndHolds(std::string("two\n")));
    EXPECT_THAT(EtcdGet(endpoints[2], "k"), IsOkAndHolds(std::string("two\n")));
    EXPECT_FALSE(EtcdGet(endpoints[0], "k").ok()) << "member 0 still answers";

    // Back on its data directory, member 0 catches up with what it missed.
    ASSERT_OK(etcd->StartMember(0));
    const std::vector<pid_t> restarted = etcd->DaemonPids();
    ASSERT_THAT(restarted, SizeIs(3));
    seen.insert(restarted.begin(), restarted.end());
    EXPECT_THAT(EtcdGet(endpoints[0], "k"), IsOkAndHolds(std::string("two\n")));
    ASSERT_OK(EtcdPut(etcd->endpoints_flag(), "k", "three"));
    for (const std::string& e : endpoints) {
      EXPECT_THAT(EtcdGet(e, "k"), IsOkAndHolds(std::string("three\n"))) << e;
    }
  }
  EXPECT_THAT(StillRunning(seen), IsEmpty()) << "members left after ~LocalEtcd";
}

// ------------------------------------------------------------ side by side

// Each cluster picks its own ports and directory: two of each kind run at
// once, and each sees only its own data.
TEST(LocalClusterTest, ClustersRunSideBySide) {
  SKIP_UNLESS_INSTALLED(CephInstalled() && EtcdInstalled(),
                        "ceph, etcd-server and etcd-client");
  std::set<pid_t> seen;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalCeph> ceph_a,
                         LocalCeph::Start(1));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalCeph> ceph_b,
                         LocalCeph::Start(1));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd_a,
                         LocalEtcd::Start(1));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd_b,
                         LocalEtcd::Start(1));
    EXPECT_NE(ceph_a->conf_path(), ceph_b->conf_path());
    EXPECT_NE(etcd_a->endpoints(), etcd_b->endpoints());
    for (const auto& pids : {ceph_a->DaemonPids(), ceph_b->DaemonPids(),
                             etcd_a->DaemonPids(), etcd_b->DaemonPids()}) {
      seen.insert(pids.begin(), pids.end());
    }
    EXPECT_THAT(seen, SizeIs(6));  // 2 x (mon + OSD) + 2 x one member

    ASSERT_OK(RadosPut(*ceph_a, "obj", "in a"));
    ASSERT_OK(RadosPut(*ceph_b, "obj", "in b"));
    EXPECT_THAT(RadosGet(*ceph_a, "obj"), IsOkAndHolds(std::string("in a")));
    EXPECT_THAT(RadosGet(*ceph_b, "obj"), IsOkAndHolds(std::string("in b")));

    ASSERT_OK(EtcdPut(etcd_a->endpoints_flag(), "k", "in a"));
    ASSERT_OK(EtcdPut(etcd_b->endpoints_flag(), "k", "in b"));
    EXPECT_THAT(EtcdGet(etcd_a->endpoints_flag(), "k"),
                IsOkAndHolds(std::string("in a\n")));
    EXPECT_THAT(EtcdGet(etcd_b->endpoints_flag(), "k"),
                IsOkAndHolds(std::string("in b\n")));
  }
  EXPECT_THAT(StillRunning(seen), IsEmpty())
      << "daemons left after the destructors";
}

}  // namespace
}  // namespace cowdb::testing
