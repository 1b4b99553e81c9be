#include "tests/cluster/etcd_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace cowdb::testing {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr auto kHealthyWithin = std::chrono::seconds(30);

// `n` distinct free loopback ports (held open together, then released).
std::vector<int> FreePorts(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd < 0 ||
        bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) close(fd);
      continue;
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

// Whether GET /health on `hostport` answers {"health":"true"}.
bool Healthy(const std::string& hostport) {
  const size_t colon = hostport.rfind(':');
  const int port = std::stoi(hostport.substr(colon + 1));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req =
        "GET /health HTTP/1.0\r\nHost: " + hostport + "\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[1024];
      ssize_t got;
      while ((got = read(fd, buf, sizeof(buf))) > 0) response.append(buf, got);
    }
  }
  close(fd);
  return response.find("\"health\":\"true\"") != std::string::npos;
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

}  // namespace

std::string EtcdCluster::Binary() {
  return access(kEtcd, X_OK) == 0 ? kEtcd : "";
}

std::unique_ptr<EtcdCluster> EtcdCluster::Start(const std::string& dir,
                                                int members,
                                                std::string* error) {
  static std::atomic<int> clusters{0};
  // A port taken by another process between FreePorts and etcd's bind
  // makes a member exit: try again on new ports.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdCluster> c(new EtcdCluster());
    const int id = clusters++;
    c->token_ =
        "cowdb-test-" + std::to_string(getpid()) + "-" + std::to_string(id);
    const std::vector<int> ports = FreePorts(2 * members);
    if (static_cast<int>(ports.size()) != 2 * members) {
      *error = "no free ports";
      return nullptr;
    }
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.dir = dir + "/etcd" + std::to_string(id) + "-" + m.name;
      m.client = "127.0.0.1:" + std::to_string(ports[2 * i]);
      m.peer = "127.0.0.1:" + std::to_string(ports[2 * i + 1]);
      m.log = m.dir + ".log";
      if (!c->initial_cluster_.empty()) c->initial_cluster_ += ",";
      c->initial_cluster_ += m.name + "=http://" + m.peer;
      c->members_.push_back(m);
    }
    std::filesystem::create_directories(dir);
    bool ok = true;
    for (int i = 0; i < members && ok; ++i) ok = c->Spawn(i);
    if (!ok) {
      *error = "fork failed";
      return nullptr;
    }
    for (int i = 0; i < members && ok; ++i) ok = c->WaitHealthy(i, error);
    if (ok) return c;
  }
  return nullptr;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const Member& m : members_) out.push_back(m.client);
  return out;
}

bool EtcdCluster::Spawn(int i) {
  Member& m = members_[i];
  // Everything the child needs is built before fork: between fork and
  // exec only async-signal-safe calls.
  std::vector<std::string> args = {
      kEtcd,
      "--name=" + m.name,
      "--data-dir=" + m.dir,
      "--listen-client-urls=http://" + m.client,
      "--advertise-client-urls=http://" + m.client,
      "--listen-peer-urls=http://" + m.peer,
      "--initial-advertise-peer-urls=http://" + m.peer,
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-token=" + token_,
      "--initial-cluster-state=new",  // ignored when the data dir exists
      "--logger=zap",
      "--log-outputs=stderr",
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int log =
      open(m.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return false;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return false;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died already
    dup2(log, 1);
    dup2(log, 2);
    execv(kEtcd, argv.data());
    _exit(127);
  }
  close(log);
  m.pid = pid;
  return true;
}

bool EtcdCluster::WaitHealthy(int i, std::string* error) {
  Member& m = members_[i];
  const auto deadline = std::chrono::steady_clock::now() + kHealthyWithin;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(m.pid, &status, WNOHANG) == m.pid) {
      m.pid = -1;
      *error = "etcd member " + m.name + " exited (status " +
               std::to_string(status) + "); its log ends:\n" +
               Tail(m.log, 2000);
      return false;
    }
    if (Healthy(m.client)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *error = "etcd member " + m.name + " at " + m.client +
           " not healthy within 30 s; its log ends:\n" + Tail(m.log, 2000);
  return false;
}

void EtcdCluster::Kill(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  kill(m.pid, SIGKILL);
  waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

bool EtcdCluster::Restart(int i, std::string* error) {
  Kill(i);
  if (!Spawn(i)) {
    *error = "fork failed";
    return false;
  }
  return WaitHealthy(i, error);
}

}  // namespace cowdb::testing
