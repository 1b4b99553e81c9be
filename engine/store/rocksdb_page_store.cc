#include "engine/store/rocksdb_page_store.h"

#include <sys/stat.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/util/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace cowdb::internal {
namespace {

constexpr char kMarkerFile[] = "COWDB";

// Column family names, indexed by Space. Persisted; DO NOT CHANGE.
const char* const kSpaceNames[kNumSpaces] = {
    "default", "pages", "blobs", "versions",
    "freed",   "tags",  "log",   "checkpoints", "system"};

// The one place where rocksdb::Status becomes absl::Status.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kNotSupported:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(msg);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(msg);
    default:  // kIOError, kIncomplete, kShutdownInProgress, ...
      return absl::InternalError(msg);
  }
}

// The marker is written and read through RocksDB's FileSystem (the one of
// RocksDBStoreOptions::env), so that fault-injection tests see its I/O too.

// The directory that holds `path`.
std::string ParentDirectory(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Returns true if `path` is a directory with no entries, or with nothing
// but the temporary marker of a creation that was interrupted (a crash or
// an I/O error between creating COWDB.tmp and renaming it): creation can
// start over.
absl::StatusOr<bool> IsEmptyDirectory(rocksdb::FileSystem& fs,
                                      const std::string& path) {
  std::vector<std::string> children;
  RETURN_IF_ERROR(FromRocks(
      fs.GetChildren(path, rocksdb::IOOptions(), &children, nullptr),
      absl::StrCat("list ", path)));
  const std::string tmp_marker = absl::StrCat(kMarkerFile, ".tmp");
  for (const std::string& child : children) {
    if (child != "." && child != ".." && child != tmp_marker) return false;
  }
  return true;
}

// Makes the entries of directory `dir` durable (created, renamed or deleted
// files).
absl::Status SyncDirectory(rocksdb::FileSystem& fs, const std::string& dir) {
  std::unique_ptr<rocksdb::FSDirectory> d;
  RETURN_IF_ERROR(FromRocks(
      fs.NewDirectory(dir, rocksdb::IOOptions(), &d, nullptr),
      absl::StrCat("open directory ", dir)));
  RETURN_IF_ERROR(FromRocks(d->Fsync(rocksdb::IOOptions(), nullptr),
                            absl::StrCat("sync directory ", dir)));
  return FromRocks(d->Close(rocksdb::IOOptions(), nullptr),
                   absl::StrCat("close directory ", dir));
}

// Writes `content` to a new file at `path` and syncs it.
absl::Status WriteSyncedFile(rocksdb::FileSystem& fs, const std::string& path,
                             absl::string_view content) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  RETURN_IF_ERROR(FromRocks(
      fs.NewWritableFile(path, rocksdb::FileOptions(), &file, nullptr),
      absl::StrCat("create ", path)));
  rocksdb::IOOptions io;
  absl::Status s = FromRocks(
      file->Append(rocksdb::Slice(content.data(), content.size()), io,
                   nullptr),
      absl::StrCat("write ", path));
  if (s.ok()) s = FromRocks(file->Fsync(io, nullptr), absl::StrCat("sync ", path));
  absl::Status closed =
      FromRocks(file->Close(io, nullptr), absl::StrCat("close ", path));
  return s.ok() ? closed : s;
}

// Writes the marker durably: temp file, fsync, rename, fsync directory.
absl::Status WriteMarker(rocksdb::FileSystem& fs, const std::string& dir) {
  std::string tmp = absl::StrCat(dir, "/", kMarkerFile, ".tmp");
  std::string final_path = absl::StrCat(dir, "/", kMarkerFile);
  RETURN_IF_ERROR(WriteSyncedFile(
      fs, tmp, absl::StrCat("cowdb ", kStoreLayoutVersion, "\n")));
  RETURN_IF_ERROR(FromRocks(
      fs.RenameFile(tmp, final_path, rocksdb::IOOptions(), nullptr),
      absl::StrCat("rename ", tmp)));
  return SyncDirectory(fs, dir);
}

// Reads and checks the marker. Returns NotFound when there is none.
absl::Status CheckMarker(rocksdb::FileSystem& fs, const std::string& dir) {
  std::string path = absl::StrCat(dir, "/", kMarkerFile);
  rocksdb::IOStatus exists = fs.FileExists(path, rocksdb::IOOptions(), nullptr);
  if (exists.IsNotFound()) return absl::NotFoundError("no marker");
  RETURN_IF_ERROR(FromRocks(exists, absl::StrCat("look up ", path)));
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  RETURN_IF_ERROR(FromRocks(
      fs.NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr),
      absl::StrCat("open ", path)));
  char buf[64];
  rocksdb::Slice content;
  RETURN_IF_ERROR(FromRocks(
      file->Read(sizeof(buf), rocksdb::IOOptions(), &content, buf, nullptr),
      absl::StrCat("read ", path)));
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(content.data(), content.size()),
                     absl::ByAnyChar(" \n"), absl::SkipEmpty());
  int version = 0;
  if (parts.size() != 1 + 1 || parts[0] != "cowdb" ||
      !absl::SimpleAtoi(parts[1], &version) || version <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " has an unreadable cowdb marker file ", path));
  }
  if (version > kStoreLayoutVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " is a cowdb database of layout version ", version,
        "; this build reads up to version ", kStoreLayoutVersion,
        ". Upgrade cowdb to open it."));
  }
  return absl::OkStatus();
}

// Ensures `path` is a cowdb directory, creating it when allowed.
absl::Status PrepareDirectory(rocksdb::FileSystem& fs, const std::string& path,
                              bool create) {
  rocksdb::IOStatus exists = fs.FileExists(path, rocksdb::IOOptions(), nullptr);
  if (exists.IsNotFound()) {
    if (!create) {
      return absl::NotFoundError(absl::StrCat(
          "no cowdb database at ", path, " (create_if_missing is false)"));
    }
    RETURN_IF_ERROR(
        FromRocks(fs.CreateDir(path, rocksdb::IOOptions(), nullptr),
                  absl::StrCat("create directory ", path)));
    // The new directory's entry lives in its parent: without this sync a
    // power loss can take the whole database, acknowledged commits and
    // all (RocksDB syncs the database directory, never its parent).
    RETURN_IF_ERROR(SyncDirectory(fs, ParentDirectory(path)));
    return WriteMarker(fs, path);
  }
  RETURN_IF_ERROR(FromRocks(exists, absl::StrCat("look up ", path)));
  bool is_dir = false;
  RETURN_IF_ERROR(FromRocks(
      fs.IsDirectory(path, rocksdb::IOOptions(), &is_dir, nullptr),
      absl::StrCat("stat ", path)));
  if (!is_dir) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a directory, so not a cowdb database"));
  }
  // The directory may exist only in the page cache: an earlier open that
  // created it can have failed or crashed before the sync of its parent,
  // and a power loss can still take the directory with every commit
  // acknowledged since. So sync its entry on every open, before any commit.
  RETURN_IF_ERROR(SyncDirectory(fs, ParentDirectory(path)));
  absl::Status marker = CheckMarker(fs, path);
  if (!absl::IsNotFound(marker)) return marker;
  ASSIGN_OR_RETURN(bool empty, IsEmptyDirectory(fs, path));
  if (!empty) {
    return absl::FailedPreconditionError(absl::StrCat(
        path,
        " is not a cowdb database: the directory is not empty and has no "
        "COWDB marker file. Nothing was changed."));
  }
  if (!create) {
    return absl::NotFoundError(absl::StrCat(
        "no cowdb database at ", path, " (create_if_missing is false)"));
  }
  return WriteMarker(fs, path);
}

class RocksDBPageStore final : public PageStore {
 public:
  RocksDBPageStore(std::unique_ptr<rocksdb::DB> db,
                   std::vector<rocksdb::ColumnFamilyHandle*> handles,
                   std::shared_ptr<rocksdb::FileSystem> fs)
      : db_(std::move(db)), handles_(std::move(handles)), fs_(std::move(fs)) {}

  ~RocksDBPageStore() override {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
  }

  absl::StatusOr<std::optional<std::string>> Get(Space space,
                                                 std::string_view key) override {
    reads_.fetch_add(1, std::memory_order_relaxed);
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(space),
                                 rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    RETURN_IF_ERROR(FromRocks(s, "read"));
    return value;
  }

  absl::Status Scan(Space space, std::string_view start,
                    const std::function<bool(std::string_view,
                                             std::string_view)>& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf(space)));
    for (it->Seek(rocksdb::Slice(start.data(), start.size())); it->Valid();
         it->Next()) {
      if (!fn(std::string_view(it->key().data(), it->key().size()),
              std::string_view(it->value().data(), it->value().size()))) {
        break;
      }
    }
    return FromRocks(it->status(), "scan");
  }

  absl::Status Commit(const StoreBatch& batch, bool sync) override {
    // Reserve the batch's bytes (+ per-record overhead) up front: a group
    // commit's batch is hundreds of KiB, and growing it copies it.
    rocksdb::WriteBatch wb(batch.bytes() + 16 * batch.ops().size() + 64);
    for (const auto& op : batch.ops()) {
      rocksdb::Status s =
          op.is_delete ? wb.Delete(cf(op.space), op.key)
                       : wb.Put(cf(op.space), op.key, op.value);
      RETURN_IF_ERROR(FromRocks(s, "batch"));
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &wb), "commit"));
    commits_.fetch_add(1, std::memory_order_relaxed);
    if (sync) syncs_.fetch_add(1, std::memory_order_relaxed);
    bytes_written_.fetch_add(batch.bytes(), std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status Checkpoint(const std::string& dir) override {
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) {
      return absl::AlreadyExistsError(absl::StrCat(dir, " already exists"));
    }
    rocksdb::Checkpoint* raw = nullptr;
    RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw),
                              "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    RETURN_IF_ERROR(FromRocks(cp->CreateCheckpoint(dir), "checkpoint"));
    return WriteMarker(*fs_, dir);
  }

  StoreStats GetStats() override {
    StoreStats s;
    s.reads = reads_.load(std::memory_order_relaxed);
    s.commits = commits_.load(std::memory_order_relaxed);
    s.syncs = syncs_.load(std::memory_order_relaxed);
    s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    uint64_t sst = 0, mem = 0;
    db_->GetAggregatedIntProperty("rocksdb.total-sst-files-size", &sst);
    db_->GetAggregatedIntProperty("rocksdb.cur-size-all-mem-tables", &mem);
    s.disk_bytes = sst + mem;
    for (int i = 0; i < kNumSpaces; ++i) {
      uint64_t cf_sst = 0, cf_mem = 0;
      db_->GetIntProperty(handles_[i], "rocksdb.total-sst-files-size", &cf_sst);
      db_->GetIntProperty(handles_[i], "rocksdb.cur-size-all-mem-tables", &cf_mem);
      s.space_bytes[i] = cf_sst + cf_mem;
    }
    return s;
  }

 private:
  rocksdb::ColumnFamilyHandle* cf(Space space) const {
    return handles_[static_cast<int>(space)];
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const std::shared_ptr<rocksdb::FileSystem> fs_;  // the marker's
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> bytes_written_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<PageStore>> OpenRocksDBPageStore(
    const std::string& path, const RocksDBStoreOptions& options) {
  rocksdb::Env* env =
      options.env != nullptr ? options.env : rocksdb::Env::Default();
  std::shared_ptr<rocksdb::FileSystem> fs = env->GetFileSystem();
  RETURN_IF_ERROR(PrepareDirectory(*fs, path, options.create_if_missing));

  rocksdb::Options db_options;
  db_options.env = env;
  db_options.create_if_missing = true;  // the marker decided above
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  if (options.write_buffer_bytes != 0) {
    db_options.write_buffer_size = options.write_buffer_bytes;
  }

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options(db_options);
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : kSpaceNames) descriptors.emplace_back(name, cf_options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  RETURN_IF_ERROR(FromRocks(
      rocksdb::DB::Open(rocksdb::DBOptions(db_options), path, descriptors,
                        &handles, &raw),
      absl::StrCat("open ", path)));
  return std::unique_ptr<PageStore>(new RocksDBPageStore(
      std::unique_ptr<rocksdb::DB>(raw), std::move(handles), std::move(fs)));
}

}  // namespace cowdb::internal
