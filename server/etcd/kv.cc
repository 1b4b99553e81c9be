// The etcd KV requests (Range, Put, DeleteRange, Txn) over cowdb
// transactions. The semantics follow etcd 3.4's applier
// (etcdserver/apply.go): compares are evaluated against the state before
// any op runs, ops run in order and later ops see earlier ones, a request
// that changes nothing makes no revision.

#include <algorithm>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/etcd/internal.h"

namespace cowdb::server::etcd {

namespace errors {
namespace {
grpc::Status Make(grpc::StatusCode code, const char* msg) {
  return grpc::Status(code, msg);
}
}  // namespace
grpc::Status EmptyKey() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: key is not provided");
}
grpc::Status KeyNotFound() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: key not found");
}
grpc::Status ValueProvided() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: value is provided");
}
grpc::Status LeaseProvided() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: lease is provided");
}
grpc::Status TooManyOps() {
  return Make(grpc::INVALID_ARGUMENT,
              "etcdserver: too many operations in txn request");
}
grpc::Status DuplicateKey() {
  return Make(grpc::INVALID_ARGUMENT,
              "etcdserver: duplicate key given in txn request");
}
grpc::Status Compacted() {
  return Make(grpc::OUT_OF_RANGE,
              "etcdserver: mvcc: required revision has been compacted");
}
grpc::Status FutureRev() {
  return Make(grpc::OUT_OF_RANGE,
              "etcdserver: mvcc: required revision is a future revision");
}
grpc::Status LeaseNotFound() {
  return Make(grpc::NOT_FOUND, "etcdserver: requested lease not found");
}
grpc::Status LeaseExist() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: lease already exists");
}
grpc::Status LeaseTTLTooLarge() {
  return Make(grpc::OUT_OF_RANGE, "etcdserver: too large lease TTL");
}
grpc::Status RequestTooLarge() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: request is too large");
}
grpc::Status RootUserNotExist() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: root user does not exist");
}
grpc::Status RootRoleNotExist() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: root user does not have root role");
}
grpc::Status UserAlreadyExist() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: user name already exists");
}
grpc::Status UserEmpty() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: user name is empty");
}
grpc::Status UserNotFound() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: user name not found");
}
grpc::Status RoleAlreadyExist() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: role name already exists");
}
grpc::Status RoleNotFound() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: role name not found");
}
grpc::Status RoleEmpty() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: role name is empty");
}
grpc::Status AuthFailed() {
  return Make(grpc::INVALID_ARGUMENT,
              "etcdserver: authentication failed, invalid user ID or password");
}
grpc::Status PermissionDenied() {
  return Make(grpc::PERMISSION_DENIED, "etcdserver: permission denied");
}
grpc::Status RoleNotGranted() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: role is not granted to the user");
}
grpc::Status PermissionNotGranted() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: permission is not granted to the role");
}
grpc::Status AuthNotEnabled() {
  return Make(grpc::FAILED_PRECONDITION, "etcdserver: authentication is not enabled");
}
grpc::Status InvalidAuthToken() {
  return Make(grpc::UNAUTHENTICATED, "etcdserver: invalid auth token");
}
grpc::Status InvalidAuthMgmt() {
  return Make(grpc::INVALID_ARGUMENT, "etcdserver: invalid auth management");
}
}  // namespace errors

grpc::Status FromEngine(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  if (absl::IsOutOfRange(s)) return errors::Compacted();
  return ToGrpcStatus(s);
}

KeySpan KeySpan::Of(std::string_view key, std::string_view range_end) {
  KeySpan span;
  span.begin = std::string(key);
  if (range_end.empty()) {
    span.single = true;
  } else if (range_end != std::string_view("\0", 1)) {
    span.end = std::string(range_end);
  }
  return span;
}

void FillKv(std::string_view key, std::string_view value, const KeyMeta& m,
            mvccpb::KeyValue* kv) {
  kv->set_key(key.data(), key.size());
  kv->set_value(value.data(), value.size());
  kv->set_create_revision(static_cast<int64_t>(m.create_version));
  kv->set_mod_revision(static_cast<int64_t>(m.mod_version));
  kv->set_version(static_cast<int64_t>(m.writes));
  kv->set_lease(static_cast<int64_t>(m.lease));
}

// ------------------------------------------------------------- validation

grpc::Status CheckRange(const pb::RangeRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  return grpc::Status::OK;
}

grpc::Status CheckPut(const pb::PutRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  if (r.ignore_value() && !r.value().empty()) return errors::ValueProvided();
  if (r.ignore_lease() && r.lease() != 0) return errors::LeaseProvided();
  return grpc::Status::OK;
}

grpc::Status CheckDelete(const pb::DeleteRangeRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  return grpc::Status::OK;
}

namespace {

grpc::Status CheckTxnOps(const pb::TxnRequest& r, int max_ops);

grpc::Status CheckOp(const pb::RequestOp& op, int max_ops) {
  switch (op.request_case()) {
    case pb::RequestOp::kRequestRange:
      return CheckRange(op.request_range());
    case pb::RequestOp::kRequestPut:
      return CheckPut(op.request_put());
    case pb::RequestOp::kRequestDeleteRange:
      return CheckDelete(op.request_delete_range());
    case pb::RequestOp::kRequestTxn:
      return CheckTxnOps(op.request_txn(), max_ops);
    default:
      return grpc::Status::OK;
  }
}

// The keys a list of ops puts and the spans it deletes, checked as etcd's
// checkIntervals: a key put twice, or put and deleted, on one path is a
// duplicate; the two branches of a nested txn exclude each other. As in
// etcd, a delete's range_end is taken literally here: "\0" (every key from
// `key`) makes an empty interval, so it conflicts with no put.
struct Intervals {
  struct Span {
    std::string begin, end;  // end empty: the single key `begin`
  };
  std::set<std::string> puts;
  std::vector<Span> dels;
  bool Deleted(const std::string& k) const {
    for (const Span& d : dels) {
      if (d.end.empty() ? k == d.begin : (d.begin <= k && k < d.end)) return true;
    }
    return false;
  }
};

grpc::Status CheckIntervals(
    const google::protobuf::RepeatedPtrField<pb::RequestOp>& ops,
    Intervals* out) {
  Intervals iv;
  for (const pb::RequestOp& op : ops) {
    if (op.request_case() != pb::RequestOp::kRequestDeleteRange) continue;
    const pb::DeleteRangeRequest& d = op.request_delete_range();
    iv.dels.push_back({d.key(), d.range_end()});
  }
  for (const pb::RequestOp& op : ops) {
    if (op.request_case() != pb::RequestOp::kRequestTxn) continue;
    Intervals then, other;
    grpc::Status st = CheckIntervals(op.request_txn().success(), &then);
    if (!st.ok()) return st;
    st = CheckIntervals(op.request_txn().failure(), &other);
    if (!st.ok()) return st;
    for (const std::string& k : then.puts) {
      if (iv.puts.count(k) != 0 || iv.Deleted(k)) return errors::DuplicateKey();
      iv.puts.insert(k);
    }
    for (const std::string& k : other.puts) {
      if (iv.puts.count(k) != 0 && then.puts.count(k) == 0) {
        return errors::DuplicateKey();
      }
      if (iv.Deleted(k)) return errors::DuplicateKey();
      iv.puts.insert(k);
    }
    iv.dels.insert(iv.dels.end(), then.dels.begin(), then.dels.end());
    iv.dels.insert(iv.dels.end(), other.dels.begin(), other.dels.end());
  }
  for (const pb::RequestOp& op : ops) {
    if (op.request_case() != pb::RequestOp::kRequestPut) continue;
    const std::string& k = op.request_put().key();
    if (iv.puts.count(k) != 0 || iv.Deleted(k)) return errors::DuplicateKey();
    iv.puts.insert(k);
  }
  *out = std::move(iv);
  return grpc::Status::OK;
}

// etcd's checkTxnRequest: sizes and each op, recursively.
grpc::Status CheckTxnOps(const pb::TxnRequest& r, int max_ops) {
  int opc = std::max({r.compare_size(), r.success_size(), r.failure_size()});
  if (opc > max_ops) return errors::TooManyOps();
  for (const pb::Compare& c : r.compare()) {
    if (c.key().empty()) return errors::EmptyKey();
  }
  for (const auto* ops : {&r.success(), &r.failure()}) {
    for (const pb::RequestOp& op : *ops) {
      grpc::Status st = CheckOp(op, max_ops - opc);
      if (!st.ok()) return st;
    }
  }
  return grpc::Status::OK;
}

}  // namespace

// Then, at the top only, the put/delete overlaps (as etcd's Txn handler).
grpc::Status CheckTxn(const pb::TxnRequest& r, int max_ops) {
  grpc::Status st = CheckTxnOps(r, max_ops);
  if (!st.ok()) return st;
  Intervals unused;
  st = CheckIntervals(r.success(), &unused);
  if (!st.ok()) return st;
  return CheckIntervals(r.failure(), &unused);
}

// --------------------------------------------------------------- execution

namespace {

constexpr int kMaxAttempts = 1000;

// The leases a request's puts name, held while it runs (Lessor::Hold).
// Only a held lease may be attached: a revocation waits for its holds.
class LeaseHolds {
 public:
  LeaseHolds(Lessor* lessor) : lessor_(lessor) {}
  ~LeaseHolds() {
    for (int64_t id : held_) lessor_->Release(id);
  }
  LeaseHolds(const LeaseHolds&) = delete;
  LeaseHolds& operator=(const LeaseHolds&) = delete;

  // Holds `id` if it can be (a missing lease is reported by the put that
  // needs it, if the request takes its branch).
  void Take(int64_t id) {
    if (id != 0 && held_.count(id) == 0 && lessor_->Hold(id)) held_.insert(id);
  }
  // Holds the leases of every put of `ops`, on every branch, at any depth.
  void TakeAll(const google::protobuf::RepeatedPtrField<pb::RequestOp>& ops) {
    for (const pb::RequestOp& op : ops) {
      if (op.request_case() == pb::RequestOp::kRequestPut) Take(op.request_put().lease());
      if (op.request_case() == pb::RequestOp::kRequestTxn) {
        TakeAll(op.request_txn().success());
        TakeAll(op.request_txn().failure());
      }
    }
  }
  bool Held(int64_t id) const { return held_.count(id) != 0; }

 private:
  Lessor* const lessor_;
  std::set<int64_t> held_;
};

// Which branch each Txn (this one, then its nested ones on the chosen
// branch, depth first) takes: etcd's compareToPath.
using TxnPath = std::vector<bool>;

// One attempt at running a request inside a serializable transaction.
class Exec {
 public:
  // `holds`: the leases this request's puts may attach (see LeaseHolds).
  Exec(const Shared& s, Transaction* txn, const LeaseHolds* holds)
      : s_(s), txn_(txn), holds_(holds) {}

  uint64_t begin() const { return txn_->read_version(); }
  bool changed() const { return changed_; }

  // After the commit made version `v`: completes what reported this
  // request's own writes.
  void Finish(uint64_t v) {
    for (mvccpb::KeyValue* kv : new_kvs_) {
      kv->set_mod_revision(static_cast<int64_t>(v));
      if (kv->create_revision() == 0) kv->set_create_revision(static_cast<int64_t>(v));
    }
    for (pb::ResponseHeader* h : headers_) h->set_revision(static_cast<int64_t>(v));
    for (const auto& [lease, key] : attached_) s_.lessor->Attach(lease, key);
    for (const auto& [lease, key] : detached_) s_.lessor->Detach(lease, key);
  }

  grpc::Status Range(const pb::RangeRequest& r, pb::RangeResponse* resp);
  grpc::Status Put(const pb::PutRequest& r, pb::PutResponse* resp);
  grpc::Status Delete(const pb::DeleteRangeRequest& r,
                      pb::DeleteRangeResponse* resp);
  grpc::Status Txn(const pb::TxnRequest& r, pb::TxnResponse* resp);

 private:
  struct Current {
    std::string value;
    KeyMeta meta;
    bool own = false;  // written by this request
  };
  // The key as this request sees it now.
  absl::StatusOr<std::optional<Current>> Lookup(const std::string& key);
  // Calls `fn` for each key of a multi-key `span` this request sees now.
  absl::Status Scan(const KeySpan& span,
                    const std::function<void(const std::string&, const Current&)>& fn);
  absl::StatusOr<bool> Compare(const pb::Compare& c);
  grpc::Status Path(const pb::TxnRequest& r, TxnPath* path);
  grpc::Status CheckPath(const pb::TxnRequest& r, const TxnPath& path,
                         bool puts, size_t* at);
  grpc::Status Apply(const pb::TxnRequest& r, const TxnPath& path, size_t* at,
                     pb::TxnResponse* resp);
  // Fills `kv`; if the key was written by this request, notes it for Finish.
  void Report(std::string_view key, const Current& c, mvccpb::KeyValue* kv) {
    FillKv(key, c.value, c.meta, kv);
    if (c.own) new_kvs_.push_back(kv);
  }
  // A header whose revision is this request's version once it changed
  // something, the version it read otherwise.
  void Header(pb::ResponseHeader* h) {
    h->set_revision(static_cast<int64_t>(begin()));
    if (changed_) headers_.push_back(h);
  }

  const Shared& s_;
  Transaction* const txn_;
  const LeaseHolds* const holds_;
  // What this request wrote: nullopt for a delete. create_version and
  // mod_version 0 stand for the version the commit will make.
  std::map<std::string, std::optional<Current>> written_;
  std::vector<mvccpb::KeyValue*> new_kvs_;
  std::vector<pb::ResponseHeader*> headers_;
  std::vector<std::pair<int64_t, std::string>> attached_;
  std::vector<std::pair<int64_t, std::string>> detached_;  // overwritten or deleted
  bool changed_ = false;
};

absl::StatusOr<std::optional<Exec::Current>> Exec::Lookup(
    const std::string& key) {
  auto w = written_.find(key);
  if (w != written_.end()) return w->second;
  absl::StatusOr<Entry> e = txn_->GetEntry(key);
  if (absl::IsNotFound(e.status())) return std::optional<Current>();
  if (!e.ok()) return e.status();
  Current c;
  c.value = std::move(e->value);
  c.meta = {e->mod_version, e->create_version, e->writes, e->lease};
  return std::optional<Current>(std::move(c));
}

absl::Status Exec::Scan(
    const KeySpan& span,
    const std::function<void(const std::string&, const Current&)>& fn) {
  if (span.Empty()) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<Iterator>> it = txn_->NewIterator(span.Bounds());
  if (!it.ok()) return it.status();
  Iterator& i = **it;
  for (i.Seek(span.begin); i.Valid() && span.Contains(i.key()); i.Next()) {
    std::string key(i.key());
    auto w = written_.find(key);
    if (w != written_.end() && w->second.has_value()) {
      fn(key, *w->second);
      continue;
    }
    Current c;
    c.value = std::string(i.value());
    if (!i.status().ok()) break;
    c.meta = i.meta();
    fn(key, c);
  }
  return i.status();
}

// A Range over an iterator positioned nowhere; `count` is the number of
// keys in the span. `report` fills a KeyValue.
grpc::Status RangeOver(Iterator* it, const KeySpan& span,
                       const pb::RangeRequest& r, uint64_t count,
                       const std::function<void(std::string_view, std::string_view,
                                                const KeyMeta&, mvccpb::KeyValue*)>& report,
                       pb::RangeResponse* resp) {
  resp->set_count(static_cast<int64_t>(count));
  if (r.count_only() || span.Empty()) return grpc::Status::OK;
  auto order = r.sort_order();
  if (r.sort_target() != pb::RangeRequest::KEY && order == pb::RangeRequest::NONE) {
    order = pb::RangeRequest::ASCEND;
  }
  bool filtered = r.min_mod_revision() != 0 || r.max_mod_revision() != 0 ||
                  r.min_create_revision() != 0 || r.max_create_revision() != 0;
  // Keys are read in key order (backwards for a descending sort by key),
  // filtered, sorted by another target if asked, and cut at the limit. As
  // etcd: without a sort order and without filters only limit + 1 keys are
  // read, even when a target other than the key then sorts them.
  bool by_key = r.sort_target() == pb::RangeRequest::KEY;
  bool descend = by_key && order == pb::RangeRequest::DESCEND;
  bool pushdown = !filtered && (r.sort_order() == pb::RangeRequest::NONE || by_key);
  int64_t fetch = pushdown && r.limit() > 0 && r.limit() < INT64_MAX ? r.limit() + 1 : 0;

  std::vector<mvccpb::KeyValue> rows;
  auto keep = [&](const mvccpb::KeyValue& kv) {
    int64_t mod = kv.mod_revision();
    int64_t create = kv.create_revision();
    // Own writes (0) are after every revision a client can name.
    if (mod == 0) mod = INT64_MAX;
    if (create == 0) create = INT64_MAX;
    if (r.max_mod_revision() != 0 && mod > r.max_mod_revision()) return false;
    if (r.min_mod_revision() != 0 && mod < r.min_mod_revision()) return false;
    if (r.max_create_revision() != 0 && create > r.max_create_revision()) return false;
    if (r.min_create_revision() != 0 && create < r.min_create_revision()) return false;
    return true;
  };
  if (descend && !span.single) {
    if (span.end.empty()) {
      it->SeekToLast();
    } else {
      it->Seek(span.end);
      if (it->Valid()) {
        it->Prev();
      } else if (it->status().ok()) {
        it->SeekToLast();
      }
    }
  } else {
    it->Seek(span.begin);
  }
  while (it->Valid() && span.Contains(it->key())) {
    if (fetch > 0 && static_cast<int64_t>(rows.size()) >= fetch) break;
    std::string_view value = it->value();
    if (!it->status().ok()) break;
    rows.emplace_back();
    report(it->key(), value, it->meta(), &rows.back());
    if (filtered && !keep(rows.back())) rows.pop_back();
    if (descend) {
      it->Prev();
    } else {
      it->Next();
    }
    if (span.single) break;
  }
  if (!it->status().ok()) return FromEngine(it->status());

  if (!by_key && order != pb::RangeRequest::NONE) {
    // This request's own writes (revision 0 until the commit) are newer
    // than everything else.
    auto rev = [](int64_t v) { return v == 0 ? INT64_MAX : v; };
    auto less = [&](const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
      switch (r.sort_target()) {
        case pb::RangeRequest::VERSION:
          return a.version() < b.version();
        case pb::RangeRequest::CREATE:
          return rev(a.create_revision()) < rev(b.create_revision());
        case pb::RangeRequest::MOD:
          return rev(a.mod_revision()) < rev(b.mod_revision());
        case pb::RangeRequest::VALUE:
          return a.value() < b.value();
        default:
          return a.key() < b.key();
      }
    };
    if (order == pb::RangeRequest::DESCEND) {
      std::stable_sort(rows.begin(), rows.end(),
                       [&](const auto& a, const auto& b) { return less(b, a); });
    } else {
      std::stable_sort(rows.begin(), rows.end(), less);
    }
  }
  if (r.limit() > 0 && static_cast<int64_t>(rows.size()) > r.limit()) {
    rows.resize(static_cast<size_t>(r.limit()));
    resp->set_more(true);
  }
  for (mvccpb::KeyValue& kv : rows) {
    if (r.keys_only()) kv.clear_value();  // after sorting, which may use it
    resp->add_kvs()->Swap(&kv);
  }
  return grpc::Status::OK;
}

// The count of keys of `span` a reader sees.
template <typename CountFn, typename GetFn>
absl::StatusOr<uint64_t> CountSpan(const KeySpan& span, CountFn count, GetFn exists) {
  if (span.Empty()) return 0;
  if (span.single) return exists(span.begin);
  return count(span.begin, span.end);
}

// Range at a stored revision (not the request's own view).
grpc::Status RangeAt(const Shared& s, const Snapshot& snap,
                     const pb::RangeRequest& r, pb::RangeResponse* resp) {
  KeySpan span = KeySpan::Of(r.key(), r.range_end());
  ReadOptions ro;
  ro.snapshot = &snap;
  absl::StatusOr<uint64_t> count = CountSpan(
      span, [&](std::string_view b, std::string_view e) { return s.db->Count(ro, b, e); },
      [&](const std::string& k) -> absl::StatusOr<uint64_t> {
        absl::StatusOr<Entry> e = s.db->GetEntry(ro, k);
        if (absl::IsNotFound(e.status())) return 0;
        if (!e.ok()) return e.status();
        return 1;
      });
  if (!count.ok()) return FromEngine(count.status());
  absl::StatusOr<std::unique_ptr<Iterator>> it = s.db->NewIterator(ro);
  if (!it.ok()) return FromEngine(it.status());
  auto report = [](std::string_view k, std::string_view v, const KeyMeta& m,
                   mvccpb::KeyValue* kv) { FillKv(k, v, m, kv); };
  return RangeOver(it->get(), span, r, *count, report, resp);
}

// The snapshot a Range at `revision` reads, given the latest version.
grpc::Status SnapshotFor(const Shared& s, int64_t revision, uint64_t latest,
                         Snapshot* out) {
  if (revision <= 0) revision = static_cast<int64_t>(latest);  // as etcd
  if (static_cast<uint64_t>(revision) > latest) return errors::FutureRev();
  if (s.IsCompacted(static_cast<uint64_t>(revision))) return errors::Compacted();
  absl::StatusOr<Snapshot> snap = s.db->SnapshotAt(static_cast<uint64_t>(revision));
  if (absl::IsNotFound(snap.status())) return errors::FutureRev();
  if (!snap.ok()) return FromEngine(snap.status());
  *out = *std::move(snap);
  return grpc::Status::OK;
}

grpc::Status Exec::Range(const pb::RangeRequest& r, pb::RangeResponse* resp) {
  Header(resp->mutable_header());
  if (r.revision() > 0) {
    Snapshot snap;
    grpc::Status st = SnapshotFor(s_, r.revision(), begin(), &snap);
    if (!st.ok()) return st;
    return RangeAt(s_, snap, r, resp);
  }
  KeySpan span = KeySpan::Of(r.key(), r.range_end());
  absl::StatusOr<uint64_t> count = CountSpan(
      span, [&](std::string_view b, std::string_view e) { return txn_->Count(b, e); },
      [&](const std::string& k) -> absl::StatusOr<uint64_t> {
        absl::StatusOr<std::optional<Current>> c = Lookup(k);
        if (!c.ok()) return c.status();
        return c->has_value() ? 1 : 0;
      });
  if (!count.ok()) return FromEngine(count.status());
  absl::StatusOr<std::unique_ptr<Iterator>> it = txn_->NewIterator(span.Bounds());
  if (!it.ok()) return FromEngine(it.status());
  auto report = [&](std::string_view k, std::string_view v, const KeyMeta& m,
                    mvccpb::KeyValue* kv) {
    auto w = written_.find(std::string(k));
    if (w != written_.end() && w->second.has_value()) {
      FillKv(k, w->second->value, w->second->meta, kv);
    } else {
      FillKv(k, v, m, kv);
    }
  };
  grpc::Status st = RangeOver(it->get(), span, r, *count, report, resp);
  // Keys this request wrote (mod_revision 0 until the commit) get the
  // commit's version; noted where they ended up.
  for (mvccpb::KeyValue& kv : *resp->mutable_kvs()) {
    if (kv.mod_revision() == 0) new_kvs_.push_back(&kv);
  }
  return st;
}

grpc::Status Exec::Put(const pb::PutRequest& r, pb::PutResponse* resp) {
  absl::StatusOr<std::optional<Current>> prev = Lookup(r.key());
  if (!prev.ok()) return FromEngine(prev.status());
  // etcd looks the lease up before the key.
  if (r.lease() != 0 && !holds_->Held(r.lease())) return errors::LeaseNotFound();
  if ((r.ignore_value() || r.ignore_lease()) && !prev->has_value()) {
    return errors::KeyNotFound();
  }
  Current next;
  next.own = true;
  next.value = r.ignore_value() ? (*prev)->value : r.value();
  next.meta.lease = r.ignore_lease() ? (*prev)->meta.lease
                                     : static_cast<uint64_t>(r.lease());
  if (prev->has_value()) {
    next.meta.create_version = (*prev)->meta.create_version;
    next.meta.writes = (*prev)->meta.writes + 1;
    if (r.prev_kv()) Report(r.key(), **prev, resp->mutable_prev_kv());
  } else {
    next.meta.writes = 1;
  }
  absl::Status st = txn_->Put(r.key(), next.value, next.meta.lease);
  if (!st.ok()) return FromEngine(st);
  if (next.meta.lease != 0) {
    attached_.emplace_back(static_cast<int64_t>(next.meta.lease), r.key());
  }
  if (prev->has_value() && (*prev)->meta.lease != 0 && (*prev)->meta.lease != next.meta.lease) {
    detached_.emplace_back(static_cast<int64_t>((*prev)->meta.lease), r.key());
  }
  written_[r.key()] = std::move(next);
  changed_ = true;
  Header(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status Exec::Delete(const pb::DeleteRangeRequest& r,
                          pb::DeleteRangeResponse* resp) {
  KeySpan span = KeySpan::Of(r.key(), r.range_end());
  std::vector<std::string> keys;
  if (span.single) {
    absl::StatusOr<std::optional<Current>> c = Lookup(span.begin);
    if (!c.ok()) return FromEngine(c.status());
    if (c->has_value()) {
      keys.push_back(span.begin);
      if ((*c)->meta.lease != 0) detached_.emplace_back((*c)->meta.lease, span.begin);
      if (r.prev_kv()) Report(span.begin, **c, resp->add_prev_kvs());
    }
  } else {
    absl::Status st = Scan(span, [&](const std::string& k, const Current& c) {
      keys.push_back(k);
      if (c.meta.lease != 0) detached_.emplace_back(c.meta.lease, k);
      if (r.prev_kv()) Report(k, c, resp->add_prev_kvs());
    });
    if (!st.ok()) return FromEngine(st);
  }
  for (const std::string& k : keys) {
    absl::Status st = txn_->Delete(k);
    if (!st.ok()) return FromEngine(st);
    written_[k] = std::nullopt;
  }
  resp->set_deleted(static_cast<int64_t>(keys.size()));
  if (!keys.empty()) changed_ = true;
  Header(resp->mutable_header());
  return grpc::Status::OK;
}

absl::StatusOr<bool> Exec::Compare(const pb::Compare& c) {
  auto compare_kv = [&](const Current* kv) {
    int result = 0;
    auto cmp = [](int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); };
    KeyMeta m = kv != nullptr ? kv->meta : KeyMeta();
    switch (c.target()) {
      case pb::Compare::VALUE: {
        std::string_view v = kv != nullptr ? std::string_view(kv->value) : "";
        int r = v.compare(c.value());
        result = r < 0 ? -1 : (r > 0 ? 1 : 0);
        break;
      }
      case pb::Compare::CREATE:
        result = cmp(static_cast<int64_t>(m.create_version), c.create_revision());
        break;
      case pb::Compare::MOD:
        result = cmp(static_cast<int64_t>(m.mod_version), c.mod_revision());
        break;
      case pb::Compare::VERSION:
        result = cmp(static_cast<int64_t>(m.writes), c.version());
        break;
      case pb::Compare::LEASE:
        result = cmp(static_cast<int64_t>(m.lease), c.lease());
        break;
      default:
        break;
    }
    switch (c.result()) {
      case pb::Compare::EQUAL:
        return result == 0;
      case pb::Compare::NOT_EQUAL:
        return result != 0;
      case pb::Compare::GREATER:
        return result > 0;
      case pb::Compare::LESS:
        return result < 0;
      default:
        return true;
    }
  };
  KeySpan span = KeySpan::Of(c.key(), c.range_end());
  std::vector<Current> found;
  if (span.single) {
    absl::StatusOr<std::optional<Current>> cur = Lookup(span.begin);
    if (!cur.ok()) return cur.status();
    if (cur->has_value()) found.push_back(**cur);
  } else {
    absl::Status st = Scan(span, [&](const std::string&, const Current& cur) {
      found.push_back(cur);
    });
    if (!st.ok()) return st;
  }
  if (found.empty()) {
    // etcd: a value compared with a missing key always fails.
    if (c.target() == pb::Compare::VALUE) return false;
    return compare_kv(nullptr);
  }
  for (const Current& cur : found) {
    if (!compare_kv(&cur)) return false;
  }
  return true;
}

// Evaluates every compare on the path against the state before any op
// runs, as etcd does.
grpc::Status Exec::Path(const pb::TxnRequest& r, TxnPath* path) {
  bool ok = true;
  for (const pb::Compare& c : r.compare()) {
    absl::StatusOr<bool> b = Compare(c);
    if (!b.ok()) return FromEngine(b.status());
    if (!*b) {
      ok = false;
      break;
    }
  }
  path->push_back(ok);
  for (const pb::RequestOp& op : ok ? r.success() : r.failure()) {
    if (op.request_case() != pb::RequestOp::kRequestTxn) continue;
    grpc::Status st = Path(op.request_txn(), path);
    if (!st.ok()) return st;
  }
  return grpc::Status::OK;
}

// etcd's checkRequests: before anything is applied, the puts of the path
// need their leases and (with ignore_*) their keys, and its ranges a
// readable revision.
grpc::Status Exec::CheckPath(const pb::TxnRequest& r, const TxnPath& path,
                             bool puts, size_t* at) {
  bool ok = path[(*at)++];
  for (const pb::RequestOp& op : ok ? r.success() : r.failure()) {
    if (op.request_case() == pb::RequestOp::kRequestTxn) {
      grpc::Status st = CheckPath(op.request_txn(), path, puts, at);
      if (!st.ok()) return st;
    } else if (puts && op.request_case() == pb::RequestOp::kRequestPut) {
      const pb::PutRequest& p = op.request_put();
      if (p.ignore_value() || p.ignore_lease()) {
        absl::StatusOr<std::optional<Current>> c = Lookup(p.key());
        if (!c.ok()) return FromEngine(c.status());
        if (!c->has_value()) return errors::KeyNotFound();
      }
      if (p.lease() != 0 && !holds_->Held(p.lease())) {
        return errors::LeaseNotFound();
      }
    } else if (!puts && op.request_case() == pb::RequestOp::kRequestRange) {
      int64_t rev = op.request_range().revision();
      if (rev > 0 && static_cast<uint64_t>(rev) > begin()) return errors::FutureRev();
      if (rev > 0 && s_.IsCompacted(static_cast<uint64_t>(rev))) return errors::Compacted();
    }
  }
  return grpc::Status::OK;
}

grpc::Status Exec::Apply(const pb::TxnRequest& r, const TxnPath& path,
                         size_t* at, pb::TxnResponse* resp) {
  bool ok = path[(*at)++];
  resp->set_succeeded(ok);
  for (const pb::RequestOp& op : ok ? r.success() : r.failure()) {
    pb::ResponseOp* out = resp->add_responses();
    grpc::Status st;
    switch (op.request_case()) {
      case pb::RequestOp::kRequestRange:
        st = Range(op.request_range(), out->mutable_response_range());
        break;
      case pb::RequestOp::kRequestPut:
        st = Put(op.request_put(), out->mutable_response_put());
        break;
      case pb::RequestOp::kRequestDeleteRange:
        st = Delete(op.request_delete_range(), out->mutable_response_delete_range());
        break;
      case pb::RequestOp::kRequestTxn:
        st = Apply(op.request_txn(), path, at, out->mutable_response_txn());
        break;
      default:
        break;
    }
    if (!st.ok()) return st;
  }
  // etcd leaves a nested txn's header empty (the outer one is filled by
  // the caller).
  resp->mutable_header();
  return grpc::Status::OK;
}

grpc::Status Exec::Txn(const pb::TxnRequest& r, pb::TxnResponse* resp) {
  TxnPath path;
  grpc::Status st = Path(r, &path);
  if (!st.ok()) return st;
  // As etcd: every put on the path first, then every range.
  for (bool puts : {true, false}) {
    size_t at = 0;
    st = CheckPath(r, path, puts, &at);
    if (!st.ok()) return st;
  }
  size_t at = 0;
  return Apply(r, path, &at, resp);
}

}  // namespace

grpc::Status RunRange(const Shared& s, const pb::RangeRequest& r,
                      pb::RangeResponse* resp) {
  grpc::Status st = CheckRange(r);
  if (!st.ok()) return st;
  Snapshot latest = s.db->GetSnapshot();
  Snapshot snap = latest;
  if (r.revision() != 0) {
    st = SnapshotFor(s, r.revision(), latest.version(), &snap);
    if (!st.ok()) return st;
  }
  st = RangeAt(s, snap, r, resp);
  if (!st.ok()) return st;
  // etcd reports the current revision, whatever revision was read.
  s.FillHeader(latest.version(), resp->mutable_header());
  return grpc::Status::OK;
}

namespace {

// A write request (Put, DeleteRange, Txn) run in a serializable cowdb
// transaction at the latest version without blocking a thread on its
// commit: attempts run until one commits (retried at once, from the
// commit's callback, after a conflict), then `finish` is called. The
// leases its puts name are held from the start until after it attached
// its keys.
template <typename Resp, typename Body>
class AsyncWrite {
 public:
  // `take(holds)` takes the request's leases.
  template <typename Take>
  static void Start(const Shared& s, Resp* resp, Take take, Body body, Finish finish) {
    auto* w = new AsyncWrite(s, resp, std::move(body), std::move(finish));
    take(w->holds_);
    w->Attempt();
  }

 private:
  AsyncWrite(const Shared& s, Resp* resp, Body body, Finish finish)
      : s_(s), resp_(resp), body_(std::move(body)), finish_(std::move(finish)),
        holds_(s.lessor) {}

  void Attempt() {
    resp_->Clear();
    exec_.reset();
    absl::StatusOr<std::unique_ptr<Transaction>> txn = s_.db->Begin(TransactionOptions());
    if (!txn.ok()) return Done(FromEngine(txn.status()));
    txn_ = *std::move(txn);  // may destroy the last attempt's, whose callback runs
    exec_ = std::make_unique<Exec>(s_, txn_.get(), &holds_);
    grpc::Status st = body_(*exec_);
    if (!st.ok()) return Done(st);
    if (!exec_->changed()) {
      s_.FillHeader(exec_->begin(), resp_->mutable_header());
      return Done(grpc::Status::OK);
    }
    txn_->CommitAsync([this](absl::StatusOr<uint64_t> v) {
      if (absl::IsAborted(v.status()) && ++attempts_ < kMaxAttempts) return Attempt();
      if (absl::IsAborted(v.status())) {
        return Done(grpc::Status(grpc::UNAVAILABLE,
                                 "etcdserver: request timed out (too many conflicts)"));
      }
      if (!v.ok()) return Done(FromEngine(v.status()));
      exec_->Finish(*v);
      s_.FillHeader(*v, resp_->mutable_header());
      Done(grpc::Status::OK);
    });
  }

  void Done(grpc::Status st) {
    Finish finish = std::move(finish_);
    delete this;  // releases the holds
    finish(std::move(st));
  }

  const Shared& s_;
  Resp* const resp_;
  Body body_;
  Finish finish_;
  LeaseHolds holds_;
  std::unique_ptr<Transaction> txn_;
  std::unique_ptr<Exec> exec_;
  int attempts_ = 0;
};

template <typename Resp, typename Take, typename Body>
void StartWrite(const Shared& s, Resp* resp, Take take, Body body, Finish finish) {
  AsyncWrite<Resp, Body>::Start(s, resp, std::move(take), std::move(body), std::move(finish));
}

}  // namespace

void StartPut(const Shared& s, const pb::PutRequest* r, pb::PutResponse* resp,
              Finish finish) {
  grpc::Status st = CheckPut(*r);
  if (!st.ok()) return finish(st);
  if (r->ByteSizeLong() > s.options->max_request_bytes) return finish(errors::RequestTooLarge());
  if (r->prev_kv() || r->ignore_value() || r->ignore_lease()) {
    return StartWrite(
        s, resp, [r](LeaseHolds& h) { h.Take(r->lease()); },
        [r, resp](Exec& e) { return e.Put(*r, resp); }, std::move(finish));
  }
  // A put that needs nothing of the key's previous state is a blind write:
  // no read to validate, nothing to conflict with.
  const int64_t lease = r->lease();
  if (lease != 0 && !s.lessor->Hold(lease)) return finish(errors::LeaseNotFound());
  WriteBatch batch;
  batch.Put(r->key(), r->value(), static_cast<uint64_t>(lease));
  s.db->WriteAsync(std::move(batch), [&s, r, resp, lease, finish = std::move(finish)](
                                         absl::StatusOr<uint64_t> v) {
    if (lease != 0) {
      if (v.ok()) s.lessor->Attach(lease, r->key());
      s.lessor->Release(lease);
    }
    if (!v.ok()) return finish(FromEngine(v.status()));
    s.FillHeader(*v, resp->mutable_header());
    finish(grpc::Status::OK);
  });
}

void StartDelete(const Shared& s, const pb::DeleteRangeRequest* r,
                 pb::DeleteRangeResponse* resp, Finish finish) {
  grpc::Status st = CheckDelete(*r);
  if (!st.ok()) return finish(st);
  StartWrite(
      s, resp, [](LeaseHolds&) {}, [r, resp](Exec& e) { return e.Delete(*r, resp); },
      std::move(finish));
}

void StartTxn(const Shared& s, const pb::TxnRequest* r, pb::TxnResponse* resp,
              Finish finish) {
  if (r->ByteSizeLong() > s.options->max_request_bytes) return finish(errors::RequestTooLarge());
  grpc::Status st = CheckTxn(*r, s.options->max_txn_ops);
  if (!st.ok()) return finish(st);
  StartWrite(
      s, resp,
      [r](LeaseHolds& h) {
        h.TakeAll(r->success());
        h.TakeAll(r->failure());
      },
      [r, resp](Exec& e) { return e.Txn(*r, resp); }, std::move(finish));
}

absl::StatusOr<uint64_t> DeleteLeased(DB* db, int64_t lease,
                                      const std::set<std::string>& keys) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<std::unique_ptr<Transaction>> txn = db->Begin(TransactionOptions());
    if (!txn.ok()) return txn.status();
    bool any = false;
    for (const std::string& k : keys) {
      absl::StatusOr<Entry> e = (*txn)->GetEntry(k);
      if (absl::IsNotFound(e.status())) continue;
      if (!e.ok()) return e.status();
      if (e->lease != static_cast<uint64_t>(lease)) continue;
      absl::Status st = (*txn)->Delete(k);
      if (!st.ok()) return st;
      any = true;
    }
    if (!any) return (*txn)->read_version();
    absl::StatusOr<uint64_t> v = (*txn)->Commit();
    if (absl::IsAborted(v.status())) continue;
    return v;
  }
  return absl::UnavailableError("too many conflicts revoking a lease");
}

}  // namespace cowdb::server::etcd
