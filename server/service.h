// The gRPC services of cowdb_server over an embedded cowdb::DB: KvService
// and VersionsService. What they share lives beside them: the options
// (service_options.h), who may call what (auth.h), the registry of open
// interactive transactions (txn_registry.h), the watchdog of calls blocked
// past their deadline (watchdog.h), the bound on writes in flight
// (admission.h) and the one mapping from engine status to gRPC code
// (status.h). No handler lets an exception or bad input crash the server.

#ifndef COWDB_SERVER_SERVICE_H_
#define COWDB_SERVER_SERVICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "engine/db.h"
#include "grpcpp/grpcpp.h"
#include "server/admission.h"
#include "server/auth.h"
#include "server/service_options.h"
#include "server/status.h"
#include "server/txn_registry.h"
#include "server/watchdog.h"

namespace cowdb::server {

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

// KV is served on gRPC's callback API: a point read never blocks for
// long, so it is answered on the thread that read the request (no handoff
// to a worker thread); a scan reads each page on the thread that saw the
// last one sent; a write is queued with DB::WriteAsync (a Txn or an
// interactive transaction's Commit: Transaction::CommitAsync) and answered
// when its group commit is durable (no thread waits for it). Versions'
// streams stay on the sync thread pool.
// What the cowdb services share: the database, the open transactions,
// the limits, the authorization check and the watchdog (may be null: then
// only the client's deadline ends a stream blocked in a write). All must
// outlive the services.
struct ServiceContext {
  DB* db = nullptr;
  TransactionRegistry* txns = nullptr;
  ServiceOptions options;
  const AccessControl* access = nullptr;
  CallWatchdog* watchdog = nullptr;
};

// Where a paged scan resumes: what is left of its range, and of its limit.
struct ScanCursor {
  std::string start;
  std::string end;    // "" : no bound
  uint64_t left = 0;  // keys the limit still allows; 0 when it has none
  bool done = false;  // the range or the limit is exhausted
};

class KvService final : public cowdb::v1::KV::CallbackService {
 public:
  explicit KvService(const ServiceContext& context)
      : s_(context),
        admission_(context.options.max_inflight_writes,
                   context.options.max_inflight_write_bytes) {}

  // The bound on writes in flight (for metrics).
  const WriteAdmission& admission() const { return admission_; }

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext*, const v1::GetRequest*,
                                v1::GetResponse*) override;
  // Get's work, without a reactor (also for callers that have no call).
  grpc::Status HandleGet(const grpc::ServerContextBase* ctx, const v1::GetRequest* req,
                         v1::GetResponse* resp);
  grpc::ServerWriteReactor<v1::ScanResponse>* Scan(grpc::CallbackServerContext*,
                                                   const v1::ScanRequest*) override;
  // Scan, streaming into `sink` (the same pages as the callback Scan, for
  // callers without a call). With a default-constructed `ctx` the handler
  // runs as if the call had no deadline.
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
  grpc::ServerUnaryReactor* Begin(grpc::CallbackServerContext*, const v1::BeginRequest*,
                                  v1::BeginResponse*) override;
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext*, const v1::WriteRequest*,
                                  v1::WriteResponse*) override;
  grpc::ServerUnaryReactor* Commit(grpc::CallbackServerContext*, const v1::CommitRequest*,
                                   v1::CommitResponse*) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext*, const v1::RollbackRequest*,
                                     v1::RollbackResponse*) override;
  // The interactive transaction calls' work, without a reactor. Commit
  // answers once the commit is durable, on the engine's committing thread
  // (no thread waits for it).
  grpc::Status HandleBegin(const grpc::ServerContextBase* ctx, const v1::BeginRequest* req,
                           v1::BeginResponse* resp);
  grpc::Status HandleWrite(const grpc::ServerContextBase* ctx, const v1::WriteRequest* req);
  void StartCommit(const grpc::ServerContextBase* ctx, const v1::CommitRequest* req,
                   v1::CommitResponse* resp, Finish finish);
  grpc::Status HandleRollback(const grpc::ServerContextBase* ctx,
                              const v1::RollbackRequest* req);

 private:
  // A Scan with a proof (verified reads): one message, at most 1,000 keys.
  absl::Status ProvedScan(const grpc::ServerContextBase* ctx, const v1::ScanRequest& req,
                          v1::ScanResponse* page);
  // A Get with a proof (verified reads).
  grpc::Status HandleProvedGet(const grpc::ServerContextBase* ctx, const v1::GetRequest& req,
                               v1::GetResponse* resp);
  class ScanReactor;
  // A scan in progress: a plain scan keeps its iterator (and so its
  // version); a transaction's scan takes a new iterator per page.
  struct ScanState {
    ScanCursor cursor;
    std::unique_ptr<Iterator> it;
    std::string transaction_id;
    std::string owner;  // the caller, for a transaction's scan
    uint64_t version = 0;
  };
  // Validates `req` and opens its scan; for count_only, fills `count`.
  absl::Status StartScan(const v1::ScanRequest& req, ScanState* state, v1::ScanResponse* count);
  // The next page of the scan (state->cursor.done once it is the last).
  absl::Status ScanPage(const v1::ScanRequest& req, ScanState* state, v1::ScanResponse* page);

  const ServiceContext s_;
  WriteAdmission admission_;
};

class VersionsService final : public cowdb::v1::Versions::Service {
 public:
  explicit VersionsService(const ServiceContext& context)
      : s_(context), watches_(context.options.max_watches_per_client) {}

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
  grpc::Status Digest(grpc::ServerContext*, const v1::DigestRequest*,
                      v1::DigestResponse*) override;
  grpc::Status Fork(grpc::ServerContext*, const v1::ForkRequest*,
                    v1::ForkResponse*) override;
  grpc::Status DeleteBranch(grpc::ServerContext*, const v1::DeleteBranchRequest*,
                            v1::DeleteBranchResponse*) override;
  grpc::Status ListBranches(grpc::ServerContext*, const v1::ListBranchesRequest*,
                            v1::ListBranchesResponse*) override;
  grpc::Status Merge(grpc::ServerContext*, const v1::MergeRequest*,
                     v1::MergeResponse*) override;
  grpc::Status Check(grpc::ServerContext*, const v1::CheckRequest*,
                     grpc::ServerWriter<v1::CheckResponse>*) override;
  grpc::Status Backup(grpc::ServerContext*, const v1::BackupRequest*,
                      grpc::ServerWriter<v1::BackupChunk>*) override;
  grpc::Status Retention(grpc::ServerContext*, const v1::RetentionRequest*,
                         v1::RetentionResponse*) override;
  grpc::Status Export(grpc::ServerContext*, const v1::ExportRequest*,
                      grpc::ServerWriter<v1::FileChunk>*) override;
  grpc::Status Import(grpc::ServerContext*, grpc::ServerReader<v1::FileChunk>*,
                      v1::ImportResponse*) override;
  // Check, streaming into `sink` (also without a live call).
  grpc::Status CheckTo(grpc::ServerContext* ctx, StreamSink<v1::CheckResponse>* sink);
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
  const ServiceContext s_;
  PerClientSlots watches_;  // open watches per client
};

// Users, roles and permissions (server/auth.h). Authenticate and
// AuthStatus need nothing; UserPassword needs the root role or to be the
// user itself; the rest need the root role.
class AuthService final : public cowdb::v1::Auth::Service {
 public:
  explicit AuthService(AccessControl* access) : access_(access) {}

  using Req = v1::AuthRequest;
  using Resp = v1::AuthResponse;
  grpc::Status Authenticate(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status AuthStatus(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status AuthEnable(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserAdd(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserDelete(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserPassword(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserGrant(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserRevoke(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status UserList(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status RoleAdd(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status RoleDelete(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status RoleGrant(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status RoleRevoke(grpc::ServerContext*, const Req*, Resp*) override;
  grpc::Status RoleList(grpc::ServerContext*, const Req*, Resp*) override;

 private:
  // Admits the call with `need`, then runs `change`.
  grpc::Status AdminChange(grpc::ServerContext* ctx, const std::function<absl::Status()>& change);

  AccessControl* const access_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_SERVICE_H_
