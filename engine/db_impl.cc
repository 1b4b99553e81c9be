#include "engine/db_impl.h"

#include <algorithm>
#include <cassert>
#include <deque>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/format/export_file.h"
#include "engine/format/merkle.h"
#include "engine/store/rados_page_store.h"
#include "engine/store/rocksdb_page_store.h"
#include "engine/tree/checkpoint.h"
#include "engine/tree/diff.h"
#include "engine/tree/verify.h"
#include "engine/txn/transaction_impl.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"
#include "engine/version/records.h"

namespace cowdb {

uint64_t Snapshot::version() const {
  return version_ ? version_->version : 0;
}

std::string Snapshot::branch() const {
  return version_ && !version_->branch.empty() ? version_->branch : "main";
}

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const Options& options,
                                             const std::string& path) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<internal::DBImpl> db,
      internal::DBImpl::OpenAt(options, path, internal::RocksDBStoreOptions()));
  return std::unique_ptr<DB>(std::move(db));
}

absl::StatusOr<std::unique_ptr<DB>> DB::OpenRados(const Options& options,
                                                  const RadosOptions& rados) {
  internal::RadosStoreOptions store_options;
  store_options.conf_path = rados.conf_path;
  store_options.client_id = rados.client_id;
  store_options.pool = rados.pool;
  store_options.name = rados.name;
  store_options.create_if_missing = options.create_if_missing;
  store_options.read_only = options.read_only;
  store_options.epoch = rados.epoch;
  store_options.op_timeout_seconds = rados.op_timeout_seconds;
  ASSIGN_OR_RETURN(std::unique_ptr<internal::PageStore> store,
                   internal::OpenRadosPageStore(store_options));
  ASSIGN_OR_RETURN(std::unique_ptr<internal::DBImpl> db,
                   internal::DBImpl::Open(options, std::move(store)));
  return std::unique_ptr<DB>(std::move(db));
}

namespace internal {

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::OpenAt(
    const Options& options, const std::string& path,
    RocksDBStoreOptions store_options) {
  store_options.create_if_missing = options.create_if_missing;
  ASSIGN_OR_RETURN(std::unique_ptr<PageStore> store,
                   OpenRocksDBPageStore(path, store_options));
  return Open(options, std::move(store));
}
namespace {

absl::Status ValidateOptions(const Options& o) {
  if (o.page_size < 512 || o.page_size > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", o.page_size, " is outside [512, 65536]"));
  }
  if (o.inline_value_limit > o.page_size / 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("inline_value_limit ", o.inline_value_limit,
                     " exceeds page_size / 4 = ", o.page_size / 4));
  }
  if (o.max_key_size == 0) {
    return absl::InvalidArgumentError("max_key_size must be positive");
  }
  return absl::OkStatus();
}

KeyMeta MetaOf(const LeafEntry& e) {
  return KeyMeta{e.mod_version, e.create_version, e.writes, e.lease};
}

// A DB iterator: a tree cursor over a pinned version, plus blob loading.
class DBIter final : public Iterator {
 public:
  DBIter(NodeSource* src, std::shared_ptr<const Version> v)
      : version_(std::move(v)), cursor_(src, version_->root), values_(src) {}

  bool Valid() const override { return cursor_.Valid(); }
  void SeekToFirst() override { Track(cursor_.SeekToFirst()); }
  void SeekToLast() override { Track(cursor_.SeekToLast()); }
  void Seek(std::string_view target) override { Track(cursor_.Seek(target)); }
  void Next() override { Track(cursor_.Next()); }
  void Prev() override { Track(cursor_.Prev()); }

  std::string_view key() const override { return cursor_.entry().key; }
  std::string_view value() const override {
    return values_.Read(cursor_.entry().value, &status_);
  }
  uint64_t mod_version() const override { return cursor_.entry().mod_version; }
  KeyMeta meta() const override { return MetaOf(cursor_.entry()); }
  uint64_t version() const override { return version_->version; }
  absl::Status status() const override { return status_; }

 private:
  void Track(absl::Status s) {
    if (!s.ok()) status_ = std::move(s);
  }

  const std::shared_ptr<const Version> version_;
  TreeCursor cursor_;
  mutable ValueReader values_;
  mutable absl::Status status_;
};

}  // namespace

DBImpl::DBImpl(const Options& options, std::shared_ptr<PageStore> store)
    : options_(options),
      store_(std::move(store)),
      cache_(options.cache_bytes),
      source_(store_.get(), &cache_) {}

DBImpl::~DBImpl() {
  queue_.reset();      // the queued writes finish first
  reclaimer_.reset();
  versions_.reset();   // a clean close checkpoints
}

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::Open(
    const Options& options, std::shared_ptr<PageStore> store) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const absl::Time start = absl::Now();
  std::unique_ptr<DBImpl> db(new DBImpl(options, std::move(store)));
  ASSIGN_OR_RETURN(db->versions_,
                   VersionStore::Open(options, db->store_.get(), &db->cache_,
                                      &db->source_));
  db->recovery_micros_ = absl::ToInt64Microseconds(absl::Now() - start);
  db->reclaimer_ = std::make_unique<Reclaimer>(options, db->store_.get(),
                                               db->versions_.get());
  db->queue_ = std::make_unique<CommitQueue>(options, &db->source_,
                                             db->versions_.get(),
                                             db->reclaimer_.get());
  if (!options.read_only) {
    db->reclaimer_->Start();
    db->versions_->StartCheckpointer();
  }
  return db;
}

absl::StatusOr<uint64_t> DBImpl::CatchUp() { return versions_->CatchUp(); }

absl::Status DBImpl::CheckNotReadOnly(const char* what) const {
  if (!options_.read_only) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the database is open read-only (a replica): only its writer ", what));
}

absl::StatusOr<uint64_t> DBImpl::Put(std::string_view key,
                                     std::string_view value) {
  WriteBatch batch;
  batch.Put(key, value);
  return Write(batch);
}

absl::StatusOr<uint64_t> DBImpl::Delete(std::string_view key) {
  WriteBatch batch;
  batch.Delete(key);
  return Write(batch);
}

namespace {

// A commit request for the blind writes of `batch`, which must outlive it.
void PrepareBlindWrite(const WriteBatch& batch, CommitRequest* req) {
  req->written_keys.reserve(batch.Count());
  req->mutations.reserve(batch.Count());
  for (const auto& op : batch.ops()) {
    req->written_keys.push_back(op.key);
    req->mutations.push_back(Mutation{op.is_delete, op.key, op.value,
                                      op.is_delete ? 0 : op.lease});
  }
  req->branch = std::string(InternalBranchName(batch.branch()));
}

}  // namespace

absl::Status DBImpl::ValidateBatch(const WriteBatch& batch) {
  for (const auto& op : batch.ops()) {
    RETURN_IF_ERROR(queue_->ValidateWrite(op.key, op.value));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DBImpl::Write(const WriteBatch& batch) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  if (batch.Count() == 0) return versions_->latest()->version;
  CommitRequest req;  // a blind write: nothing to validate
  PrepareBlindWrite(batch, &req);
  return queue_->SubmitCommit(req);
}

void DBImpl::WriteAsync(WriteBatch batch, WriteCallback done) {
  // The queue tells asynchronous requests by their callback: never empty.
  if (!done) done = [](absl::StatusOr<uint64_t>) {};
  if (absl::Status s = ValidateBatch(batch); !s.ok()) return done(s);
  if (batch.Count() == 0) return done(versions_->latest()->version);
  struct AsyncWrite {
    WriteBatch batch;
    CommitRequest req;
  };
  auto* w = new AsyncWrite{std::move(batch), {}};
  PrepareBlindWrite(w->batch, &w->req);
  w->req.on_done = [w, done = std::move(done)](absl::StatusOr<uint64_t> v) {
    std::unique_ptr<AsyncWrite> owned(w);
    done(std::move(v));
  };
  queue_->SubmitAsync(&w->req);
}

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::Resolve(
    const ReadOptions& options) {
  if (options.snapshot != nullptr && options.snapshot->valid()) {
    if (options.version) {
      return absl::InvalidArgumentError(
          "ReadOptions: set snapshot or version, not both");
    }
    if (!options.branch.empty() &&
        InternalBranchName(options.branch) != options.snapshot->version_->branch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ReadOptions: branch \"", options.branch, "\" is not the snapshot's (\"",
          options.snapshot->branch(), "\")"));
    }
    return options.snapshot->version_;
  }
  if (options.version) return versions_->Pin(*options.version, options.branch);
  return versions_->Latest(options.branch);
}

absl::StatusOr<const Version*> DBImpl::ResolveForCall(
    const ReadOptions& options, std::shared_ptr<const Version>* hold) {
  if (options.snapshot != nullptr && options.snapshot->valid() &&
      !options.version && options.branch.empty()) {
    return options.snapshot->version_.get();
  }
  ASSIGN_OR_RETURN(*hold, Resolve(options));
  return hold->get();
}

absl::StatusOr<Entry> DBImpl::GetEntry(const ReadOptions& options,
                                       std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  Entry e;
  e.version = v->version;
  EntryMeta meta;
  ASSIGN_OR_RETURN(bool found,
                   TreeRead(source_, v->root, key, &e.value, &meta));
  if (!found) return absl::NotFoundError("key not found");
  e.mod_version = meta.mod_version;
  e.create_version = meta.create_version;
  e.writes = meta.writes;
  e.lease = meta.lease;
  return e;
}

absl::Status DBImpl::CheckVerifiable() {
  if (versions_->hashed()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "this database has no Merkle hashes, so its reads cannot be proved: it "
      "was created with Options::verifiable = false, or by a build before "
      "database format 4. Export it and import it into a new database to "
      "verify its reads");
}

namespace {

// The digest chain covers main's trees only.
absl::Status CheckProvable(const Version& v) {
  if (v.branch.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "reads of branch \"", v.branch, "\" cannot be proved: version digests "
      "cover the main branch only"));
}

}  // namespace

absl::StatusOr<ProvedValue> DBImpl::ProveGet(const ReadOptions& options,
                                             std::string_view key) {
  RETURN_IF_ERROR(CheckVerifiable());
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  RETURN_IF_ERROR(CheckProvable(*v));
  ProvedValue out;
  out.proof.version = v->version;
  out.proof.commit_micros = v->commit_micros;
  out.proof.previous_digest = v->previous_digest;
  RETURN_IF_ERROR(TreeProve(source_, v->root, key, &out.proof, &out.value));
  return out;
}

absl::StatusOr<ProvedRange> DBImpl::ProveScan(const ReadOptions& options,
                                              std::string_view begin, std::string_view end,
                                              uint64_t limit) {
  RETURN_IF_ERROR(CheckVerifiable());
  if (!end.empty() && end < begin) {
    return absl::InvalidArgumentError("the range's end is before its start");
  }
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  RETURN_IF_ERROR(CheckProvable(*v));
  ProvedRange out;
  out.proved_end = std::string(end);
  TreeCursor cursor(&source_, v->root);
  ValueReader values(&source_);
  RETURN_IF_ERROR(cursor.Seek(begin));
  while (cursor.Valid()) {
    const LeafEntry& e = cursor.entry();
    if (!end.empty() && e.key >= end) break;
    if (limit != 0 && out.kvs.size() == limit) {
      out.proved_end = std::string(out.kvs.back().first);
      out.proved_end.push_back('\0');
      break;
    }
    absl::Status read;
    std::string_view value = values.Read(e.value, &read);
    RETURN_IF_ERROR(read);
    out.kvs.emplace_back(std::string(e.key), std::string(value));
    RETURN_IF_ERROR(cursor.Next());
  }
  out.proof.version = v->version;
  out.proof.commit_micros = v->commit_micros;
  out.proof.previous_digest = v->previous_digest;
  RETURN_IF_ERROR(TreeProveRange(source_, v->root, begin, out.proved_end, &out.proof));
  return out;
}

absl::StatusOr<VersionDigest> DBImpl::GetDigest(uint64_t version) {
  RETURN_IF_ERROR(CheckVerifiable());
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, versions_->Pin(version));
  return VersionDigest{v->version, v->root.hash, v->digest, v->commit_micros};
}

absl::StatusOr<std::vector<DigestLink>> DBImpl::DigestLinks(uint64_t from,
                                                            uint64_t to) {
  RETURN_IF_ERROR(CheckVerifiable());
  if (from > to) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest links from version ", from, " to ", to,
                     ": from is after to"));
  }
  const uint64_t latest = versions_->latest()->version;
  if (to > latest) {
    return absl::NotFoundError(absl::StrCat(
        "version ", to, " does not exist; the latest is ", latest));
  }
  std::vector<DigestLink> links;
  links.reserve(to - from);
  for (uint64_t v = from + 1; v <= to; ++v) {
    ASSIGN_OR_RETURN(std::optional<Version> record, versions_->ReadRecord(v));
    if (!record) {
      return absl::OutOfRangeError(absl::StrCat(
          "version ", v, " is released, so the chain from ", from, " to ", to,
          " cannot be shown; the oldest retained version is ",
          versions_->oldest_retained()));
    }
    links.push_back({v, record->root.hash, record->commit_micros});
  }
  return links;
}

absl::StatusOr<std::unique_ptr<Transaction>> DBImpl::Begin(
    const TransactionOptions& options) {
  std::shared_ptr<const Version> snapshot;
  if (options.read_version) {
    if (!options.read_only) {
      return absl::InvalidArgumentError(
          "read_version is only for read-only transactions; a read-write "
          "transaction reads the latest version");
    }
    ASSIGN_OR_RETURN(snapshot, versions_->Pin(*options.read_version, options.branch));
  } else {
    ASSIGN_OR_RETURN(snapshot, versions_->Latest(options.branch));
  }
  return std::unique_ptr<Transaction>(
      new TransactionImpl(queue_.get(), std::move(snapshot), options));
}

absl::StatusOr<std::string> DBImpl::Get(const ReadOptions& options,
                                        std::string_view key) {
  std::string value;
  RETURN_IF_ERROR(Get(options, key, &value));
  return value;
}

absl::Status DBImpl::Get(const ReadOptions& options, std::string_view key,
                         std::string* value) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  ASSIGN_OR_RETURN(bool found, TreeRead(source_, v->root, key, value));
  if (!found) return absl::NotFoundError("key not found");
  return absl::OkStatus();
}

Snapshot DBImpl::GetSnapshot() { return Snapshot(versions_->latest()); }

absl::StatusOr<Snapshot> DBImpl::SnapshotAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, versions_->Pin(version));
  return Snapshot(std::move(v));
}

absl::StatusOr<std::unique_ptr<Iterator>> DBImpl::NewIterator(
    const ReadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Resolve(options));
  return std::unique_ptr<Iterator>(new DBIter(&source_, std::move(v)));
}

absl::StatusOr<uint64_t> DBImpl::Count(const ReadOptions& options,
                                       std::string_view begin,
                                       std::string_view end) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Resolve(options));
  return TreeCount(source_, v->root, begin, end);
}

uint64_t DBImpl::LatestVersion() { return versions_->latest()->version; }

DBStats DBImpl::GetStats() {
  DBStats s;
  std::shared_ptr<const Version> latest = versions_->latest();
  s.latest_version = latest->version;
  s.entries = latest->root.count;
  s.commits = queue_->commits();
  VersionStore::Stats v = versions_->GetStats();
  s.pages_written = v.pages_written;
  s.blobs_written = v.blobs_written;
  s.log_bytes = v.log_bytes;
  s.checkpoints = v.checkpoints;
  s.checkpoint_version = v.checkpoint_version;
  s.unwritten_bytes = v.unwritten_bytes;
  s.replayed_commits = v.replayed_commits;
  s.recovery_micros = recovery_micros_;
  StoreStats store = store_->GetStats();
  s.syncs = v.commit_syncs;
  s.bytes_written = store.bytes_written;
  s.page_reads = store.reads;
  s.disk_bytes = store.disk_bytes;
  auto bytes = [&](Space space) { return store.space_bytes[static_cast<int>(space)]; };
  s.disk_bytes_pages = bytes(Space::kPages);
  s.disk_bytes_blobs = bytes(Space::kBlobs);
  s.disk_bytes_log = bytes(Space::kLog);
  s.disk_bytes_records = bytes(Space::kMeta) + bytes(Space::kVersions) + bytes(Space::kFreed) +
                         bytes(Space::kTags) + bytes(Space::kCheckpoints) +
                         bytes(Space::kSystem);
  CacheStats cache = cache_.GetStats();
  s.cache_hits = cache.hits;
  s.cache_misses = cache.misses;
  s.cache_bytes = cache.bytes;
  s.cache_capacity = cache.capacity;
  return s;
}

absl::StatusOr<Root> DBImpl::RootAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, versions_->Pin(version));
  if (std::optional<VersionStore::Trees> stored = versions_->CheckpointRoot(version)) {
    return stored->root;
  }
  return v->root;
}

absl::Status DBImpl::VerifyVersion(uint64_t version, bool strict) {
  ASSIGN_OR_RETURN(Root root, RootAt(version));
  return VerifyTree(source_, root, page_size(), strict, versions_->hashed());
}

absl::StatusOr<std::vector<FreedItem>> DBImpl::FreedAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store_->Get(Space::kFreed, BigEndianKey(version)));
  if (!record) return std::vector<FreedItem>();
  return DecodeFreed(*record, version);
}

// ------------------------------------------------------- versions and tags

uint64_t DBImpl::OldestVersion() { return versions_->oldest_retained(); }

absl::StatusOr<std::vector<VersionInfo>> DBImpl::ListVersions() {
  return versions_->ListVersions();
}

absl::StatusOr<uint64_t> DBImpl::VersionAt(int64_t unix_micros) {
  return versions_->VersionAt(unix_micros);
}

absl::Status DBImpl::Tag(std::string_view name, uint64_t version) {
  return versions_->Tag(name, version);
}

absl::Status DBImpl::Untag(std::string_view name) {
  RETURN_IF_ERROR(versions_->Untag(name));
  reclaimer_->Wake();
  return absl::OkStatus();
}

std::map<std::string, uint64_t> DBImpl::ListTags() {
  return versions_->ListTags();
}

namespace {
absl::Status ValidateSystemRecordName(std::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a system record name must have 1 to 256 bytes (this one has ", name.size(), ")"));
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<std::optional<std::string>> DBImpl::GetSystemRecord(std::string_view name) {
  RETURN_IF_ERROR(ValidateSystemRecordName(name));
  return store_->Get(Space::kSystem, name);
}

absl::Status DBImpl::PutSystemRecord(std::string_view name, std::string_view value) {
  RETURN_IF_ERROR(ValidateSystemRecordName(name));
  StoreBatch batch;
  batch.Put(Space::kSystem, std::string(name), std::string(value));
  return store_->Commit(batch, /*sync=*/true);
}

absl::Status DBImpl::Diff(uint64_t from, uint64_t to, std::string_view begin,
                          std::string_view end,
                          const std::function<bool(const Change&)>& fn) {
  if (from > to) {
    return absl::InvalidArgumentError(
        absl::StrCat("diff from version ", from, " after to version ", to));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> a, versions_->Pin(from));
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> b, versions_->Pin(to));
  return DiffRoots(a->root, b->root, begin, end, fn);
}

absl::StatusOr<KeyHistory> DBImpl::History(std::string_view key,
                                           const HistoryOptions& options) {
  RETURN_IF_ERROR(queue_->ValidateWrite(key, ""));
  // `to` is pinned (read, if resident; else its interval is scanned: see
  // below), so that its errors come first.
  std::shared_ptr<const Version> top;
  std::optional<VersionStore::KeyStates> scanned;
  if (!options.to) {
    top = versions_->latest();
  } else if (versions_->Resident(*options.to)) {
    ASSIGN_OR_RETURN(top, versions_->Pin(*options.to));
  } else {
    ASSIGN_OR_RETURN(scanned, versions_->ScanKeyStates(key, *options.to));
  }
  KeyHistory h;
  h.to = top ? top->version : *options.to;
  if (options.from > h.to) {
    return absl::InvalidArgumentError(absl::StrCat(
        "history from version ", options.from, " after to version ", h.to));
  }
  // What released versions changed cannot be known: the floor's state is
  // the oldest one readable.
  const uint64_t lo = std::max<uint64_t>({options.from, versions_->floor() + 1, 1});
  h.complete_from = lo;
  auto emit = [&](uint64_t version, std::optional<std::string> value,
                  const EntryMeta& m) {
    h.changes.push_back(KeyChange{
        version, std::move(value),
        KeyMeta{m.mod_version, m.create_version, m.writes, m.lease}});
    if (options.limit != 0 && h.changes.size() >= options.limit) {
      h.more = true;
      h.complete_from = version;
      return false;
    }
    return true;
  };
  // Walks back from `cur` one state at a time. A state holds from `since`
  // to `cur`; `deleted_at` is where the previous (later) state, an absent
  // key, began: a delete if the key is present just before it.
  //
  // A version that is not resident (before the last checkpoint, neither a
  // checkpoint nor rebuilt) is not rebuilt to be read: the key's states in
  // its checkpoint interval come from one pass over the interval's log
  // records (VersionStore::ScanKeyStates), kept while the hops stay in it.
  // Hops go backwards, so each interval is scanned at most once.
  uint64_t cur = h.to;
  uint64_t deleted_at = 0;
  std::shared_ptr<const Version> v = top;
  for (;;) {
    std::string value;
    EntryMeta meta;
    uint64_t since = 0;
    bool found = false;
    if (cur != 0) {
      const bool in_scanned =
          scanned && scanned->base <= cur && cur <= scanned->to;
      if (!in_scanned && (v == nullptr || v->version != cur) &&
          !versions_->Resident(cur)) {
        absl::StatusOr<VersionStore::KeyStates> states =
            versions_->ScanKeyStates(key, cur);
        if (absl::IsOutOfRange(states.status())) {
          // Released meanwhile: what is known ends at the later state.
          h.complete_from = std::max(lo, deleted_at != 0 ? cur + 2 : cur + 1);
          break;
        }
        RETURN_IF_ERROR(states.status());
        scanned = *std::move(states);
      }
      if (scanned && scanned->base <= cur && cur <= scanned->to) {
        const VersionStore::KeyState& s = scanned->At(cur);
        found = s.present;
        since = s.since;
        if (found) {
          value = s.value;
          meta = s.meta;
        } else if (since == 0) {
          since = scanned->base;  // absent in the base's tree since when unknown
        }
      } else {
        if (v == nullptr || v->version != cur) {
          absl::StatusOr<std::shared_ptr<const Version>> pinned = versions_->Pin(cur);
          if (absl::IsOutOfRange(pinned.status())) {
            // Released meanwhile: what is known ends at the later state.
            h.complete_from = std::max(lo, deleted_at != 0 ? cur + 2 : cur + 1);
            break;
          }
          RETURN_IF_ERROR(pinned.status());
          v = *std::move(pinned);
        }
        ASSIGN_OR_RETURN(found, TreeRead(source_, v->root, key, &value, &meta, &since));
        // An empty tree recorded before its emptying version was kept: step.
        if (!found && since == 0) since = cur;
      }
    }
    if (found) {
      if (deleted_at >= lo && !emit(deleted_at, std::nullopt, EntryMeta{})) break;
      deleted_at = 0;
      if (meta.mod_version < lo || !emit(meta.mod_version, std::move(value), meta)) break;
      cur = meta.mod_version - 1;
    } else {
      if (since < lo) break;  // absent since before the range
      deleted_at = since;
      cur = since - 1;
    }
  }
  return h;
}

absl::Status DBImpl::DiffRoots(const Root& a, const Root& b,
                               std::string_view begin, std::string_view end,
                               const std::function<bool(const Change&)>& fn) {
  absl::Status inner;
  auto value_of = [&](const LeafEntry* e) -> std::optional<std::string> {
    if (e == nullptr) return std::nullopt;
    absl::StatusOr<std::string> value = source_.ReadValue(e->value);
    if (!value.ok()) {
      inner = value.status();
      return std::nullopt;
    }
    return *std::move(value);
  };
  RETURN_IF_ERROR(TreeDiff(source_, a, b, begin, end,
                           [&](const LeafEntry* before, const LeafEntry* after) {
                             Change c;
                             c.key = (before ? before : after)->key;
                             c.old_value = value_of(before);
                             c.new_value = value_of(after);
                             if (!inner.ok()) return false;
                             if (before) c.old_meta = MetaOf(*before);
                             if (after) c.new_meta = MetaOf(*after);
                             return fn(c);
                           }));
  return inner;
}

// ------------------------------------------------------------------ watch

namespace {

class WatcherImpl final : public Watcher {
 public:
  // Watches `branch`'s tree ("" = main); `at` is its view.
  WatcherImpl(DBImpl* db, std::string branch, std::shared_ptr<const Version> at,
              std::string begin, std::string end)
      : db_(db), branch_(std::move(branch)), at_(std::move(at)),
        begin_(std::move(begin)), end_(std::move(end)) {}

  // Queues the whole state of the range at `at_` as net events.
  absl::Status QueueState() {
    return db_->DiffRoots(Root(), at_->root, begin_, end_, [&](const Change& c) {
      pending_.push_back(WatchEvent{at_->version, c, /*net=*/true});
      return true;
    });
  }

  absl::StatusOr<WatchEvent> Next(absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (!pending_.empty()) {
        WatchEvent e = std::move(pending_.front());
        pending_.pop_front();
        return e;
      }
      if (db_->LatestVersion() == at_->version) {
        if (!db_->versions().WaitForVersionAfter(at_->version, deadline - absl::Now())) {
          return absl::DeadlineExceededError(absl::StrCat(
              "no change after version ", at_->version, " in time"));
        }
      }
      // Step to the next version (or, if the ones after us were released,
      // the first retained one: a net step).
      ASSIGN_OR_RETURN(std::shared_ptr<const Version> pinned,
                       db_->versions().PinAtOrAfter(at_->version + 1));
      absl::StatusOr<std::shared_ptr<const Version>> view =
          BranchView(std::move(pinned), branch_);
      if (!view.ok()) {
        return absl::NotFoundError(absl::StrCat(
            "branch \"", branch_, "\" was deleted after version ", at_->version));
      }
      std::shared_ptr<const Version> next = *std::move(view);
      const bool net = next->version != at_->version + 1;
      RETURN_IF_ERROR(db_->DiffRoots(
          at_->root, next->root, begin_, end_, [&](const Change& c) {
            pending_.push_back(WatchEvent{next->version, c, net});
            return true;
          }));
      at_ = std::move(next);
    }
  }

  uint64_t position() const override { return at_->version; }

 private:
  DBImpl* const db_;
  const std::string branch_;
  std::shared_ptr<const Version> at_;  // pinned: everything up to it queued
  const std::string begin_, end_;
  std::deque<WatchEvent> pending_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> DBImpl::Watch(uint64_t from_version,
                                                       std::string_view begin,
                                                       std::string_view end) {
  return WatchBranch("", from_version, begin, end);
}

absl::StatusOr<std::unique_ptr<Watcher>> DBImpl::WatchBranch(std::string_view branch_name,
                                                             uint64_t from_version,
                                                             std::string_view begin,
                                                             std::string_view end) {
  const std::string branch(InternalBranchName(branch_name));
  absl::StatusOr<std::shared_ptr<const Version>> from = versions_->Pin(from_version, branch);
  if (from.ok()) {
    return std::unique_ptr<Watcher>(new WatcherImpl(
        this, branch, *std::move(from), std::string(begin), std::string(end)));
  }
  if (!absl::IsOutOfRange(from.status())) return from.status();
  // Released: start from the first retained version after it, with its
  // whole state.
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> pinned,
                   versions_->PinAtOrAfter(from_version + 1));
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> base, BranchView(std::move(pinned), branch));
  auto w = std::make_unique<WatcherImpl>(this, branch, std::move(base),
                                         std::string(begin), std::string(end));
  RETURN_IF_ERROR(w->QueueState());
  return std::unique_ptr<Watcher>(std::move(w));
}

absl::Status DBImpl::Checkpoint() {
  RETURN_IF_ERROR(versions_->Checkpoint());
  reclaimer_->Wake();
  return absl::OkStatus();
}

absl::StatusOr<ReclaimStats> DBImpl::Reclaim() {
  RETURN_IF_ERROR(CheckNotReadOnly("reclaims"));
  return reclaimer_->Reclaim();
}

absl::Status DBImpl::ReleaseBefore(uint64_t version) {
  RETURN_IF_ERROR(CheckNotReadOnly("releases versions"));
  return reclaimer_->ReleaseBefore(version);
}

uint64_t DBImpl::ReleaseFloor() { return versions_->floor(); }

DB::Retention DBImpl::GetRetention() {
  const auto [versions, seconds] = reclaimer_->retention();
  return Retention{versions, seconds};
}

absl::Status DBImpl::SetRetention(const Retention& retention) {
  reclaimer_->SetRetention(retention.retain_versions, retention.retain_seconds);
  return absl::OkStatus();
}

absl::Status DBImpl::Backup(const std::string& dir) {
  return store_->Checkpoint(dir);
}

absl::Status DBImpl::Export(uint64_t version, const std::string& path) {
  ReadOptions ro;
  ro.version = version;
  ASSIGN_OR_RETURN(std::unique_ptr<Iterator> it, NewIterator(ro));
  ASSIGN_OR_RETURN(std::unique_ptr<ExportWriter> w,
                   ExportWriter::Create(path, version));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view value = it->value();
    RETURN_IF_ERROR(it->status());
    RETURN_IF_ERROR(w->Add(it->key(), value, it->mod_version()));
  }
  RETURN_IF_ERROR(it->status());
  return w->Finish();
}

absl::Status DBImpl::ExportChanges(uint64_t from, uint64_t to, const std::string& path) {
  if (from > to) {
    return absl::InvalidArgumentError(
        absl::StrCat("an incremental export runs forward: from ", from, " > to ", to));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ExportWriter> w, ExportWriter::Create(path, to, from));
  absl::Status written = absl::OkStatus();
  RETURN_IF_ERROR(Diff(from, to, "", "", [&](const Change& c) {
    written = c.new_value ? w->Add(c.key, *c.new_value, c.new_meta.mod_version)
                          : w->AddDelete(c.key);
    return written.ok();
  }));
  RETURN_IF_ERROR(written);
  return w->Finish();
}

absl::StatusOr<uint64_t> DBImpl::Import(const std::string& path) {
  // First pass: verify the whole file (ReadExport checks the checksum
  // before any record) and the limits; second pass: write.
  RETURN_IF_ERROR(ReadExport(path, [&](const ExportRecord& r) {
                    return r.deleted ? queue_->ValidateWrite(r.key, "")
                                     : queue_->ValidateWrite(r.key, r.value);
                  }).status());
  uint64_t count = 0;
  WriteBatch batch;
  auto flush = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    absl::Status s = Write(batch).status();
    batch.Clear();
    return s;
  };
  RETURN_IF_ERROR(ReadExport(path, [&](const ExportRecord& r) -> absl::Status {
                    if (r.deleted) {
                      batch.Delete(r.key);
                    } else {
                      batch.Put(r.key, r.value);
                    }
                    ++count;
                    if (batch.Count() >= 10000) return flush();
                    return absl::OkStatus();
                  }).status());
  RETURN_IF_ERROR(flush());
  return count;
}

// ------------------------------------------------------------------ branches

namespace {

std::string PublicName(std::string_view branch) {
  return branch.empty() ? "main" : std::string(branch);
}

// The tags that keep what merges need: a branch's fork point, and the
// version of `from` last merged into `into`.
std::string ForkTag(std::string_view branch) {
  return absl::StrCat("fork:", PublicName(branch));
}
std::string MergeTag(std::string_view from, std::string_view into) {
  return absl::StrCat("merge:", PublicName(from), ":", PublicName(into));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::PinTree(const TreeAt& at) {
  if (at.version) return versions_->Pin(*at.version, at.branch);
  return versions_->Latest(at.branch);
}

absl::StatusOr<uint64_t> DBImpl::Fork(std::string_view name, const TreeAt& from) {
  // The fork's version is tagged with it, in the same write: merges find
  // the common ancestor there (and the tag keeps it retained).
  return versions_->Fork(name, from.branch, from.version,
                         {TagWrite{ForkTag(name), TagWrite::kThisCommit}});
}

absl::StatusOr<uint64_t> DBImpl::DeleteBranch(std::string_view name) {
  // Its bookkeeping tags go with it, in the same write.
  std::vector<TagWrite> untag;
  const std::string pub = PublicName(name);
  for (const auto& [tag, v] : versions_->ListTags()) {
    if (tag == ForkTag(name) || absl::StartsWith(tag, absl::StrCat("merge:", pub, ":")) ||
        (absl::StartsWith(tag, "merge:") && absl::EndsWith(tag, absl::StrCat(":", pub)))) {
      untag.push_back(TagWrite{tag, std::nullopt});
    }
  }
  return versions_->DropBranch(name, untag);
}

std::vector<BranchInfo> DBImpl::ListBranches() {
  std::shared_ptr<const Version> latest = versions_->latest();
  std::vector<BranchInfo> out;
  out.push_back({"main", 0, "", 0, latest->root.count});
  if (latest->branches) {
    for (const auto& [name, head] : *latest->branches) {
      out.push_back({name, head.created, PublicName(head.source), head.source_version,
                     head.root.count});
    }
  }
  return out;
}

absl::StatusOr<Snapshot> DBImpl::SnapshotOf(const ReadOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Resolve(options));
  return Snapshot(std::move(v));
}

absl::Status DBImpl::DiffTrees(const TreeAt& from, const TreeAt& to,
                               std::string_view begin, std::string_view end,
                               const std::function<bool(const Change&)>& fn) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> a, PinTree(from));
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> b, PinTree(to));
  return DiffRoots(a->root, b->root, begin, end, fn);
}

absl::StatusOr<TreeAt> DBImpl::MergeBase(const Version& latest, std::string_view from,
                                         std::string_view into) {
  // Every candidate is a state both branches contain; the latest is the
  // nearest common ancestor (histories here are forks and merges between
  // two branches, and forks of one source; a criss-cross of three is not
  // resolved further).
  std::optional<TreeAt> best;
  auto consider = [&](std::string_view branch, uint64_t version) {
    if (!best || version > *best->version) best = TreeAt{PublicName(branch), version};
  };
  std::map<std::string, uint64_t> tags = versions_->ListTags();
  if (auto it = tags.find(MergeTag(from, into)); it != tags.end()) consider(from, it->second);
  if (auto it = tags.find(MergeTag(into, from)); it != tags.end()) consider(into, it->second);
  auto head = [&](std::string_view b) -> const BranchHead* {
    if (b.empty() || !latest.branches) return nullptr;
    auto it = latest.branches->find(b);
    return it == latest.branches->end() ? nullptr : &it->second;
  };
  // When a branch was created (main: always there). A branch of the same
  // name deleted and created again since is another branch.
  auto created = [&](std::string_view b) -> std::optional<uint64_t> {
    if (b.empty()) return 0;
    const BranchHead* h = head(b);
    if (h == nullptr) return std::nullopt;
    return h->created;
  };
  auto existed_at = [&](std::string_view b, uint64_t version) {
    std::optional<uint64_t> c = created(b);
    return c && *c <= version;
  };
  const BranchHead* f = head(from);
  const BranchHead* i = head(into);
  // A fork's first version holds the source's tree as it was forked.
  if (f != nullptr && f->source == into && existed_at(into, f->source_version)) {
    consider(from, f->created);
  }
  if (i != nullptr && i->source == from && existed_at(from, i->source_version)) {
    consider(into, i->created);
  }
  // Siblings forked from one branch: the earlier fork's first tree is the
  // source as it was then, which the later fork's contains too.
  if (f != nullptr && i != nullptr && f->source == i->source &&
      existed_at(f->source, std::min(f->source_version, i->source_version))) {
    if (f->source_version <= i->source_version) {
      consider(from, f->created);
    } else {
      consider(into, i->created);
    }
  }
  if (!best) {
    return absl::FailedPreconditionError(absl::StrCat(
        "branches \"", PublicName(from), "\" and \"", PublicName(into),
        "\" have no known common ancestor: neither was forked from the other "
        "or merged into it, and they were not forked from one branch"));
  }
  return *best;
}

absl::StatusOr<MergeResult> DBImpl::Merge(std::string_view from_name,
                                          std::string_view into_name,
                                          MergePolicy policy) {
  const std::string_view from = InternalBranchName(from_name);
  const std::string_view into = InternalBranchName(into_name);
  if (from == into) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot merge branch \"", PublicName(from), "\" into itself"));
  }
  std::shared_ptr<const Version> latest = versions_->latest();
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> theirs, BranchView(latest, from));
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> ours, BranchView(latest, into));
  ASSIGN_OR_RETURN(TreeAt base_at, MergeBase(*latest, from, into));
  absl::StatusOr<std::shared_ptr<const Version>> base = PinTree(base_at);
  if (!base.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the common ancestor of \"", PublicName(from), "\" and \"", PublicName(into),
        "\", version ", *base_at.version, " of \"", base_at.branch,
        "\", cannot be read: ", base.status().message()));
  }
  MergeResult result;
  result.base_version = *base_at.version;
  result.base_branch = base_at.branch;
  // Each side's changes of values since the ancestor (a rewrite of the
  // same value, such as an earlier merge's, is none): O(changes), shared
  // pages skipped.
  std::map<std::string, Change> their_changes;
  std::map<std::string, std::optional<std::string>, std::less<>> our_changes;
  RETURN_IF_ERROR(DiffRoots((*base)->root, theirs->root, "", "", [&](const Change& c) {
    if (c.old_value != c.new_value) their_changes.emplace(c.key, c);
    return true;
  }));
  RETURN_IF_ERROR(DiffRoots((*base)->root, ours->root, "", "", [&](const Change& c) {
    if (c.old_value != c.new_value) our_changes.emplace(c.key, c.new_value);
    return true;
  }));
  // One commit to `into` on the tree the changes were computed against:
  // validated as a snapshot-isolation transaction (Aborted if a key it
  // writes changed meanwhile), with the tag that makes the next merge
  // start from here in the same write.
  CommitRequest req;
  req.snapshot = ours;
  req.isolation = Isolation::kSnapshot;
  req.branch = std::string(into);
  for (const auto& [key, change] : their_changes) {
    auto mine = our_changes.find(key);
    bool take = true;
    if (mine != our_changes.end()) {
      if (mine->second == change.new_value) continue;  // the same change
      result.conflicts.push_back({key, change.old_value, mine->second, change.new_value});
      take = policy == MergePolicy::kTheirs;
    }
    if (!take) continue;
    req.written_keys.push_back(key);
    req.mutations.push_back(Mutation{!change.new_value.has_value(), key,
                                     change.new_value ? std::string_view(*change.new_value)
                                                      : std::string_view(),
                                     0});
    ++result.changes;
  }
  if (policy == MergePolicy::kFail && !result.conflicts.empty()) {
    result.changes = 0;
    return result;
  }
  result.merged = true;
  const TagWrite merged{MergeTag(from, into), theirs->version};  // pinned by `theirs`
  if (req.mutations.empty()) {
    // Nothing to write; the next merge can still start from here.
    RETURN_IF_ERROR(versions_->Tag(merged.name, *merged.version));
    result.version = ours->version;
    return result;
  }
  req.tags.push_back(merged);
  ASSIGN_OR_RETURN(result.version, queue_->SubmitCommit(req));
  return result;
}

// ------------------------------------------------------------------ check

absl::StatusOr<CheckReport> DBImpl::Check(const CheckProgress& progress) {
  CheckReport report;
  // Freed pages and blobs: id -> death checkpoint.
  std::map<uint64_t, uint64_t> freed_pages, freed_blobs;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(Space::kFreed, "", [&](std::string_view k,
                                                      std::string_view val) {
    uint64_t death;
    if (!ParseBigEndianKey(k, &death)) {
      status = absl::DataLossError("corrupt freed key");
      return false;
    }
    absl::StatusOr<std::vector<FreedItem>> items = DecodeFreed(val, death);
    if (!items.ok()) {
      status = items.status();
      return false;
    }
    for (const FreedItem& item : *items) {
      (item.kind == FreedItem::kPage ? freed_pages : freed_blobs)[item.id] = death;
    }
    return true;
  }));
  RETURN_IF_ERROR(status);

  // One walker over every tree: the tree invariants, plus, through its
  // hooks, that nothing reachable from a tree based on checkpoint `base`
  // was freed at or before `base`, and that every stored blob loads.
  uint64_t base = 0;
  std::set<uint64_t> blobs;
  auto violation = [](uint64_t id, const std::string& what) {
    return absl::InternalError(absl::StrCat("check: page ", id, ": ", what));
  };
  TreeVerifier::Hooks hooks;
  hooks.on_reach = [&](uint64_t id) -> absl::Status {
    auto death = freed_pages.find(id);
    if (death != freed_pages.end() && death->second <= base) {
      return violation(id, absl::StrCat("reachable from checkpoint ", base,
                                        " but freed at checkpoint ",
                                        death->second));
    }
    return absl::OkStatus();
  };
  hooks.on_node = [&](uint64_t id, const Node& n) -> absl::Status {
    for (const LeafEntry& e : n.entries) {
      if (!e.value.is_blob() || e.value.blob_id == 0) continue;  // stored blobs (a cached node may hold its bytes too)
      if (!blobs.insert(e.value.blob_id).second) continue;
      auto death = freed_blobs.find(e.value.blob_id);
      if (death != freed_blobs.end() && death->second <= base) {
        return violation(id, absl::StrCat("blob ", e.value.blob_id,
                                          " freed at checkpoint ", death->second));
      }
      ASSIGN_OR_RETURN(std::string blob, source_.LoadBlob(e.value.blob_id));
      if (blob.size() != e.value.blob_size) {
        return violation(id, "blob size mismatch");
      }
      if (versions_->hashed() &&
          HashView(BlobDigest(blob)) != e.value.digest) {
        return violation(id, absl::StrCat("blob ", e.value.blob_id,
                                          " differs from its digest"));
      }
    }
    return absl::OkStatus();
  };
  TreeVerifier verifier(source_, page_size(), /*strict=*/false, hooks,
                        versions_->hashed());

  // The stored trees of the checkpoints retained versions are based on,
  // then every retained version as readers see it (held, stored or
  // rebuilt from its checkpoint and the log).
  ASSIGN_OR_RETURN(std::vector<VersionInfo> versions, ListVersions());
  std::map<uint64_t, VersionStore::Trees> checkpoints = versions_->CheckpointTrees();
  // Every branch's tree at a version (they share pages: each is walked
  // once).
  auto verify_all = [&](const Root& main,
                        const std::shared_ptr<const BranchTable>& branches) -> absl::Status {
    RETURN_IF_ERROR(verifier.Verify(main));
    if (branches) {
      for (const auto& [name, head] : *branches) RETURN_IF_ERROR(verifier.Verify(head.root));
    }
    return absl::OkStatus();
  };
  auto base_of = [&](uint64_t v) -> uint64_t {
    auto it = checkpoints.upper_bound(v);
    return it == checkpoints.begin() ? 0 : std::prev(it)->first;
  };
  std::set<uint64_t> bases;
  for (const VersionInfo& info : versions) bases.insert(base_of(info.version));
  for (uint64_t b : bases) {
    base = b;
    RETURN_IF_ERROR(verify_all(checkpoints[b].root, checkpoints[b].branches));
  }
  uint64_t done = 0;
  for (const VersionInfo& info : versions) {
    if (progress && !progress(done++, versions.size())) {
      return absl::CancelledError(absl::StrCat("check stopped after ", done - 1, " of ",
                                               versions.size(), " versions"));
    }
    absl::StatusOr<std::shared_ptr<const Version>> loaded =
        versions_->Pin(info.version);
    // A reclamation pass may release a listed version before we pin it:
    // it is no longer retained, so there is nothing to check.
    if (absl::IsOutOfRange(loaded.status())) continue;
    RETURN_IF_ERROR(loaded.status());
    std::shared_ptr<const Version> v = *std::move(loaded);
    ++report.versions_checked;
    base = base_of(v->version);
    RETURN_IF_ERROR(verify_all(v->root, v->branches));
    if (v->root.count != info.entries) {
      return absl::InternalError(absl::StrCat(
          "check: version ", v->version, " has ", v->root.count,
          " entries; its record says ", info.entries));
    }
  }
  report.pages_reachable = verifier.stored_pages();
  report.blobs_reachable = blobs.size();
  auto count_stored = [&](Space space, bool pages,
                          const std::map<uint64_t, uint64_t>& freed,
                          uint64_t* stored, uint64_t* pending, uint64_t* leaked) {
    return store_->Scan(space, "", [&](std::string_view k, std::string_view) {
      uint64_t id;
      if (!ParseBigEndianKey(k, &id)) return true;
      ++*stored;
      bool reachable = pages ? verifier.Verified(id) : blobs.count(id) != 0;
      if (reachable) return true;
      if (freed.count(id) != 0) {
        ++*pending;
      } else {
        ++*leaked;
      }
      return true;
    });
  };
  RETURN_IF_ERROR(count_stored(Space::kPages, true, freed_pages,
                               &report.pages_stored, &report.pages_pending,
                               &report.pages_leaked));
  RETURN_IF_ERROR(count_stored(Space::kBlobs, false, freed_blobs,
                               &report.blobs_stored, &report.blobs_pending,
                               &report.blobs_leaked));
  if (progress) progress(versions.size(), versions.size());
  return report;
}

}  // namespace internal
}  // namespace cowdb
