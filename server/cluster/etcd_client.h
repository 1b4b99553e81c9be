// EtcdClient: a small client for etcd 3.4's v3 gRPC API (KV, Lease and
// Watch services), enough for cluster coordination (server/cluster/
// coordinator.h): reads, puts, compare-and-swap transactions, leases kept
// alive in the background, and watches that survive the loss of a member.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> etcd,
//                    EtcdClient::Connect({"10.0.0.1:2379", "10.0.0.2:2379",
//                                         "10.0.0.3:2379"},
//                                        absl::Seconds(2)));
//   ASSIGN_OR_RETURN(EtcdClient::GetResult got, etcd->Get("/app/config"));
//   ASSIGN_OR_RETURN(bool swapped,
//                    etcd->PutIf("/app/config", "v2",
//                                got.kv ? got.kv->mod_revision : 0));
//
// Endpoints and failover. The client talks to one endpoint ("host:port",
// plain-text gRPC) at a time. A call that fails with UNAVAILABLE or
// DEADLINE_EXCEEDED is retried on the next endpoint, pausing briefly after
// each round through the list, until it has tried every endpoint twice
// and the call timeout has passed since it began. Losing one member of
// three is then invisible to callers, even the raft leader, provided the
// timeout spans a leader election (etcd's default election timeout, 1 s,
// elects within about 2 s; a 5 s timeout is comfortable).
// Every request carries etcd's "require leader" flag, so a member without
// a leader answers UNAVAILABLE at once instead of hanging.
//
// Deadlines. Every attempt of a unary call has the timeout given to
// Connect as its deadline; a call returns within about 2 * endpoints *
// timeout, and within about the timeout when every endpoint fails fast.
// Watch streams have no deadline (they live as long as the watch); a dead
// or partitioned member is noticed by gRPC keepalive pings and by etcd's
// require-leader check, and the watch moves on. Lease renewals have a
// deadline of their own (see KeepAlive).
//
// Retried writes. An attempt that failed with UNAVAILABLE or
// DEADLINE_EXCEEDED may still have been applied by etcd. Put and
// LeaseRevoke are safe to repeat; a repeated LeaseGrant may leave an
// unused lease, which lapses after its TTL. A transaction is not: its retry may
// find its own earlier effect and report succeeded = false. Callers that
// must tell the two apart make their change recognizable (the coordinator
// puts its own, unique lease on the key it creates, and looks for it).
//
// Errors. absl::Status codes are gRPC's; messages name the endpoint and
// the call ("etcd at 127.0.0.1:2379: Txn: ..."). When every endpoint
// failed, the message lists each one's error.
//
// Thread safety: all methods of EtcdClient may be called concurrently.
// LeaseKeeper and WatchHandle run their own thread; their callbacks run
// on that thread. The client must outlive every LeaseKeeper and
// WatchHandle it returned.

#ifndef COWDB_SERVER_CLUSTER_ETCD_CLIENT_H_
#define COWDB_SERVER_CLUSTER_ETCD_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cowdb::cluster {

class EtcdClient {
 public:
  // A key's value and metadata, as etcd's mvccpb.KeyValue.
  struct KeyValue {
    std::string key;
    std::string value;
    int64_t create_revision = 0;  // the revision that created the key
    int64_t mod_revision = 0;     // the revision that last wrote it
    int64_t version = 0;          // writes since it was created
    int64_t lease = 0;            // the attached lease; 0 = none
  };

  struct GetResult {
    std::optional<KeyValue> kv;  // nullopt: the key does not exist
    int64_t revision = 0;        // the store's revision at the read
  };

  // One condition of a transaction: `key`'s `target` equals `value`
  // (etcd's Compare with result EQUAL). A missing key has create and mod
  // revision 0, version 0 and lease 0; a value comparison on a missing key
  // is false.
  struct Compare {
    enum class Target {
      kCreateRevision,
      kModRevision,
      kVersion,
      kLease,
      kValue
    };
    std::string key;
    Target target = Target::kModRevision;
    int64_t number = 0;  // for every target but kValue
    std::string value;   // for kValue

    // `key` was last written at `revision`; 0: `key` does not exist.
    static Compare ModRevisionIs(std::string key, int64_t revision);
    // `key` was created at `revision`; 0: `key` does not exist.
    static Compare CreateRevisionIs(std::string key, int64_t revision);
    // `key` is attached to `lease` (0: to none, or it does not exist).
    static Compare LeaseIs(std::string key, int64_t lease);
    // `key` exists and holds `value`.
    static Compare ValueIs(std::string key, std::string value);
  };

  // One write of a transaction: a put (with an optional lease) or the
  // deletion of one key.
  struct Op {
    enum class Type { kPut, kDelete };
    Type type = Type::kPut;
    std::string key;
    std::string value;  // kPut only
    int64_t lease = 0;  // kPut only; 0 = none

    static Op Put(std::string key, std::string value, int64_t lease = 0);
    static Op Delete(std::string key);
  };

  struct TxnResult {
    bool succeeded = false;  // every comparison held, and `ops` were applied
    int64_t revision = 0;    // the store's revision after the transaction
  };

  // A lease as granted. etcd may raise the TTL asked for to its minimum
  // (1.5 election timeouts, rounded up to whole seconds).
  struct Lease {
    int64_t id = 0;
    int64_t ttl_seconds = 0;
    // When the lease expires at the latest, by this machine's clock,
    // unless renewed: the grant request's send time plus the TTL. etcd
    // counts from when it received the request, so its expiry is never
    // earlier than this.
    absl::Time expires_by;
  };

  // A watch event. `kv.value` is empty for a delete; `kv.mod_revision` is
  // the revision of the event either way.
  struct WatchEvent {
    enum class Type { kPut, kDelete };
    Type type = Type::kPut;
    KeyValue kv;
  };

  // Called for each event in revision order, from the watch's thread.
  // Called with an error once when the watch ends for good (OutOfRange:
  // its next revision was compacted away); no call follows an error.
  using WatchCallback = std::function<void(absl::StatusOr<WatchEvent>)>;

  class LeaseKeeper;
  class WatchHandle;

  // Connects to the first of `endpoints` ("host:port") that answers (a
  // Maintenance.Status call with the require-leader flag, bounded by
  // `timeout` per endpoint). `timeout` is then the deadline of every call
  // attempt. Errors: InvalidArgument for no endpoints or timeout <= 0;
  // Unavailable, naming each endpoint and its error, when none answers.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(
      std::vector<std::string> endpoints, absl::Duration timeout);

  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // The value and metadata of `key` (a linearizable read), and the store's
  // revision at the read.
  absl::StatusOr<GetResult> Get(std::string_view key);

  // Sets `key` to `value`, attached to `lease` (0: none). Returns the
  // revision of the write.
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease = 0);

  // Sets `key` to `value` (attached to `lease`) if its mod_revision is
  // `expected_mod_revision`; 0 means the key must not exist. Returns
  // whether it did (see "Retried writes" above).
  absl::StatusOr<bool> PutIf(std::string_view key, std::string_view value,
                             int64_t expected_mod_revision, int64_t lease = 0);

  // Applies `ops` atomically if every one of `compares` holds (an empty
  // list holds). One key may be written once at most.
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<Op>& ops);

  // Grants a lease of `ttl_seconds` (>= 1; etcd may raise it).
  absl::StatusOr<Lease> LeaseGrant(int64_t ttl_seconds);

  // Revokes lease `id`, deleting the keys attached to it. A lease that
  // does not exist (expired, or revoked already) is not an error.
  absl::Status LeaseRevoke(int64_t id);

  // Starts renewing `lease` in the background, every TTL/3; a failed
  // renewal is retried on the next endpoint within 200 ms. Each renewal
  // is a one-request LeaseKeepAlive stream whose deadline is the call
  // timeout or the lease's deadline, whichever comes first. `on_lost`
  // (may be empty) is called once, from the keeper's thread, when the
  // lease is lost: a renewal answered that it no longer exists (TTL <= 0),
  // or lease.expires_by passed without a successful renewal (timed on the
  // monotonic clock from when KeepAlive is called). Renewals
  // stop when the keeper is destroyed (the lease is not revoked).
  std::unique_ptr<LeaseKeeper> KeepAlive(Lease lease,
                                         std::function<void()> on_lost);

  // Watches `key` from `start_revision` (inclusive; 0: from now on).
  // Returns once etcd has created the watch, or an error when no endpoint
  // created it within about 2 * endpoints * timeout. When the stream
  // breaks, the watch is re-created on the next endpoint from the last
  // delivered revision + 1, so no event is lost or repeated.
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string key,
                                                     int64_t start_revision,
                                                     WatchCallback callback);

  const std::vector<std::string>& endpoints() const;
  // The endpoint that calls go to now.
  std::string current_endpoint() const;

 private:
  struct Endpoint;
  template <typename Response>
  struct UnaryCall;

  EtcdClient(std::vector<std::unique_ptr<Endpoint>> endpoints,
             absl::Duration timeout);

  // Runs `call` against the current endpoint, moving on to the next one
  // on UNAVAILABLE or DEADLINE_EXCEEDED (see "Endpoints and failover").
  template <typename Response>
  absl::StatusOr<Response> Call(const UnaryCall<Response>& call);

  // The endpoint to use now.
  size_t current() const { return current_.load(); }
  // Moves on from endpoint `failed` (if it is still the current one).
  void Failover(size_t failed);

  const std::vector<std::unique_ptr<Endpoint>> endpoints_;
  const std::vector<std::string> addresses_;
  const absl::Duration timeout_;
  std::atomic<size_t> current_{0};
};

// Renews a lease in the background until destroyed (see
// EtcdClient::KeepAlive). Destroying it does not revoke the lease: the
// lease then lapses after its TTL. It may be destroyed from its own
// `on_lost` callback (its thread then ends as the callback returns).
class EtcdClient::LeaseKeeper {
 public:
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  int64_t lease_id() const;
  // Whether the lease was lost (on_lost has been or is being called).
  bool lost() const;

  // For tests: while paused, no renewal is sent, as when every endpoint
  // is unreachable; the lease is reported lost once its deadline passes.
  void PauseForTesting(bool paused);

 private:
  friend class EtcdClient;
  struct State;  // shared with the keeper's thread

  explicit LeaseKeeper(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

// A watch; destroying the handle cancels it (and waits for a callback in
// progress to return). Must not be destroyed from its own callback.
class EtcdClient::WatchHandle {
 public:
  ~WatchHandle();
  WatchHandle(const WatchHandle&) = delete;
  WatchHandle& operator=(const WatchHandle&) = delete;

  // The endpoint whose stream delivers events now ("" while reconnecting).
  std::string endpoint() const;

 private:
  friend class EtcdClient;
  struct State;

  explicit WatchHandle(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace cowdb::cluster

#endif  // COWDB_SERVER_CLUSTER_ETCD_CLIENT_H_
