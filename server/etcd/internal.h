// What the etcd face's services share: etcd's error statuses, response
// headers, key ranges, KeyValue conversion, and the executor of KV
// requests (also used by Txn and by lease revocation).

#ifndef COWDB_SERVER_ETCD_INTERNAL_H_
#define COWDB_SERVER_ETCD_INTERNAL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
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
// Auth (etcd's rpctypes).
grpc::Status RootUserNotExist();
grpc::Status RootRoleNotExist();
grpc::Status UserAlreadyExist();
grpc::Status UserEmpty();
grpc::Status UserNotFound();
grpc::Status RoleAlreadyExist();
grpc::Status RoleNotFound();
grpc::Status RoleEmpty();
grpc::Status AuthFailed();
grpc::Status PermissionDenied();
grpc::Status RoleNotGranted();
grpc::Status PermissionNotGranted();
grpc::Status AuthNotEnabled();
grpc::Status InvalidAuthToken();
grpc::Status InvalidAuthMgmt();
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
  // The span as a transaction iterator's bounds, so that a range read
  // observes nothing outside it (none for an empty span).
  IterateBounds Bounds() const {
    if (single) return IterateBounds{begin, begin + std::string(1, '\0')};
    if (Empty()) return IterateBounds{};
    return IterateBounds{begin, end};
  }
};

void FillKv(std::string_view key, std::string_view value, const KeyMeta& m,
            mvccpb::KeyValue* kv);

class Lessor;
class WatchHub;

// Everything a service needs.
struct Shared {
  DB* db = nullptr;
  const EtcdOptions* options = nullptr;
  AccessControl* auth = nullptr;
  Lessor* lessor = nullptr;
  WatchHub* hub = nullptr;

  void FillHeader(uint64_t revision, pb::ResponseHeader* h) const {
    h->set_cluster_id(options->cluster_id);
    h->set_member_id(options->member_id);
    h->set_revision(static_cast<int64_t>(revision));
    h->set_raft_term(1);
  }
  // etcd's compaction revision: the oldest revision it still serves, 0
  // when nothing was compacted. Compact(r) releases the versions below
  // r - 1: cowdb keeps the version before the compaction revision, so
  // that a watch can start at it (its events are the difference from the
  // version before). Retention raises it too.
  uint64_t CompactRevision() const {
    uint64_t floor = db->ReleaseFloor();
    return floor == 0 ? 0 : floor + 1;
  }
  // Whether etcd would refuse reading at `revision` as compacted. A tagged
  // version stays readable (what cowdb adds).
  bool IsCompacted(uint64_t revision) const {
    if (revision >= CompactRevision()) return false;
    for (const auto& [name, v] : db->ListTags()) {
      if (v == revision) return false;
    }
    return true;
  }
};

// Checks a request as etcd's gRPC layer does before it runs it.
grpc::Status CheckRange(const pb::RangeRequest& r);
grpc::Status CheckPut(const pb::PutRequest& r);
grpc::Status CheckDelete(const pb::DeleteRangeRequest& r);
grpc::Status CheckTxn(const pb::TxnRequest& r, int max_ops);

// Runs the KV requests. Range reads a snapshot. A blind Put is one write.
// The others read the latest version through one serializable cowdb
// transaction and buffer their writes there, then commit; retried from the
// start on a conflict.
// Responses that report what this request wrote (mod_revision, revisions
// in nested headers) are completed with the commit's version.
grpc::Status RunRange(const Shared& s, const pb::RangeRequest& r,
                      pb::RangeResponse* resp);
// How an asynchronous request reports its outcome; called once, on any
// thread (for a write, usually the one that led its group commit).
using Finish = std::function<void(grpc::Status)>;
// The writes. Each calls `finish` when done; `r` and `resp` must stay
// alive until then.
void StartPut(const Shared& s, const pb::PutRequest* r, pb::PutResponse* resp,
              Finish finish);
void StartDelete(const Shared& s, const pb::DeleteRangeRequest* r,
                 pb::DeleteRangeResponse* resp, Finish finish);
void StartTxn(const Shared& s, const pb::TxnRequest* r, pb::TxnResponse* resp,
              Finish finish);

// Deletes the keys among `keys` whose lease is still `lease`, in one
// version (none if none is). Returns the latest version after.
absl::StatusOr<uint64_t> DeleteLeased(DB* db, int64_t lease,
                                      const std::set<std::string>& keys);

// One engine watcher over every key, shared by the watches that start at
// the latest version (etcd's "synced" watchers): it copies each change
// into the queues of the watches whose range holds the key, so N watches
// cost one diff per version instead of N. A watch that starts in the past
// (or whose queue overflows: a client that does not keep up) reads the
// engine with its own watcher instead.
class WatchHub {
 public:
  WatchHub(DB* db, size_t max_queued) : db_(db), max_queued_(max_queued) {}
  ~WatchHub() { Stop(); }

  // A watcher of [begin, end) (end empty: unbounded) fed by the hub from
  // `from`, or nullptr if the hub has passed `from`.
  std::unique_ptr<Watcher> Subscribe(uint64_t from, std::string begin, std::string end);
  // Ends the hub's thread. REQUIRES: no subscription is left.
  void Stop();

 private:
  class Sub;
  void Run(std::unique_ptr<Watcher> watcher);
  void Remove(Sub* sub);

  DB* const db_;
  const size_t max_queued_;  // events a subscription queues at most
  std::mutex mu_;
  std::set<Sub*> subs_;
  bool started_ = false;
  bool stop_ = false;
  uint64_t position_ = 0;  // every version up to it was handed to subs_
  std::thread thread_;
};

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

  // A write that may attach keys to leases holds each lease its puts name
  // from before it runs until it has attached its keys (or failed), so
  // that a revocation, which waits for a lease's holds to end (and refuses
  // new ones meanwhile), never misses a key. A hold does not tie a thread:
  // an asynchronous commit's callback releases it.
  //
  // Holds lease `id` if it exists, has not expired and is not being
  // revoked; false otherwise.
  bool Hold(int64_t id);
  void Release(int64_t id);
  // Whether the lease exists, has not expired and is not being revoked.
  bool Exists(int64_t id);
  // REQUIRES: the lease held.
  void Attach(int64_t id, std::string_view key);
  // `key` no longer carries lease `id`.
  void Detach(int64_t id, std::string_view key);

  // Stops expiring leases. Idempotent.
  void Stop();

 private:
  Lessor(DB* db, const EtcdOptions& options);
  struct Lease {
    int64_t ttl = 0;
    absl::Time expiry;
    std::set<std::string> keys;
    int holds = 0;          // writes that may attach keys to it, running
    bool revoking = false;  // a revocation waits for holds to end
  };
  absl::Status Load();
  absl::Status SaveLocked();  // REQUIRES: mu_
  void ExpireLoop();
  absl::Status RevokeLocked(std::unique_lock<std::mutex>& lock, int64_t id);

  DB* const db_;
  const EtcdOptions& options_;
  std::mutex mu_;
  std::condition_variable cv_;        // the expiry loop's tick and Stop
  std::condition_variable released_;  // a hold ended
  bool stop_ = false;
  std::map<int64_t, Lease> leases_;
  std::thread expirer_;
};

}  // namespace cowdb::server::etcd

#endif  // COWDB_SERVER_ETCD_INTERNAL_H_
