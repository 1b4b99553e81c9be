#include "tests/cluster/local_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "engine/util/status_macros.h"

namespace cowdb::testing {
namespace {

// Relative to the runfiles tree, the working directory of a Bazel test.
constexpr char kCephScript[] = "tools/cluster/ceph.sh";
constexpr char kEtcdScript[] = "tools/cluster/etcd.sh";

// The scripts bound their own waits (start: 60 s for Ceph, 30 s for etcd;
// stop: 15 s a daemon); these only catch a script that hangs.
constexpr absl::Duration kScriptTimeout = absl::Minutes(3);

absl::Status Errno(const std::string& what) {
  return absl::InternalError(what + ": " + std::strerror(errno));
}

bool Executable(const char* path) { return access(path, X_OK) == 0; }

// Runs `script args...`; an error carries what it printed.
absl::Status RunScript(const char* script, std::vector<std::string> args) {
  args.insert(args.begin(), script);
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(args, "", kScriptTimeout));
  if (result.exit_code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(args, " "),
                                            " exited with ", result.exit_code,
                                            ": ", result.err, result.out));
  }
  return absl::OkStatus();
}

// The pids in DIR/run/*.pid.
std::vector<pid_t> ReadPidFiles(const std::string& dir) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(dir + "/run", ec)) {
    if (entry.path().extension() != ".pid") continue;
    std::ifstream in(entry.path());
    pid_t pid = 0;
    if (in >> pid && pid > 0) pids.push_back(pid);
  }
  return pids;
}

// Reads from `fd` into `out`; false at end of file or on an error.
bool Drain(int fd, std::string* out) {
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n > 0) {
    out->append(buf, n);
    return true;
  }
  return n < 0 && (errno == EINTR || errno == EAGAIN);
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& input,
                                         absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("no command");
  // The input goes into the pipe before the child exists: no writes that
  // could block or raise SIGPIPE later. A pipe holds 64 KiB.
  constexpr size_t kMaxInput = 64 << 10;
  if (input.size() > kMaxInput) {
    return absl::InvalidArgumentError(
        absl::StrCat("input over ", kMaxInput, " bytes"));
  }
  // Close-on-exec, so that a child started by another thread meanwhile
  // does not hold these pipes open.
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Errno("pipe2");
  if (pipe2(out, O_CLOEXEC) != 0) {
    absl::Status error = Errno("pipe2");
    for (int fd : in) close(fd);
    return error;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    absl::Status error = Errno("pipe2");
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    return error;
  }
  if (!input.empty()) {
    // Cannot block or come up short: the pipe is empty and holds kMaxInput.
    const ssize_t n = write(in[1], input.data(), input.size());
    if (n != static_cast<ssize_t>(input.size())) {
      absl::Status error = Errno("write to pipe");
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      return error;
    }
  }
  close(in[1]);

  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    absl::Status error = Errno("fork");
    for (int fd : {in[0], out[0], out[1], err[0], err[1]}) close(fd);
    return error;
  }
  if (pid == 0) {
    // Its own process group, so that a timeout kills what it started too.
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execvp(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);  // either this or the child's call wins; both set it
  close(in[0]);
  close(out[1]);
  close(err[1]);

  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(ms)) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      if (!Drain(fds[i].fd, sinks[i])) {
        close(fds[i].fd);
        fds[i].fd = -1;  // poll skips negative descriptors
      }
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }

  // Its output is closed, so it is exiting, unless something is wrong.
  const auto kill_all = [pid] {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  };
  if (timed_out) kill_all();
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
    if (done == pid) break;
    if (done < 0) {
      if (errno == EINTR) continue;
      return Errno("waitpid");
    }
    if (absl::Now() >= deadline) {
      timed_out = true;
      kill_all();
    } else {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        absl::StrJoin(argv, " "), " ran over ", absl::FormatDuration(timeout),
        "; stdout: ", result.out, "; stderr: ", result.err));
  }
  result.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

bool ProcessRunning(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  // "PID (COMMAND) STATE ...", and COMMAND may hold spaces and parentheses.
  const size_t paren = stat.rfind(") ");
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

bool CephInstalled() {
  for (const char* path :
       {"/usr/bin/ceph-mon", "/usr/bin/ceph-osd", "/usr/bin/monmaptool",
        "/usr/bin/ceph", "/usr/bin/rados"}) {
    if (!Executable(path)) return false;
  }
  return true;
}

bool EtcdInstalled() {
  return Executable("/usr/bin/etcd") && Executable("/usr/bin/etcdctl");
}

// ------------------------------------------------------------------ Ceph

LocalCeph::LocalCeph(TempDir dir)
    : dir_(std::move(dir)), conf_path_(dir_.path() + "/ceph.conf") {}

absl::StatusOr<std::unique_ptr<LocalCeph>> LocalCeph::Start(int osds) {
  if (osds < 1) return absl::InvalidArgumentError("a cluster needs an OSD");
  TempDir dir;
  // On failure the script has stopped what it started.
  RETURN_IF_ERROR(
      RunScript(kCephScript, {"start", dir.path(), std::to_string(osds)}));
  return std::unique_ptr<LocalCeph>(new LocalCeph(std::move(dir)));
}

LocalCeph::~LocalCeph() {
  absl::Status stopped = RunScript(kCephScript, {"stop", dir()});
  if (!stopped.ok()) {
    std::fprintf(stderr, "LocalCeph: %s\n", stopped.ToString().c_str());
  }
}

absl::Status LocalCeph::KillOsd(int id) {
  return RunScript(kCephScript, {"kill-osd", dir(), std::to_string(id)});
}

absl::Status LocalCeph::StartOsd(int id) {
  return RunScript(kCephScript, {"start-osd", dir(), std::to_string(id)});
}

std::vector<pid_t> LocalCeph::DaemonPids() const { return ReadPidFiles(dir()); }

// ------------------------------------------------------------------ etcd

LocalEtcd::LocalEtcd(TempDir dir) : dir_(std::move(dir)) {}

absl::StatusOr<std::unique_ptr<LocalEtcd>> LocalEtcd::Start(int members) {
  if (members < 1) {
    return absl::InvalidArgumentError("a cluster needs a member");
  }
  TempDir dir;
  RETURN_IF_ERROR(
      RunScript(kEtcdScript, {"start", dir.path(), std::to_string(members)}));
  std::unique_ptr<LocalEtcd> etcd(new LocalEtcd(std::move(dir)));
  std::ifstream in(etcd->dir() + "/endpoints");
  std::string line;
  std::getline(in, line);
  for (absl::string_view endpoint :
       absl::StrSplit(line, ',', absl::SkipEmpty())) {
    etcd->endpoints_.push_back(std::string(endpoint));
  }
  if (static_cast<int>(etcd->endpoints_.size()) != members) {
    return absl::InternalError(absl::StrCat("etcd.sh wrote endpoints \"", line,
                                            "\" for ", members, " members"));
  }
  return etcd;
}

LocalEtcd::~LocalEtcd() {
  absl::Status stopped = RunScript(kEtcdScript, {"stop", dir()});
  if (!stopped.ok()) {
    std::fprintf(stderr, "LocalEtcd: %s\n", stopped.ToString().c_str());
  }
}

std::string LocalEtcd::endpoints_flag() const {
  return absl::StrJoin(endpoints_, ",");
}

absl::Status LocalEtcd::KillMember(int n) {
  return RunScript(kEtcdScript, {"kill-member", dir(), std::to_string(n)});
}

absl::Status LocalEtcd::StartMember(int n) {
  return RunScript(kEtcdScript, {"start-member", dir(), std::to_string(n)});
}

std::vector<pid_t> LocalEtcd::DaemonPids() const { return ReadPidFiles(dir()); }

}  // namespace cowdb::testing
