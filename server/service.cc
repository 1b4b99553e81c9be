#include "server/service.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_format.h"
#include "proto/wire/engine_ops.h"
#include "proto/wire/wire.h"

namespace cowdb::server {
namespace {

// Changes per DiffResponse message.
constexpr int kDiffPageSize = 1000;
// A Scan or Diff page also ends once its keys and values reach this many
// bytes, so that pages of large values stay far below the message size
// limit.
constexpr size_t kPageBytes = 1 << 20;

using wire::ToBounds;

// The sink of a live call: its ServerWriter.
template <typename T>
class WriterSink final : public StreamSink<T> {
 public:
  explicit WriterSink(grpc::ServerWriter<T>* writer) : writer_(writer) {}
  bool Write(const T& msg) override { return writer_->Write(msg); }

 private:
  grpc::ServerWriter<T>* const writer_;
};

// The bounds one streaming call runs under.
struct CallLimits {
  uint64_t page_size;
  absl::Time deadline;

  // Writes one message of a stream: Cancelled if the client went away,
  // DeadlineExceeded once past the deadline.
  template <typename T>
  absl::Status Send(grpc::ServerContext* ctx, StreamSink<T>* writer,
                    const T& msg) const {
    if (ctx->IsCancelled()) return absl::CancelledError("the client cancelled");
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("the call ran past its deadline");
    }
    if (!writer->Write(msg)) {
      // The watchdog cancels a Write blocked past the deadline.
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError("the call ran past its deadline");
      }
      return absl::CancelledError("the client went away");
    }
    return absl::OkStatus();
  }
};

// The deadline of a call: the client's, or the default if it set none,
// and never beyond the maximum.
CallLimits Limits(const grpc::ServerContextBase* ctx, const ServiceOptions& options,
                  uint64_t page_size) {
  const absl::Time now = absl::Now();
  absl::Time deadline = now + options.default_deadline;
  if (ctx->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = absl::FromChrono(ctx->deadline());
  }
  return CallLimits{page_size, std::min(deadline, now + options.max_deadline)};
}

// How long past its deadline a call may stay blocked in a Write before the
// watchdog cancels it. A client that reads again within it (a slow reader)
// gets DEADLINE_EXCEEDED from the handler's own check; one cancelled by the
// watchdog sees CANCELLED.
constexpr absl::Duration kWatchdogGrace = absl::Seconds(1);

// Puts the call of `ctx` under `watchdog` (if any) until `deadline` and the
// grace after it.
CallWatchdog::Guard GuardCall(CallWatchdog* watchdog, grpc::ServerContextBase* ctx,
                              absl::Time deadline) {
  if (watchdog == nullptr) return CallWatchdog::Guard();
  return watchdog->Watch(ctx, deadline + kWatchdogGrace);
}

ReadOptions ToReadOptions(const v1::ReadSelector& sel, const std::string& branch) {
  ReadOptions ro;
  if (sel.selector_case() == v1::ReadSelector::kAtVersion) {
    ro.version = sel.at_version();
  }
  ro.branch = branch;
  return ro;
}

// A transaction's reads are of the branch it began on.
absl::Status CheckNoBranchWithTransaction(const std::string& branch) {
  if (branch.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "a read in a transaction is of the branch the transaction began on: give the "
      "branch to Begin, not with a transaction_id");
}

void Fill(v1::KeyValue* kv, std::string_view key, std::string_view value,
          uint64_t mod_version) {
  kv->set_key(std::string(key));
  kv->set_value(std::string(value));
  kv->set_mod_version(mod_version);
}

// Reads the next page of `req`'s keys from `it` into `page` (at most
// `page_size` keys, and about kPageBytes), from where `cursor` says, and
// moves the cursor past them. The iterator is positioned afresh, so a
// scan may take each page from a new iterator of the same snapshot (an
// interactive transaction's scan does: it holds the transaction only
// while it reads a page). It never steps past the last key taken: a
// transaction's iterator would observe (and validate) the key it stepped to.
absl::Status NextPage(Iterator& it, const v1::ScanRequest& req, uint64_t page_size,
                      ScanCursor* cursor, v1::ScanResponse* page) {
  uint64_t n = 0;
  size_t bytes = 0;
  std::string last;
  bool full = false;
  absl::Status s = wire::ScanRange(
      it, cursor->start, cursor->end, req.reverse(), cursor->left, req.keys_only(),
      [&](const client::KeyValue& kv) {
        Fill(page->add_kvs(), kv.key, kv.value, kv.mod_version);
        bytes += kv.key.size() + kv.value.size();
        if (++n < page_size && bytes < kPageBytes) return true;
        last = kv.key;
        full = true;
        return false;
      });
  if (!s.ok()) return s;
  if (cursor->left != 0) {
    cursor->left -= n;
    if (cursor->left == 0) cursor->done = true;
  }
  if (!full) cursor->done = true;
  if (cursor->done) return absl::OkStatus();
  if (req.reverse()) {
    cursor->end = last;
    if (cursor->end <= cursor->start) cursor->done = true;  // nothing is left
  } else {
    cursor->start = last;
    cursor->start.push_back('\0');
    if (!cursor->end.empty() && cursor->start >= cursor->end) cursor->done = true;
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------- KvService

grpc::ServerUnaryReactor* KvService::Get(grpc::CallbackServerContext* ctx,
                                         const v1::GetRequest* req, v1::GetResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(HandleGet(ctx, req, resp));
  return reactor;
}

grpc::Status KvService::HandleGet(const grpc::ServerContextBase* ctx,
                                  const v1::GetRequest* req, v1::GetResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  if (req->read().selector_case() == v1::ReadSelector::kTransactionId) {
    if (absl::Status s = CheckNoBranchWithTransaction(req->branch()); !s.ok()) {
      return ToGrpcStatus(s);
    }
    return ToGrpcStatus(s_.txns->With(req->read().transaction_id(), s_.access->UserOf(ctx),
                                      [&](Transaction& t) {
      absl::StatusOr<Entry> e = t.GetEntry(req->key());
      if (!e.ok()) return e.status();
      Fill(resp->mutable_kv(), req->key(), e->value, e->mod_version);
      resp->set_read_version(e->version);
      return absl::OkStatus();
    }));
  }
  if (req->proof()) return HandleProvedGet(ctx, *req, resp);
  absl::StatusOr<Entry> e =
      s_.db->GetEntry(ToReadOptions(req->read(), req->branch()), req->key());
  if (!e.ok()) return ToGrpcStatus(e.status());
  Fill(resp->mutable_kv(), req->key(), e->value, e->mod_version);
  resp->set_read_version(e->version);
  return grpc::Status::OK;
}

grpc::Status KvService::HandleProvedGet(const grpc::ServerContextBase* ctx,
                                        const v1::GetRequest& req, v1::GetResponse* resp) {
  if (req.read().selector_case() == v1::ReadSelector::kTransactionId) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a proof is of a committed version, not of a transaction's reads");
  }
  absl::StatusOr<ProvedValue> p =
      s_.db->ProveGet(ToReadOptions(req.read(), req.branch()), req.key());
  if (!p.ok()) return ToGrpcStatus(p.status());
  if (grpc::Status a = s_.access->Admit(ctx, NeedOfProof(p->proof)); !a.ok()) return a;
  if (p->value) {
    uint64_t mod_version = 0;
    for (const ProofEntry& e : p->proof.leaf) {
      if (e.key == req.key()) mod_version = e.mod_version;
    }
    Fill(resp->mutable_kv(), req.key(), *p->value, mod_version);
  }
  resp->set_read_version(p->proof.version);
  wire::ToProto(p->proof, resp->mutable_proof());
  return grpc::Status::OK;
}

absl::Status KvService::StartScan(const v1::ScanRequest& req, ScanState* st,
                                  v1::ScanResponse* count) {
  ScanCursor& c = st->cursor;
  if (absl::Status s = ToBounds(req.range(), &c.start, &c.end); !s.ok()) return s;
  c.left = req.limit();
  if (req.read().selector_case() == v1::ReadSelector::kTransactionId) {
    if (absl::Status s = CheckNoBranchWithTransaction(req.branch()); !s.ok()) return s;
    st->transaction_id = req.read().transaction_id();
    return s_.txns->With(st->transaction_id, st->owner, [&](Transaction& t) {
      st->version = t.read_version();
      if (!req.count_only()) return absl::OkStatus();
      absl::StatusOr<uint64_t> n = t.Count(c.start, c.end);
      if (!n.ok()) return n.status();
      count->set_count(*n);  // the keys in the range; the limit does not cap it
      return absl::OkStatus();
    });
  }
  absl::StatusOr<std::unique_ptr<Iterator>> it =
      s_.db->NewIterator(ToReadOptions(req.read(), req.branch()));
  if (!it.ok()) return it.status();
  st->it = *std::move(it);
  st->version = st->it->version();
  if (req.count_only()) {
    ReadOptions at;
    at.version = st->version;  // count the same tree the iterator pins
    at.branch = req.branch();
    absl::StatusOr<uint64_t> n = s_.db->Count(at, c.start, c.end);
    if (!n.ok()) return n.status();
    count->set_count(*n);
  }
  return absl::OkStatus();
}

absl::Status KvService::ProvedScan(const grpc::ServerContextBase* ctx,
                                   const v1::ScanRequest& req, v1::ScanResponse* page) {
  constexpr uint64_t kMaxProvedKeys = 1000;
  if (req.read().selector_case() == v1::ReadSelector::kTransactionId || req.reverse() ||
      req.keys_only() || req.count_only()) {
    return absl::InvalidArgumentError(
        "a scan with a proof reads a committed version in key order, with values: not "
        "with a transaction, reverse, keys_only or count_only");
  }
  std::string start, end;
  if (absl::Status s = ToBounds(req.range(), &start, &end); !s.ok()) return s;
  const uint64_t limit =
      req.limit() == 0 ? kMaxProvedKeys : std::min<uint64_t>(req.limit(), kMaxProvedKeys);
  absl::StatusOr<ProvedRange> r =
      s_.db->ProveScan(ToReadOptions(req.read(), req.branch()), start, end, limit);
  if (!r.ok()) return r.status();
  if (grpc::Status a = s_.access->Admit(ctx, NeedOfProof(r->proof)); !a.ok()) {
    return wire::FromGrpc(a);
  }
  // Each key's mod_version, from the proof's leaves (in key order).
  size_t next = 0;
  for (const RangeProofNode& n : r->proof.nodes) {
    for (const ProofEntry& e : n.entries) {
      if (next < r->kvs.size() && e.key == r->kvs[next].first) {
        Fill(page->add_kvs(), e.key, r->kvs[next].second, e.mod_version);
        ++next;
      }
    }
  }
  page->set_read_version(r->proof.version);
  page->set_proved_end(r->proved_end);
  page->set_done(true);
  wire::ToProto(r->proof, page->mutable_proof());
  return absl::OkStatus();
}

absl::Status KvService::ScanPage(const v1::ScanRequest& req, ScanState* st,
                                 v1::ScanResponse* page) {
  page->set_read_version(st->version);
  if (st->it != nullptr) {
    return NextPage(*st->it, req, s_.options.scan_page_size, &st->cursor, page);
  }
  return s_.txns->With(st->transaction_id, st->owner, [&](Transaction& t) {
    // Bounded: a SERIALIZABLE transaction observes only the rest of the range.
    absl::StatusOr<std::unique_ptr<Iterator>> it =
        t.NewIterator(IterateBounds{st->cursor.start, st->cursor.end});
    if (!it.ok()) return it.status();
    return NextPage(**it, req, s_.options.scan_page_size, &st->cursor, page);
  });
}

// A Scan on the callback API: each page is read on the thread that saw the
// last one written, so no thread waits on a slow client. The watchdog
// cancels a call whose client stops reading past its deadline.
class KvService::ScanReactor final : public grpc::ServerWriteReactor<v1::ScanResponse> {
 public:
  ScanReactor(KvService* service, grpc::CallbackServerContext* ctx, const v1::ScanRequest* req)
      : service_(service), req_(req),
        limits_(Limits(ctx, service->s_.options, service->s_.options.scan_page_size)) {
    if (grpc::Status a = service->s_.access->Admit(ctx, *req); !a.ok()) {
      Finish(a);
      return;
    }
    guard_.emplace(GuardCall(service->s_.watchdog, ctx, limits_.deadline));
    state_.owner = service->s_.access->UserOf(ctx);
    if (req->proof()) {
      absl::Status s = service->ProvedScan(ctx, *req, &page_);
      if (!s.ok()) {
        Finish(ToGrpcStatus(s));
        return;
      }
      StartWriteAndFinish(&page_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    if (absl::Status s = service->StartScan(*req, &state_, &page_); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (req->count_only()) {
      page_.set_read_version(state_.version);
      page_.set_done(true);
      StartWriteAndFinish(&page_, grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(absl::Now() > limits_.deadline
                 ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "the call ran past its deadline")
                 : grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (absl::Now() > limits_.deadline) {
      Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call ran past its deadline"));
      return;
    }
    page_.Clear();
    if (absl::Status s = service_->ScanPage(*req_, &state_, &page_); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    if (state_.cursor.done) {
      page_.set_done(true);
      StartWriteAndFinish(&page_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&page_);
    }
  }

  KvService* const service_;
  const v1::ScanRequest* const req_;
  const CallLimits limits_;
  std::optional<CallWatchdog::Guard> guard_;
  ScanState state_;
  v1::ScanResponse page_;
};

grpc::ServerWriteReactor<v1::ScanResponse>* KvService::Scan(grpc::CallbackServerContext* ctx,
                                                           const v1::ScanRequest* req) {
  return new ScanReactor(this, ctx, req);
}

grpc::Status KvService::ScanTo(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                               StreamSink<v1::ScanResponse>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  const CallLimits limits = Limits(ctx, s_.options, s_.options.scan_page_size);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  ScanState state;
  v1::ScanResponse page;
  state.owner = s_.access->UserOf(ctx);
  if (req->proof()) {
    if (absl::Status s = ProvedScan(ctx, *req, &page); !s.ok()) return ToGrpcStatus(s);
    writer->Write(page);
    return grpc::Status::OK;
  }
  if (absl::Status s = StartScan(*req, &state, &page); !s.ok()) return ToGrpcStatus(s);
  if (req->count_only()) {
    page.set_read_version(state.version);
    page.set_done(true);
    writer->Write(page);
    return grpc::Status::OK;
  }
  while (true) {
    page.Clear();
    if (absl::Status s = ScanPage(*req, &state, &page); !s.ok()) return ToGrpcStatus(s);
    page.set_done(state.cursor.done);
    if (absl::Status s = limits.Send(ctx, writer, page); !s.ok()) return ToGrpcStatus(s);
    if (state.cursor.done) return grpc::Status::OK;
  }
}

namespace {

// Answers a callback-API call once `start(finish)` calls finish.
template <typename Start>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, Start start) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  start([reactor](const grpc::Status& s) { reactor->Finish(s); });
  return reactor;
}

// Queues `batch` and finishes with the version it commits.
template <typename Resp>
void WriteAndFinish(DB* db, WriteBatch batch, Resp* resp, KvService::Finish finish) {
  db->WriteAsync(std::move(batch),
                 [resp, finish = std::move(finish)](absl::StatusOr<uint64_t> v) {
                   if (!v.ok()) return finish(ToGrpcStatus(v.status()));
                   resp->set_version(*v);
                   finish(grpc::Status::OK);
                 });
}

// Who sent a call, for per-client bounds: its connection's peer address
// ("local" for a call-less context, as the fuzzers use).
std::string ClientOf(const grpc::ServerContextBase* ctx) {
  // c_call() is a plain getter that gRPC did not mark const.
  const bool call = const_cast<grpc::ServerContextBase*>(ctx)->c_call() != nullptr;
  return call ? ctx->peer() : std::string("local");
}

// Admits a write of `bytes` from the caller of `ctx`, or finishes the call
// with RESOURCE_EXHAUSTED (false). On admission `*finish` is wrapped so
// that answering the call releases its place.
bool AdmitWrite(WriteAdmission& admission, const grpc::ServerContextBase* ctx, uint64_t bytes,
                KvService::Finish* finish) {
  auto ticket = std::make_shared<WriteAdmission::Ticket>();
  if (absl::Status s = admission.Admit(ClientOf(ctx), bytes, ticket.get()); !s.ok()) {
    (*finish)(ToGrpcStatus(s));
    return false;
  }
  *finish = [ticket, inner = std::move(*finish)](const grpc::Status& s) {
    ticket->Release();
    inner(s);
  };
  return true;
}

}  // namespace

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const v1::PutRequest* req, v1::PutResponse* resp) {
  return Answer(ctx, [&](Finish finish) { StartPut(ctx, req, resp, std::move(finish)); });
}

grpc::ServerUnaryReactor* KvService::Delete(grpc::CallbackServerContext* ctx,
                                            const v1::DeleteRequest* req,
                                            v1::DeleteResponse* resp) {
  return Answer(ctx, [&](Finish finish) { StartDelete(ctx, req, resp, std::move(finish)); });
}

void KvService::StartPut(const grpc::ServerContextBase* ctx, const v1::PutRequest* req,
                         v1::PutResponse* resp, Finish finish) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return finish(a);
  if (!AdmitWrite(admission_, ctx, req->key().size() + req->value().size(), &finish)) return;
  WriteBatch batch;
  batch.SetBranch(req->branch());
  batch.Put(req->key(), req->value());
  WriteAndFinish(s_.db, std::move(batch), resp, std::move(finish));
}

void KvService::StartDelete(const grpc::ServerContextBase* ctx, const v1::DeleteRequest* req,
                            v1::DeleteResponse* resp, Finish finish) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return finish(a);
  if (!AdmitWrite(admission_, ctx, req->key().size(), &finish)) return;
  WriteBatch batch;
  batch.SetBranch(req->branch());
  batch.Delete(req->key());
  WriteAndFinish(s_.db, std::move(batch), resp, std::move(finish));
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx,
                                         const v1::TxnRequest* req, v1::TxnResponse* resp) {
  return Answer(ctx, [&](Finish finish) { StartTxn(ctx, req, resp, std::move(finish)); });
}

void KvService::StartTxn(const grpc::ServerContextBase* ctx, const v1::TxnRequest* req,
                         v1::TxnResponse* resp, Finish finish) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return finish(a);
  if (static_cast<uint64_t>(req->success_size() + req->failure_size()) >
      s_.options.max_transaction_ops) {
    return finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "too many operations in a Txn (max_transaction_ops = ",
        s_.options.max_transaction_ops, ")"))));
  }
  if (!AdmitWrite(admission_, ctx, req->ByteSizeLong(), &finish)) return;
  wire::ExecuteTxnAsync(
      *s_.db, *req, resp,
      [finish = std::move(finish)](absl::Status s) { finish(ToGrpcStatus(s)); });
}

grpc::ServerUnaryReactor* KvService::Begin(grpc::CallbackServerContext* ctx,
                                           const v1::BeginRequest* req,
                                           v1::BeginResponse* resp) {
  return Answer(ctx, [&](Finish finish) { finish(HandleBegin(ctx, req, resp)); });
}

grpc::ServerUnaryReactor* KvService::Write(grpc::CallbackServerContext* ctx,
                                           const v1::WriteRequest* req, v1::WriteResponse*) {
  return Answer(ctx, [&](Finish finish) { finish(HandleWrite(ctx, req)); });
}

grpc::ServerUnaryReactor* KvService::Commit(grpc::CallbackServerContext* ctx,
                                            const v1::CommitRequest* req,
                                            v1::CommitResponse* resp) {
  return Answer(ctx, [&](Finish finish) { StartCommit(ctx, req, resp, std::move(finish)); });
}

grpc::ServerUnaryReactor* KvService::Rollback(grpc::CallbackServerContext* ctx,
                                              const v1::RollbackRequest* req,
                                              v1::RollbackResponse*) {
  return Answer(ctx, [&](Finish finish) { finish(HandleRollback(ctx, req)); });
}

grpc::Status KvService::HandleBegin(const grpc::ServerContextBase* ctx,
                                    const v1::BeginRequest* req, v1::BeginResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  TransactionOptions o;
  o.read_only = req->read_only();
  if (req->read_version() != 0) o.read_version = req->read_version();
  o.isolation = req->isolation() == v1::BeginRequest::SNAPSHOT
                    ? Isolation::kSnapshot
                    : Isolation::kSerializable;
  o.branch = req->branch();
  absl::StatusOr<std::unique_ptr<Transaction>> t = s_.db->Begin(o);
  if (!t.ok()) return ToGrpcStatus(t.status());
  uint64_t read_version = (*t)->read_version();
  absl::StatusOr<std::string> id =
      s_.txns->Add(*std::move(t), ClientOf(ctx), s_.access->UserOf(ctx));
  if (!id.ok()) return ToGrpcStatus(id.status());
  resp->set_transaction_id(*id);
  resp->set_read_version(read_version);
  return grpc::Status::OK;
}

grpc::Status KvService::HandleWrite(const grpc::ServerContextBase* ctx,
                                    const v1::WriteRequest* req) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  return ToGrpcStatus(
      s_.txns->Mutate(req->transaction_id(), s_.access->UserOf(ctx), req->mutations()));
}

void KvService::StartCommit(const grpc::ServerContextBase* ctx, const v1::CommitRequest* req,
                            v1::CommitResponse* resp, Finish finish) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return finish(a);
  const std::string& id = req->transaction_id();
  // The commit's mutations are applied and the transaction taken out of
  // the registry in one hold of it: a commit ends the transaction whatever
  // its outcome (over a limit it stays open, nothing applied, so the client
  // can still roll back), and it lives in the callback until the commit is
  // decided.
  absl::StatusOr<std::unique_ptr<Transaction>> taken =
      s_.txns->TakeForCommit(id, s_.access->UserOf(ctx), req->mutations());
  if (!taken.ok()) return finish(ToGrpcStatus(taken.status()));
  Transaction* txn = taken->get();
  txn->CommitAsync([txns = s_.txns, id, resp, finish = std::move(finish),
                    owned = std::shared_ptr<Transaction>(*std::move(taken))](
                       absl::StatusOr<uint64_t> v) {
    txns->SetOutcome(id, v.ok() ? absl::StrCat("committed (version ", *v, ")")
                                : absl::StrCat("ended by a failed commit (",
                                               absl::StatusCodeToString(v.status().code()),
                                               ")"));
    if (!v.ok()) return finish(ToGrpcStatus(v.status()));
    resp->set_version(*v);
    finish(grpc::Status::OK);
  });
}

grpc::Status KvService::HandleRollback(const grpc::ServerContextBase* ctx,
                                       const v1::RollbackRequest* req) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  return ToGrpcStatus(s_.txns->Rollback(req->transaction_id(), s_.access->UserOf(ctx)));
}

// ---------------------------------------------------------- VersionsService

grpc::Status VersionsService::ListVersions(grpc::ServerContext* ctx,
                                           const v1::ListVersionsRequest*,
                                           v1::ListVersionsResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, v1::ListVersionsRequest()); !a.ok()) return a;
  absl::StatusOr<std::vector<VersionInfo>> vs = s_.db->ListVersions();
  if (!vs.ok()) return ToGrpcStatus(vs.status());
  for (const VersionInfo& v : *vs) {
    auto* out = resp->add_versions();
    out->set_version(v.version);
    out->set_commit_unix_micros(v.commit_micros);
    out->set_entries(v.entries);
    out->set_branch(v.branch.empty() ? std::string("main") : v.branch);
  }
  return grpc::Status::OK;
}

grpc::Status VersionsService::Tag(grpc::ServerContext* ctx, const v1::TagRequest* req,
                                  v1::TagResponse*) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  return ToGrpcStatus(s_.db->Tag(req->name(), req->version()));
}

grpc::Status VersionsService::Untag(grpc::ServerContext* ctx, const v1::UntagRequest* req,
                                    v1::UntagResponse*) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  return ToGrpcStatus(s_.db->Untag(req->name()));
}

grpc::Status VersionsService::ListTags(grpc::ServerContext* ctx, const v1::ListTagsRequest*,
                                       v1::ListTagsResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, v1::ListTagsRequest()); !a.ok()) return a;
  for (const auto& [name, v] : s_.db->ListTags()) (*resp->mutable_tags())[name] = v;
  return grpc::Status::OK;
}

grpc::Status VersionsService::Diff(grpc::ServerContext* ctx, const v1::DiffRequest* req,
                                   grpc::ServerWriter<v1::DiffResponse>* writer) {
  WriterSink<v1::DiffResponse> sink(writer);
  return DiffTo(ctx, req, &sink);
}

grpc::Status VersionsService::DiffTo(grpc::ServerContext* ctx, const v1::DiffRequest* req,
                                     StreamSink<v1::DiffResponse>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  std::string start, end;
  absl::Status s = ToBounds(req->range(), &start, &end);
  if (!s.ok()) return ToGrpcStatus(s);
  const CallLimits limits = Limits(ctx, s_.options, kDiffPageSize);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  v1::DiffResponse page;
  size_t page_bytes = 0;
  absl::Status sent = absl::OkStatus();
  auto visit = [&](const Change& c) {
    wire::ToProto(c, page.add_changes());
    page_bytes += c.key.size() + (c.old_value ? c.old_value->size() : 0) +
                  (c.new_value ? c.new_value->size() : 0);
    if (static_cast<uint64_t>(page.changes_size()) < limits.page_size &&
        page_bytes < kPageBytes) {
      return true;
    }
    sent = limits.Send(ctx, writer, page);
    page.clear_changes();
    page_bytes = 0;
    return sent.ok();
  };
  if (req->from_branch().empty() && req->to_branch().empty()) {
    s = s_.db->Diff(req->from_version(), req->to_version(), start, end, visit);
  } else {
    s = s_.db->DiffTrees(wire::TreeOf(req->from_branch(), req->from_version()),
                         wire::TreeOf(req->to_branch(), req->to_version()), start, end, visit);
  }
  if (!s.ok()) return ToGrpcStatus(s);
  if (!sent.ok()) return ToGrpcStatus(sent);
  if (page.changes_size() > 0) writer->Write(page);
  return grpc::Status::OK;
}

grpc::Status VersionsService::History(grpc::ServerContext* ctx, const v1::HistoryRequest* req,
                                      grpc::ServerWriter<v1::HistoryResponse>* writer) {
  WriterSink<v1::HistoryResponse> sink(writer);
  return HistoryTo(ctx, req, &sink);
}

grpc::Status VersionsService::HistoryTo(grpc::ServerContext* ctx, const v1::HistoryRequest* req,
                                        StreamSink<v1::HistoryResponse>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  const CallLimits limits = Limits(ctx, s_.options, 0);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  return ToGrpcStatus(wire::RunHistory(
      *s_.db, *req, [&](const v1::HistoryResponse& r) { return limits.Send(ctx, writer, r); }));
}

grpc::Status VersionsService::Check(grpc::ServerContext* ctx, const v1::CheckRequest*,
                                    grpc::ServerWriter<v1::CheckResponse>* writer) {
  WriterSink<v1::CheckResponse> sink(writer);
  return CheckTo(ctx, &sink);
}

grpc::Status VersionsService::CheckTo(grpc::ServerContext* ctx,
                                      StreamSink<v1::CheckResponse>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, v1::CheckRequest()); !a.ok()) return a;
  const CallLimits limits = Limits(ctx, s_.options, 0);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  // Progress at most every 250 ms; a send that fails (the client left, or
  // the deadline passed) stops the check.
  absl::Time next = absl::InfinitePast();
  absl::Status sent = absl::OkStatus();
  absl::StatusOr<CheckReport> r = s_.db->Check([&](uint64_t done, uint64_t total) {
    const absl::Time now = absl::Now();
    if (now < next) return true;
    next = now + absl::Milliseconds(250);
    v1::CheckResponse progress;
    progress.set_versions_done(done);
    progress.set_versions_total(total);
    sent = limits.Send(ctx, writer, progress);
    return sent.ok();
  });
  if (!sent.ok()) return ToGrpcStatus(sent);
  if (!r.ok()) return ToGrpcStatus(r.status());
  v1::CheckResponse last;
  last.set_versions_done(r->versions_checked);
  last.set_versions_total(r->versions_checked);
  v1::CheckReport* out = last.mutable_report();
  out->set_versions_checked(r->versions_checked);
  out->set_pages_reachable(r->pages_reachable);
  out->set_blobs_reachable(r->blobs_reachable);
  out->set_pages_stored(r->pages_stored);
  out->set_blobs_stored(r->blobs_stored);
  out->set_pages_pending(r->pages_pending);
  out->set_blobs_pending(r->blobs_pending);
  out->set_pages_leaked(r->pages_leaked);
  out->set_blobs_leaked(r->blobs_leaked);
  return ToGrpcStatus(limits.Send(ctx, writer, last));
}

namespace {

// A new path beside the data directory for a staged backup or file.
std::string StagingPath(const ServiceOptions& options) {
  static std::atomic<uint64_t> serial{0};
  return absl::StrCat(options.backup_staging_prefix, getpid(), "-", serial.fetch_add(1));
}

// Removes a staged file or directory, whatever happens.
struct RemoveOnExit {
  const std::string& path;
  ~RemoveOnExit() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

grpc::Status VersionsService::Retention(grpc::ServerContext* ctx,
                                        const v1::RetentionRequest* req,
                                        v1::RetentionResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  if (req->set()) {
    DB::Retention r;
    r.retain_versions = req->retain_versions() == 0 ? Options::kRetainAll : req->retain_versions();
    r.retain_seconds = req->retain_seconds();
    if (absl::Status s = s_.db->SetRetention(r); !s.ok()) return ToGrpcStatus(s);
  }
  const DB::Retention r = s_.db->GetRetention();
  resp->set_retain_versions(r.retain_versions == Options::kRetainAll ? 0 : r.retain_versions);
  resp->set_retain_seconds(r.retain_seconds);
  resp->set_oldest_version(s_.db->OldestVersion());
  resp->set_release_floor(s_.db->ReleaseFloor());
  resp->set_latest_version(s_.db->LatestVersion());
  return grpc::Status::OK;
}

grpc::Status VersionsService::Export(grpc::ServerContext* ctx, const v1::ExportRequest* req,
                                     grpc::ServerWriter<v1::FileChunk>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  if (s_.options.backup_staging_prefix.empty()) {
    return ToGrpcStatus(absl::FailedPreconditionError("this server has no staging directory"));
  }
  const std::string staged = StagingPath(s_.options);
  RemoveOnExit cleanup{staged};
  const uint64_t version = req->version() != 0 ? req->version() : s_.db->LatestVersion();
  absl::Status exported = req->has_from_version()
                              ? s_.db->ExportChanges(req->from_version(), version, staged)
                              : s_.db->Export(version, staged);
  if (!exported.ok()) return ToGrpcStatus(exported);
  std::error_code ec;
  const uint64_t total = std::filesystem::file_size(staged, ec);
  std::ifstream in(staged, std::ios::binary);
  if (ec || !in) return ToGrpcStatus(absl::InternalError("cannot read the staged export"));
  const CallLimits limits = Limits(ctx, s_.options, 0);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  WriterSink<v1::FileChunk> sink(writer);
  std::string buffer(1 << 20, '\0');
  uint64_t sent = 0;
  do {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const size_t n = static_cast<size_t>(in.gcount());
    v1::FileChunk chunk;
    chunk.set_data(buffer.data(), n);
    chunk.set_total_bytes(total);
    if (absl::Status s = limits.Send(ctx, &sink, chunk); !s.ok()) return ToGrpcStatus(s);
    sent += n;
  } while (sent < total && in);
  if (sent != total) return ToGrpcStatus(absl::InternalError("the staged export changed"));
  return grpc::Status::OK;
}

grpc::Status VersionsService::Import(grpc::ServerContext* ctx,
                                     grpc::ServerReader<v1::FileChunk>* reader,
                                     v1::ImportResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, Need::Admin()); !a.ok()) return a;
  if (s_.options.backup_staging_prefix.empty()) {
    return ToGrpcStatus(absl::FailedPreconditionError("this server has no staging directory"));
  }
  const std::string staged = StagingPath(s_.options);
  RemoveOnExit cleanup{staged};
  {
    std::ofstream out(staged, std::ios::binary | std::ios::trunc);
    v1::FileChunk chunk;
    while (reader->Read(&chunk)) {
      out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
      if (!out) return ToGrpcStatus(absl::InternalError("cannot stage the import file"));
    }
    if (ctx->IsCancelled()) return ToGrpcStatus(absl::CancelledError("the client cancelled"));
  }
  absl::StatusOr<uint64_t> keys = s_.db->Import(staged);
  if (!keys.ok()) {  // the message names the staged file: name the upload
    return ToGrpcStatus(absl::Status(
        keys.status().code(),
        absl::StrReplaceAll(keys.status().message(), {{staged, "the uploaded file"}})));
  }
  resp->set_keys(*keys);
  resp->set_version(s_.db->LatestVersion());
  return grpc::Status::OK;
}

grpc::Status VersionsService::Backup(grpc::ServerContext* ctx, const v1::BackupRequest*,
                                     grpc::ServerWriter<v1::BackupChunk>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, v1::BackupRequest()); !a.ok()) return a;
  if (s_.options.backup_staging_prefix.empty()) {
    return ToGrpcStatus(absl::FailedPreconditionError("this server has no backup staging"));
  }
  // Stage a hot backup next to the database (hard links where it can),
  // stream its files, and remove it whatever happens.
  const std::string staging = StagingPath(s_.options);
  RemoveOnExit cleanup{staging};
  if (absl::Status s = s_.db->Backup(staging); !s.ok()) return ToGrpcStatus(s);
  std::vector<std::pair<std::string, uint64_t>> files;  // relative path, size
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(staging, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const uint64_t size = it->file_size();
    files.emplace_back(std::filesystem::relative(it->path(), staging).string(), size);
    total += size;
  }
  if (ec) return ToGrpcStatus(absl::InternalError("cannot list the staged backup: " + ec.message()));
  const CallLimits limits = Limits(ctx, s_.options, 0);
  CallWatchdog::Guard guard = GuardCall(s_.watchdog, ctx, limits.deadline);
  WriterSink<v1::BackupChunk> sink(writer);
  constexpr size_t kChunk = 1 << 20;
  std::string buffer(kChunk, '\0');
  for (const auto& [path, size] : files) {
    std::ifstream in(staging + "/" + path, std::ios::binary);
    uint64_t offset = 0;
    do {
      in.read(buffer.data(), static_cast<std::streamsize>(std::min<uint64_t>(kChunk, size - offset)));
      const size_t n = static_cast<size_t>(in.gcount());
      if (!in && n == 0 && offset < size) {
        return ToGrpcStatus(absl::InternalError("cannot read the staged backup's " + path));
      }
      v1::BackupChunk chunk;
      chunk.set_path(path);
      chunk.set_offset(offset);
      chunk.set_data(buffer.data(), n);
      chunk.set_file_size(size);
      chunk.set_total_bytes(total);
      if (absl::Status s = limits.Send(ctx, &sink, chunk); !s.ok()) {
        return ToGrpcStatus(s);
      }
      offset += n;
    } while (offset < size);
  }
  return grpc::Status::OK;
}

grpc::Status VersionsService::VersionAt(grpc::ServerContext* ctx,
                                        const v1::VersionAtRequest* req,
                                        v1::VersionAtResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  absl::StatusOr<uint64_t> v = s_.db->VersionAt(req->unix_micros());
  if (!v.ok()) return ToGrpcStatus(v.status());
  resp->set_version(*v);
  return grpc::Status::OK;
}

grpc::Status VersionsService::Digest(grpc::ServerContext* ctx, const v1::DigestRequest* req,
                                     v1::DigestResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  constexpr uint64_t kMaxLinks = 100000;
  const uint64_t version = req->has_version() ? req->version() : s_.db->LatestVersion();
  absl::StatusOr<VersionDigest> d = s_.db->GetDigest(version);
  if (!d.ok()) return ToGrpcStatus(d.status());
  resp->set_version(d->version);
  resp->set_root_hash(wire::HashBytes(d->root_hash));
  resp->set_digest(wire::HashBytes(d->digest));
  resp->set_commit_unix_micros(d->commit_micros);
  if (!req->has_links_from()) return grpc::Status::OK;
  if (req->links_from() < version && version - req->links_from() > kMaxLinks) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("at most ", kMaxLinks, " digest links per call; ask for "
                                     "versions up to ", req->links_from() + kMaxLinks,
                                     " first"));
  }
  absl::StatusOr<std::vector<DigestLink>> links = s_.db->DigestLinks(req->links_from(), version);
  if (!links.ok()) return ToGrpcStatus(links.status());
  for (const DigestLink& l : *links) {
    v1::DigestLink* out = resp->add_links();
    out->set_version(l.version);
    out->set_root_hash(wire::HashBytes(l.root_hash));
    out->set_commit_unix_micros(l.commit_micros);
  }
  return grpc::Status::OK;
}

grpc::Status VersionsService::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                    grpc::ServerWriter<v1::WatchResponse>* writer) {
  WriterSink<v1::WatchResponse> sink(writer);
  return WatchTo(ctx, req, &sink);
}

grpc::Status VersionsService::WatchTo(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                      StreamSink<v1::WatchResponse>* writer) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  const std::string client = ClientOf(ctx);
  if (!watches_.Acquire(client)) {
    return ToGrpcStatus(absl::ResourceExhaustedError(
        absl::StrCat("this client has ", watches_.max(),
                     " watches open (max_watches_per_client); cancel one first")));
  }
  struct Release {
    PerClientSlots* slots;
    const std::string& client;
    ~Release() { slots->Release(client); }
  } release{&watches_, client};
  std::string start, end;
  absl::Status s = ToBounds(req->range(), &start, &end);
  if (!s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::unique_ptr<Watcher>> w =
      req->branch().empty() ? s_.db->Watch(req->from_version(), start, end)
                            : s_.db->WatchBranch(req->branch(), req->from_version(), start, end);
  if (!w.ok()) return ToGrpcStatus(w.status());
  while (!ctx->IsCancelled()) {
    absl::StatusOr<WatchEvent> e = (*w)->Next(absl::Milliseconds(200));
    if (absl::IsDeadlineExceeded(e.status())) continue;
    if (!e.ok()) return ToGrpcStatus(e.status());
    v1::WatchResponse resp;
    resp.set_version(e->version);
    resp.set_net(e->net);
    wire::ToProto(e->change, resp.add_changes());
    // A watch has no deadline, but a client that takes no message for
    // default_deadline is cut off rather than holding a thread and a pin.
    CallWatchdog::Guard guard =
        GuardCall(s_.watchdog, ctx, absl::Now() + s_.options.default_deadline);
    if (!writer->Write(resp)) break;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch ended");
}

grpc::Status VersionsService::Fork(grpc::ServerContext* ctx, const v1::ForkRequest* req,
                                   v1::ForkResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  std::optional<uint64_t> from_version;
  if (req->has_from_version()) from_version = req->from_version();
  absl::StatusOr<uint64_t> v =
      s_.db->Fork(req->name(), wire::TreeOf(req->from_branch(), from_version));
  if (!v.ok()) return ToGrpcStatus(v.status());
  resp->set_version(*v);
  return grpc::Status::OK;
}

grpc::Status VersionsService::DeleteBranch(grpc::ServerContext* ctx,
                                           const v1::DeleteBranchRequest* req,
                                           v1::DeleteBranchResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  absl::StatusOr<uint64_t> v = s_.db->DeleteBranch(req->name());
  if (!v.ok()) return ToGrpcStatus(v.status());
  resp->set_version(*v);
  return grpc::Status::OK;
}

grpc::Status VersionsService::ListBranches(grpc::ServerContext* ctx,
                                           const v1::ListBranchesRequest* req,
                                           v1::ListBranchesResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  for (const BranchInfo& b : s_.db->ListBranches()) wire::ToProto(b, resp->add_branches());
  return grpc::Status::OK;
}

grpc::Status VersionsService::Merge(grpc::ServerContext* ctx, const v1::MergeRequest* req,
                                    v1::MergeResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, *req); !a.ok()) return a;
  absl::StatusOr<MergePolicy> policy = wire::MergePolicyOf(req->policy());
  if (!policy.ok()) return ToGrpcStatus(policy.status());
  absl::StatusOr<MergeResult> r = s_.db->Merge(req->from(), req->into(), *policy);
  if (!r.ok()) return ToGrpcStatus(r.status());
  wire::ToProto(*r, s_.options.merge_conflict_bytes, resp);
  return grpc::Status::OK;
}

grpc::Status VersionsService::Status(grpc::ServerContext* ctx, const v1::StatusRequest*,
                                     v1::StatusResponse* resp) {
  if (grpc::Status a = s_.access->Admit(ctx, v1::StatusRequest()); !a.ok()) return a;
  *resp = wire::StatusOf(*s_.db, s_.txns->size());
  return grpc::Status::OK;
}

}  // namespace cowdb::server
