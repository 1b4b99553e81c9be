#include "engine/version/version_store.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/format/merkle.h"
#include "engine/tree/checkpoint.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {

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

// Upgrades a format-2 or -3 database in place. Its pages (page format 1
// or 2) and log records (no op 2 in format 2) are read as they are: a key
// a format-1 page holds reads as created by its last write, with one
// write and no lease (page.h). Only the meta record changes, before
// anything of the new format is written, so that an older build refuses
// the database instead of misreading it. (It does not hash: see
// kDatabaseFormatVersion.)
absl::Status RewriteMeta(PageStore& store, MetaRecord* meta) {
  meta->format = kDatabaseFormatVersion;
  StoreBatch batch;
  batch.Put(Space::kMeta, kMetaKey, EncodeMeta(*meta));
  return store.Commit(batch, /*sync=*/true);
}

// The trees a checkpoint record stores, using checkpoint `version`.
VersionStore::Trees TreesOf(const VersionRecord& r, uint64_t version) {
  auto use = std::make_shared<const uint64_t>(version);
  VersionStore::Trees t;
  t.root = r.root;
  t.root.base = use;
  if (!r.table.empty()) {
    auto table = std::make_shared<BranchTable>();
    for (const BranchRecord& b : r.table) {
      BranchHead& head = (*table)[b.name];
      head.root = b.root;
      head.root.base = use;
      head.created = b.created;
      head.source_version = b.source_version;
      head.source = b.source;
    }
    t.branches = std::move(table);
  }
  return t;
}

absl::StatusOr<std::map<uint64_t, VersionStore::Trees>> ReadCheckpoints(
    PageStore& store, bool hashed) {
  std::map<uint64_t, VersionStore::Trees> out;
  absl::Status status;
  RETURN_IF_ERROR(store.Scan(Space::kCheckpoints, "", [&](std::string_view k,
                                                          std::string_view v) {
    uint64_t version;
    if (!ParseBigEndianKey(k, &version)) {
      status = absl::DataLossError("corrupt checkpoint key");
      return false;
    }
    absl::StatusOr<VersionRecord> r = DecodeVersionRecord(v, version, hashed);
    if (!r.ok()) {
      status = r.status();
      return false;
    }
    out[version] = TreesOf(*r, version);
    return true;
  }));
  RETURN_IF_ERROR(status);
  return out;
}

// Every tag in the store.
absl::StatusOr<std::map<std::string, uint64_t>> ReadTags(PageStore& store) {
  std::map<std::string, uint64_t> tags;
  absl::Status status;
  RETURN_IF_ERROR(store.Scan(Space::kTags, "", [&](std::string_view k,
                                                   std::string_view val) {
    absl::StatusOr<uint64_t> tv = DecodeVarint(val, "tag");
    if (!tv.ok()) {
      status = tv.status();
      return false;
    }
    tags.emplace(std::string(k), *tv);
    return true;
  }));
  RETURN_IF_ERROR(status);
  return tags;
}

// Version records read ahead in key order, for replaying the log: n
// records cost n / kBatch ordered scans instead of n point reads (each a
// round trip on a remote store such as RADOS).
class RecordReadAhead {
 public:
  explicit RecordReadAhead(PageStore* store) : store_(store) {}

  // The record of `version`, nullopt if it is not stored (released).
  absl::StatusOr<std::optional<std::string>> Get(uint64_t version) {
    if (version < begin_ || version >= end_) RETURN_IF_ERROR(Fill(version));
    auto it = records_.find(version);
    if (it == records_.end()) return std::nullopt;
    return std::move(it->second);
  }

 private:
  static constexpr size_t kBatch = 512;

  // Reads up to kBatch records from `version` on. Within [begin_, end_) a
  // missing record is released: records are only ever added after the
  // latest, so a later one starts a new read.
  absl::Status Fill(uint64_t version) {
    records_.clear();
    begin_ = version;
    end_ = version;
    absl::Status status;
    RETURN_IF_ERROR(store_->Scan(
        Space::kVersions, BigEndianKey(version),
        [&](std::string_view k, std::string_view bytes) {
          uint64_t v;
          if (!ParseBigEndianKey(k, &v)) {
            status = absl::DataLossError("corrupt version key");
            return false;
          }
          records_.emplace(v, std::string(bytes));
          end_ = v + 1;
          return records_.size() < kBatch;
        }));
    return status;
  }

  PageStore* const store_;
  uint64_t begin_ = 1;
  uint64_t end_ = 0;  // empty
  std::map<uint64_t, std::string> records_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<VersionStore>> VersionStore::Open(
    const Options& options, PageStore* store, NodeCache* cache,
    NodeSource* source) {
  ASSIGN_OR_RETURN(std::optional<std::string> meta_bytes,
                   store->Get(Space::kMeta, kMetaKey));
  MetaRecord meta;
  if (!meta_bytes && options.read_only) {
    return absl::NotFoundError("there is no database to open read-only");
  }
  if (!meta_bytes) {
    // A new database: version 0, the empty tree, is its first checkpoint.
    meta.page_size = options.page_size;
    meta.inline_limit = options.inline_value_limit;
    meta.hashed = options.verifiable;
    VersionRecord zero;
    zero.commit_micros = absl::ToUnixMicros(absl::Now());
    if (meta.hashed) {
      zero.hashed = true;
      zero.root.hash = EmptyTreeHash();
    }
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
    if (meta.format < kFirstHashedFormat) {
      // The shape of its trees so far came from the inline limit it was
      // opened with; from now on the one recorded here.
      meta.inline_limit = options.inline_value_limit;
      meta.hashed = false;
    }
    if (meta.format < kDatabaseFormatVersion && options.read_only) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database has format version ", meta.format,
          "; its writer must open it once to upgrade it before it can be "
          "opened read-only"));
    }
    if (meta.format < 2) {
      RETURN_IF_ERROR(UpgradeFromFormat1(*store, &meta));  // to the latest
    } else if (meta.format < kDatabaseFormatVersion) {
      RETURN_IF_ERROR(RewriteMeta(*store, &meta));
    }
  }
  using RootMap = std::map<uint64_t, Trees>;
  ASSIGN_OR_RETURN(RootMap checkpoints, ReadCheckpoints(*store, meta.hashed));
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
                   DecodeVersionRecord(*record, meta.checkpoint, meta.hashed));
  Version v;
  v.version = meta.checkpoint;
  v.root = cp->second.root;
  v.branches = cp->second.branches;
  v.commit_micros = latest.commit_micros;
  v.previous_digest = latest.previous_digest;
  v.digest = DigestOf(latest, meta.checkpoint);
  uint64_t floor = 0;
  ASSIGN_OR_RETURN(std::optional<std::string> floor_bytes,
                   store->Get(Space::kMeta, kFloorKey));
  if (floor_bytes) {
    ASSIGN_OR_RETURN(floor, DecodeVarint(*floor_bytes, "release floor"));
  }
  ASSIGN_OR_RETURN(auto tags, ReadTags(*store));
  std::unique_ptr<VersionStore> vs(new VersionStore(
      options, store, cache, source, meta, v, floor,
      std::move(tags), std::move(checkpoints)));
  RETURN_IF_ERROR(vs->Recover());
  return vs;
}

VersionStore::VersionStore(const Options& options, PageStore* store,
                           NodeCache* cache, NodeSource* source,
                           const MetaRecord& meta, const Version& latest,
                           uint64_t floor,
                           std::map<std::string, uint64_t> tags,
                           std::map<uint64_t, Trees> checkpoints)
    : options_(options),
      store_(store),
      cache_(cache),
      source_(source),
      page_size_(meta.page_size),
      inline_limit_(meta.inline_limit),
      hashed_(meta.hashed),
      set_(latest, floor, std::move(tags)),
      next_id_(meta.next_id) {
  MutexLock lock(&roots_mu_);
  checkpoints_ = std::move(checkpoints);
  last_checkpoint_ = latest.version;
  log_pos_[latest.version] = 0;  // log bytes count from here
  last_checkpoint_micros_ = absl::ToUnixMicros(absl::Now());
}

VersionStore::~VersionStore() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_wake_mu_);
    checkpointer_stopping_ = true;
  }
  checkpoint_cv_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  // A clean close checkpoints, so that the next open replays nothing. A
  // failure loses nothing: the log stays.
  if (checkpoint_on_close_ && !options_.read_only) Checkpoint().IgnoreError();
}

void VersionStore::StartCheckpointer() {
  if (options_.background_checkpoint && !checkpointer_.joinable()) {
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
  }
}

absl::Status VersionStore::Recover() {
  // The last checkpoint plus every log record after it, in version order.
  // Records at or before it are for rebuilding older versions.
  const uint64_t from = set_.latest()->version;
  uint64_t expected = from + 1;
  absl::Status status;
  RecordReadAhead records(store_);
  MutexLock lock(&write_mu_);
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
        std::shared_ptr<const Version> base = set_.latest();
        const Trees trees{base->root, base->branches};
        std::optional<TreeBuilder> builder;
        Root root;
        if (rec->branch.kind == BranchOp::kCommit) {
          absl::StatusOr<Root> tree = TreeOf(trees, rec->branch.branch, version - 1);
          if (!tree.ok()) {
            status = absl::DataLossError(std::string(tree.status().message()));
            return false;
          }
          builder.emplace(source_, *tree, version, page_size_, inline_limit_, hashed_);
          status = ApplyMutations(*builder, rec->ops);
          if (!status.ok()) return false;
          root = builder->Finish();
          if (hashed_) {
            absl::StatusOr<std::optional<std::string>> recorded = records.Get(version);
            status = recorded.ok()
                         ? CheckReplayedHash(version, root, rec->branch.branch, *recorded)
                         : recorded.status();
            if (!status.ok()) return false;
          }
        }
        absl::StatusOr<Trees> next = ApplyBranchOp(trees, version, rec->branch, root);
        if (!next.ok()) {
          status = next.status();
          return false;
        }
        PublishLocked(builder ? &*builder : nullptr, *std::move(next), rec->branch,
                      version, rec->commit_micros, bytes.size());
        ++expected;
        ++replayed_commits_;
        return true;
      }));
  return status;
}

absl::Status ApplyMutations(TreeBuilder& builder,
                            const std::vector<Mutation>& ops) {
  for (const Mutation& m : ops) {
    RETURN_IF_ERROR(m.is_delete ? builder.Delete(m.key)
                                : builder.Put(m.key, m.value, m.lease));
  }
  return absl::OkStatus();
}

TreeBuilder VersionStore::NewBuilder(const Root& base, uint64_t version) {
  return TreeBuilder(source_, base, version, page_size_, inline_limit_,
                     hashed_);
}

absl::Status VersionStore::CheckReplayedHash(
    uint64_t version, const Root& root, std::string_view branch,
    const std::optional<std::string>& bytes) {
  if (!hashed_) return absl::OkStatus();
  if (!bytes) return absl::OkStatus();  // released
  ASSIGN_OR_RETURN(VersionRecord recorded,
                   DecodeVersionRecord(*bytes, version, hashed_));
  const Hash& want = branch.empty() ? recorded.root.hash : recorded.branch_hash;
  if (recorded.branch != branch || want != root.hash) {
    return absl::DataLossError(absl::StrCat(
        "version ", version, " replayed to a tree whose hash (",
        HashToHex(root.hash), ") is not the one its commit recorded (",
        HashToHex(want), ")"));
  }
  return absl::OkStatus();
}

absl::Status VersionStore::CheckReplayedBranchHash(uint64_t version,
                                                   const VersionRecord& recorded,
                                                   const Trees& trees) {
  if (recorded.branch.empty()) return absl::OkStatus();
  auto it = trees.branches->find(recorded.branch);
  if (it == trees.branches->end() || it->second.created == version) {
    return absl::OkStatus();  // deleted, or created, at this version
  }
  if (it->second.root.hash != recorded.branch_hash) {
    return absl::DataLossError(absl::StrCat(
        "version ", version, " was rebuilt to a tree of branch \"", recorded.branch,
        "\" whose hash (", HashToHex(it->second.root.hash),
        ") is not the one its commit recorded (", HashToHex(recorded.branch_hash), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Root> VersionStore::TreeOf(const Trees& trees,
                                          std::string_view branch,
                                          uint64_t version) {
  if (branch.empty()) return trees.root;
  if (trees.branches) {
    auto it = trees.branches->find(branch);
    if (it != trees.branches->end()) return it->second.root;
  }
  return absl::NotFoundError(absl::StrCat("no branch named \"", std::string(branch),
                                          "\" at version ", version));
}

absl::StatusOr<VersionStore::Trees> VersionStore::ApplyBranchOp(
    const Trees& base, uint64_t version, const BranchOp& op, const Root& root) {
  Trees out = base;
  auto table = [&] {
    auto t = base.branches ? std::make_shared<BranchTable>(*base.branches)
                           : std::make_shared<BranchTable>();
    return t;
  };
  auto fail = [&](std::string_view why) {
    return absl::DataLossError(absl::StrCat("the log record of version ", version,
                                            " ", std::string(why)));
  };
  const std::string name(op.branch);
  switch (op.kind) {
    case BranchOp::kCommit: {
      if (name.empty()) {
        out.root = root;
        out.root.base = base.root.base;  // built on it: the same pages
        return out;
      }
      if (!base.branches || base.branches->count(name) == 0) {
        return fail(absl::StrCat("changes branch \"", name, "\", which does not exist"));
      }
      auto t = table();
      BranchHead& head = t->at(name);
      std::shared_ptr<const void> pages = head.root.base;
      head.root = root;
      head.root.base = std::move(pages);
      out.branches = std::move(t);
      return out;
    }
    case BranchOp::kFork: {
      if (base.branches && base.branches->count(name) != 0) {
        return fail(absl::StrCat("creates branch \"", name, "\", which exists"));
      }
      if (op.source_version + 1 != version) {
        return fail(absl::StrCat("forks from version ", op.source_version,
                                 ", which only its checkpoint can restore"));
      }
      absl::StatusOr<Root> source = TreeOf(base, op.source, version - 1);
      if (!source.ok()) return fail(std::string(source.status().message()));
      auto t = table();
      BranchHead& head = (*t)[name];
      head.root = *source;
      head.created = version;
      head.source_version = op.source_version;
      head.source = std::string(op.source);
      out.branches = std::move(t);
      return out;
    }
    case BranchOp::kDrop: {
      if (!base.branches || base.branches->count(name) == 0) {
        return fail(absl::StrCat("deletes branch \"", name, "\", which does not exist"));
      }
      auto t = table();
      t->erase(name);
      if (t->empty()) {
        out.branches = nullptr;
      } else {
        out.branches = std::move(t);
      }
      return out;
    }
  }
  return fail("has an unknown branch op");
}

void VersionStore::PublishLocked(TreeBuilder* builder, Trees trees,
                                 const BranchOp& op, uint64_t version,
                                 int64_t commit_micros, size_t log_bytes) {
  std::shared_ptr<const Version> base = set_.latest();
  Version v;
  v.version = version;
  v.root = trees.root;
  v.branches = trees.branches;
  v.commit_micros = commit_micros;
  if (hashed_) {
    // The chain covers main's tree (proofs are of main).
    v.previous_digest = base->digest;
    v.digest = ChainDigest(base->digest, version, v.root.hash, commit_micros);
  }
  if (op.kind == BranchOp::kDrop) {
    // What only it reached is freed at the next checkpoint.
    pending_dropped_.push_back(base->branches->at(std::string(op.branch)).root);
  }
  if (builder != nullptr) {
    std::vector<FreedItem> freed = builder->TakeFreed();
    pending_freed_.insert(pending_freed_.end(), std::make_move_iterator(freed.begin()),
                          std::make_move_iterator(freed.end()));
    unwritten_bytes_.fetch_add(builder->sealed_bytes(), std::memory_order_relaxed);
  }
  log_bytes_since_checkpoint_.fetch_add(log_bytes, std::memory_order_relaxed);
  log_bytes_.fetch_add(log_bytes, std::memory_order_relaxed);
  {
    MutexLock lock(&roots_mu_);
    recent_[version] = std::move(trees);
  }
  set_.Publish(v);
}

absl::StatusOr<uint64_t> VersionStore::CatchUp() {
  if (!options_.read_only) {
    return absl::FailedPreconditionError(
        "CatchUp is for read-only databases (replicas); this one writes");
  }
  RETURN_IF_ERROR(Recover());
  {
    std::lock_guard<std::mutex> published(published_mu_);  // no lost wake-ups
  }
  published_cv_.notify_all();  // watchers and reads waiting for versions
  // What the writer changed besides versions: tags, and the release floor
  // (so that a version it released reads as released here too).
  ASSIGN_OR_RETURN(auto tags, ReadTags(*store_));
  for (const auto& [name, version] : set_.tags()) {
    if (tags.count(name) == 0) set_.RemoveTag(name);
  }
  for (const auto& [name, version] : tags) set_.SetTag(name, version);
  ASSIGN_OR_RETURN(std::optional<std::string> floor_bytes,
                   store_->Get(Space::kMeta, kFloorKey));
  if (floor_bytes) {
    ASSIGN_OR_RETURN(uint64_t floor, DecodeVarint(*floor_bytes, "release floor"));
    set_.PlanRelease(floor);
  }
  return set_.latest()->version;
}

absl::Status VersionStore::CheckWritable() {
  if (options_.read_only) {
    return absl::FailedPreconditionError(
        "the database is open read-only (a replica): write to its writer");
  }
  if (write_error_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "writes are refused after a write of unknown outcome (",
      write_error_.message(), "); reopen the database"));
}

absl::StatusOr<uint64_t> VersionStore::Commit(
    TreeBuilder& builder, const std::vector<Mutation>& ops,
    std::string_view branch, const std::vector<TagWrite>& tags) {
  BranchOp op;
  op.branch = InternalBranchName(branch);
  return CommitLocked(&builder, op, ops, tags);
}

namespace {

absl::Status ValidateTagName(std::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("a tag name is 1 to 256 bytes, not ", name.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status VersionStore::AddTags(const std::vector<TagWrite>& tags, uint64_t version,
                                   StoreBatch* batch) {
  for (const TagWrite& t : tags) {
    RETURN_IF_ERROR(ValidateTagName(t.name));
    if (!t.version) {
      batch->Delete(Space::kTags, t.name);
    } else {
      batch->Put(Space::kTags, t.name,
                 EncodeVarint(*t.version == TagWrite::kThisCommit ? version : *t.version));
    }
  }
  return absl::OkStatus();
}

void VersionStore::ApplyTags(const std::vector<TagWrite>& tags, uint64_t version) {
  for (const TagWrite& t : tags) {
    if (!t.version) {
      set_.RemoveTag(t.name);
    } else {
      set_.SetTag(t.name, *t.version == TagWrite::kThisCommit ? version : *t.version);
    }
  }
}

absl::StatusOr<uint64_t> VersionStore::CommitLocked(
    TreeBuilder* builder, const BranchOp& op, const std::vector<Mutation>& ops,
    const std::vector<TagWrite>& tags) {
  RETURN_IF_ERROR(CheckWritable());
  std::shared_ptr<const Version> base = set_.latest();
  const uint64_t version = base->version + 1;
  // The commit's durable form: its log record (and its version record for
  // listings), in one write. No page is written here.
  // Commit times never go backwards, so VersionAt can search them.
  const int64_t micros =
      std::max(absl::ToUnixMicros(absl::Now()), base->commit_micros);
  std::string record = EncodeLogRecord(version, micros, op, ops);
  const size_t record_bytes = record.size();
  // Sealed (and hashed) before the write, so that the version record holds
  // the root hash; if the write fails the tree is dropped.
  Root root;
  if (builder != nullptr) root = builder->Finish();
  ASSIGN_OR_RETURN(Trees trees, ApplyBranchOp({base->root, base->branches},
                                              version, op, root));
  VersionRecord listing;  // for listings, time lookups and digests; no root
  listing.root.count = trees.root.count;
  listing.root.max_mod = trees.root.max_mod;
  listing.root.hash = trees.root.hash;
  listing.commit_micros = micros;
  listing.hashed = hashed_;
  listing.previous_digest = base->digest;
  listing.branch = std::string(op.branch);
  if (op.kind == BranchOp::kCommit && !op.branch.empty()) listing.branch_hash = root.hash;
  StoreBatch store_batch;
  store_batch.Put(Space::kLog, BigEndianKey(version), std::move(record));
  store_batch.Put(Space::kVersions, BigEndianKey(version),
                  EncodeVersionRecord(listing));
  RETURN_IF_ERROR(AddTags(tags, version, &store_batch));
  absl::Status s = store_->Commit(store_batch, options_.sync);
  if (!s.ok()) {
    write_error_ = s;
    return absl::UnknownError(absl::StrCat(
        "commit of version ", version,
        " has an unknown outcome: the storage write failed (", s.message(),
        "). It may or may not be durable; the database refuses writes "
        "until reopened"));
  }
  if (options_.sync) commit_syncs_.fetch_add(1, std::memory_order_relaxed);
  PublishLocked(builder, std::move(trees), op, version, micros, record_bytes);
  ApplyTags(tags, version);
  {
    std::lock_guard<std::mutex> published(published_mu_);  // no lost wake-ups
  }
  published_cv_.notify_all();
  if (CheckpointDue()) WakeCheckpointer();
  return version;
}

absl::StatusOr<std::optional<Version>> VersionStore::ReadRecord(
    uint64_t version, VersionRecord* raw) {
  ASSIGN_OR_RETURN(std::optional<std::string> record,
                   store_->Get(Space::kVersions, BigEndianKey(version)));
  if (!record) return std::nullopt;
  ASSIGN_OR_RETURN(VersionRecord r, DecodeVersionRecord(*record, version, hashed_));
  Version v;
  v.version = version;
  v.root = r.root;
  v.commit_micros = r.commit_micros;
  v.previous_digest = r.previous_digest;
  v.digest = DigestOf(r, version);
  if (raw != nullptr) *raw = std::move(r);
  return v;
}

absl::StatusOr<Version> VersionStore::AcquireRecord(uint64_t version, VersionRecord* raw) {
  // Pin first, so that the reclaimer keeps the version while we read it.
  RETURN_IF_ERROR(set_.AcquirePin(version));
  absl::StatusOr<std::optional<Version>> v = ReadRecord(version, raw);
  if (!v.ok() || !v->has_value()) {
    set_.ReleasePin(version);
    if (!v.ok()) return v.status();
    return absl::OutOfRangeError(absl::StrCat(
        "version ", version, " is no longer retained; the oldest retained "
        "version is ", set_.oldest_retained(), " and the latest is ",
        set_.latest()->version));
  }
  return **std::move(v);
}

absl::StatusOr<std::shared_ptr<const Version>> VersionStore::Pin(
    uint64_t version) {
  std::shared_ptr<const Version> latest = set_.latest();
  if (options_.read_only && version > latest->version) {
    // A replica may be about to catch up to it.
    WaitForVersionAfter(version - 1,
                        absl::Milliseconds(options_.read_only_wait_millis));
    latest = set_.latest();
  }
  if (version == latest->version) return latest;
  VersionRecord recorded;
  ASSIGN_OR_RETURN(Version v, AcquireRecord(version, &recorded));
  absl::StatusOr<Trees> trees = RootOf(version);
  if (trees.ok() && hashed_ && trees->root.hash != v.root.hash) {
    trees = absl::DataLossError(absl::StrCat(
        "version ", version, " was rebuilt to a tree whose hash (",
        HashToHex(trees->root.hash), ") is not the one its commit recorded (",
        HashToHex(v.root.hash), ")"));
  }
  if (trees.ok() && hashed_ && trees->branches != nullptr) {
    // A commit to another branch recorded that branch's root hash.
    absl::Status checked = CheckReplayedBranchHash(version, recorded, *trees);
    if (!checked.ok()) trees = checked;
  }
  if (!trees.ok()) {
    set_.ReleasePin(version);
    return trees.status();
  }
  v.root = std::move(trees->root);
  v.branches = std::move(trees->branches);
  return set_.AdoptPin(v);
}

absl::StatusOr<std::shared_ptr<const Version>> VersionStore::Pin(
    uint64_t version, std::string_view branch) {
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> v, Pin(version));
  return BranchView(std::move(v), branch);
}

bool VersionStore::Resident(uint64_t version) {
  if (version == set_.latest()->version) return true;
  MutexLock lock(&roots_mu_);
  return recent_.count(version) != 0 || checkpoints_.count(version) != 0 ||
         rebuilt_.count(version) != 0;
}

const VersionStore::KeyState& VersionStore::KeyStates::At(uint64_t v) const {
  // The last state since at or before v; states[0] holds from base on.
  auto it = std::upper_bound(
      states.begin() + 1, states.end(), v,
      [](uint64_t x, const KeyState& s) { return x < s.since; });
  return *std::prev(it);
}

absl::Status VersionStore::ReplayLog(
    uint64_t from, uint64_t to, const char* what,
    const std::function<absl::Status(uint64_t, const LogRecord&)>& fn) {
  uint64_t next = from + 1;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(
      Space::kLog, BigEndianKey(next), [&](std::string_view k, std::string_view bytes) {
        uint64_t v;
        if (!ParseBigEndianKey(k, &v) || v > to) return false;
        if (v != next) return false;  // a gap: reported below
        absl::StatusOr<LogRecord> rec = DecodeLogRecord(bytes, v);
        status = rec.ok() ? fn(v, *rec) : rec.status();
        if (!status.ok()) return false;
        ++next;
        return true;
      }));
  RETURN_IF_ERROR(status);
  if (next != to + 1) {
    return absl::DataLossError(absl::StrCat(what, " ", to, " failed: the log record of version ",
                                            next, " is missing"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VersionStore::KeyStates> VersionStore::ScanKeyStates(
    std::string_view key, uint64_t version) {
  // The pin keeps what the version needs from the reclaimer: its base
  // checkpoint's pages and the log records after that base up to it.
  std::shared_ptr<const Version> pinned = set_.latest();
  if (version != pinned->version) {
    ASSIGN_OR_RETURN(Version v, AcquireRecord(version));
    v.root = Root();  // no tree: only the pin is wanted
    pinned = set_.AdoptPin(v);
  }
  KeyStates out;
  out.to = version;
  Root base;  // holding it keeps the checkpoint from being thinned
  {
    MutexLock lock(&roots_mu_);
    auto cp = checkpoints_.upper_bound(version);
    if (cp == checkpoints_.begin()) {
      return absl::DataLossError(absl::StrCat(
          "no checkpoint at or before version ", version, " is on record"));
    }
    --cp;
    out.base = cp->first;
    base = cp->second.root;
  }
  KeyState at_base;
  ASSIGN_OR_RETURN(at_base.present,
                   TreeRead(*source_, base, key, &at_base.value, &at_base.meta,
                            &at_base.since));
  out.states.push_back(std::move(at_base));
  if (version == out.base) return out;
  // The key's mutations, replayed as TreeBuilder applies them: a put of a
  // present key keeps its create_version and counts one more write; a put
  // of an absent key (never written, or deleted, even earlier in the same
  // record) starts over; the lease comes with the put; deleting an absent
  // key changes nothing. Only the state after a whole record is a version's.
  KeyState now = out.states.front();
  RETURN_IF_ERROR(ReplayLog(
      out.base, version, "the history of version",
      [&](uint64_t v, const LogRecord& rec) -> absl::Status {
        // Main's history: other branches' records change other trees.
        if (rec.branch.kind != BranchOp::kCommit || !rec.branch.branch.empty()) {
          return absl::OkStatus();
        }
        const bool was_present = now.present;
        bool put = false;
        for (const Mutation& m : rec.ops) {
          if (m.key != key) continue;
          if (m.is_delete) {
            now.present = false;
            continue;
          }
          put = true;
          if (now.present) {
            ++now.meta.writes;
          } else {
            now.meta.create_version = v;
            now.meta.writes = 1;
          }
          now.meta.mod_version = v;
          now.meta.lease = m.lease;
          now.value.assign(m.value);
          now.present = true;
        }
        if ((put && now.present) || (was_present && !now.present)) {
          now.since = v;
          if (!now.present) {
            now.value.clear();
            now.meta = EntryMeta{};
          }
          out.states.push_back(now);
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<VersionStore::Trees> VersionStore::RootOf(uint64_t version) {
  {
    MutexLock lock(&roots_mu_);
    for (const auto* roots : {&recent_, &checkpoints_, &rebuilt_}) {
      auto it = roots->find(version);
      if (it != roots->end()) return it->second;
    }
  }
  return Rebuild(version);
}

absl::StatusOr<VersionStore::Trees> VersionStore::Rebuild(uint64_t version) {
  // The checkpoint at or before `version` plus the log records after it,
  // replayed in memory; a version rebuilt earlier in between saves replay.
  // Only stored and rebuilt trees are started from: the nodes of the
  // versions held since their commit may be planned by a checkpoint
  // meanwhile, and a TreeBuilder must not read them then.
  MutexLock one(&rebuild_mu_);
  uint64_t from;
  Trees root;
  uint64_t held_bytes = 0;  // sealed while replaying: bounds the tree's
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
      held_bytes = rebuilt_bytes_[from];  // its nodes are this one's too
    }
  }
  RETURN_IF_ERROR(ReplayLog(
      from, version, "the rebuild of version",
      [&](uint64_t v, const LogRecord& rec) -> absl::Status {
        Root changed;
        if (rec.branch.kind == BranchOp::kCommit) {
          absl::StatusOr<Root> tree = TreeOf(root, rec.branch.branch, v - 1);
          if (!tree.ok()) return absl::DataLossError(std::string(tree.status().message()));
          TreeBuilder builder = NewBuilder(*tree, v);
          RETURN_IF_ERROR(ApplyMutations(builder, rec.ops));
          changed = builder.Finish();
          held_bytes += builder.sealed_bytes();
        }
        ASSIGN_OR_RETURN(root, ApplyBranchOp(root, v, rec.branch, changed));
        return absl::OkStatus();
      }));
  rebuilds_.fetch_add(1, std::memory_order_relaxed);
  // Cached within a byte budget (the memory checkpoint trigger's, at
  // least one tree): a rebuilt tree holds every node changed since its
  // checkpoint.
  const uint64_t budget = std::max<uint64_t>(options_.checkpoint_memory_bytes,
                                             16 << 20);
  MutexLock lock(&roots_mu_);
  rebuilt_[version] = root;
  rebuilt_bytes_[version] = held_bytes;
  uint64_t total = 0;
  for (const auto& [v, b] : rebuilt_bytes_) total += b;
  while (total > budget && rebuilt_.size() > 1) {
    // Drop the one farthest from this version.
    auto first = rebuilt_bytes_.begin();
    auto last = std::prev(rebuilt_bytes_.end());
    auto drop = version - first->first > last->first - version ? first : last;
    if (drop->first == version) drop = drop == first ? last : first;
    total -= drop->second;
    rebuilt_.erase(drop->first);
    rebuilt_bytes_.erase(drop);
  }
  return root;
}

absl::StatusOr<std::shared_ptr<const Version>> VersionStore::PinAtOrAfter(
    uint64_t version) {
  for (;;) {
    absl::StatusOr<std::shared_ptr<const Version>> v = Pin(version);
    if (!absl::IsOutOfRange(v.status())) return v;
    // Released: try the next version still retained (pinned or tagged
    // below the floor, or the floor). Versions only get released, so this
    // ends.
    version = std::max(version + 1, set_.NextRetained(version + 1));
  }
}

bool VersionStore::WaitForVersionAfter(uint64_t version,
                                       absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(published_mu_);
  return published_cv_.wait_for(
      lock, absl::ToChronoNanoseconds(std::max(timeout, absl::ZeroDuration())),
      [&] { return set_.latest()->version > version; });
}

absl::StatusOr<std::vector<VersionInfo>> VersionStore::ListVersions() {
  std::vector<VersionInfo> out;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(Space::kVersions, "", [&](std::string_view k,
                                                         std::string_view val) {
    uint64_t v;
    if (!ParseBigEndianKey(k, &v)) {
      status = absl::DataLossError("corrupt version key");
      return false;
    }
    if (!set_.CheckRetained(v).ok()) return true;  // released
    absl::StatusOr<VersionRecord> r = DecodeVersionRecord(val, v, hashed_);
    if (!r.ok()) {
      status = r.status();
      return false;
    }
    out.push_back({v, r->commit_micros, r->root.count,
                   r->branch.empty() ? std::string("main") : r->branch});
    return true;
  }));
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<uint64_t> VersionStore::VersionAt(int64_t unix_micros) {
  // Commit times ascend with versions: binary search the retained window.
  std::shared_ptr<const Version> latest = set_.latest();
  if (unix_micros >= latest->commit_micros) return latest->version;
  uint64_t lo = set_.floor(), hi = latest->version;  // answer in [lo, hi)
  ASSIGN_OR_RETURN(std::optional<Version> first, ReadRecord(lo));
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
        set_.oldest_retained()));
  }
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(std::optional<Version> m, ReadRecord(mid));
    if (!m) return absl::DataLossError(absl::StrCat("missing record of version ", mid));
    if (m->commit_micros <= unix_micros) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

absl::Status VersionStore::Tag(std::string_view name, uint64_t version) {
  RETURN_IF_ERROR(ValidateTagName(name));
  // The pin keeps the version from being released while the tag is written.
  ASSIGN_OR_RETURN(std::shared_ptr<const Version> pinned, Pin(version));
  StoreBatch batch;
  batch.Put(Space::kTags, std::string(name), EncodeVarint(version));
  RETURN_IF_ERROR(store_->Commit(batch, /*sync=*/true));
  set_.SetTag(std::string(name), version);
  return absl::OkStatus();
}

absl::Status VersionStore::Untag(std::string_view name) {
  RETURN_IF_ERROR(ValidateTagName(name));
  std::map<std::string, uint64_t> tags = set_.tags();
  if (tags.count(std::string(name)) == 0) {
    return absl::NotFoundError(absl::StrCat("no tag named \"", std::string(name), "\""));
  }
  StoreBatch batch;
  batch.Delete(Space::kTags, std::string(name));
  RETURN_IF_ERROR(store_->Commit(batch, /*sync=*/true));
  set_.RemoveTag(std::string(name));
  return absl::OkStatus();
}

VersionStore::TreesPlan VersionStore::PlanTrees(const Version& v) {
  // Every branch's tree; nodes they share are planned (and written) once.
  TreesPlan plan;
  plan.main = PlanCheckpoint(v.root, &next_id_);
  if (v.branches) {
    for (const auto& [name, head] : *v.branches) {
      plan.branches.emplace_back(name, PlanCheckpoint(head.root, &next_id_));
    }
  }
  plan.next_id = next_id_;
  plan.log_pos = log_bytes_.load(std::memory_order_relaxed);
  unwritten_bytes_.store(0, std::memory_order_relaxed);
  log_bytes_since_checkpoint_.store(0, std::memory_order_relaxed);
  return plan;
}

VersionStore::Trees VersionStore::EncodeTrees(const Version& v, const TreesPlan& plan,
                                              const std::vector<FreedItem>& freed,
                                              StoreBatch* batch) {
  const uint64_t c = v.version;
  EncodeCheckpoint(plan.main, batch);
  for (const auto& [name, p] : plan.branches) EncodeCheckpoint(p, batch);
  // What the commits since the last checkpoint freed dies with this one.
  if (!freed.empty()) batch->Put(Space::kFreed, BigEndianKey(c), EncodeFreed(freed));
  auto stored_root = [&](const CheckpointPlan& p, const Root& held) {
    return Root{p.root.page_id, p.root.count, p.root.max_mod, held.hash, nullptr, nullptr};
  };
  VersionRecord record;
  record.root = stored_root(plan.main, v.root);
  record.commit_micros = v.commit_micros;
  record.hashed = hashed_;
  record.previous_digest = v.previous_digest;
  for (const auto& [name, p] : plan.branches) {
    const BranchHead& head = v.branches->at(name);
    record.table.push_back(
        {name, stored_root(p, head.root), head.created, head.source_version, head.source});
  }
  batch->Put(Space::kCheckpoints, BigEndianKey(c), EncodeVersionRecord(record));
  MetaRecord meta;
  meta.checkpoint = c;
  meta.next_id = plan.next_id;
  meta.page_size = page_size_;
  meta.inline_limit = inline_limit_;
  meta.hashed = hashed_;
  batch->Put(Space::kMeta, kMetaKey, EncodeMeta(meta));
  return TreesOf(record, c);
}

absl::Status VersionStore::CheckpointFailed(uint64_t c, const absl::Status& s) {
  write_error_ = s;
  return absl::UnknownError(absl::StrCat(
      "checkpoint of version ", c, " failed (", s.message(),
      "); nothing committed is lost, but writes are refused until the "
      "database is reopened"));
}

void VersionStore::Released(uint64_t c, const Trees& stored, const TreesPlan& plan) {
  // Let go of what it wrote: the held trees reach written nodes by page
  // id from now on, through the cache (see Releaser). No commit runs
  // meanwhile.
  Releaser releaser(cache_);
  auto release = [&](const Trees& t) {
    Trees out;
    out.root = releaser.Release(t.root);
    out.root.base = stored.root.base;
    if (t.branches) {
      auto table = std::make_shared<BranchTable>(*t.branches);
      for (auto& [name, head] : *table) {
        head.root = releaser.Release(head.root);
        head.root.base = stored.root.base;
      }
      out.branches = std::move(table);
    }
    return out;
  };
  std::shared_ptr<const Version> now = set_.latest();
  Version v = *now;
  Trees released = release({now->root, now->branches});
  v.root = std::move(released.root);
  v.branches = std::move(released.branches);
  {
    MutexLock roots(&roots_mu_);
    checkpoints_[c] = stored;
    log_pos_[c] = plan.log_pos;
    last_checkpoint_ = c;
    recent_.erase(recent_.begin(), recent_.upper_bound(c));
    for (auto& [version, trees] : recent_) trees = release(trees);
  }
  set_.ReplaceLatest(v);
  last_checkpoint_micros_.store(absl::ToUnixMicros(absl::Now()));
  checkpoints_written_.fetch_add(1, std::memory_order_relaxed);
  size_t pages = plan.main.nodes.size();
  uint64_t blobs = plan.main.blobs;
  for (const auto& [name, p] : plan.branches) {
    pages += p.nodes.size();
    blobs += p.blobs;
  }
  pages_written_.fetch_add(pages, std::memory_order_relaxed);
  blobs_written_.fetch_add(blobs, std::memory_order_relaxed);
}

absl::StatusOr<std::vector<FreedItem>> VersionStore::DyingAt(
    const Version& v, std::vector<FreedItem> freed, const std::vector<Root>& dropped) {
  if (v.branches == nullptr && dropped.empty()) return freed;  // one tree
  // With branches, what one branch's commit let go may still be another's:
  // a page or blob dies with the first checkpoint no branch reaches it at.
  std::vector<Root> heads = {v.root};
  if (v.branches) {
    for (const auto& [name, head] : *v.branches) heads.push_back(head.root);
  }
  return Unreached(std::move(freed), dropped, heads);
}

absl::Status VersionStore::Checkpoint() {
  if (options_.read_only) {
    return absl::FailedPreconditionError(
        "the database is open read-only (a replica): its writer checkpoints");
  }
  MutexLock one(&checkpoint_mu_);
  std::shared_ptr<const Version> latest;
  TreesPlan plan;
  std::vector<FreedItem> freed;
  std::vector<Root> dropped;
  {
    // Planning gives the unwritten nodes their ids; no commit runs
    // meanwhile. Everything after it runs beside commits and readers.
    MutexLock lock(&write_mu_);
    if (!write_error_.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no checkpoint after a write of unknown outcome (",
          write_error_.message(), "); reopen the database"));
    }
    latest = set_.latest();
    {
      MutexLock roots(&roots_mu_);
      if (latest->version == last_checkpoint_) return absl::OkStatus();
    }
    plan = PlanTrees(*latest);
    freed.swap(pending_freed_);
    dropped.swap(pending_dropped_);
  }
  const uint64_t c = latest->version;
  // The planned ids are in the nodes now: from here, a failure must leave
  // writes refused until a reopen recovers from the last good checkpoint
  // and the log (which has every commit).
  absl::StatusOr<std::vector<FreedItem>> dying =
      DyingAt(*latest, std::move(freed), dropped);
  if (!dying.ok()) {
    MutexLock lock(&write_mu_);
    return CheckpointFailed(c, dying.status());
  }
  StoreBatch batch;
  const Trees stored = EncodeTrees(*latest, plan, *dying, &batch);
  absl::Status s = store_->Commit(batch, /*sync=*/true);
  MutexLock lock(&write_mu_);
  if (!s.ok()) return CheckpointFailed(c, s);
  Released(c, stored, plan);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> VersionStore::ForkOlder(const BranchOp& op, const Root& tree,
                                                 const std::vector<TagWrite>& tags) {
  // The fork's version is a checkpoint written with its log record: the
  // new branch's tree (an older one, which no log record after the last
  // checkpoint can rebuild) is stored before anything is based on it, so
  // no replay ever meets this record.
  MutexLock one(&checkpoint_mu_);
  // Its stored pages come back to life: a freed record after the source's
  // checkpoint may list them (a page is listed once, at its death; it
  // dies again later). The source's pin keeps them until then. Only
  // checkpoints add freed records (excluded above) and only the reclaimer
  // rewrites them (excluded here), so commits go on meanwhile.
  MutexLock freed_lock(&freed_mu_);
  uint64_t source_base = 0;
  {
    MutexLock roots(&roots_mu_);
    auto cp = checkpoints_.upper_bound(op.source_version);
    if (cp != checkpoints_.begin()) source_base = std::prev(cp)->first;
  }
  StoreBatch batch;
  absl::Status status;
  RETURN_IF_ERROR(store_->Scan(
      Space::kFreed, BigEndianKey(source_base + 1),
      [&](std::string_view k, std::string_view val) {
        uint64_t death;
        if (!ParseBigEndianKey(k, &death)) return false;
        absl::StatusOr<std::vector<FreedItem>> items = DecodeFreed(val, death);
        if (!items.ok()) {
          status = items.status();
          return false;
        }
        std::vector<FreedItem> still_dead;
        for (FreedItem& item : *items) {
          absl::StatusOr<bool> back = TreeReaches(*source_, tree, item);
          if (!back.ok()) {
            status = back.status();
            return false;
          }
          if (!*back) still_dead.push_back(std::move(item));
        }
        if (still_dead.empty()) {
          batch.Delete(Space::kFreed, std::string(k));
        } else if (still_dead.size() != items->size()) {
          batch.Put(Space::kFreed, std::string(k), EncodeFreed(still_dead));
        }
        return true;
      }));
  RETURN_IF_ERROR(status);

  // The version: the table with the new branch, and its checkpoint. Commits
  // wait from here to its publication, as for any commit.
  MutexLock lock(&write_mu_);
  RETURN_IF_ERROR(CheckWritable());
  std::shared_ptr<const Version> base = set_.latest();
  if (base->branches && base->branches->count(op.branch) != 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("a branch named \"", std::string(op.branch), "\" exists"));
  }
  const uint64_t version = base->version + 1;
  const int64_t micros = std::max(absl::ToUnixMicros(absl::Now()), base->commit_micros);
  Trees trees{base->root, base->branches};
  auto table = trees.branches ? std::make_shared<BranchTable>(*trees.branches)
                              : std::make_shared<BranchTable>();
  BranchHead& head = (*table)[std::string(op.branch)];
  head.root = tree;
  head.created = version;
  head.source_version = op.source_version;
  head.source = std::string(op.source);
  trees.branches = std::move(table);
  Version v;
  v.version = version;
  v.root = trees.root;
  v.branches = trees.branches;
  v.commit_micros = micros;
  if (hashed_) v.previous_digest = base->digest;
  TreesPlan plan = PlanTrees(v);
  std::vector<FreedItem> freed;
  std::vector<Root> dropped;
  freed.swap(pending_freed_);
  dropped.swap(pending_dropped_);
  // (The analysis cannot see that the lambda runs under `lock`.)
  auto fail = [&](const absl::Status& s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::Status failed = CheckpointFailed(version, s);
    return absl::Status(failed.code(), absl::StrCat("the fork of branch \"",
                                                    std::string(op.branch), "\": ",
                                                    failed.message()));
  };
  absl::StatusOr<std::vector<FreedItem>> dying = DyingAt(v, std::move(freed), dropped);
  if (!dying.ok()) return fail(dying.status());
  std::string record = EncodeLogRecord(version, micros, op, {});
  const size_t record_bytes = record.size();
  batch.Put(Space::kLog, BigEndianKey(version), std::move(record));
  VersionRecord listing;
  listing.root = {0, v.root.count, v.root.max_mod, v.root.hash, nullptr, nullptr};
  listing.commit_micros = micros;
  listing.hashed = hashed_;
  listing.previous_digest = base->digest;
  listing.branch = std::string(op.branch);
  batch.Put(Space::kVersions, BigEndianKey(version), EncodeVersionRecord(listing));
  const Trees stored = EncodeTrees(v, plan, *dying, &batch);
  if (absl::Status s = AddTags(tags, version, &batch); !s.ok()) return fail(s);
  if (absl::Status s = store_->Commit(batch, /*sync=*/true); !s.ok()) return fail(s);
  PublishLocked(nullptr, std::move(trees), op, version, micros, record_bytes);
  Released(version, stored, plan);
  ApplyTags(tags, version);
  {
    MutexLock roots(&roots_mu_);
    unthinned_.insert(version);  // a replay across it cannot restore the tree
  }
  {
    std::lock_guard<std::mutex> published(published_mu_);
  }
  published_cv_.notify_all();
  return version;
}

absl::StatusOr<std::vector<FreedItem>> VersionStore::Unreached(
    std::vector<FreedItem> freed, const std::vector<Root>& dropped,
    const std::vector<Root>& heads) {
  auto reached = [&](const FreedItem& item) -> absl::StatusOr<bool> {
    for (const Root& head : heads) {
      ASSIGN_OR_RETURN(bool r, TreeReaches(*source_, head, item));
      if (r) return true;
    }
    return false;
  };
  std::vector<FreedItem> out;
  std::set<std::pair<int, uint64_t>> listed;
  for (FreedItem& item : freed) {
    ASSIGN_OR_RETURN(bool r, reached(item));
    if (r || !listed.emplace(item.kind, item.id).second) continue;
    out.push_back(std::move(item));
  }
  // A dropped branch's tree, down to what a head shares (its whole
  // subtree then is the head's too).
  std::function<absl::Status(const NodeRef&, uint64_t)> walk =
      [&](const NodeRef& n, uint64_t id) -> absl::Status {
    if (id != 0) {  // stored (or planned): a page that may die here
      FreedItem item{FreedItem::kPage, id, n->birth};
      SetProbe(*n, &item);
      if (listed.count({item.kind, id}) != 0) return absl::OkStatus();
      ASSIGN_OR_RETURN(bool r, reached(item));
      if (r) return absl::OkStatus();
      listed.emplace(item.kind, id);
      out.push_back(std::move(item));
    }
    if (n->is_leaf()) {
      for (size_t i = 0; i < n->entries.size(); ++i) {
        const LeafEntry& e = n->entries[i];
        uint64_t blob = e.value.is_blob() ? e.value.blob_id : 0;
        if (blob == 0 && i < n->assigned_blob_ids.size()) blob = n->assigned_blob_ids[i];
        if (blob == 0 || listed.count({FreedItem::kBlob, blob}) != 0) continue;
        FreedItem item{FreedItem::kBlob, blob, e.mod_version};
        item.key.assign(e.key);
        ASSIGN_OR_RETURN(bool r, reached(item));
        if (r) continue;
        listed.emplace(FreedItem::kBlob, blob);
        out.push_back(std::move(item));
      }
      return absl::OkStatus();
    }
    for (size_t i = 0; i < n->children.size(); ++i) {
      const ChildRef& c = n->children[i];
      const uint64_t child_id = c.mem ? c.mem->written_id.get() : c.page_id;
      ASSIGN_OR_RETURN(NodeRef child, source_->LoadChild(*n, i));
      RETURN_IF_ERROR(walk(child, child_id));
    }
    return absl::OkStatus();
  };
  for (const Root& root : dropped) {
    if (root.empty()) continue;
    ASSIGN_OR_RETURN(NodeRef node, source_->LoadRoot(root));
    RETURN_IF_ERROR(walk(node, root.page_id != 0 ? root.page_id
                                                 : node->written_id.get()));
  }
  return out;
}

namespace {

// Names fit in a tag name with another (DB::Merge's bookkeeping), a
// command line and a URL: 1 to 100 of [A-Za-z0-9._/-].
absl::Status ValidateBranchName(std::string_view name) {
  if (name.empty() || name.size() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("a branch name is 1 to 100 bytes, not ", name.size()));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '/' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "a branch name is made of letters, digits and . _ / -; \"",
          absl::CEscape(std::string(name)), "\" is not"));
    }
  }
  if (name == "main") {
    return absl::InvalidArgumentError("the branch \"main\" always exists");
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// A copy of the held nodes of `n` that no checkpoint wrote (written ones
// are referenced as they are): a tree a fork can give page ids to without
// touching nodes other trees share (a rebuilt tree in the cache, which
// rebuilds start from).
NodeRef CopyUnwritten(const NodeRef& n) {
  if (n->written_id.get() != 0) return n;
  auto copy = std::make_shared<Node>(*n);  // views into n's shared buffers
  copy->assigned_blob_ids.clear();
  for (ChildRef& c : copy->children) {
    if (c.mem) c.mem = CopyUnwritten(c.mem);
  }
  // Links of its own: they cache the children it reaches by id.
  if (copy->links) copy->links = std::make_shared<ChildLinks>(copy->children.size());
  return copy;
}

}  // namespace

absl::StatusOr<uint64_t> VersionStore::Fork(std::string_view name,
                                            std::string_view source,
                                            std::optional<uint64_t> source_version,
                                            const std::vector<TagWrite>& tags) {
  RETURN_IF_ERROR(ValidateBranchName(name));
  source = InternalBranchName(source);
  auto source_name = [&] { return source.empty() ? std::string("main") : std::string(source); };
  // The source's tree at source_version, pinned meanwhile.
  std::shared_ptr<const Version> from;
  if (source_version) {
    ASSIGN_OR_RETURN(from, Pin(*source_version, source));
  }
  BranchOp op;
  op.kind = BranchOp::kFork;
  op.branch = name;
  op.source = source;
  {
    MutexLock lock(&write_mu_);
    std::shared_ptr<const Version> latest = set_.latest();
    if (latest->branches && latest->branches->count(name) != 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("a branch named \"", std::string(name), "\" exists"));
    }
    // A tree equal to the source's latest is that tree: the fork shares it
    // and is a log record (O(1)). An older one (or one of a branch deleted
    // since) is stored with the fork: ForkOlder.
    absl::StatusOr<std::shared_ptr<const Version>> head = BranchView(latest, source);
    if (!source_version && !head.ok()) {
      return absl::NotFoundError(absl::StrCat("no branch named \"", source_name(), "\""));
    }
    bool same = !source_version;
    if (source_version && head.ok() && (*head)->branch_created == from->branch_created) {
      const Root& a = from->root;
      const Root& b = (*head)->root;
      same = from->version == latest->version ||
             (hashed_ ? a.hash == b.hash && a.count == b.count
                      : (a.node != nullptr ? a.node == b.node
                                           : a.page_id == b.page_id && a.page_id != 0) ||
                            (a.empty() && b.empty()));
    }
    if (same) {
      op.source_version = latest->version;
      return CommitLocked(nullptr, op, {}, tags);
    }
  }
  op.source_version = *source_version;
  Root tree = from->root;
  if (tree.page_id == 0 && tree.node != nullptr) tree.node = CopyUnwritten(tree.node);
  return ForkOlder(op, tree, tags);
}

absl::StatusOr<uint64_t> VersionStore::DropBranch(std::string_view name,
                                                  const std::vector<TagWrite>& tags) {
  if (InternalBranchName(name).empty()) {
    return absl::InvalidArgumentError("the branch \"main\" cannot be deleted");
  }
  MutexLock lock(&write_mu_);
  std::shared_ptr<const Version> latest = set_.latest();
  if (!latest->branches || latest->branches->count(name) == 0) {
    return absl::NotFoundError(absl::StrCat("no branch named \"", std::string(name), "\""));
  }
  BranchOp op;
  op.kind = BranchOp::kDrop;
  op.branch = name;
  return CommitLocked(nullptr, op, {}, tags);
}

VersionStore::HeldCount VersionStore::HeldNodesOfLatest() {
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
  std::shared_ptr<const Version> latest = set_.latest();
  if (latest->root.page_id == 0 && latest->root.node) visit(latest->root.node);
  return count;
}

bool VersionStore::CheckpointDue() const {
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

void VersionStore::WakeCheckpointer() {
  if (!options_.background_checkpoint) return;
  {
    std::lock_guard<std::mutex> lock(checkpoint_wake_mu_);
    checkpoint_requested_ = true;
  }
  checkpoint_cv_.notify_one();
}

void VersionStore::CheckpointLoop() {
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

std::optional<VersionStore::Trees> VersionStore::CheckpointRoot(uint64_t version) {
  MutexLock lock(&roots_mu_);
  auto it = checkpoints_.find(version);
  if (it == checkpoints_.end()) return std::nullopt;
  return it->second;
}

std::map<uint64_t, Root> VersionStore::Checkpoints() {
  MutexLock lock(&roots_mu_);
  std::map<uint64_t, Root> out;
  for (const auto& [c, trees] : checkpoints_) out.emplace(c, trees.root);
  return out;
}

std::map<uint64_t, VersionStore::Trees> VersionStore::CheckpointTrees() {
  MutexLock lock(&roots_mu_);
  return checkpoints_;
}

void VersionStore::DropCheckpoints(const std::vector<uint64_t>& versions) {
  MutexLock lock(&roots_mu_);
  for (uint64_t v : versions) {
    checkpoints_.erase(v);
    log_pos_.erase(v);
  }
}

std::vector<uint64_t> VersionStore::ThinCheckpoints(uint64_t from,
                                                    uint64_t spacing) {
  std::vector<uint64_t> dropped;
  MutexLock lock(&roots_mu_);
  auto pos = [&](uint64_t c)
                 ABSL_NO_THREAD_SAFETY_ANALYSIS -> std::optional<uint64_t> {
    auto it = log_pos_.find(c);
    if (it == log_pos_.end()) return std::nullopt;
    return it->second;
  };
  std::optional<uint64_t> kept = pos(from);
  for (auto it = checkpoints_.upper_bound(from);
       it != checkpoints_.end() && it->first < last_checkpoint_;) {
    const uint64_t c = it->first;
    std::optional<uint64_t> p = pos(c);
    // Unused: only this map holds the checkpoint's use (no tree reads its
    // pages, and none can start to: new uses are taken under roots_mu_).
    // (The branches' roots in the map share the checkpoint's use.)
    const Trees& t = it->second;
    const bool unused = t.root.base.use_count() ==
                        1 + static_cast<long>(t.branches ? t.branches->size() : 0);
    if (kept && p && *p - *kept < spacing && unused && unthinned_.count(c) == 0) {
      dropped.push_back(c);
      log_pos_.erase(c);
      it = checkpoints_.erase(it);
    } else {
      kept = p;
      ++it;
    }
  }
  return dropped;
}

VersionStore::Stats VersionStore::GetStats() {
  Stats s;
  s.log_bytes = log_bytes_.load(std::memory_order_relaxed);
  s.checkpoints = checkpoints_written_.load(std::memory_order_relaxed);
  s.unwritten_bytes = unwritten_bytes_.load(std::memory_order_relaxed);
  s.pages_written = pages_written_.load(std::memory_order_relaxed);
  s.blobs_written = blobs_written_.load(std::memory_order_relaxed);
  s.replayed_commits = replayed_commits_;
  s.commit_syncs = commit_syncs_.load(std::memory_order_relaxed);
  s.rebuilds = rebuilds_.load(std::memory_order_relaxed);
  MutexLock lock(&roots_mu_);
  s.checkpoint_version = last_checkpoint_;
  return s;
}

}  // namespace cowdb::internal
