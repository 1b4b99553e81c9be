// cowdb_server's etcd face: etcd 3.4's v3 gRPC API (KV, Watch, Lease,
// Maintenance, Cluster, Auth) over a cowdb::DB, so that etcdctl and etcd's
// client libraries work unchanged. Users, roles and tokens are the
// server's AccessControl (server/auth.h), shared with the cowdb service;
// what each etcd request needs is server/etcd/auth_policy.h.
//
//   cowdb::server::etcd::EtcdFace face(db, options, &auth);
//   face.Register(&builder);   // before BuildAndStart
//   ...
//   face.Stop();               // before the DB closes
//
// Revisions are cowdb versions; a key's create_revision, version and
// lease are the engine's KeyMeta. What differs from etcd is in
// docs/ETCD.md.

#ifndef COWDB_SERVER_ETCD_ETCD_H_
#define COWDB_SERVER_ETCD_ETCD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/db.h"
#include "grpcpp/grpcpp.h"
#include "server/service.h"

namespace cowdb::server::etcd {

struct EtcdOptions {
  // What ResponseHeader and MemberList report. Ids are never 0.
  uint64_t cluster_id = 0x636f776462;  // "cowdb"
  uint64_t member_id = 0x6d656d626572;  // "member"
  std::string member_name = "cowdb";
  std::vector<std::string> client_urls;  // e.g. "http://127.0.0.1:2379"
  // Where leases are kept across restarts (written atomically on grant
  // and revoke). Empty: leases live in memory only.
  std::string lease_file;
  // The largest request etcd accepts (its --max-request-bytes); larger
  // Put/Txn requests get "etcdserver: request is too large". Also the
  // size at which a fragmenting watch splits its responses.
  uint64_t max_request_bytes = 1536 * 1024;
  // Compares, and ops per branch, in one Txn at most (etcd's
  // --max-txn-ops).
  int max_txn_ops = 128;
  // How often a watch created with progress_notify gets an empty response
  // when it had no events (etcd: 10 minutes).
  absl::Duration progress_interval = absl::Minutes(10);
  // Events a watch that shares the engine watcher may have queued before
  // it falls back to reading the engine with its own (a client that does
  // not keep up).
  size_t max_queued_watch_events = 100000;
  // How often leases are checked for expiry.
  absl::Duration lease_tick = absl::Milliseconds(250);
  // Writes (Put, DeleteRange, Txn) accepted and not yet answered, at most,
  // and their request bytes; one client (connection) may hold a quarter.
  // Beyond: "etcdserver: too many requests" (RESOURCE_EXHAUSTED), as etcd
  // answers when its proposals back up. See server/admission.h.
  uint64_t max_inflight_writes = 4096;
  uint64_t max_inflight_write_bytes = 256 << 20;
};

class Lessor;

class EtcdFace {
 public:
  // `db` and `auth` must outlive the face; etcd's Auth service changes
  // `auth`'s users and roles. Loads leases from
  // options.lease_file and starts expiring them. Errors: an unreadable or
  // damaged lease file; a database that cannot be scanned.
  static absl::StatusOr<std::unique_ptr<EtcdFace>> Create(
      DB* db, EtcdOptions options, AccessControl* auth);
  ~EtcdFace();

  // Registers the six services with `builder`.
  void Register(grpc::ServerBuilder* builder);

  // Stops lease expiry and the watch hub's thread. Idempotent.
  // REQUIRES: the server serving the face has shut down.
  void Stop();

 private:
  EtcdFace() = default;
  struct Services;
  std::unique_ptr<Lessor> lessor_;
  std::unique_ptr<Services> services_;
};

}  // namespace cowdb::server::etcd

#endif  // COWDB_SERVER_ETCD_ETCD_H_
