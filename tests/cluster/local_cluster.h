// Real Ceph and etcd clusters on loopback for tests: the project's own
// scripts (tools/cluster/ceph.sh and etcd.sh) run in a temporary directory
// under TEST_TMPDIR, and the destructor stops every daemon they started.
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalCeph> ceph, LocalCeph::Start());
//   rados_conf_read_file(cluster, ceph->conf_path().c_str());  // librados
//   RunCommand({"rados", "-c", ceph->conf_path(), "-p", ceph->pool(),
//               "put", "obj", "-"}, "bytes");
//
//   ASSERT_OK_AND_ASSIGN(std::unique_ptr<LocalEtcd> etcd, LocalEtcd::Start());
//   etcd->endpoints();  // {"127.0.0.1:PORT", ...}, one per member
//
// Each cluster takes free loopback ports, so tests may run in parallel.
// Ceph stores objects in memory (memstore, 512 MiB per OSD at most); a
// cluster of one monitor and three OSDs starts in about a second and holds
// ~130 MiB. The scripts' header comments say what each step does; by hand:
// docs/TESTING.md, "Local cluster".
//
// Needs the packages ceph, etcd-server and etcd-client (tools/setup.sh
// installs them); CephInstalled() / EtcdInstalled() tell whether they are.
// The library carries the scripts as data; it finds them relative to the
// working directory, which Bazel sets to the runfiles tree of the test.
//
// Thread safety: a cluster object is not thread-safe; RunCommand is.

#ifndef COWDB_TESTS_CLUSTER_LOCAL_CLUSTER_H_
#define COWDB_TESTS_CLUSTER_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/util/temp_dir.h"

namespace cowdb::testing {

// What a finished command did.
struct CommandResult {
  int exit_code = -1;  // 128 + the signal's number if a signal ended it
  std::string out;     // its standard output
  std::string err;     // its standard error
};

// Runs argv[0] (looked up in PATH unless it contains a '/') with `input`
// (at most 64 KiB) on its standard input and waits for it to exit, at most
// `timeout`; then it and whatever it started in its process group are
// killed. A program that cannot be run exits 127, the reason on stderr.
// Errors: InvalidArgument for no argv or a longer input, Internal if no
// process could be made, DeadlineExceeded on the timeout (the message
// carries what it printed).
absl::StatusOr<CommandResult> RunCommand(
    const std::vector<std::string>& argv, const std::string& input = "",
    absl::Duration timeout = absl::Minutes(2));

// True if process `pid` exists and is not a zombie.
bool ProcessRunning(pid_t pid);

// True if the Ceph daemons and tools (package ceph) are installed.
bool CephInstalled();
// True if etcd and etcdctl (etcd-server, etcd-client) are installed.
bool EtcdInstalled();

// One monitor and N OSDs on memstore, with a replicated pool "cowdb"
// (3 copies, min_size 2, with three or more OSDs; one per OSD below that),
// no authentication. Clients read conf_path().
class LocalCeph {
 public:
  // Starts the cluster and returns once the pool takes a write (at most
  // ~60 s). Errors: Internal with the script's message, and then nothing
  // is left running.
  static absl::StatusOr<std::unique_ptr<LocalCeph>> Start(int osds = 3);

  // Stops every daemon (SIGTERM, then SIGKILL) and removes the directory.
  ~LocalCeph();
  LocalCeph(const LocalCeph&) = delete;
  LocalCeph& operator=(const LocalCeph&) = delete;

  // The directory holding the configuration, data, logs and pid files.
  const std::string& dir() const { return dir_.path(); }
  // DIR/ceph.conf, for `rados -c`, `ceph -c` and rados_conf_read_file().
  const std::string& conf_path() const { return conf_path_; }
  std::string pool() const { return "cowdb"; }

  // SIGKILLs osd.`id` and waits until it is gone. Its data is lost
  // (memstore); the cluster notices at once (connections are refused).
  absl::Status KillOsd(int id);
  // Starts osd.`id` again after KillOsd; it comes back empty and
  // backfills from the others. Returns once the daemon runs, before it
  // has caught up.
  absl::Status StartOsd(int id);

  // The processes of the running daemons (from their pid files).
  std::vector<pid_t> DaemonPids() const;

 private:
  explicit LocalCeph(TempDir dir);

  TempDir dir_;
  std::string conf_path_;
};

// An etcd 3.4 cluster of N members (named m0 ... m{N-1}).
class LocalEtcd {
 public:
  // Starts the members and returns once each answers a health check (at
  // most ~30 s). Errors: Internal with the script's message, and then
  // nothing is left running.
  static absl::StatusOr<std::unique_ptr<LocalEtcd>> Start(int members = 3);

  // Stops every member (SIGTERM, then SIGKILL) and removes the directory.
  ~LocalEtcd();
  LocalEtcd(const LocalEtcd&) = delete;
  LocalEtcd& operator=(const LocalEtcd&) = delete;

  const std::string& dir() const { return dir_.path(); }
  // Client addresses, "127.0.0.1:PORT", member n at index n.
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // endpoints() joined with commas, as etcdctl's --endpoints takes them.
  std::string endpoints_flag() const;

  // SIGKILLs member `n` and waits until it is gone. If it led, requests
  // wait for (or fail until) a new election, about a second later.
  absl::Status KillMember(int n);
  // Restarts member `n` on its data directory and ports; returns once it
  // answers a health check.
  absl::Status StartMember(int n);

  // The processes of the running members (from their pid files).
  std::vector<pid_t> DaemonPids() const;

 private:
  explicit LocalEtcd(TempDir dir);

  TempDir dir_;
  std::vector<std::string> endpoints_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_CLUSTER_LOCAL_CLUSTER_H_
