#include "engine/db_impl.h"

#include <cassert>
#include <deque>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/format/export_file.h"
#include "engine/store/rocksdb_page_store.h"
#include "engine/tree/checkpoint.h"
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
  ASSIGN_OR_RETURN(
      std::unique_ptr<internal::DBImpl> db,
      internal::DBImpl::OpenAt(options, path, internal::RocksDBStoreOptions()));
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

DBImpl::DBImpl(const Options& options, std::shared_ptr<PageStore> store,
               size_t page_size, uint64_t next_id, const Version& latest,
               uint64_t floor, std::map<std::string, uint64_t> tags,
               std::map<uint64_t, Root> checkpoints)
    : options_(options),
      store_(std::move(store)),
      page_size_(page_size),
      cache_(options.cache_bytes),
      source_(store_.get(), &cache_),
      versions_(latest, floor, std::move(tags)),
      next_id_(next_id) {
  MutexLock lock(&roots_mu_);
  checkpoints_ = std::move(checkpoints);
  last_checkpoint_ = latest.version;
  last_checkpoint_micros_ = absl::ToUnixMicros(absl::Now());
}

DBImpl::~DBImpl() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    committer_stopping_ = true;
  }
  committer_cv_.notify_one();
  if (committer_.joinable()) committer_.join();  // after the queued writes
  {
    std::lock_guard<std::mutex> lock(checkpoint_wake_mu_);
    checkpointer_stopping_ = true;
  }
  checkpoint_cv_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  // A clean close checkpoints, so that the next open replays nothing. A
  // failure loses nothing: the log stays.
  if (checkpoint_on_close_) Checkpoint().IgnoreError();
  {
    std::lock_guard<std::mutex> lock(reclaim_wake_mu_);
    shutting_down_ = true;
  }
  reclaim_cv_.notify_one();
  if (reclaimer_.joinable()) reclaimer_.join();
}

namespace {

// Upgrades a format-1 database in place: there every commit stored its
// whole tree, so every version on record is a checkpoint of itself (and
// its freed records, keyed by death version, mean the same).
absl::Status UpgradeFromFormat1(PageStore& store, MetaRecord* meta) {
  StoreBatch batch;
  absl::Status status;
  RETURN_IF_ERROR(store.Scan(Space::kVersions, "", [&](std::string_view k,
                                                       std::string_view v) {
    batch.Put(Space::kCheckpoints, std::string(k), std::string(v));
    return true;
  }));
  meta->format = kDatabaseFormatVersion;  // checkpoint: the latest version
  batch.Put(Space::kMeta, kMetaKey, EncodeMeta(*meta));
  return store.Commit(batch, /*sync=*/true);
}

absl::StatusOr<std::map<uint64_t, Root>> ReadCheckpoints(PageStore& store) {
  std::map<uint64_t, Root> out;
  absl::Status status;
  RETURN_IF_ERROR(store.Scan(Space::kCheckpoints, "", [&](std::string_view k,
                                                          std::string_view v) {
    uint64_t version;
    if (!ParseBigEndianKey(k, &version)) {
      status = absl::DataLossError("corrupt checkpoint key");
      return false;
    }
    absl::StatusOr<VersionRecord> r = DecodeVersionRecord(v, version);
    if (!r.ok()) {
      status = r.status();
      return false;
    }
    out[version] = r->root;
    return true;
  }));
  RETURN_IF_ERROR(status);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DBImpl>> DBImpl::Open(
    const Options& options, std::shared_ptr<PageStore> store) {
  RETURN_IF_ERROR(ValidateOptions(options));
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::optional<std::string> meta_bytes,
                   store->Get(Space::kMeta, kMetaKey));
  MetaRecord meta;
  if (!meta_bytes) {
    // A new database: version 0, the empty tree, is its first checkpoint.
    meta.page_size = options.page_size;
    VersionRecord zero;
    zero.commit_micros = absl::ToUnixMicros(absl::Now());
    StoreBatch batch;
    batch.Put(Space::kVersions, BigEndianKey(0), EncodeVersionRecord(zero));
    batch.Put(Space::kCheckpoints, BigEndianKey(0), EncodeVersionRecord(zero));
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
    if (meta.format < 2) RETURN_IF_ERROR(UpgradeFromFormat1(*store, &meta));
  }
  using RootMap = std::map<uint64_t, Root>;
  ASSIGN_OR_RETURN(RootMap checkpoints, ReadCheckpoints(*store));
  auto cp = checkpoints.find(meta.checkpoint);
  if (cp == checkpoints.end()) {
    return absl::DataLossError(absl::StrCat(
        "the record of the last checkpoint, version ", meta.checkpoint,
        ", is missing"));
  }
  // (Its version record may be released; the checkpoint record is not.)
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store->Get(Space::kCheckpoints, BigEndianKey(meta.checkpoint)));
  ASSIGN_OR_RETURN(VersionRecord latest,
                   DecodeVersionRecord(*record, meta.checkpoint));
  Version v;
  v.version = meta.checkpoint;
  v.root = cp->second;
  v.commit_micros = latest.commit_micros;
  uint64_t floor = 0;
  ASSIGN_OR_RETURN(std::optional<std::string> floor_bytes,
                   store->Get(Space::kMeta, kFloorKey));
  if (floor_bytes) {
    ASSIGN_OR_RETURN(floor, DecodeVarint(*floor_bytes, "release floor"));
  }
  std::map<std::string, uint64_t> tags;
  absl::Status tag_status;
  RETURN_IF_ERROR(store->Scan(Space::kTags, "", [&](std::string_view k,
                                                    std::string_view val) {
    absl::StatusOr<uint64_t> tv = DecodeVarint(val, "tag");
    if (!tv.ok()) {
      tag_status = tv.status();
      return false;
    }
    tags.emplace(std::string(k), *tv);
    return true;
  }));
  RETURN_IF_ERROR(tag_status);
  std::unique_ptr<DBImpl> db(new DBImpl(options, std::move(store),
                                        meta.page_size, meta.next_id, v,
                                        floor, std::move(tags),
                                        std::move(checkpoints)));
  RETURN_IF_ERROR(db->Recover());
  db->recovery_micros_ = absl::ToInt64Microseconds(absl::Now() - start);
  if (options.background_reclaim) {
    db->reclaimer_ = std::thread([p = db.get()] { p->ReclaimLoop(); });
  }
  if (options.background_checkpoint) {
    db->checkpointer_ = std::thread([p = db.get()] { p->CheckpointLoop(); });
  }
  return db;
}

absl::Status DBImpl::Recover() {
  // The last checkpoint plus every log record after it, in version order.
  // Records at or before it are for rebuilding older versions.
  const uint64_t from = versions_.latest()->version;
  uint64_t expected = from + 1;
  absl::Status status;
  MutexLock lock(&tree_mu_);
  // (The analysis cannot see that the lambda runs under `lock`.)
  RETURN_IF_ERROR(store_->Scan(
      Space::kLog, BigEndianKey(from + 1),
      [&](std::string_view k, std::string_view bytes)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {
        uint64_t version;
        if (!ParseBigEndianKey(k, &version)) {
          status = absl::DataLossError("corrupt log key");
          return false;
        }
        if (version != expected) {
          status = absl::DataLossError(absl::StrCat(
              "the log record of version ", expected, " is missing (the next "
              "one is ", version, ")"));
          return false;
        }
        absl::StatusOr<LogRecord> rec = DecodeLogRecord(bytes, version);
        if (!rec.ok()) {
          status = rec.status();
          return false;
        }
        std::shared_ptr<const Version> base = versions_.latest();
        TreeBuilder builder(&source_, base->root, version, page_size_,
                            options_.inline_value_limit);
        status = Apply(builder, rec->ops);
        if (!status.ok()) return false;
        PublishLocked(builder, version, rec->commit_micros, bytes.size());
        ++expected;
        ++replayed_commits_;
        return true;
      }));
  return status;
}

absl::Status DBImpl::Apply(TreeBuilder& builder,
                           const std::vector<Mutation>& ops) {
  for (const Mutation& m : ops) {
    RETURN_IF_ERROR(m.is_delete ? builder.Delete(m.key)
                                : builder.Put(m.key, m.value));
  }
  return absl::OkStatus();
}

void DBImpl::PublishLocked(TreeBuilder& builder, uint64_t version,
                           int64_t commit_micros, size_t log_bytes) {
  Version v;
  v.version = version;
  v.root = builder.Finish();
  v.commit_micros = commit_micros;
  std::vector<FreedItem> freed = builder.TakeFreed();
  pending_freed_.insert(pending_freed_.end(), freed.begin(), freed.end());
  unwritten_bytes_.fetch_add(builder.sealed_bytes(), std::memory_order_relaxed);
  log_bytes_since_checkpoint_.fetch_add(log_bytes, std::memory_order_relaxed);
  log_bytes_.fetch_add(log_bytes, std::memory_order_relaxed);
  {
    MutexLock lock(&roots_mu_);
    recent_[version] = v.root;
  }
  versions_.Publish(v);
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

namespace {

// A commit request for the blind writes of `batch`, which must outlive it.
void PrepareBlindWrite(const WriteBatch& batch, CommitRequest* req) {
  req->written_keys.reserve(batch.Count());
  req->mutations.reserve(batch.Count());
  for (const auto& op : batch.ops()) {
    req->written_keys.push_back(op.key);
    req->mutations.push_back(Mutation{op.is_delete, op.key, op.value});
  }
}

}  // namespace

absl::Status DBImpl::ValidateBatch(const WriteBatch& batch) {
  for (const auto& op : batch.ops()) {
    RETURN_IF_ERROR(ValidateWrite(op.key, op.value));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DBImpl::Write(const WriteBatch& batch) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  if (batch.Count() == 0) return versions_.latest()->version;
  CommitRequest req;  // a blind write: nothing to validate
  PrepareBlindWrite(batch, &req);
  return SubmitCommit(req);
}

void DBImpl::WriteAsync(WriteBatch batch, WriteCallback done) {
  // The queue tells asynchronous requests by their callback: never empty.
  if (!done) done = [](absl::StatusOr<uint64_t>) {};
  if (absl::Status s = ValidateBatch(batch); !s.ok()) return done(s);
  if (batch.Count() == 0) return done(versions_.latest()->version);
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
  SubmitAsync(&w->req);
}

void DBImpl::SubmitAsync(CommitRequest* req) {
  assert(req->on_done);  // without it the request would never be led
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (!committer_.joinable()) committer_ = std::thread([this] { CommitLoop(); });
  queue_.push_back(req);
  if (!leader_active_ && queue_.front() == req) committer_cv_.notify_one();
}

absl::StatusOr<uint64_t> DBImpl::SubmitCommit(CommitRequest& req) {
  // LevelDB's writer queue: the request at the front leads a group made of
  // everything queued behind it; the others wait to be told their outcome.
  std::unique_lock<std::mutex> lock(queue_mu_);
  queue_.push_back(&req);
  req.cv.wait(lock, [&] {
    return req.done || (!leader_active_ && queue_.front() == &req);
  });
  if (!req.done) Lead(lock, &req);
  lock.unlock();
  if (!req.status.ok()) return req.status;
  return req.version;
}

void DBImpl::Lead(std::unique_lock<std::mutex>& lock, CommitRequest* self) {
  // A leader that finds more requests queued when it is done leads those
  // too (a few rounds at most), which saves a thread handoff per group.
  constexpr size_t kMaxGroup = 4096;
  constexpr int kMaxRounds = 4;
  leader_active_ = true;
  std::vector<CommitRequest*> finished;  // asynchronous requests
  for (int round = 0;
       (self != nullptr && !self->done) || (round < kMaxRounds && !queue_.empty());
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
      if (member->on_done) {
        finished.push_back(member);
      } else if (member != self) {
        member->cv.notify_one();
      }
    }
    if (!finished.empty()) {  // their callbacks run without the lock
      lock.unlock();
      for (CommitRequest* r : finished) {
        auto on_done = std::move(r->on_done);  // r may be gone after the call
        on_done(r->status.ok() ? absl::StatusOr<uint64_t>(r->version) : r->status);
      }
      finished.clear();
      lock.lock();
    }
  }
  leader_active_ = false;
  if (queue_.empty()) {
    if (committer_stopping_) committer_cv_.notify_one();
  } else if (queue_.front()->on_done) {
    committer_cv_.notify_one();
  } else {
    queue_.front()->cv.notify_one();
  }
}

void DBImpl::CommitLoop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  for (;;) {
    committer_cv_.wait(lock, [&] {
      return (!leader_active_ && !queue_.empty() && queue_.front()->on_done) ||
             (committer_stopping_ && queue_.empty() && !leader_active_);
    });
    if (queue_.empty()) return;  // closing, and every write is done
    Lead(lock, nullptr);
  }
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
  MutexLock lock(&tree_mu_);
  if (!write_error_.ok()) {
    fail_all(absl::FailedPreconditionError(absl::StrCat(
        "writes are refused after a write of unknown outcome (",
        write_error_.message(), "); reopen the database")));
    return;
  }
  std::shared_ptr<const Version> base = versions_.latest();
  const uint64_t version = base->version + 1;
  TreeBuilder builder(&source_, base->root, version, page_size_,
                      options_.inline_value_limit);
  KeySet group_writes;
  std::vector<CommitRequest*> accepted;
  std::vector<Mutation> ops;  // the group's log record, as applied
  for (CommitRequest* r : group) {
    r->status = Validate(*r, *base, group_writes);
    if (!r->status.ok()) continue;
    absl::Status applied = Apply(builder, r->mutations);
    if (!applied.ok()) {
      // The shared builder is now part-applied: commit nothing.
      fail_all(applied);
      return;
    }
    ops.insert(ops.end(), r->mutations.begin(), r->mutations.end());
    for (std::string_view k : r->written_keys) group_writes.emplace(k);
    accepted.push_back(r);
  }
  if (accepted.empty()) return;

  // The commit's durable form: its log record (and its version record for
  // listings), in one write. No page is written here.
  // Commit times never go backwards, so VersionAt can search them.
  const int64_t micros =
      std::max(absl::ToUnixMicros(absl::Now()), base->commit_micros);
  std::string record = EncodeLogRecord(version, micros, ops);
  const size_t record_bytes = record.size();
  VersionRecord listing;  // for listings and time lookups; no root
  listing.root.count = builder.count();
  listing.root.max_mod = builder.max_mod();
  listing.commit_micros = micros;
  StoreBatch store_batch;
  store_batch.Put(Space::kLog, BigEndianKey(version), std::move(record));
  store_batch.Put(Space::kVersions, BigEndianKey(version),
                  EncodeVersionRecord(listing));
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
  PublishLocked(builder, version, micros, record_bytes);
  for (CommitRequest* r : accepted) r->version = version;
  {
    std::lock_guard<std::mutex> published(published_mu_);  // no lost wake-ups
  }
  published_cv_.notify_all();
  WakeReclaimer();
  if (CheckpointDue()) WakeCheckpointer();
  commits_.fetch_add(1, std::memory_order_relaxed);
}

absl::StatusOr<std::optional<Version>> DBImpl::ReadVersionRecord(
    uint64_t version) {
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store_->Get(Space::kVersions, BigEndianKey(version)));
  if (!record) return std::nullopt;
  ASSIGN_OR_RETURN(VersionRecord r, DecodeVersionRecord(*record, version));
  Version v;
  v.version = version;
  v.root = r.root;
  v.commit_micros = r.commit_micros;
  return v;
}

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::LoadVersion(
    uint64_t version) {
  std::shared_ptr<const Version> latest = versions_.latest();
  if (version == latest->version) return latest;
  // Pin first, so that the reclaimer keeps the version while we read it.
  RETURN_IF_ERROR(versions_.AcquirePin(version));
  absl::StatusOr<std::optional<Version>> v = ReadVersionRecord(version);
  if (!v.ok() || !v->has_value()) {
    versions_.ReleasePin(version);
    if (!v.ok()) return v.status();
    return absl::OutOfRangeError(absl::StrCat(
        "version ", version, " is no longer retained; the oldest retained "
        "version is ", versions_.oldest_retained(), " and the latest is ",
        versions_.latest()->version));
  }
  absl::StatusOr<Root> root = RootOf(version);
  if (!root.ok()) {
    versions_.ReleasePin(version);
    return root.status();
  }
  (*v)->root = *std::move(root);
  return versions_.AdoptPin(**v);
}

absl::StatusOr<Root> DBImpl::RootOf(uint64_t version) {
  {
    MutexLock lock(&roots_mu_);
    for (const auto* roots : {&recent_, &checkpoints_, &rebuilt_}) {
      auto it = roots->find(version);
      if (it != roots->end()) return it->second;
    }
  }
  return Rebuild(version);
}

absl::StatusOr<Root> DBImpl::Rebuild(uint64_t version) {
  // The checkpoint at or before `version` plus the log records after it,
  // replayed in memory; a version rebuilt earlier in between saves replay.
  // Only stored and rebuilt trees are started from: the nodes of the
  // versions held since their commit may be planned by a checkpoint
  // meanwhile, and a TreeBuilder must not read them then.
  MutexLock one(&rebuild_mu_);
  uint64_t from;
  Root root;
  {
    MutexLock lock(&roots_mu_);
    auto done = rebuilt_.find(version);
    if (done != rebuilt_.end()) return done->second;
    auto cp = checkpoints_.upper_bound(version);
    if (cp == checkpoints_.begin()) {
      return absl::DataLossError(absl::StrCat(
          "no checkpoint at or before version ", version, " is on record"));
    }
    --cp;
    from = cp->first;
    root = cp->second;
    auto near = rebuilt_.lower_bound(version);
    if (near != rebuilt_.begin() && (--near)->first > from) {
      from = near->first;
      root = near->second;
    }
  }
  uint64_t next = from + 1;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(
      Space::kLog, BigEndianKey(next),
      [&](std::string_view k, std::string_view bytes) {
        uint64_t v;
        if (!ParseBigEndianKey(k, &v) || v > version) return false;
        if (v != next) return false;  // a gap: reported below
        absl::StatusOr<LogRecord> rec = DecodeLogRecord(bytes, v);
        if (!rec.ok()) {
          status = rec.status();
          return false;
        }
        TreeBuilder builder(&source_, root, v, page_size_,
                            options_.inline_value_limit);
        status = Apply(builder, rec->ops);
        if (!status.ok()) return false;
        root = builder.Finish();
        ++next;
        return true;
      }));
  RETURN_IF_ERROR(status);
  if (next != version + 1) {
    return absl::DataLossError(absl::StrCat(
        "version ", version, " cannot be rebuilt: the log record of version ",
        next, " is missing"));
  }
  constexpr size_t kMaxRebuilt = 64;
  MutexLock lock(&roots_mu_);
  rebuilt_[version] = root;
  if (rebuilt_.size() > kMaxRebuilt) rebuilt_.erase(rebuilt_.begin());
  return root;
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

absl::StatusOr<const Version*> DBImpl::ResolveForCall(
    const ReadOptions& options, std::shared_ptr<const Version>* hold) {
  if (options.snapshot != nullptr && options.snapshot->valid() &&
      !options.version) {
    return options.snapshot->version_.get();
  }
  ASSIGN_OR_RETURN(*hold, Resolve(options));
  return hold->get();
}

absl::StatusOr<Entry> DBImpl::GetEntry(const ReadOptions& options,
                                       std::string_view key) {
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  Entry e;
  e.version = v->version;
  ASSIGN_OR_RETURN(bool found,
                   TreeRead(source_, v->root, key, &e.value, &e.mod_version));
  if (!found) return absl::NotFoundError("key not found");
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
  std::string value;
  RETURN_IF_ERROR(Get(options, key, &value));
  return value;
}

absl::Status DBImpl::Get(const ReadOptions& options, std::string_view key,
                         std::string* value) {
  std::shared_ptr<const Version> hold;
  ASSIGN_OR_RETURN(const Version* v, ResolveForCall(options, &hold));
  ASSIGN_OR_RETURN(bool found, TreeRead(source_, v->root, key, value));
  if (!found) return absl::NotFoundError("key not found");
  return absl::OkStatus();
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
  s.log_bytes = log_bytes_.load(std::memory_order_relaxed);
  s.checkpoints = checkpoints_written_.load(std::memory_order_relaxed);
  s.unwritten_bytes = unwritten_bytes_.load(std::memory_order_relaxed);
  s.replayed_commits = replayed_commits_;
  s.recovery_micros = recovery_micros_;
  {
    MutexLock lock(&roots_mu_);
    s.checkpoint_version = last_checkpoint_;
  }
  return s;
}

absl::StatusOr<Root> DBImpl::RootAt(uint64_t version) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, LoadVersion(version));
  {
    MutexLock lock(&roots_mu_);
    auto it = checkpoints_.find(version);
    if (it != checkpoints_.end()) return it->second;  // stored
  }
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

// ------------------------------------------------------- versions and tags

uint64_t DBImpl::OldestVersion() { return versions_.oldest_retained(); }

absl::StatusOr<std::vector<VersionInfo>> DBImpl::ListVersions() {
  std::vector<VersionInfo> out;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(Space::kVersions, "", [&](std::string_view k,
                                                         std::string_view val) {
    uint64_t v;
    if (!ParseBigEndianKey(k, &v)) {
      status = absl::DataLossError("corrupt version key");
      return false;
    }
    if (!versions_.CheckRetained(v).ok()) return true;  // released
    absl::StatusOr<VersionRecord> r = DecodeVersionRecord(val, v);
    if (!r.ok()) {
      status = r.status();
      return false;
    }
    out.push_back({v, r->commit_micros, r->root.count});
    return true;
  }));
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<uint64_t> DBImpl::VersionAt(int64_t unix_micros) {
  // Commit times ascend with versions: binary search the retained window.
  std::shared_ptr<const Version> latest = versions_.latest();
  if (unix_micros >= latest->commit_micros) return latest->version;
  uint64_t lo = versions_.floor(), hi = latest->version;  // answer in [lo, hi)
  ASSIGN_OR_RETURN(std::optional<Version> first, ReadVersionRecord(lo));
  if (!first || first->commit_micros > unix_micros) {
    // Before the window: only kept (tagged or pinned) versions remain.
    ASSIGN_OR_RETURN(std::vector<VersionInfo> all, ListVersions());
    uint64_t best = 0;
    bool found = false;
    for (const VersionInfo& info : all) {
      if (info.commit_micros > unix_micros) break;
      best = info.version;
      found = true;
    }
    // Only exact: the version latest at that time must itself be kept,
    // i.e. the next retained version must be its successor.
    for (const VersionInfo& info : all) {
      if (found && info.version == best + 1 && info.commit_micros > unix_micros) {
        return best;
      }
    }
    return absl::OutOfRangeError(absl::StrCat(
        "the version latest at ", absl::FormatTime(absl::FromUnixMicros(unix_micros)),
        " is no longer retained; the oldest retained version is ",
        versions_.oldest_retained()));
  }
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(std::optional<Version> m, ReadVersionRecord(mid));
    if (!m) return absl::DataLossError(absl::StrCat("missing record of version ", mid));
    if (m->commit_micros <= unix_micros) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

absl::Status DBImpl::Tag(std::string_view name, uint64_t version) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError("a tag name is 1 to 256 bytes");
  }
  // The pin keeps the version from being released while the tag is written.
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> pinned, LoadVersion(version));
  StoreBatch batch;
  batch.Put(Space::kTags, std::string(name), EncodeVarint(version));
  RETURN_IF_ERROR(store_->Commit(batch, /*sync=*/true));
  versions_.SetTag(std::string(name), version);
  return absl::OkStatus();
}

absl::Status DBImpl::Untag(std::string_view name) {
  std::map<std::string, uint64_t> tags = versions_.tags();
  if (tags.count(std::string(name)) == 0) {
    return absl::NotFoundError(absl::StrCat("no tag named \"", std::string(name), "\""));
  }
  StoreBatch batch;
  batch.Delete(Space::kTags, std::string(name));
  RETURN_IF_ERROR(store_->Commit(batch, /*sync=*/true));
  versions_.RemoveTag(std::string(name));
  WakeReclaimer();
  return absl::OkStatus();
}

std::map<std::string, uint64_t> DBImpl::ListTags() { return versions_.tags(); }

absl::Status DBImpl::Diff(uint64_t from, uint64_t to, std::string_view begin,
                          std::string_view end,
                          const std::function<bool(const Change&)>& fn) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> a, LoadVersion(from));
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> b, LoadVersion(to));
  return DiffRoots(a->root, b->root, begin, end, fn);
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
                             c.old_mod_version = before ? before->mod_version : 0;
                             c.new_mod_version = after ? after->mod_version : 0;
                             return fn(c);
                           }));
  return inner;
}

// ------------------------------------------------------------------ watch

namespace {

class WatcherImpl final : public Watcher {
 public:
  WatcherImpl(DBImpl* db, std::shared_ptr<const Version> at,
              std::string begin, std::string end)
      : db_(db), at_(std::move(at)), begin_(std::move(begin)),
        end_(std::move(end)) {}

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
        if (!db_->WaitForVersionAfter(at_->version, deadline - absl::Now())) {
          return absl::DeadlineExceededError(absl::StrCat(
              "no change after version ", at_->version, " in time"));
        }
      }
      // Step to the next version (or, if the ones after us were released,
      // the first retained one: a net step).
      ASSIGN_OR_RETURN(std::shared_ptr<const Version> next,
                       db_->PinAtOrAfter(at_->version + 1));
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
  std::shared_ptr<const Version> at_;  // pinned: everything up to it queued
  const std::string begin_, end_;
  std::deque<WatchEvent> pending_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> DBImpl::Watch(uint64_t from_version,
                                                       std::string_view begin,
                                                       std::string_view end) {
  absl::StatusOr<std::shared_ptr<const Version>> from = LoadVersion(from_version);
  if (from.ok()) {
    return std::unique_ptr<Watcher>(new WatcherImpl(
        this, *std::move(from), std::string(begin), std::string(end)));
  }
  if (!absl::IsOutOfRange(from.status())) return from.status();
  // Released: start from the first retained version after it, with its
  // whole state.
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> base,
                   PinAtOrAfter(from_version + 1));
  auto w = std::make_unique<WatcherImpl>(this, std::move(base),
                                         std::string(begin), std::string(end));
  RETURN_IF_ERROR(w->QueueState());
  return std::unique_ptr<Watcher>(std::move(w));
}

absl::StatusOr<std::shared_ptr<const Version>> DBImpl::PinAtOrAfter(
    uint64_t version) {
  for (;;) {
    absl::StatusOr<std::shared_ptr<const Version>> v = LoadVersion(version);
    if (!absl::IsOutOfRange(v.status())) return v;
    // Released: try the next version still retained (pinned or tagged
    // below the floor, or the floor). Versions only get released, so this
    // ends.
    version = std::max(version + 1, versions_.NextRetained(version + 1));
  }
}

bool DBImpl::WaitForVersionAfter(uint64_t version, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(published_mu_);
  return published_cv_.wait_for(
      lock, absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration())),
      [&] { return versions_.latest()->version > version; });
}

// ------------------------------------------------------------ checkpoints

absl::Status DBImpl::Checkpoint() {
  MutexLock one(&checkpoint_mu_);
  std::shared_ptr<const Version> latest;
  CheckpointPlan plan;
  std::vector<FreedItem> freed;
  uint64_t next_id;
  {
    // Planning gives the unwritten nodes their ids; no commit runs
    // meanwhile. Everything after it runs beside commits and readers.
    MutexLock lock(&tree_mu_);
    if (!write_error_.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no checkpoint after a write of unknown outcome (",
          write_error_.message(), "); reopen the database"));
    }
    latest = versions_.latest();
    {
      MutexLock roots(&roots_mu_);
      if (latest->version == last_checkpoint_) return absl::OkStatus();
    }
    plan = PlanCheckpoint(latest->root, &next_id_);
    next_id = next_id_;
    freed.swap(pending_freed_);
    unwritten_bytes_.store(0, std::memory_order_relaxed);
    log_bytes_since_checkpoint_.store(0, std::memory_order_relaxed);
  }
  const uint64_t c = latest->version;
  StoreBatch batch;
  EncodeCheckpoint(plan, &batch);
  // What the commits since the last checkpoint freed dies with this one.
  if (!freed.empty()) {
    batch.Put(Space::kFreed, BigEndianKey(c), EncodeFreed(freed));
  }
  Root stored{plan.root.page_id, plan.root.count, plan.root.max_mod, nullptr};
  batch.Put(Space::kCheckpoints, BigEndianKey(c),
            EncodeVersionRecord({stored, latest->commit_micros}));
  MetaRecord meta;
  meta.checkpoint = c;
  meta.next_id = next_id;
  meta.page_size = page_size_;
  batch.Put(Space::kMeta, kMetaKey, EncodeMeta(meta));
  absl::Status s = store_->Commit(batch, /*sync=*/true);
  if (!s.ok()) {
    // The planned ids are in the nodes now, and may or may not be stored:
    // refuse writes until a reopen recovers from the last good checkpoint
    // and the log (which has every commit).
    MutexLock lock(&tree_mu_);
    write_error_ = s;
    return absl::UnknownError(absl::StrCat(
        "checkpoint of version ", c, " failed (", s.message(),
        "); nothing committed is lost, but writes are refused until the "
        "database is reopened"));
  }
  {
    // Let go of what it wrote: the held trees reach written nodes by page
    // id from now on, through the cache (see Releaser). No commit runs
    // meanwhile.
    MutexLock lock(&tree_mu_);
    Releaser releaser(&cache_);
    std::shared_ptr<const Version> now = versions_.latest();
    Version v = *now;
    v.root = releaser.Release(now->root);
    {
      MutexLock roots(&roots_mu_);
      checkpoints_[c] = stored;
      last_checkpoint_ = c;
      recent_.erase(recent_.begin(), recent_.upper_bound(c));
      for (auto& [version, root] : recent_) root = releaser.Release(root);
    }
    versions_.ReplaceLatest(v);
  }
  last_checkpoint_micros_.store(absl::ToUnixMicros(absl::Now()));
  checkpoints_written_.fetch_add(1, std::memory_order_relaxed);
  pages_written_.fetch_add(plan.nodes.size(), std::memory_order_relaxed);
  blobs_written_.fetch_add(plan.blobs, std::memory_order_relaxed);
  WakeReclaimer();
  return absl::OkStatus();
}

DBImpl::HeldCount DBImpl::HeldNodesOfLatest() {
  HeldCount count;
  std::set<const Node*> seen;
  std::function<void(const NodeRef&)> visit = [&](const NodeRef& n) {
    if (!seen.insert(n.get()).second) return;
    ++count.held;
    if (n->written_id.get() != 0) ++count.written;
    for (const ChildRef& c : n->children) {
      if (c.mem) visit(c.mem);
    }
  };
  std::shared_ptr<const Version> latest = versions_.latest();
  if (latest->root.page_id == 0 && latest->root.node) visit(latest->root.node);
  return count;
}

bool DBImpl::CheckpointDue() {
  const uint64_t log = log_bytes_since_checkpoint_.load(std::memory_order_relaxed);
  if (log == 0) return false;
  if (options_.checkpoint_log_bytes != 0 && log >= options_.checkpoint_log_bytes) {
    return true;
  }
  if (options_.checkpoint_memory_bytes != 0 &&
      unwritten_bytes_.load(std::memory_order_relaxed) >=
          options_.checkpoint_memory_bytes) {
    return true;
  }
  return options_.checkpoint_interval_seconds != 0 &&
         absl::ToUnixMicros(absl::Now()) - last_checkpoint_micros_.load() >=
             static_cast<int64_t>(options_.checkpoint_interval_seconds) * 1000000;
}

void DBImpl::WakeCheckpointer() {
  if (!options_.background_checkpoint) return;
  {
    std::lock_guard<std::mutex> lock(checkpoint_wake_mu_);
    checkpoint_requested_ = true;
  }
  checkpoint_cv_.notify_one();
}

void DBImpl::CheckpointLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(checkpoint_wake_mu_);
      checkpoint_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
        return checkpoint_requested_ || checkpointer_stopping_;
      });
      if (checkpointer_stopping_) return;
      checkpoint_requested_ = false;
    }
    if (CheckpointDue()) Checkpoint().IgnoreError();  // writes refused after
  }
}

// ---------------------------------------------------------------- reclaim

absl::StatusOr<uint64_t> DBImpl::WindowFloor(const Version& latest) {
  uint64_t by_count = latest.version;
  if (options_.retain_versions == Options::kRetainAll) return 0;
  if (options_.retain_versions > 0 && latest.version + 1 > options_.retain_versions) {
    by_count = latest.version + 1 - options_.retain_versions;
  } else if (options_.retain_versions > 0) {
    by_count = 0;
  }
  if (options_.retain_seconds == 0 || by_count == 0) return by_count;
  // Also keep every version younger than retain_seconds: the version that
  // was latest at (now - retain_seconds) and everything after it.
  int64_t cutoff = absl::ToUnixMicros(absl::Now()) -
                   static_cast<int64_t>(options_.retain_seconds) * 1000000;
  uint64_t lo = versions_.floor(), hi = by_count;
  if (lo >= hi) return by_count;
  ASSIGN_OR_RETURN(std::optional<Version> first, ReadVersionRecord(lo));
  if (!first || first->commit_micros > cutoff) return lo;
  while (hi - lo > 1) {  // the last version in [lo, hi) committed <= cutoff
    uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(std::optional<Version> m, ReadVersionRecord(mid));
    if (m && m->commit_micros <= cutoff) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

absl::StatusOr<ReclaimStats> DBImpl::Reclaim() {
  MutexLock lock(&reclaim_mu_);
  return ReclaimLocked();
}

absl::StatusOr<ReclaimStats> DBImpl::ReclaimLocked() {
  std::shared_ptr<const Version> latest = versions_.latest();
  ASSIGN_OR_RETURN(uint64_t window, WindowFloor(*latest));
  latest.reset();
  VersionSet::Plan plan = versions_.PlanRelease(window);
  ReclaimStats stats;
  stats.floor = plan.floor;
  // A retained version needs its base checkpoint (the last one at or
  // before it: its stored tree) and the log records after that base up to
  // itself. Every version from the floor on is retained, so everything
  // after the floor's base is needed; below it, only what kept versions
  // (tagged or pinned) need.
  std::map<uint64_t, Root> checkpoints;
  {
    MutexLock lock(&roots_mu_);
    checkpoints = checkpoints_;
  }
  auto base_of = [&](uint64_t v) -> uint64_t {
    auto it = checkpoints.upper_bound(v);
    return it == checkpoints.begin() ? 0 : std::prev(it)->first;
  };
  const uint64_t floor_base = base_of(plan.floor);
  std::set<uint64_t> kept_bases;
  for (uint64_t v : plan.keep) kept_bases.insert(base_of(v));
  auto log_needed = [&](uint64_t r) {
    if (r > floor_base) return true;
    for (uint64_t v : plan.keep) {
      if (base_of(v) < r && r <= v) return true;
    }
    return false;
  };
  constexpr size_t kBatchOps = 4096;
  StoreBatch batch;
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    // No sync: the deletions are idempotent, and the WAL keeps them in
    // order with everything after them.
    absl::Status s = store_->Commit(batch, /*sync=*/false);
    batch = StoreBatch();
    return s;
  };
  // 1. The floor, then the records of released versions: after this, no
  //    one can pin them, so their pages can go.
  batch.Put(Space::kMeta, kFloorKey, EncodeVarint(plan.floor));
  absl::Status status;
  auto release_version = [&](uint64_t v) {
    batch.Delete(Space::kVersions, BigEndianKey(v));
    ++stats.versions_released;
  };
  std::set<uint64_t> still_kept;
  for (uint64_t v : kept_versions_) {  // kept by an earlier pass
    if (plan.keep.count(v) != 0) {
      still_kept.insert(v);
    } else {
      release_version(v);
    }
  }
  RETURN_IF_ERROR(store_->Scan(
      Space::kVersions, BigEndianKey(versions_scanned_to_),
      [&](std::string_view k, std::string_view) {
        uint64_t v;
        if (!ParseBigEndianKey(k, &v) || v >= plan.floor) return false;
        if (plan.keep.count(v) == 0) {
          release_version(v);
        } else {
          still_kept.insert(v);
        }
        if (batch.ops().size() >= kBatchOps) status = flush();
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(flush());
  kept_versions_ = std::move(still_kept);
  versions_scanned_to_ = std::max(versions_scanned_to_, plan.floor);

  // 2. Pages and blobs freed at or before the floor's base whose life
  //    [birth, death) holds no kept version's base.
  std::set<uint64_t> retry;
  auto process = [&](uint64_t death, std::string_view key,
                     std::string_view val) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<FreedItem> items, DecodeFreed(val, death));
    std::vector<FreedItem> remaining;
    for (const FreedItem& item : items) {
      auto kept = kept_bases.lower_bound(item.birth);
      if (kept != kept_bases.end() && *kept < death) {
        remaining.push_back(item);
        continue;
      }
      if (item.kind == FreedItem::kPage) {
        batch.Delete(Space::kPages, BigEndianKey(item.id));
        ++stats.pages_deleted;
      } else {
        batch.Delete(Space::kBlobs, BigEndianKey(item.id));
        ++stats.blobs_deleted;
      }
    }
    if (remaining.empty()) {
      batch.Delete(Space::kFreed, std::string(key));
    } else {
      retry.insert(death);
      if (remaining.size() != items.size()) {
        batch.Put(Space::kFreed, std::string(key), EncodeFreed(remaining));
      }
    }
    if (batch.ops().size() >= kBatchOps) return flush();
    return absl::OkStatus();
  };
  for (uint64_t death : kept_freed_) {  // kept by an earlier pass
    std::string key = BigEndianKey(death);
    ASSIGN_OR_RETURN(std::optional<std::string> val,
                     store_->Get(Space::kFreed, key));
    if (val) RETURN_IF_ERROR(process(death, key, *val));
  }
  RETURN_IF_ERROR(store_->Scan(
      Space::kFreed, BigEndianKey(freed_scanned_to_),
      [&](std::string_view k, std::string_view val) {
        uint64_t death;
        if (!ParseBigEndianKey(k, &death) || death > floor_base) return false;
        status = process(death, k, val);
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(flush());
  kept_freed_ = std::move(retry);
  freed_scanned_to_ = std::max(freed_scanned_to_, floor_base + 1);

  // 3. Log records no retained version needs for its rebuild.
  std::set<uint64_t> log_kept;
  auto consider_log = [&](uint64_t r) {
    if (log_needed(r)) {
      log_kept.insert(r);
    } else {
      batch.Delete(Space::kLog, BigEndianKey(r));
      ++stats.log_records_deleted;
    }
  };
  for (uint64_t r : kept_log_) consider_log(r);
  RETURN_IF_ERROR(store_->Scan(
      Space::kLog, BigEndianKey(log_scanned_to_),
      [&](std::string_view k, std::string_view) {
        uint64_t r;
        if (!ParseBigEndianKey(k, &r) || r > floor_base) return false;
        consider_log(r);
        if (batch.ops().size() >= kBatchOps) status = flush();
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  log_scanned_to_ = std::max(log_scanned_to_, floor_base + 1);
  kept_log_ = std::move(log_kept);

  // 4. Checkpoint records no retained version is based on.
  std::vector<uint64_t> dropped;
  for (const auto& [b, root] : checkpoints) {
    if (b >= floor_base) break;
    if (kept_bases.count(b) == 0) {
      batch.Delete(Space::kCheckpoints, BigEndianKey(b));
      dropped.push_back(b);
    }
  }
  RETURN_IF_ERROR(flush());
  {
    MutexLock lock(&roots_mu_);
    for (uint64_t b : dropped) checkpoints_.erase(b);
  }
  stats.checkpoints_deleted = dropped.size();
  return stats;
}

void DBImpl::WakeReclaimer() {
  if (!options_.background_reclaim) return;
  {
    std::lock_guard<std::mutex> lock(reclaim_wake_mu_);
    reclaim_requested_ = true;
  }
  reclaim_cv_.notify_one();
}

void DBImpl::ReclaimLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(reclaim_wake_mu_);
      // Also wake periodically: released snapshots and time-based
      // retention change what can go without a commit.
      reclaim_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
        return reclaim_requested_ || shutting_down_;
      });
      if (shutting_down_) return;
      reclaim_requested_ = false;
    }
    absl::StatusOr<ReclaimStats> r = Reclaim();
    if (!r.ok()) reclaim_errors_.fetch_add(1, std::memory_order_relaxed);
    // Let a burst of commits accumulate before the next pass.
    std::unique_lock<std::mutex> lock(reclaim_wake_mu_);
    reclaim_cv_.wait_for(lock, std::chrono::milliseconds(50),
                         [&] { return shutting_down_; });
    if (shutting_down_) return;
  }
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

absl::StatusOr<uint64_t> DBImpl::Import(const std::string& path) {
  // First pass: verify the whole file (ReadExport checks the checksum
  // before any record) and the limits; second pass: write.
  RETURN_IF_ERROR(ReadExport(path, [&](std::string_view k, std::string_view v,
                                       uint64_t) { return ValidateWrite(k, v); })
                      .status());
  uint64_t count = 0;
  WriteBatch batch;
  auto flush = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    absl::Status s = Write(batch).status();
    batch.Clear();
    return s;
  };
  RETURN_IF_ERROR(ReadExport(path, [&](std::string_view k, std::string_view v,
                                       uint64_t) -> absl::Status {
                    batch.Put(k, v);
                    ++count;
                    if (batch.Count() >= 10000) return flush();
                    return absl::OkStatus();
                  }).status());
  RETURN_IF_ERROR(flush());
  return count;
}

// ------------------------------------------------------------------ check

namespace {

// What Check remembers of a verified subtree, to check it again cheaply
// under every parent that shares it.
struct Summary {
  uint64_t count;
  std::string min_key, max_key;  // empty subtree: count == 0
  uint8_t level;
  uint64_t birth;
};

}  // namespace

absl::StatusOr<CheckReport> DBImpl::Check() {
  CheckReport report;
  // Freed pages and blobs: id -> death version.
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

  std::map<uint64_t, Summary> seen;
  std::set<uint64_t> blobs;
  auto violation = [](uint64_t id, const std::string& what) {
    return absl::InternalError(absl::StrCat("check: page ", id, ": ", what));
  };
  // Verifies the subtree at `id` once; returns its summary.
  std::function<absl::StatusOr<Summary>(uint64_t, uint64_t)> visit =
      [&](uint64_t id, uint64_t version) -> absl::StatusOr<Summary> {
    auto death = freed_pages.find(id);
    if (death != freed_pages.end() && death->second <= version) {
      return violation(id, absl::StrCat("reachable from version ", version,
                                        " but freed at version ", death->second));
    }
    auto it = seen.find(id);
    if (it != seen.end()) return it->second;
    ASSIGN_OR_RETURN(NodeRef n, source_.Load(id));
    Summary sum{0, "", "", n->level, n->birth};
    if (n->is_leaf()) {
      for (size_t i = 0; i < n->entries.size(); ++i) {
        const LeafEntry& e = n->entries[i];
        if (i > 0 && !(n->entries[i - 1].key < e.key)) return violation(id, "keys not ascending");
        if (e.mod_version > n->birth) return violation(id, "entry newer than its page");
        if (e.value.is_blob() && blobs.insert(e.value.blob_id).second) {
          auto bd = freed_blobs.find(e.value.blob_id);
          if (bd != freed_blobs.end() && bd->second <= version) {
            return violation(id, absl::StrCat("blob ", e.value.blob_id, " freed at version ", bd->second));
          }
          ASSIGN_OR_RETURN(std::string blob, source_.LoadBlob(e.value.blob_id));
          if (blob.size() != e.value.blob_size) return violation(id, "blob size mismatch");
        }
      }
      sum.count = n->entries.size();
      if (sum.count > 0) {
        sum.min_key = n->entries.front().key;
        sum.max_key = n->entries.back().key;
      }
    } else {
      for (size_t i = 0; i < n->children.size(); ++i) {
        const ChildRef& c = n->children[i];
        ASSIGN_OR_RETURN(Summary cs, visit(c.page_id, version));
        if (cs.level + 1 != n->level) return violation(id, "child level");
        if (cs.count != c.count) return violation(id, absl::StrCat("child ", i, " count"));
        if (cs.birth != c.max_mod) return violation(id, "child max_mod");
        if (cs.count > 0) {
          if (i > 0 && cs.min_key < n->keys[i - 1]) return violation(id, "key below separator");
          if (i + 1 < n->children.size() && !(cs.max_key < n->keys[i])) {
            return violation(id, "key above separator");
          }
          if (sum.count == 0) sum.min_key = cs.min_key;
          sum.max_key = cs.max_key;
        }
        sum.count += cs.count;
      }
    }
    seen.emplace(id, sum);
    return sum;
  };

  // The stored trees: the checkpoints that retained versions are based
  // on. Then every retained version as readers see it: held in memory,
  // stored, or rebuilt from its checkpoint and the log.
  ASSIGN_OR_RETURN(std::vector<VersionInfo> versions, ListVersions());
  std::map<uint64_t, Root> checkpoints;
  {
    MutexLock lock(&roots_mu_);
    checkpoints = checkpoints_;
  }
  std::set<uint64_t> bases;
  for (const VersionInfo& info : versions) {
    auto it = checkpoints.upper_bound(info.version);
    if (it != checkpoints.begin()) bases.insert(std::prev(it)->first);
  }
  for (uint64_t b : bases) {
    const Root& root = checkpoints[b];
    if (root.page_id == 0) continue;
    ASSIGN_OR_RETURN(Summary s, visit(root.page_id, b));
    if (s.count != root.count) {
      return violation(root.page_id, absl::StrCat("checkpoint ", b, " count"));
    }
  }
  for (const VersionInfo& info : versions) {
    absl::StatusOr<std::shared_ptr<const Version>> loaded =
        LoadVersion(info.version);
    // A reclamation pass may release a listed version before we pin it:
    // it is no longer retained, so there is nothing to check.
    if (absl::IsOutOfRange(loaded.status())) continue;
    RETURN_IF_ERROR(loaded.status());
    std::shared_ptr<const Version> v = *std::move(loaded);
    ++report.versions_checked;
    RETURN_IF_ERROR(VerifyTree(source_, v->root, page_size_, /*strict=*/false));
    if (v->root.count != info.entries) {
      return absl::InternalError(absl::StrCat(
          "check: version ", v->version, " has ", v->root.count,
          " entries; its record says ", info.entries));
    }
  }
  report.pages_reachable = seen.size();
  report.blobs_reachable = blobs.size();
  auto count_stored = [&](Space space, const std::map<uint64_t, Summary>* pages,
                          const std::set<uint64_t>* blob_set,
                          const std::map<uint64_t, uint64_t>& freed,
                          uint64_t* stored, uint64_t* pending, uint64_t* leaked) {
    return store_->Scan(space, "", [&](std::string_view k, std::string_view) {
      uint64_t id;
      if (!ParseBigEndianKey(k, &id)) return true;
      ++*stored;
      bool reachable = pages ? pages->count(id) != 0 : blob_set->count(id) != 0;
      if (reachable) return true;
      if (freed.count(id) != 0) {
        ++*pending;
      } else {
        ++*leaked;
      }
      return true;
    });
  };
  RETURN_IF_ERROR(count_stored(Space::kPages, &seen, nullptr, freed_pages,
                               &report.pages_stored, &report.pages_pending,
                               &report.pages_leaked));
  RETURN_IF_ERROR(count_stored(Space::kBlobs, nullptr, &blobs, freed_blobs,
                               &report.blobs_stored, &report.blobs_pending,
                               &report.blobs_leaked));
  return report;
}

}  // namespace internal
}  // namespace cowdb
