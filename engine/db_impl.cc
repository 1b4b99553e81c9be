#include "engine/db_impl.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/store/rocksdb_page_store.h"
#include "engine/tree/diff.h"
#include "engine/txn/transaction_impl.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"
#include "engine/version/records.h"

namespace cowdb {

uint64_t Snapshot::version() const {
  return version_ ? version_->version : 0;
}

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const Options& options,
                                             const std::string& path) {
  internal::RocksDBStoreOptions store_options;
  store_options.create_if_missing = options.create_if_missing;
  ASSIGN_OR_RETURN(std::unique_ptr<internal::PageStore> store,
                   internal::OpenRocksDBPageStore(path, store_options));
  ASSIGN_OR_RETURN(std::unique_ptr<internal::DBImpl> db,
                   internal::DBImpl::Open(options, std::move(store)));
  return std::unique_ptr<DB>(std::move(db));
}

namespace internal {
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

// A DB iterator: a tree cursor over a pinned version, plus blob loading.
class DBIter final : public Iterator {
 public:
  DBIter(NodeSource* src, std::shared_ptr<const Version> v)
      : src_(src), version_(std::move(v)), cursor_(src, version_->root) {}

  bool Valid() const override { return cursor_.Valid(); }
  void SeekToFirst() override { Track(cursor_.SeekToFirst()); }
  void SeekToLast() override { Track(cursor_.SeekToLast()); }
  void Seek(std::string_view target) override { Track(cursor_.Seek(target)); }
  void Next() override { Track(cursor_.Next()); }
  void Prev() override { Track(cursor_.Prev()); }

  std::string_view key() const override { return cursor_.entry().key; }
  std::string_view value() const override {
    const StoredValue& v = cursor_.entry().value;
    if (!v.is_blob()) return v.data;
    if (blob_id_ != v.blob_id) {
      absl::StatusOr<std::string> blob = src_->LoadBlob(v.blob_id);
      if (!blob.ok()) {
        status_ = blob.status();
        return {};
      }
      blob_ = *std::move(blob);
      blob_id_ = v.blob_id;
    }
    return blob_;
  }
  uint64_t mod_version() const override { return cursor_.entry().mod_version; }
  uint64_t version() const override { return version_->version; }
  absl::Status status() const override { return status_; }

 private:
  void Track(absl::Status s) {
    if (!s.ok()) status_ = std::move(s);
  }

  NodeSource* const src_;
  const std::shared_ptr<const Version> version_;
  TreeCursor cursor_;
  mutable absl::Status status_;
  mutable uint64_t blob_id_ = 0;
  mutable std::string blob_;
};

}  // namespace

DBImpl::DBImpl(const Options& options, std::shared_ptr<PageStore> store,
               size_t page_size, uint64_t next_id,
               std::shared_ptr<const Version> latest)
    : options_(options),
      store_(std::move(store)),
      page_size_(page_size),
      cache_(options.cache_bytes),
      source_(store_.get(), &cache_),
      versions_(std::move(latest)),
      next_id_(next_id) {}

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::Open(
    const Options& options, std::shared_ptr<PageStore> store) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(std::optional<std::string> meta_bytes,
                   store->Get(Space::kMeta, kMetaKey));
  MetaRecord meta;
  VersionRecord latest;
  if (!meta_bytes) {
    // A new database: version 0, the empty tree.
    meta.page_size = options.page_size;
    latest.commit_micros = absl::ToUnixMicros(absl::Now());
    StoreBatch batch;
    batch.Put(Space::kVersions, BigEndianKey(0), EncodeVersionRecord(latest));
    batch.Put(Space::kMeta, kMetaKey, EncodeMeta(meta));
    RETURN_IF_ERROR(store->Commit(batch, /*sync=*/true));
  } else {
    ASSIGN_OR_RETURN(meta, DecodeMeta(*meta_bytes));
    if (meta.format > kDatabaseFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database has format version ", meta.format,
          "; this build reads up to version ", kDatabaseFormatVersion,
          ". Upgrade cowdb to open it."));
    }
    if (meta.page_size < 512 || meta.page_size > 65536) {
      return absl::DataLossError(
          absl::StrCat("corrupt meta record: page size ", meta.page_size));
    }
    ASSIGN_OR_RETURN(std::optional<std::string> record,
                     store->Get(Space::kVersions,
                                BigEndianKey(meta.latest_version)));
    if (!record) {
      return absl::DataLossError(absl::StrCat(
          "the record of the latest version ", meta.latest_version,
          " is missing"));
    }
    ASSIGN_OR_RETURN(latest,
                     DecodeVersionRecord(*record, meta.latest_version));
  }
  auto v = std::make_shared<Version>();
  v->version = meta.latest_version;
  v->root = latest.root;
  v->commit_micros = latest.commit_micros;
  return std::unique_ptr<DBImpl>(new DBImpl(options, std::move(store),
                                            meta.page_size, meta.next_id,
                                            std::move(v)));
}

absl::Status DBImpl::ValidateWrite(std::string_view key,
                                   std::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  if (key.size() > options_.max_key_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("key of ", key.size(), " bytes exceeds max_key_size ",
                     options_.max_key_size));
  }
  if (value.size() > options_.max_value_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("value of ", value.size(),
                     " bytes exceeds max_value_size ",
                     options_.max_value_size));
  }
  return absl::OkStatus();
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

absl::StatusOr<uint64_t> DBImpl::Write(const WriteBatch& batch) {
  for (const auto& op : batch.ops()) {
    RETURN_IF_ERROR(ValidateWrite(op.key, op.value));
  }
  if (batch.Count() == 0) return versions_.latest()->version;
  CommitRequest req;  // a blind write: nothing to validate
  req.written_keys.reserve(batch.Count());
  for (const auto& op : batch.ops()) req.written_keys.push_back(op.key);
  req.apply = [&batch](TreeBuilder& builder) -> absl::Status {
    for (const auto& op : batch.ops()) {
      RETURN_IF_ERROR(op.is_delete ? builder.Delete(op.key)
                                   : builder.Put(op.key, op.value));
    }
    return absl::OkStatus();
  };
  return SubmitCommit(req);
}

absl::StatusOr<uint64_t> DBImpl::SubmitCommit(CommitRequest& req) {
  // LevelDB's writer queue: the request at the front leads a group made of
  // everything queued behind it; the others wait to be told their outcome.
  // A leader that finds more requests queued when it is done leads those
  // too (a few rounds at most), which saves a thread handoff per group.
  constexpr size_t kMaxGroup = 4096;
  constexpr int kMaxRounds = 4;
  std::unique_lock<std::mutex> lock(queue_mu_);
  queue_.push_back(&req);
  req.cv.wait(lock, [&] {
    return req.done || (!leader_active_ && queue_.front() == &req);
  });
  if (req.done) {
    if (!req.status.ok()) return req.status;
    return req.version;
  }
  leader_active_ = true;
  for (int round = 0; !req.done || (round < kMaxRounds && !queue_.empty());
       ++round) {
    std::vector<CommitRequest*> group(
        queue_.begin(), queue_.begin() + std::min(queue_.size(), kMaxGroup));
    lock.unlock();
    RunGroup(group);
    lock.lock();
    for (size_t i = 0; i < group.size(); ++i) {
      CommitRequest* member = queue_.front();
      queue_.pop_front();
      member->done = true;
      if (member != &req) member->cv.notify_one();
    }
  }
  leader_active_ = false;
  if (!queue_.empty()) queue_.front()->cv.notify_one();
  lock.unlock();
  if (!req.status.ok()) return req.status;
  return req.version;
}

namespace {

std::string Printable(std::string_view key) {
  constexpr size_t kMax = 64;
  std::string s = absl::CEscape(absl::string_view(
      key.data(), std::min(key.size(), kMax)));
  if (key.size() > kMax) s += "...";
  return s;
}

absl::Status Conflict(std::string_view what, std::string_view key,
                      uint64_t since) {
  return absl::AbortedError(absl::StrCat(
      "transaction conflict: ", std::string(what), " \"", Printable(key),
      "\" changed after version ", since, "; retry the transaction"));
}

bool SameEntry(const std::optional<Found>& a, const std::optional<Found>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || a->entry->mod_version == b->entry->mod_version;
}

}  // namespace

absl::Status DBImpl::Validate(const CommitRequest& req, const Version& base,
                              const KeySet& group_writes) {
  if (req.snapshot == nullptr) return absl::OkStatus();
  const Version& snap = *req.snapshot;
  const bool moved = snap.version != base.version;
  if (req.isolation == Isolation::kSnapshot) {
    for (std::string_view k : req.written_keys) {
      if (group_writes.count(k) != 0) return Conflict("written key", k, snap.version);
      if (!moved) continue;
      ASSIGN_OR_RETURN(std::optional<Found> before, TreeGet(source_, snap.root, k));
      ASSIGN_OR_RETURN(std::optional<Found> now, TreeGet(source_, base.root, k));
      if (!SameEntry(before, now)) return Conflict("written key", k, snap.version);
    }
    return absl::OkStatus();
  }
  if (req.reads != nullptr) {
    for (const ReadRecord& r : *req.reads) {
      if (group_writes.count(r.key) != 0) return Conflict("read key", r.key, snap.version);
      if (!moved) continue;
      ASSIGN_OR_RETURN(std::optional<Found> now, TreeGet(source_, base.root, r.key));
      if (now.has_value() != r.exists ||
          (now && now->entry->mod_version != r.mod_version)) {
        return Conflict("read key", r.key, snap.version);
      }
    }
  }
  if (req.ranges != nullptr) {
    for (const KeyRange& r : *req.ranges) {
      auto it = group_writes.lower_bound(r.lo);
      if (it != group_writes.end() && r.Contains(*it)) {
        return Conflict("a key in the range from", r.lo, snap.version);
      }
      if (!moved) continue;
      ASSIGN_OR_RETURN(bool changed,
                       TreeRangeChanged(source_, snap.root, base.root, r.lo,
                                        r.hi ? std::string_view(*r.hi)
                                             : std::string_view()));
      if (changed) return Conflict("a key in the range from", r.lo, snap.version);
    }
  }
  return absl::OkStatus();
}

void DBImpl::RunGroup(const std::vector<CommitRequest*>& group) {
  auto fail_all = [&](const absl::Status& s) {
    for (CommitRequest* r : group) r->status = s;
  };
  if (!write_error_.ok()) {
    fail_all(absl::FailedPreconditionError(absl::StrCat(
        "writes are refused after a commit of unknown outcome (",
        write_error_.message(), "); reopen the database")));
    return;
  }
  std::shared_ptr<const Version> base = versions_.latest();
  const uint64_t version = base->version + 1;
  uint64_t next_id = next_id_;
  TreeBuilder builder(&source_, base->root, version, page_size_,
                      options_.inline_value_limit, &next_id);
  KeySet group_writes;
  std::vector<CommitRequest*> accepted;
  for (CommitRequest* r : group) {
    r->status = Validate(*r, *base, group_writes);
    if (!r->status.ok()) continue;
    absl::Status applied = r->apply(builder);
    if (!applied.ok()) {
      // The shared builder is now part-applied: commit nothing.
      fail_all(applied);
      return;
    }
    for (std::string_view k : r->written_keys) group_writes.emplace(k);
    accepted.push_back(r);
  }
  if (accepted.empty()) return;

  // Everything of the commit goes into one atomic store batch.
  StoreBatch store_batch;
  std::vector<std::pair<uint64_t, NodeRef>> written;
  absl::StatusOr<Root> root = builder.Finish(&store_batch, &written);
  if (!root.ok()) {
    fail_all(root.status());
    return;
  }
  uint64_t blobs = 0;
  for (const auto& op : store_batch.ops()) blobs += op.space == Space::kBlobs;
  if (!builder.freed().empty()) {
    store_batch.Put(Space::kFreed, BigEndianKey(version),
                    EncodeFreed(builder.freed()));
  }
  auto v = std::make_shared<Version>();
  v->version = version;
  v->root = *root;
  v->commit_micros = absl::ToUnixMicros(absl::Now());
  store_batch.Put(Space::kVersions, BigEndianKey(version),
                  EncodeVersionRecord({*root, v->commit_micros}));
  MetaRecord meta;
  meta.latest_version = version;
  meta.next_id = next_id;
  meta.page_size = page_size_;
  store_batch.Put(Space::kMeta, kMetaKey, EncodeMeta(meta));

  absl::Status s = store_->Commit(store_batch, options_.sync);
  if (!s.ok()) {
    write_error_ = s;
    absl::Status unknown = absl::UnknownError(absl::StrCat(
        "commit of version ", version,
        " has an unknown outcome: the storage write failed (", s.message(),
        "). It may or may not be durable; the database refuses writes "
        "until reopened"));
    for (CommitRequest* r : accepted) r->status = unknown;
    return;
  }
  next_id_ = next_id;
  for (auto& [id, node] : written) source_.Remember(id, std::move(node));
  versions_.Publish(std::move(v));
  for (CommitRequest* r : accepted) r->version = version;
  commits_.fetch_add(1, std::memory_order_relaxed);
  pages_written_.fetch_add(written.size(), std::memory_order_relaxed);
  blobs_written_.fetch_add(blobs, std::memory_order_relaxed);
}

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::LoadVersion(
    uint64_t version) {
  std::shared_ptr<const Version> latest = versions_.latest();
  if (version == latest->version) return latest;
  if (version > latest->version) {
    return absl::NotFoundError(
        absl::StrCat("version ", version, " does not exist; the latest is ",
                     latest->version));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store_->Get(Space::kVersions, BigEndianKey(version)));
  if (!record) {
    return absl::OutOfRangeError(
        absl::StrCat("version ", version,
                     " is no longer retained; the latest is ",
                     latest->version));
  }
  ASSIGN_OR_RETURN(VersionRecord r, DecodeVersionRecord(*record, version));
  auto v = std::make_shared<Version>();
  v->version = version;
  v->root = r.root;
  v->commit_micros = r.commit_micros;
  return std::shared_ptr<const Version>(std::move(v));
}

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::Resolve(
    const ReadOptions& options) {
  if (options.snapshot != nullptr && options.snapshot->valid()) {
    if (options.version) {
      return absl::InvalidArgumentError(
          "ReadOptions: set snapshot or version, not both");
    }
    return options.snapshot->version_;
  }
  if (options.version) return LoadVersion(*options.version);
  return versions_.latest();
}

absl::StatusOr<Entry> DBImpl::GetEntry(const ReadOptions& options,
                                       std::string_view key) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Resolve(options));
  ASSIGN_OR_RETURN(std::optional<Found> found, TreeGet(source_, v->root, key));
  if (!found) return absl::NotFoundError("key not found");
  Entry e;
  e.version = v->version;
  e.mod_version = found->entry->mod_version;
  const StoredValue& value = found->entry->value;
  if (value.is_blob()) {
    ASSIGN_OR_RETURN(e.value, source_.LoadBlob(value.blob_id));
  } else {
    e.value = value.data;
  }
  return e;
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
    ASSIGN_OR_RETURN(snapshot, LoadVersion(*options.read_version));
  } else {
    snapshot = versions_.latest();
  }
  return std::unique_ptr<Transaction>(
      new TransactionImpl(this, std::move(snapshot), options));
}

absl::StatusOr<std::string> DBImpl::Get(const ReadOptions& options,
                                        std::string_view key) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Resolve(options));
  ASSIGN_OR_RETURN(std::optional<Found> found, TreeGet(source_, v->root, key));
  if (!found) return absl::NotFoundError("key not found");
  const StoredValue& value = found->entry->value;
  if (value.is_blob()) return source_.LoadBlob(value.blob_id);
  return value.data;
}

Snapshot DBImpl::GetSnapshot() { return Snapshot(versions_.latest()); }

absl::StatusOr<Snapshot> DBImpl::SnapshotAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, LoadVersion(version));
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

uint64_t DBImpl::LatestVersion() { return versions_.latest()->version; }

DBStats DBImpl::GetStats() {
  DBStats s;
  std::shared_ptr<const Version> latest = versions_.latest();
  s.latest_version = latest->version;
  s.entries = latest->root.count;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.pages_written = pages_written_.load(std::memory_order_relaxed);
  s.blobs_written = blobs_written_.load(std::memory_order_relaxed);
  StoreStats store = store_->GetStats();
  s.syncs = store.syncs;
  s.bytes_written = store.bytes_written;
  s.page_reads = store.reads;
  s.disk_bytes = store.disk_bytes;
  CacheStats cache = cache_.GetStats();
  s.cache_hits = cache.hits;
  s.cache_misses = cache.misses;
  s.cache_bytes = cache.bytes;
  s.cache_capacity = cache.capacity;
  return s;
}

absl::StatusOr<Root> DBImpl::RootAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, LoadVersion(version));
  return v->root;
}

absl::Status DBImpl::VerifyVersion(uint64_t version, bool strict) {
  ASSIGN_OR_RETURN(Root root, RootAt(version));
  return VerifyTree(source_, root, page_size_, strict);
}

absl::StatusOr<std::vector<FreedItem>> DBImpl::FreedAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store_->Get(Space::kFreed, BigEndianKey(version)));
  if (!record) return std::vector<FreedItem>();
  return DecodeFreed(*record, version);
}

}  // namespace internal
}  // namespace cowdb
