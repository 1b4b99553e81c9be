#include "proto/wire/engine_ops.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"

namespace cowdb::wire {
namespace {

// Attempts of a one-shot Txn that keeps conflicting.
constexpr int kTxnAttempts = 16;
// A Txn's gets return at most this many bytes of keys and values (one
// response message; the server's default message limit is 64 MiB).
constexpr size_t kTxnGetBytes = 32 << 20;

// Evaluates one compare against its key's entry (nullopt: absent).
absl::StatusOr<bool> Evaluate(const v1::Compare& c, const std::optional<cowdb::Entry>& e) {
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

absl::StatusOr<std::optional<cowdb::Entry>> Lookup(cowdb::Transaction& t,
                                                   const std::string& key) {
  absl::StatusOr<cowdb::Entry> e = t.GetEntry(key);
  if (absl::IsNotFound(e.status())) return std::nullopt;
  if (!e.ok()) return e.status();
  return std::optional<cowdb::Entry>(*std::move(e));
}

// One attempt of ExecuteTxn up to its commit: begins the transaction,
// evaluates the compares and runs the chosen branch into `resp`.
absl::StatusOr<std::unique_ptr<cowdb::Transaction>> PrepareTxn(DB& db,
                                                               const v1::TxnRequest& req,
                                                               v1::TxnResponse* resp) {
  resp->Clear();
  cowdb::TransactionOptions options;
  options.branch = req.branch();
  absl::StatusOr<std::unique_ptr<cowdb::Transaction>> t = db.Begin(options);
  if (!t.ok()) return t.status();
  bool holds = true;
  size_t get_bytes = 0;
  for (const v1::Compare& c : req.compares()) {
    absl::StatusOr<std::optional<cowdb::Entry>> e = Lookup(**t, c.key());
    if (!e.ok()) return e.status();
    absl::StatusOr<bool> ok = Evaluate(c, *e);
    if (!ok.ok()) return ok.status();
    holds = holds && *ok;
  }
  for (const v1::TxnOp& op : holds ? req.success() : req.failure()) {
    if (op.op_case() == v1::TxnOp::kMutation) {
      absl::Status s = ApplyMutation(**t, op.mutation());
      if (!s.ok()) return s;
    } else if (op.op_case() == v1::TxnOp::kGetKey) {
      absl::StatusOr<std::optional<cowdb::Entry>> e = Lookup(**t, op.get_key());
      if (!e.ok()) return e.status();
      if (!*e) continue;
      get_bytes += op.get_key().size() + (*e)->value.size();
      if (get_bytes > kTxnGetBytes) {
        // Before anything is committed: the Txn fails as a whole.
        return absl::ResourceExhaustedError(absl::StrCat(
            "the Txn's gets return more than ", kTxnGetBytes >> 20,
            " MiB (the response limit); nothing was written. Read large values with Get"));
      }
      v1::KeyValue* kv = resp->add_gets();
      kv->set_key(op.get_key());
      kv->set_value((*e)->value);
      kv->set_mod_version((*e)->mod_version);
    } else {
      return absl::InvalidArgumentError("a Txn op without an operation");
    }
  }
  resp->set_succeeded(holds);
  return t;
}

// Attempt `attempt` of ExecuteTxnAsync.
void TryTxnAsync(DB* db, const v1::TxnRequest* req, v1::TxnResponse* resp, int attempt,
                 std::function<void(absl::Status)> done) {
  absl::StatusOr<std::unique_ptr<cowdb::Transaction>> t = PrepareTxn(*db, *req, resp);
  if (!t.ok()) return done(t.status());
  std::shared_ptr<cowdb::Transaction> txn = *std::move(t);
  cowdb::Transaction* raw = txn.get();
  // The callback holds the transaction until the commit is decided.
  raw->CommitAsync([db, req, resp, attempt, done = std::move(done),
                    txn = std::move(txn)](absl::StatusOr<uint64_t> v) mutable {
    txn.reset();
    if (absl::IsAborted(v.status())) {
      if (attempt + 1 < kTxnAttempts) return TryTxnAsync(db, req, resp, attempt + 1, done);
      return done(absl::AbortedError("Txn kept conflicting; retry"));
    }
    if (!v.ok()) return done(v.status());
    resp->set_version(*v);
    done(absl::OkStatus());
  });
}

}  // namespace

absl::Status ApplyMutation(cowdb::Transaction& t, const v1::Mutation& m) {
  switch (m.op_case()) {
    case v1::Mutation::kPut:
      return t.Put(m.put().key(), m.put().value());
    case v1::Mutation::kDeleteKey:
      return t.Delete(m.delete_key());
    default:
      return absl::InvalidArgumentError("a mutation without an operation");
  }
}

absl::Status ExecuteTxn(DB& db, const v1::TxnRequest& req, v1::TxnResponse* resp) {
  // Serializable: the compares are reads, so a commit between them and the
  // writes aborts the attempt, which is then retried.
  for (int attempt = 0; attempt < kTxnAttempts; ++attempt) {
    absl::StatusOr<std::unique_ptr<cowdb::Transaction>> t = PrepareTxn(db, req, resp);
    if (!t.ok()) return t.status();
    absl::StatusOr<uint64_t> v = (*t)->Commit();
    if (v.ok()) {
      resp->set_version(*v);
      return absl::OkStatus();
    }
    if (!absl::IsAborted(v.status())) return v.status();
  }
  return absl::AbortedError("Txn kept conflicting; retry");
}

void ExecuteTxnAsync(DB& db, const v1::TxnRequest& req, v1::TxnResponse* resp,
                     std::function<void(absl::Status)> done) {
  TryTxnAsync(&db, &req, resp, 0, std::move(done));
}

absl::Status ScanRange(Iterator& it, const std::string& start, const std::string& end,
                       bool reverse, uint64_t limit, bool keys_only,
                       const std::function<bool(const client::KeyValue&)>& visit) {
  if (reverse) {
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
  auto in_range = [&] {
    if (!it.Valid()) return false;
    if (reverse) return it.key() >= std::string_view(start);
    return end.empty() || it.key() < std::string_view(end);
  };
  client::KeyValue kv;
  // No step past the last key taken: a transaction's iterator would
  // observe (and validate) the key it stepped to.
  for (uint64_t n = 0; in_range(); reverse ? it.Prev() : it.Next()) {
    kv.key.assign(it.key());
    if (keys_only) {
      kv.value.clear();
    } else {
      kv.value.assign(it.value());
      if (!it.status().ok()) return it.status();  // a blob could not be read
    }
    kv.mod_version = it.mod_version();
    if (!visit(kv)) return absl::OkStatus();
    if (limit != 0 && ++n == limit) break;
  }
  return it.status();
}

absl::Status RunHistory(DB& db, const v1::HistoryRequest& req,
                        const std::function<absl::Status(const v1::HistoryResponse&)>& send) {
  // The engine returns a page at a time: at most this many changes in
  // memory, whatever the request's limit; a message also ends once its
  // values reach kMessageBytes.
  constexpr uint64_t kPageChanges = 64;
  constexpr size_t kMessageBytes = 1 << 20;
  cowdb::HistoryOptions o;
  o.from = req.from_version();
  if (req.to_version() != 0) o.to = req.to_version();
  uint64_t listed = 0;
  uint64_t top = 0;
  v1::HistoryResponse msg;
  size_t msg_bytes = 0;
  for (;;) {
    const uint64_t left = req.limit() == 0 ? kPageChanges : req.limit() - listed;
    o.limit = std::min(left, kPageChanges);
    absl::StatusOr<cowdb::KeyHistory> h = db.History(req.key(), o);
    if (!h.ok()) return h.status();
    if (top == 0) top = h->to;  // the later pages search below the same top
    for (cowdb::KeyChange& c : h->changes) {
      if (msg_bytes >= kMessageBytes) {
        if (absl::Status s = send(msg); !s.ok()) return s;
        msg.clear_changes();
        msg_bytes = 0;
      }
      v1::KeyChange* out = msg.add_changes();
      out->set_version(c.version);
      out->set_deleted(!c.value);
      if (c.value) {
        msg_bytes += c.value->size();
        out->set_value(std::move(*c.value));
      }
      out->set_create_version(c.meta.create_version);
      out->set_writes(c.meta.writes);
      out->set_lease(c.meta.lease);
    }
    listed += h->changes.size();
    const bool limit_reached = req.limit() != 0 && listed >= req.limit();
    // A page cut short by its own size, with older versions left to search.
    if (h->more && !limit_reached && h->changes.back().version > std::max<uint64_t>(o.from, 1)) {
      o.to = h->changes.back().version - 1;
      continue;
    }
    msg.set_to_version(top);
    msg.set_more(h->more && limit_reached);
    msg.set_complete_from(msg.more() ? h->complete_from
                                     : std::max<uint64_t>(o.from, h->complete_from));
    return send(msg);
  }
}

v1::StatusResponse StatusOf(DB& db, uint64_t open_transactions) {
  const DBStats st = db.GetStats();
  v1::StatusResponse r;
  r.set_latest_version(st.latest_version);
  r.set_entries(st.entries);
  r.set_disk_bytes(st.disk_bytes);
  r.set_cache_hits(st.cache_hits);
  r.set_cache_misses(st.cache_misses);
  r.set_commits(st.commits);
  r.set_syncs(st.syncs);
  r.set_pages_written(st.pages_written);
  r.set_bytes_written(st.bytes_written);
  r.set_cache_bytes(st.cache_bytes);
  r.set_log_bytes(st.log_bytes);
  r.set_checkpoints(st.checkpoints);
  r.set_checkpoint_version(st.checkpoint_version);
  r.set_unwritten_bytes(st.unwritten_bytes);
  r.set_replayed_commits(st.replayed_commits);
  r.set_recovery_micros(st.recovery_micros);
  r.set_cache_capacity(st.cache_capacity);
  r.set_disk_bytes_pages(st.disk_bytes_pages);
  r.set_disk_bytes_blobs(st.disk_bytes_blobs);
  r.set_disk_bytes_log(st.disk_bytes_log);
  r.set_disk_bytes_records(st.disk_bytes_records);
  r.set_oldest_version(db.OldestVersion());
  r.set_release_floor(db.ReleaseFloor());
  r.set_open_transactions(open_transactions);
  return r;
}

void ToProto(const cowdb::Change& c, v1::Change* out) {
  out->set_key(c.key);
  out->set_old_exists(c.old_value.has_value());
  if (c.old_value) out->set_old_value(*c.old_value);
  out->set_new_exists(c.new_value.has_value());
  if (c.new_value) out->set_new_value(*c.new_value);
  out->set_old_mod_version(c.old_meta.mod_version);
  out->set_new_mod_version(c.new_meta.mod_version);
}

client::Change FromEngine(const cowdb::Change& c) {
  return client::Change{c.key, c.old_value, c.new_value, c.old_meta.mod_version,
                c.new_meta.mod_version};
}

cowdb::TreeAt TreeOf(std::string_view branch, std::optional<uint64_t> version) {
  return cowdb::TreeAt{branch.empty() ? std::string("main") : std::string(branch), version};
}

absl::StatusOr<cowdb::MergePolicy> MergePolicyOf(v1::MergeRequest::Policy p) {
  switch (p) {
    case v1::MergeRequest::FAIL: return cowdb::MergePolicy::kFail;
    case v1::MergeRequest::OURS: return cowdb::MergePolicy::kOurs;
    case v1::MergeRequest::THEIRS: return cowdb::MergePolicy::kTheirs;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown merge policy ", static_cast<int>(p),
                       " (FAIL = 0, OURS = 1, THEIRS = 2)"));
  }
}

cowdb::MergePolicy ToEngine(client::MergePolicy p) {
  switch (p) {
    case client::MergePolicy::kFail: return cowdb::MergePolicy::kFail;
    case client::MergePolicy::kOurs: return cowdb::MergePolicy::kOurs;
    case client::MergePolicy::kTheirs: return cowdb::MergePolicy::kTheirs;
  }
  return cowdb::MergePolicy::kFail;
}

void ToProto(const cowdb::BranchInfo& b, v1::BranchInfo* out) {
  out->set_name(b.name);
  out->set_created(b.created);
  out->set_source(b.source);
  out->set_source_version(b.source_version);
  out->set_entries(b.entries);
}

client::BranchInfo FromEngine(const cowdb::BranchInfo& b) {
  return client::BranchInfo{b.name, b.created, b.source, b.source_version, b.entries};
}

void ToProto(const cowdb::MergeResult& r, uint64_t conflict_bytes, v1::MergeResponse* out) {
  out->set_merged(r.merged);
  out->set_version(r.version);
  out->set_base_version(r.base_version);
  out->set_base_branch(r.base_branch);
  out->set_changes(r.changes);
  out->set_conflict_count(r.conflicts.size());
  uint64_t bytes = 0;
  for (const cowdb::MergeConflict& c : r.conflicts) {
    for (const std::optional<std::string>* v : {&c.base, &c.ours, &c.theirs}) {
      if (*v) bytes += (*v)->size();
    }
    bytes += c.key.size();
    if (bytes > conflict_bytes) break;
    v1::MergeConflict* o = out->add_conflicts();
    o->set_key(c.key);
    if (c.base) o->set_base(*c.base);
    if (c.ours) o->set_ours(*c.ours);
    if (c.theirs) o->set_theirs(*c.theirs);
  }
}

client::MergeResult FromEngine(const cowdb::MergeResult& r) {
  client::MergeResult out;
  out.merged = r.merged;
  out.version = r.version;
  out.base_version = r.base_version;
  out.base_branch = r.base_branch;
  out.changes = r.changes;
  for (const cowdb::MergeConflict& c : r.conflicts) {
    out.conflicts.push_back(client::MergeConflict{c.key, c.base, c.ours, c.theirs});
  }
  out.conflict_count = r.conflicts.size();
  return out;
}

}  // namespace cowdb::wire
