#include "engine/store/rocksdb_page_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/util/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace cowdb::internal {
namespace {

constexpr char kMarkerFile[] = "COWDB";

// Column family names, indexed by Space. Persisted; DO NOT CHANGE.
const char* const kSpaceNames[kNumSpaces] = {"default",  "pages", "blobs",
                                            "versions", "freed", "tags"};

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

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Returns true if `path` is a directory with no entries.
absl::StatusOr<bool> IsEmptyDirectory(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return ErrnoError("cannot open directory", path);
  bool empty = true;
  while (struct dirent* e = readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  return empty;
}

absl::Status SyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags);
  if (fd < 0) return ErrnoError("cannot open", path);
  int rc = fsync(fd);
  close(fd);
  if (rc != 0) return ErrnoError("cannot sync", path);
  return absl::OkStatus();
}

// Writes the marker durably: temp file, fsync, rename, fsync directory.
absl::Status WriteMarker(const std::string& dir) {
  std::string tmp = absl::StrCat(dir, "/", kMarkerFile, ".tmp");
  std::string final_path = absl::StrCat(dir, "/", kMarkerFile);
  std::string content = absl::StrCat("cowdb ", kStoreLayoutVersion, "\n");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  bool ok = write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()) &&
            fsync(fd) == 0;
  close(fd);
  if (!ok) return ErrnoError("cannot write", tmp);
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("cannot rename", tmp);
  }
  return SyncPath(dir, O_RDONLY | O_DIRECTORY);
}

// Reads and checks the marker. Returns NotFound when there is none.
absl::Status CheckMarker(const std::string& dir) {
  std::string path = absl::StrCat(dir, "/", kMarkerFile);
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError("no marker");
    return ErrnoError("cannot open", path);
  }
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0) return ErrnoError("cannot read", path);
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(buf, n), absl::ByAnyChar(" \n"),
                     absl::SkipEmpty());
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
absl::Status PrepareDirectory(const std::string& path, bool create) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoError("cannot stat", path);
    if (!create) {
      return absl::NotFoundError(absl::StrCat(
          "no cowdb database at ", path, " (create_if_missing is false)"));
    }
    if (mkdir(path.c_str(), 0755) != 0) {
      return ErrnoError("cannot create directory", path);
    }
    return WriteMarker(path);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a directory, so not a cowdb database"));
  }
  absl::Status marker = CheckMarker(path);
  if (!absl::IsNotFound(marker)) return marker;
  ASSIGN_OR_RETURN(bool empty, IsEmptyDirectory(path));
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
  return WriteMarker(path);
}

class RocksDBPageStore final : public PageStore {
 public:
  RocksDBPageStore(std::unique_ptr<rocksdb::DB> db,
                   std::vector<rocksdb::ColumnFamilyHandle*> handles)
      : db_(std::move(db)), handles_(std::move(handles)) {}

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
    return WriteMarker(dir);
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
    return s;
  }

 private:
  rocksdb::ColumnFamilyHandle* cf(Space space) const {
    return handles_[static_cast<int>(space)];
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> bytes_written_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<PageStore>> OpenRocksDBPageStore(
    const std::string& path, const RocksDBStoreOptions& options) {
  RETURN_IF_ERROR(PrepareDirectory(path, options.create_if_missing));

  rocksdb::Options db_options;
  db_options.create_if_missing = true;  // the marker decided above
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);

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
      std::unique_ptr<rocksdb::DB>(raw), std::move(handles)));
}

}  // namespace cowdb::internal
