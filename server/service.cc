#include "server/service.h"

#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cowdb::server {
namespace {

// Changes per DiffResponse message.
constexpr int kDiffPageSize = 1000;
// Attempts of a one-shot Txn that keeps conflicting.
constexpr int kTxnAttempts = 16;

// The bounds of a KeyRange as [start, end); end empty = unbounded.
absl::Status ToBounds(const v1::KeyRange& r, std::string* start,
                      std::string* end) {
  if (!r.prefix().empty()) {
    if (!r.start().empty() || !r.end().empty()) {
      return absl::InvalidArgumentError("a range has a prefix or start/end, not both");
    }
    *start = r.prefix();
    // The smallest key after every key with the prefix.
    std::string next = r.prefix();
    while (!next.empty() && static_cast<uint8_t>(next.back()) == 0xff) next.pop_back();
    if (!next.empty()) next.back() = static_cast<char>(next.back() + 1);
    *end = next;
    return absl::OkStatus();
  }
  *start = r.start();
  *end = r.end();
  if (!end->empty() && *end < *start) {
    return absl::InvalidArgumentError("range end is before its start");
  }
  return absl::OkStatus();
}

ReadOptions ToReadOptions(const v1::ReadSelector& sel) {
  ReadOptions ro;
  if (sel.selector_case() == v1::ReadSelector::kAtVersion) {
    ro.version = sel.at_version();
  }
  return ro;
}

void Fill(v1::KeyValue* kv, std::string_view key, std::string_view value,
          uint64_t mod_version, bool keys_only) {
  kv->set_key(std::string(key));
  if (!keys_only) kv->set_value(std::string(value));
  kv->set_mod_version(mod_version);
}

void Fill(v1::Change* out, const Change& c) {
  out->set_key(c.key);
  out->set_old_exists(c.old_value.has_value());
  if (c.old_value) out->set_old_value(*c.old_value);
  out->set_new_exists(c.new_value.has_value());
  if (c.new_value) out->set_new_value(*c.new_value);
  out->set_old_mod_version(c.old_mod_version);
  out->set_new_mod_version(c.new_mod_version);
}

absl::Status Apply(Transaction& t, const v1::Mutation& m) {
  switch (m.op_case()) {
    case v1::Mutation::kPut:
      return t.Put(m.put().key(), m.put().value());
    case v1::Mutation::kDeleteKey:
      return t.Delete(m.delete_key());
    default:
      return absl::InvalidArgumentError("a mutation without an operation");
  }
}

// Streams the keys of `req` from `it` in pages.
absl::Status StreamScan(Iterator& it, uint64_t read_version,
                        const v1::ScanRequest& req, const std::string& start,
                        const std::string& end, uint64_t page_size,
                        grpc::ServerContext* ctx,
                        grpc::ServerWriter<v1::ScanResponse>* writer) {
  const uint64_t limit = req.limit();
  uint64_t sent = 0;
  v1::ScanResponse page;
  page.set_read_version(read_version);
  auto in_range = [&] {
    if (!it.Valid()) return false;
    if (req.reverse()) return it.key() >= std::string_view(start);
    return end.empty() || it.key() < std::string_view(end);
  };
  if (req.reverse()) {
    if (end.empty()) {
      it.SeekToLast();
    } else {
      it.Seek(end);
      if (it.Valid()) {
        it.Prev();
      } else {
        it.SeekToLast();
      }
    }
  } else {
    it.Seek(start);
  }
  for (; in_range() && (limit == 0 || sent < limit);
       req.reverse() ? it.Prev() : it.Next()) {
    std::string_view value = req.keys_only() ? std::string_view() : it.value();
    if (!it.status().ok()) return it.status();
    Fill(page.add_kvs(), it.key(), value, it.mod_version(), req.keys_only());
    ++sent;
    if (static_cast<uint64_t>(page.kvs_size()) >= page_size) {
      if (ctx->IsCancelled()) return absl::CancelledError("scan cancelled");
      if (!writer->Write(page)) return absl::CancelledError("client went away");
      page.clear_kvs();
    }
  }
  if (!it.status().ok()) return it.status();
  page.set_done(true);
  writer->Write(page);
  return absl::OkStatus();
}

// Evaluates one compare against `key`'s entry (nullopt: absent).
absl::StatusOr<bool> Evaluate(const v1::Compare& c,
                              const std::optional<Entry>& e) {
  auto ordered = [&](int cmp) -> absl::StatusOr<bool> {
    switch (c.op()) {
      case v1::Compare::EQUAL: return cmp == 0;
      case v1::Compare::NOT_EQUAL: return cmp != 0;
      case v1::Compare::LESS: return cmp < 0;
      case v1::Compare::GREATER: return cmp > 0;
      default: return absl::InvalidArgumentError("a compare without an op");
    }
  };
  switch (c.target()) {
    case v1::Compare::VALUE: {
      if (c.operand_case() != v1::Compare::kValue) {
        return absl::InvalidArgumentError("a VALUE compare needs a value");
      }
      if (!e) return c.op() == v1::Compare::NOT_EQUAL;
      return ordered(e->value.compare(c.value()));
    }
    case v1::Compare::MOD_VERSION: {
      if (c.operand_case() != v1::Compare::kModVersion) {
        return absl::InvalidArgumentError("a MOD_VERSION compare needs a mod_version");
      }
      uint64_t mine = e ? e->mod_version : 0;  // absent keys compare as 0
      return ordered(mine < c.mod_version() ? -1 : mine > c.mod_version() ? 1 : 0);
    }
    case v1::Compare::EXISTS: {
      if (c.operand_case() != v1::Compare::kExists) {
        return absl::InvalidArgumentError("an EXISTS compare needs exists");
      }
      if (c.op() != v1::Compare::EQUAL && c.op() != v1::Compare::NOT_EQUAL) {
        return absl::InvalidArgumentError("EXISTS compares with EQUAL or NOT_EQUAL");
      }
      return (e.has_value() == c.exists()) == (c.op() == v1::Compare::EQUAL);
    }
    default:
      return absl::InvalidArgumentError("a compare without a target");
  }
}

absl::StatusOr<std::optional<Entry>> Lookup(Transaction& t, const std::string& key) {
  absl::StatusOr<Entry> e = t.GetEntry(key);
  if (absl::IsNotFound(e.status())) return std::nullopt;
  if (!e.ok()) return e.status();
  return std::optional<Entry>(*std::move(e));
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

// ------------------------------------------------------------ Authenticator

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  Authenticator a;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    a.tokens_.push_back(line);
  }
  if (a.tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no token in ", path));
  }
  return a;
}

grpc::Status Authenticator::Check(const grpc::ServerContext* ctx) const {
  if (tokens_.empty()) return grpc::Status::OK;
  auto it = ctx->client_metadata().find("authorization");
  if (it != ctx->client_metadata().end()) {
    std::string_view value(it->second.data(), it->second.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (value.substr(0, kBearer.size()) == kBearer) {
      value.remove_prefix(kBearer.size());
      for (const std::string& t : tokens_) {
        // Compare in constant time for equal lengths.
        if (t.size() != value.size()) continue;
        unsigned char diff = 0;
        for (size_t i = 0; i < t.size(); ++i) diff |= t[i] ^ value[i];
        if (diff == 0) return grpc::Status::OK;
      }
    }
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or invalid bearer token");
}

// ------------------------------------------------------- TransactionRegistry

TransactionRegistry::TransactionRegistry(const ServiceOptions& options)
    : options_(options), reaper_([this] { ReapLoop(); }) {}

TransactionRegistry::~TransactionRegistry() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  reaper_.join();
}

absl::StatusOr<std::string> TransactionRegistry::Add(
    std::unique_ptr<Transaction> txn) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id = absl::StrFormat("%016x%016x", rng(), rng());
  auto entry = std::make_shared<Entry>();
  entry->txn = std::move(txn);
  entry->last_used = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= options_.max_open_transactions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open transactions (max_open_transactions = ",
        options_.max_open_transactions, ")"));
  }
  entries_.emplace(id, std::move(entry));
  return id;
}

absl::Status TransactionRegistry::With(
    const std::string& id, const std::function<absl::Status(Transaction&)>& fn) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "no open transaction \"", id, "\" (finished, or rolled back after ",
          absl::FormatDuration(options_.transaction_idle_timeout), " idle)"));
    }
    entry = it->second;
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->txn == nullptr) return absl::NotFoundError("transaction finished");
  absl::Status s = fn(*entry->txn);
  entry->last_used = absl::Now();
  return s;
}

void TransactionRegistry::Remove(const std::string& id) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    entry = std::move(it->second);
    entries_.erase(it);
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  entry->txn.reset();  // rolls back if still open
}

uint64_t TransactionRegistry::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void TransactionRegistry::ReapLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1));
    const absl::Time cutoff = absl::Now() - options_.transaction_idle_timeout;
    for (auto it = entries_.begin(); it != entries_.end();) {
      Entry& e = *it->second;
      std::unique_lock<std::mutex> busy(e.mu, std::try_to_lock);
      if (busy.owns_lock() && e.last_used < cutoff) {
        e.txn.reset();
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

// ---------------------------------------------------------------- KvService

grpc::Status KvService::Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                            v1::GetResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  if (req->read().selector_case() == v1::ReadSelector::kTransactionId) {
    return ToGrpcStatus(txns_->With(req->read().transaction_id(), [&](Transaction& t) {
      absl::StatusOr<Entry> e = t.GetEntry(req->key());
      if (!e.ok()) return e.status();
      Fill(resp->mutable_kv(), req->key(), e->value, e->mod_version, false);
      resp->set_read_version(e->version);
      return absl::OkStatus();
    }));
  }
  absl::StatusOr<Entry> e = db_->GetEntry(ToReadOptions(req->read()), req->key());
  if (!e.ok()) return ToGrpcStatus(e.status());
  Fill(resp->mutable_kv(), req->key(), e->value, e->mod_version, false);
  resp->set_read_version(e->version);
  return grpc::Status::OK;
}

grpc::Status KvService::Scan(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                             grpc::ServerWriter<v1::ScanResponse>* writer) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  std::string start, end;
  absl::Status s = ToBounds(req->range(), &start, &end);
  if (!s.ok()) return ToGrpcStatus(s);
  auto count = [&](uint64_t n, uint64_t version) {
    v1::ScanResponse resp;
    resp.set_count(req->limit() == 0 ? n : std::min(n, req->limit()));
    resp.set_read_version(version);
    resp.set_done(true);
    writer->Write(resp);
  };
  if (req->read().selector_case() == v1::ReadSelector::kTransactionId) {
    return ToGrpcStatus(txns_->With(req->read().transaction_id(), [&](Transaction& t) {
      if (req->count_only()) {
        absl::StatusOr<uint64_t> n = t.Count(start, end);
        if (!n.ok()) return n.status();
        count(*n, t.read_version());
        return absl::OkStatus();
      }
      absl::StatusOr<std::unique_ptr<Iterator>> it = t.NewIterator();
      if (!it.ok()) return it.status();
      return StreamScan(**it, t.read_version(), *req, start, end,
                        options_.scan_page_size, ctx, writer);
    }));
  }
  ReadOptions ro = ToReadOptions(req->read());
  absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
  if (!it.ok()) return ToGrpcStatus(it.status());
  if (req->count_only()) {
    ReadOptions at;
    at.version = (*it)->version();  // count the same version the iterator pins
    absl::StatusOr<uint64_t> n = db_->Count(at, start, end);
    if (!n.ok()) return ToGrpcStatus(n.status());
    count(*n, (*it)->version());
    return grpc::Status::OK;
  }
  return ToGrpcStatus(StreamScan(**it, (*it)->version(), *req, start, end,
                                 options_.scan_page_size, ctx, writer));
}

grpc::Status KvService::Put(grpc::ServerContext* ctx, const v1::PutRequest* req,
                            v1::PutResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  absl::StatusOr<uint64_t> v = db_->Put(req->key(), req->value());
  if (!v.ok()) return ToGrpcStatus(v.status());
  resp->set_version(*v);
  return grpc::Status::OK;
}

grpc::Status KvService::Delete(grpc::ServerContext* ctx, const v1::DeleteRequest* req,
                               v1::DeleteResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  absl::StatusOr<uint64_t> v = db_->Delete(req->key());
  if (!v.ok()) return ToGrpcStatus(v.status());
  resp->set_version(*v);
  return grpc::Status::OK;
}

grpc::Status KvService::Txn(grpc::ServerContext* ctx, const v1::TxnRequest* req,
                            v1::TxnResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  if (static_cast<uint64_t>(req->success_size() + req->failure_size()) >
      options_.max_transaction_ops) {
    return ToGrpcStatus(absl::ResourceExhaustedError("too many operations in a Txn"));
  }
  // Serializable: the compares are reads, so a conflicting commit between
  // them and the writes aborts the attempt, which is then retried.
  for (int attempt = 0; attempt < kTxnAttempts; ++attempt) {
    resp->Clear();
    absl::StatusOr<std::unique_ptr<Transaction>> t = db_->Begin(TransactionOptions());
    if (!t.ok()) return ToGrpcStatus(t.status());
    bool holds = true;
    for (const v1::Compare& c : req->compares()) {
      absl::StatusOr<std::optional<Entry>> e = Lookup(**t, c.key());
      if (!e.ok()) return ToGrpcStatus(e.status());
      absl::StatusOr<bool> ok = Evaluate(c, *e);
      if (!ok.ok()) return ToGrpcStatus(ok.status());
      holds = holds && *ok;
    }
    const auto& ops = holds ? req->success() : req->failure();
    for (const v1::TxnOp& op : ops) {
      if (op.op_case() == v1::TxnOp::kMutation) {
        absl::Status s = Apply(**t, op.mutation());
        if (!s.ok()) return ToGrpcStatus(s);
      } else if (op.op_case() == v1::TxnOp::kGetKey) {
        absl::StatusOr<std::optional<Entry>> e = Lookup(**t, op.get_key());
        if (!e.ok()) return ToGrpcStatus(e.status());
        if (*e) Fill(resp->add_gets(), op.get_key(), (*e)->value, (*e)->mod_version, false);
      } else {
        return ToGrpcStatus(absl::InvalidArgumentError("a Txn op without an operation"));
      }
    }
    absl::StatusOr<uint64_t> v = (*t)->Commit();
    if (absl::IsAborted(v.status())) continue;
    if (!v.ok()) return ToGrpcStatus(v.status());
    resp->set_succeeded(holds);
    resp->set_version(*v);
    return grpc::Status::OK;
  }
  return ToGrpcStatus(absl::AbortedError("Txn kept conflicting; retry"));
}

grpc::Status KvService::Begin(grpc::ServerContext* ctx, const v1::BeginRequest* req,
                              v1::BeginResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  TransactionOptions o;
  o.read_only = req->read_only();
  if (req->read_version() != 0) o.read_version = req->read_version();
  o.isolation = req->isolation() == v1::BeginRequest::SNAPSHOT
                    ? Isolation::kSnapshot
                    : Isolation::kSerializable;
  absl::StatusOr<std::unique_ptr<Transaction>> t = db_->Begin(o);
  if (!t.ok()) return ToGrpcStatus(t.status());
  uint64_t read_version = (*t)->read_version();
  absl::StatusOr<std::string> id = txns_->Add(*std::move(t));
  if (!id.ok()) return ToGrpcStatus(id.status());
  resp->set_transaction_id(*id);
  resp->set_read_version(read_version);
  return grpc::Status::OK;
}

grpc::Status KvService::Write(grpc::ServerContext* ctx, const v1::WriteRequest* req,
                              v1::WriteResponse*) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  if (static_cast<uint64_t>(req->mutations_size()) > options_.max_transaction_ops) {
    return ToGrpcStatus(absl::ResourceExhaustedError("too many mutations"));
  }
  return ToGrpcStatus(txns_->With(req->transaction_id(), [&](Transaction& t) {
    for (const v1::Mutation& m : req->mutations()) {
      absl::Status s = Apply(t, m);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }));
}

grpc::Status KvService::Commit(grpc::ServerContext* ctx, const v1::CommitRequest* req,
                               v1::CommitResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  if (static_cast<uint64_t>(req->mutations_size()) > options_.max_transaction_ops) {
    return ToGrpcStatus(absl::ResourceExhaustedError("too many mutations"));
  }
  absl::Status s = txns_->With(req->transaction_id(), [&](Transaction& t) {
    for (const v1::Mutation& m : req->mutations()) {
      absl::Status a = Apply(t, m);
      if (!a.ok()) return a;
    }
    absl::StatusOr<uint64_t> v = t.Commit();
    if (!v.ok()) return v.status();
    resp->set_version(*v);
    return absl::OkStatus();
  });
  if (!absl::IsNotFound(s)) txns_->Remove(req->transaction_id());
  return ToGrpcStatus(s);
}

grpc::Status KvService::Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                                 v1::RollbackResponse*) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  absl::Status s = txns_->With(req->transaction_id(),
                               [](Transaction& t) { return t.Rollback(); });
  txns_->Remove(req->transaction_id());
  return ToGrpcStatus(s);
}

// ---------------------------------------------------------- VersionsService

grpc::Status VersionsService::ListVersions(grpc::ServerContext* ctx,
                                           const v1::ListVersionsRequest*,
                                           v1::ListVersionsResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  absl::StatusOr<std::vector<VersionInfo>> vs = db_->ListVersions();
  if (!vs.ok()) return ToGrpcStatus(vs.status());
  for (const VersionInfo& v : *vs) {
    auto* out = resp->add_versions();
    out->set_version(v.version);
    out->set_commit_unix_micros(v.commit_micros);
    out->set_entries(v.entries);
  }
  return grpc::Status::OK;
}

grpc::Status VersionsService::Tag(grpc::ServerContext* ctx, const v1::TagRequest* req,
                                  v1::TagResponse*) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  return ToGrpcStatus(db_->Tag(req->name(), req->version()));
}

grpc::Status VersionsService::Untag(grpc::ServerContext* ctx, const v1::UntagRequest* req,
                                    v1::UntagResponse*) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  return ToGrpcStatus(db_->Untag(req->name()));
}

grpc::Status VersionsService::ListTags(grpc::ServerContext* ctx, const v1::ListTagsRequest*,
                                       v1::ListTagsResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  for (const auto& [name, v] : db_->ListTags()) (*resp->mutable_tags())[name] = v;
  return grpc::Status::OK;
}

grpc::Status VersionsService::Diff(grpc::ServerContext* ctx, const v1::DiffRequest* req,
                                   grpc::ServerWriter<v1::DiffResponse>* writer) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  std::string start, end;
  absl::Status s = ToBounds(req->range(), &start, &end);
  if (!s.ok()) return ToGrpcStatus(s);
  v1::DiffResponse page;
  bool gone = false;
  s = db_->Diff(req->from_version(), req->to_version(), start, end,
                [&](const Change& c) {
                  Fill(page.add_changes(), c);
                  if (page.changes_size() >= kDiffPageSize) {
                    if (ctx->IsCancelled() || !writer->Write(page)) {
                      gone = true;
                      return false;
                    }
                    page.clear_changes();
                  }
                  return true;
                });
  if (!s.ok()) return ToGrpcStatus(s);
  if (gone) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  if (page.changes_size() > 0) writer->Write(page);
  return grpc::Status::OK;
}

grpc::Status VersionsService::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                    grpc::ServerWriter<v1::WatchResponse>* writer) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  std::string start, end;
  absl::Status s = ToBounds(req->range(), &start, &end);
  if (!s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::unique_ptr<Watcher>> w = db_->Watch(req->from_version(), start, end);
  if (!w.ok()) return ToGrpcStatus(w.status());
  while (!ctx->IsCancelled()) {
    absl::StatusOr<WatchEvent> e = (*w)->Next(absl::Milliseconds(200));
    if (absl::IsDeadlineExceeded(e.status())) continue;
    if (!e.ok()) return ToGrpcStatus(e.status());
    v1::WatchResponse resp;
    resp.set_version(e->version);
    resp.set_net(e->net);
    Fill(resp.add_changes(), e->change);
    if (!writer->Write(resp)) break;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch ended");
}

grpc::Status VersionsService::Status(grpc::ServerContext* ctx, const v1::StatusRequest*,
                                     v1::StatusResponse* resp) {
  if (grpc::Status a = auth_->Check(ctx); !a.ok()) return a;
  DBStats st = db_->GetStats();
  resp->set_latest_version(st.latest_version);
  resp->set_oldest_version(db_->OldestVersion());
  resp->set_entries(st.entries);
  resp->set_disk_bytes(st.disk_bytes);
  resp->set_cache_hits(st.cache_hits);
  resp->set_cache_misses(st.cache_misses);
  resp->set_open_transactions(txns_->size());
  return grpc::Status::OK;
}

}  // namespace cowdb::server
