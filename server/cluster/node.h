// A cowdb_server's place in a cluster whose database lives in Ceph RADOS
// and whose coordination lives in etcd (coordinator.h).
//
// Roles:
//  - writer:  takes the writer lease at once (failing, naming the live
//             writer, if there is one), opens the database with the new
//             epoch, and publishes the root as versions commit.
//  - standby: waits for the writer lease to fall vacant (its holder died or
//             resigned), then becomes the writer: the new epoch fences the
//             old writer inside RADOS, and opening recovers from the last
//             checkpoint plus the log, so every acknowledged commit is
//             there.
//  - replica: opens the database read-only and follows the writer: every
//             new root in etcd (and, as a fallback, a timer) makes it
//             apply the log records appended since.
// Without etcd endpoints only the writer role exists: a single writer
// that takes the database's epoch plus one.
//
// A writer that loses its lease (a pause longer than the lease, a
// partition from etcd) or finds itself fenced steps down: `on_step_down`
// runs once, and the server exits so that a supervisor restarts it as a
// standby. Its in-flight commits fail; none of them was acknowledged.

#ifndef COWDB_SERVER_CLUSTER_NODE_H_
#define COWDB_SERVER_CLUSTER_NODE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/db.h"
#include "engine/options.h"
#include "server/cluster/coordinator.h"

namespace cowdb::cluster {

enum class Role { kWriter, kStandby, kReplica };

// "writer", "standby" or "replica"; InvalidArgument otherwise.
absl::StatusOr<Role> ParseRole(std::string_view name);
const char* RoleName(Role role);

struct NodeOptions {
  Role role = Role::kWriter;
  // etcd members ("host:port"); empty: no coordination (writer only).
  std::vector<std::string> etcd_endpoints;
  // The cluster's name in etcd (keys under /cowdb/<cluster>/).
  std::string cluster = "cowdb";
  // The address clients reach this server at, published as the writer's.
  std::string address;
  // The writer lease. A writer that dies is replaced about this long later.
  absl::Duration lease_ttl = absl::Seconds(5);
  // How often the writer publishes its latest version to the root (when
  // it changed), and how often a replica catches up without being told.
  absl::Duration publish_interval = absl::Milliseconds(100);
  absl::Duration catch_up_interval = absl::Seconds(1);
  RadosOptions rados;
  // Polled while a standby waits: true ends the wait (Start returns
  // Cancelled). Default: never.
  std::function<bool()> cancelled;
};

class Node {
 public:
  // Takes the role and opens the database. A standby blocks here until it
  // is the writer, or until `Cancel()`. `on_step_down(reason)` is called
  // (from a background thread, at most once) when a writer loses its
  // place.
  static absl::StatusOr<std::unique_ptr<Node>> Start(
      const Options& db_options, const NodeOptions& options,
      std::function<void(const std::string&)> on_step_down);

  // Stops following and publishing, closes the database, and resigns the
  // lease (so that a standby takes over at once).
  ~Node();

  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  DB* db() const { return db_.get(); }
  Role role() const { return options_.role; }
  // The writer's epoch (0 for a replica).
  uint64_t epoch() const { return epoch_; }

 private:
  Node(const NodeOptions& options,
       std::function<void(const std::string&)> on_step_down);

  absl::Status StartWriter(const Options& db_options);
  absl::Status StartReplica(const Options& db_options);
  void PublishLoop();
  void FollowLoop();
  void StepDown(const std::string& reason);

  const NodeOptions options_;
  const std::function<void(const std::string&)> on_step_down_;
  std::shared_ptr<EtcdClient> etcd_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<DB> db_;
  uint64_t epoch_ = 0;
  std::unique_ptr<EtcdClient::WatchHandle> root_watch_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;      // guarded by mu_
  bool root_changed_ = false;  // guarded by mu_
  std::atomic<bool> stepped_down_{false};
  std::thread worker_;  // PublishLoop (writer) or FollowLoop (replica)
};

}  // namespace cowdb::cluster

#endif  // COWDB_SERVER_CLUSTER_NODE_H_
