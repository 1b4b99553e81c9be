// The gRPC services of cowdb_server over an embedded cowdb::DB.
//
// Interactive transactions live in a registry keyed by a random id; one
// idle longer than the idle timeout is rolled back (its snapshot released).
// Every handler maps engine statuses to gRPC codes in one place
// (ToGrpcStatus) and never lets an exception or bad input crash the server.

#ifndef COWDB_SERVER_SERVICE_H_
#define COWDB_SERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "server/admission.h"
#include "engine/db.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::server {

struct ServiceOptions {
  // Keys per ScanResponse message.
  uint64_t scan_page_size = 1000;
  // Open interactive transactions at most; Begin beyond it is
  // RESOURCE_EXHAUSTED.
  uint64_t max_open_transactions = 10000;
  // Mutations per transaction (and per one-shot Txn) at most, and bytes of
  // keys and values per transaction at most; beyond either a Write or
  // Commit is RESOURCE_EXHAUSTED and the transaction stays open.
  uint64_t max_transaction_ops = 100000;
  uint64_t max_transaction_bytes = 64 << 20;
  // The deadline of a call that sets none, and the longest deadline
  // honoured. Streams (Scan, Diff) that run past it end with
  // DEADLINE_EXCEEDED; one blocked writing to a client that does not read
  // is cancelled 1 s after its deadline (see CallWatchdog). A Watch has no
  // deadline, but one whose client takes no message for default_deadline
  // (and 1 s) is cancelled.
  absl::Duration default_deadline = absl::Seconds(60);
  absl::Duration max_deadline = absl::Minutes(10);
  // A transaction unused this long is rolled back.
  absl::Duration transaction_idle_timeout = absl::Seconds(60);
  // Writes (Put, Delete, Txn) accepted but not yet answered, at most, and
  // their request bytes; one client (connection) may hold a quarter of
  // each. Beyond: RESOURCE_EXHAUSTED at once (see server/admission.h).
  uint64_t max_inflight_writes = 4096;
  uint64_t max_inflight_write_bytes = 256 << 20;
};

// Where a streaming handler writes its messages. The gRPC handlers wrap
// the call's ServerWriter in one; tests and fuzzers call the handlers'
// *To variants with their own sink, without a live call.
template <typename T>
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // Sends `msg`; false once the stream is broken (the client went away).
  virtual bool Write(const T& msg) = 0;
};

// Cancels calls that run past their deadline. gRPC itself enforces only a
// deadline that the client set, and the handlers check the server's
// default deadline between messages, which a handler blocked in a Write to
// a client that does not read never reaches: it would hold its server
// thread (and its snapshot) for as long as the client keeps the connection
// open. The watchdog calls ServerContext::TryCancel() on such a call,
// which fails the blocked Write.
//
// Thread safety: all methods may be called concurrently.
// REQUIRES: no Guard outlives its watchdog.
class CallWatchdog {
 public:
  // Keeps one call under watch while it lives. Movable.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept : watchdog_(other.watchdog_), id_(other.id_) {
      other.watchdog_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class CallWatchdog;
    Guard(CallWatchdog* watchdog, uint64_t id) : watchdog_(watchdog), id_(id) {}
    CallWatchdog* watchdog_ = nullptr;
    uint64_t id_ = 0;
  };

  CallWatchdog();
  ~CallWatchdog();
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // Cancels the call of `ctx` once `deadline` has passed, unless the
  // returned guard is destroyed first. After the guard is gone the
  // watchdog never touches `ctx` again.
  Guard Watch(grpc::ServerContext* ctx, absl::Time deadline);

 private:
  struct Call {
    absl::Time deadline;
    grpc::ServerContext* ctx;
  };
  void Unwatch(uint64_t id);
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Call> calls_;  // by id; guarded by mu_
  uint64_t next_id_ = 1;            // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  // When the watchdog thread wakes next; guarded by mu_.
  absl::Time next_wake_ = absl::InfinitePast();
  std::thread thread_;
};

// The one mapping from engine status to gRPC status. Statuses that mean
// the server or its storage is in trouble (UNKNOWN outcome, DATA_LOSS,
// INTERNAL) are also logged.
grpc::Status ToGrpcStatus(const absl::Status& s);

// One log line on stderr: ts=... level=... msg="..." [fields].
void Log(const std::string& level, const std::string& msg, const std::string& fields = "");

// Bearer tokens: every call must carry "authorization: Bearer <token>"
// with one of them. With no tokens configured, every call passes.
class Authenticator {
 public:
  Authenticator() = default;
  // Reads tokens from `path`, one per line; blank lines and lines starting
  // with '#' are skipped. Errors: the file cannot be read or has no token.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);

  // UNAUTHENTICATED unless the call carries a valid token.
  grpc::Status Check(const grpc::ServerContextBase* ctx) const;

 private:
  std::vector<std::string> tokens_;
};

// Open interactive transactions.
class TransactionRegistry {
 public:
  TransactionRegistry(const ServiceOptions& options);
  ~TransactionRegistry();

  // Registers `txn`; returns its id. Errors: RESOURCE_EXHAUSTED.
  absl::StatusOr<std::string> Add(std::unique_ptr<Transaction> txn);

  // Runs `fn` on the transaction with `id` (one call at a time per
  // transaction). Errors: NOT_FOUND for an unknown or expired id.
  absl::Status With(const std::string& id,
                    const std::function<absl::Status(Transaction&)>& fn);

  // Buffers `mutations` in the transaction with `id` within the limits
  // (RESOURCE_EXHAUSTED beyond them, nothing applied), then runs `then`
  // (may be null). If a mutation is bad, the transaction is rolled back
  // and removed, so no request is ever half applied.
  absl::Status Mutate(const std::string& id,
                      const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations,
                      const std::function<absl::Status(Transaction&)>& then);

  // Removes (and so rolls back, if still open) the transaction. The last
  // kRememberedFinished removed ids are remembered with `how` they ended:
  // a later call on one is FAILED_PRECONDITION ("already <how>").
  void Remove(const std::string& id, std::string how);
  static constexpr size_t kRememberedFinished = 4096;

  uint64_t size();

 private:
  struct Entry {
    std::mutex mu;
    std::unique_ptr<Transaction> txn;
    absl::Time last_used;
    uint64_t ops = 0;    // mutations buffered so far
    uint64_t bytes = 0;  // their keys' and values' bytes
  };
  absl::Status WithEntry(const std::string& id, const std::function<absl::Status(Entry&)>& fn);
  void ReapLoop();

  const ServiceOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
  std::map<std::string, std::string> finished_;  // id -> how; guarded by mu_
  std::deque<std::string> finished_order_;       // oldest first; guarded by mu_
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread reaper_;
};

// The services. `watchdog` (may be null: then only the client's deadline
// can end a stream blocked in a Write) must outlive them.
// Get, Put, Delete and Txn use gRPC's callback API: a point read never
// blocks for long, so it is answered on the thread that read the request
// (no handoff to a worker thread), and a write is queued with
// DB::WriteAsync (a Txn: Transaction::CommitAsync) and answered when its
// group commit is durable (no thread waits for it). The other methods may
// wait (an interactive transaction's commit, a stream's flow control) and
// stay on the sync thread pool.
class KvService final
    : public cowdb::v1::KV::WithCallbackMethod_Get<cowdb::v1::KV::WithCallbackMethod_Put<
          cowdb::v1::KV::WithCallbackMethod_Delete<
              cowdb::v1::KV::WithCallbackMethod_Txn<cowdb::v1::KV::Service>>>> {
 public:
  KvService(DB* db, TransactionRegistry* txns, const ServiceOptions& options,
            const Authenticator* auth, CallWatchdog* watchdog = nullptr)
      : db_(db), txns_(txns), options_(options), auth_(auth), watchdog_(watchdog),
        admission_(options.max_inflight_writes, options.max_inflight_write_bytes) {}

  // The bound on writes in flight (for metrics).
  const WriteAdmission& admission() const { return admission_; }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext*, const v1::GetRequest*,
                                v1::GetResponse*) override;
  // Get's work, without a reactor (also for callers that have no call).
  grpc::Status HandleGet(const grpc::ServerContextBase* ctx, const v1::GetRequest* req,
                         v1::GetResponse* resp);
  grpc::Status Scan(grpc::ServerContext*, const v1::ScanRequest*,
                    grpc::ServerWriter<v1::ScanResponse>*) override;
  // Scan, streaming into `sink`. With a default-constructed `ctx` (no
  // call behind it) the handler runs as if the call had no deadline.
  grpc::Status ScanTo(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                      StreamSink<v1::ScanResponse>* sink);
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext*, const v1::PutRequest*,
                                v1::PutResponse*) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext*, const v1::DeleteRequest*,
                                   v1::DeleteResponse*) override;
  // Put's and Delete's work, without a reactor: `finish` runs once with the
  // call's status, on the engine's committing thread once the write is
  // durable (at once for a refused call). `resp` must live until then.
  using Finish = std::function<void(const grpc::Status&)>;
  void StartPut(const grpc::ServerContextBase* ctx, const v1::PutRequest* req,
                v1::PutResponse* resp, Finish finish);
  void StartDelete(const grpc::ServerContextBase* ctx, const v1::DeleteRequest* req,
                   v1::DeleteResponse* resp, Finish finish);
  void StartTxn(const grpc::ServerContextBase* ctx, const v1::TxnRequest* req,
                v1::TxnResponse* resp, Finish finish);
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext*, const v1::TxnRequest*,
                                v1::TxnResponse*) override;
  grpc::Status Begin(grpc::ServerContext*, const v1::BeginRequest*,
                     v1::BeginResponse*) override;
  grpc::Status Write(grpc::ServerContext*, const v1::WriteRequest*,
                     v1::WriteResponse*) override;
  grpc::Status Commit(grpc::ServerContext*, const v1::CommitRequest*,
                      v1::CommitResponse*) override;
  grpc::Status Rollback(grpc::ServerContext*, const v1::RollbackRequest*,
                        v1::RollbackResponse*) override;

 private:
  DB* const db_;
  TransactionRegistry* const txns_;
  const ServiceOptions options_;
  const Authenticator* const auth_;
  CallWatchdog* const watchdog_;
  WriteAdmission admission_;
};

class VersionsService final : public cowdb::v1::Versions::Service {
 public:
  VersionsService(DB* db, TransactionRegistry* txns, const ServiceOptions& options,
                  const Authenticator* auth, CallWatchdog* watchdog = nullptr)
      : db_(db), txns_(txns), options_(options), auth_(auth), watchdog_(watchdog) {}

  grpc::Status ListVersions(grpc::ServerContext*, const v1::ListVersionsRequest*,
                            v1::ListVersionsResponse*) override;
  grpc::Status Tag(grpc::ServerContext*, const v1::TagRequest*,
                   v1::TagResponse*) override;
  grpc::Status Untag(grpc::ServerContext*, const v1::UntagRequest*,
                     v1::UntagResponse*) override;
  grpc::Status ListTags(grpc::ServerContext*, const v1::ListTagsRequest*,
                        v1::ListTagsResponse*) override;
  grpc::Status Diff(grpc::ServerContext*, const v1::DiffRequest*,
                    grpc::ServerWriter<v1::DiffResponse>*) override;
  grpc::Status History(grpc::ServerContext*, const v1::HistoryRequest*,
                       grpc::ServerWriter<v1::HistoryResponse>*) override;
  grpc::Status VersionAt(grpc::ServerContext*, const v1::VersionAtRequest*,
                         v1::VersionAtResponse*) override;
  grpc::Status Watch(grpc::ServerContext*, const v1::WatchRequest*,
                     grpc::ServerWriter<v1::WatchResponse>*) override;
  // Diff and Watch, streaming into `sink` (see KvService::ScanTo). WatchTo
  // returns only once `ctx` is cancelled or the sink breaks.
  grpc::Status DiffTo(grpc::ServerContext* ctx, const v1::DiffRequest* req,
                      StreamSink<v1::DiffResponse>* sink);
  grpc::Status HistoryTo(grpc::ServerContext* ctx, const v1::HistoryRequest* req,
                         StreamSink<v1::HistoryResponse>* sink);
  grpc::Status WatchTo(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                       StreamSink<v1::WatchResponse>* sink);
  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse*) override;

 private:
  DB* const db_;
  TransactionRegistry* const txns_;
  const ServiceOptions options_;
  const Authenticator* const auth_;
  CallWatchdog* const watchdog_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_SERVICE_H_
