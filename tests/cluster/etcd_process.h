// Real etcd members (/usr/bin/etcd) for tests: one or more members of one
// cluster on free loopback ports, their data and logs in a directory of
// the test's, each killed (SIGKILL) when the EtcdCluster goes. Members
// also die with the test process (PR_SET_PDEATHSIG).
//
//   std::string error;
//   auto etcd = EtcdCluster::Start(TempDirPath(), 3, &error);
//   ASSERT_NE(etcd, nullptr) << error;
//   ... EtcdClient::Connect(etcd->endpoints(), ...)
//   etcd->Kill(0);
//
// Self-contained (it checks health over etcd's HTTP /health, not with the
// client under test) so that a shared fixture can replace it later.

#ifndef COWDB_TESTS_CLUSTER_ETCD_PROCESS_H_
#define COWDB_TESTS_CLUSTER_ETCD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace cowdb::testing {

class EtcdCluster {
 public:
  // The etcd binary, or "" when it is not installed (tests then skip).
  static std::string Binary();

  // Starts `members` members with data under `dir` (created if needed)
  // and waits until every one reports healthy (within about 30 s).
  // Returns nullptr with `*error` set (including the log's tail) if not.
  static std::unique_ptr<EtcdCluster> Start(const std::string& dir, int members,
                                            std::string* error);

  ~EtcdCluster();  // kills every member still running
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "127.0.0.1:<client port>" of every member, in order.
  std::vector<std::string> endpoints() const;
  const std::string& endpoint(int i) const { return members_[i].client; }
  bool running(int i) const { return members_[i].pid > 0; }

  // SIGKILLs member i and reaps it.
  void Kill(int i);
  // Starts member i again on its data directory and waits until it is
  // healthy; false (with `*error`) if it is not within about 30 s.
  bool Restart(int i, std::string* error);

 private:
  struct Member {
    std::string name;
    std::string dir;
    std::string client;  // host:port
    std::string peer;    // host:port
    std::string log;
    pid_t pid = -1;
  };

  EtcdCluster() = default;
  bool Spawn(int i);
  bool WaitHealthy(int i, std::string* error);

  std::string initial_cluster_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_CLUSTER_ETCD_PROCESS_H_
