// What the etcd face's services share: etcd's error statuses, response
// headers, key ranges, KeyValue conversion, and the executor of KV
// requests (also used by Txn and by lease revocation).

#ifndef COWDB_SERVER_ETCD_INTERNAL_H_
#define COWDB_SERVER_ETCD_INTERNAL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/db.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/etcd/etcd.h"

namespace cowdb::server::etcd {

namespace pb = ::etcdserverpb;

// etcd's errors, with the codes and messages its clients match.
namespace errors {
grpc::Status EmptyKey();
grpc::Status KeyNotFound();
grpc::Status ValueProvided();
grpc::Status LeaseProvided();
grpc::Status TooManyOps();
grpc::Status DuplicateKey();
grpc::Status Compacted();
grpc::Status FutureRev();
grpc::Status LeaseNotFound();
grpc::Status LeaseExist();
grpc::Status LeaseTTLTooLarge();
grpc::Status RequestTooLarge();
}  // namespace errors

// An engine status as a gRPC status (OutOfRange for a released version is
// etcd's "compacted").
grpc::Status FromEngine(const absl::Status& s);

// The keys an etcd (key, range_end) pair names: one key (range_end
// empty), [key, range_end), or every key >= key (range_end "\0").
struct KeySpan {
  std::string begin;
  std::string end;     // exclusive; empty = unbounded (unless single)
  bool single = false;

  static KeySpan Of(std::string_view key, std::string_view range_end);
  bool Contains(std::string_view k) const {
    if (single) return k == begin;
    return begin <= k && (end.empty() || k < end);
  }
  // Whether the span can hold no key at all.
  bool Empty() const { return !single && !end.empty() && end <= begin; }
  // The engine's end bound for Count/iteration ("" = unbounded).
  std::string_view engine_end() const { return end; }
};

void FillKv(std::string_view key, std::string_view value, const KeyMeta& m,
            mvccpb::KeyValue* kv);

class Lessor;

// Everything a service needs.
struct Shared {
  DB* db = nullptr;
  const EtcdOptions* options = nullptr;
  const Authenticator* auth = nullptr;
  Lessor* lessor = nullptr;

  void FillHeader(uint64_t revision, pb::ResponseHeader* h) const {
    h->set_cluster_id(options->cluster_id);
    h->set_member_id(options->member_id);
    h->set_revision(static_cast<int64_t>(revision));
    h->set_raft_term(1);
  }
  // The oldest revision etcd would still serve (its compaction floor).
  uint64_t CompactRevision() const { return db->OldestVersion(); }
};

// Checks a request as etcd's gRPC layer does before it runs it.
grpc::Status CheckRange(const pb::RangeRequest& r);
grpc::Status CheckPut(const pb::PutRequest& r);
grpc::Status CheckDelete(const pb::DeleteRangeRequest& r);
grpc::Status CheckTxn(const pb::TxnRequest& r, int max_ops);

// Runs Range, Put, DeleteRange and Txn requests: reads at the latest
// version through one serializable cowdb transaction and buffers its
// writes there, then commits; retried from the start on a conflict.
// Responses that report what this request wrote (mod_revision, revisions
// in nested headers) are completed with the commit's version.
grpc::Status RunRange(const Shared& s, const pb::RangeRequest& r,
                      pb::RangeResponse* resp);
grpc::Status RunPut(const Shared& s, const pb::PutRequest& r,
                    pb::PutResponse* resp);
grpc::Status RunDelete(const Shared& s, const pb::DeleteRangeRequest& r,
                       pb::DeleteRangeResponse* resp);
grpc::Status RunTxn(const Shared& s, const pb::TxnRequest& r,
                    pb::TxnResponse* resp);

// Deletes the keys among `keys` whose lease is still `lease`, in one
// version (none if none is). Returns the latest version after.
absl::StatusOr<uint64_t> DeleteLeased(DB* db, int64_t lease,
                                      const std::set<std::string>& keys);

// Serves one Watch stream until the client ends it.
grpc::Status ServeWatch(const Shared& s, grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* rw);

// Leases: ids, TTLs, expiry, the keys attached to each (a superset: a key
// overwritten without the lease stays listed until checked), persisted in
// EtcdOptions::lease_file.
class Lessor {
 public:
  static absl::StatusOr<std::unique_ptr<Lessor>> Create(
      DB* db, const EtcdOptions& options);
  ~Lessor();

  // etcd's minimum TTL; shorter grants get it.
  static constexpr int64_t kMinTTL = 2;
  static constexpr int64_t kMaxTTL = 9000000000;

  struct Granted {
    int64_t id;
    int64_t ttl;
  };
  // Errors: LeaseExist, LeaseTTLTooLarge (as gRPC statuses).
  absl::StatusOr<Granted> Grant(int64_t id, int64_t ttl);
  // Deletes the lease's keys in one version. Errors: NotFound.
  absl::Status Revoke(int64_t id);
  // Restarts the lease's clock; returns its TTL. Errors: NotFound.
  absl::StatusOr<int64_t> Renew(int64_t id);
  struct Info {
    int64_t remaining = 0;  // seconds
    int64_t granted = 0;
    std::vector<std::string> keys;  // attached now
  };
  // Errors: NotFound.
  absl::StatusOr<Info> TimeToLive(int64_t id, bool keys);
  std::vector<int64_t> List();

  // Writes that attach keys to leases hold this (shared: writers never
  // wait for each other) so that a revocation (exclusive) never misses a
  // key attached while it runs.
  std::shared_mutex& attach_mutex() { return attach_mu_; }
  // REQUIRES: attach_mutex() held (shared or exclusive).
  bool Exists(int64_t id);
  void Attach(int64_t id, std::string_view key);

  // Stops expiring leases. Idempotent.
  void Stop();

 private:
  Lessor(DB* db, const EtcdOptions& options) : db_(db), options_(options) {}
  struct Lease {
    int64_t ttl = 0;
    absl::Time expiry;
    std::set<std::string> keys;
  };
  absl::Status Load();
  absl::Status SaveLocked();  // REQUIRES: mu_
  void ExpireLoop();
  absl::Status RevokeLocked(std::unique_lock<std::mutex>& lock, int64_t id);

  DB* const db_;
  const EtcdOptions& options_;
  std::shared_mutex attach_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<int64_t, Lease> leases_;
  std::thread expirer_;
};

}  // namespace cowdb::server::etcd

#endif  // COWDB_SERVER_ETCD_INTERNAL_H_
