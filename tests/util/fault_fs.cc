#include "tests/util/fault_fs.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <filesystem>
#include <utility>

namespace cowdb::testing {
namespace {

namespace stdfs = std::filesystem;
using rocksdb::IOStatus;

// The form paths are tracked in: no repeated or trailing slashes.
std::string Normalize(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Flips one bit, chosen by `seed`, of the `n` bytes at `data`.
void FlipBit(char* data, size_t n, uint64_t seed) {
  if (n == 0) return;
  std::mt19937_64 rng(seed);
  uint64_t bit = rng() % (n * 8);
  data[bit / 8] ^= static_cast<char>(1u << (bit % 8));
}

// A file being written: appends and syncs update its FileState.
class FaultWritableFile final : public rocksdb::FSWritableFileWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> target,
                    FaultFileSystem* fs, std::string path,
                    std::shared_ptr<FaultFileSystem::FileState> state)
      : FSWritableFileWrapper(target.get()),
        owned_(std::move(target)),
        fs_(fs),
        path_(std::move(path)),
        state_(std::move(state)) {}
  // Once frozen (the power is off), the real file is never closed: the
  // POSIX file's close trims its preallocation with ftruncate(fd, size it
  // wrote), which after SimulatePowerLoss grew a cut file back to its old
  // length, the lost tail as zeros (a torn MANIFEST record then became a
  // checksum mismatch). The file is kept open, reachable (not a leak to
  // LeakSanitizer), until the process ends.
  ~FaultWritableFile() override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    if (fs_->frozen_locked()) {
      static std::mutex kept_mu;
      static auto* kept =
          new std::vector<std::unique_ptr<rocksdb::FSWritableFile>>();
      std::lock_guard<std::mutex> keep(kept_mu);
      kept->push_back(std::move(owned_));
    } else {
      owned_.reset();
    }
  }

  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                  rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation, "append",
                                 path_);
    if (s.ok()) s = target()->Append(data, o, dbg);
    if (s.ok()) {
      state_->size += data.size();
      state_->appends.emplace_back(fs_->NextSeq(), state_->size);
      fs_->Trace("  appended " + std::to_string(data.size()) + " seq " +
                 std::to_string(state_->appends.back().first) + " size " +
                 std::to_string(state_->size) + " synced " +
                 std::to_string(state_->synced));
    }
    return s;
  }
  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                  const rocksdb::DataVerificationInfo&,
                  rocksdb::IODebugContext* dbg) override {
    return Append(data, o, dbg);
  }
  IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t,
                            const rocksdb::IOOptions&,
                            rocksdb::IODebugContext*) override {
    return IOStatus::NotSupported("FaultFileSystem: positioned append");
  }
  IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t,
                            const rocksdb::IOOptions&,
                            const rocksdb::DataVerificationInfo&,
                            rocksdb::IODebugContext*) override {
    return IOStatus::NotSupported("FaultFileSystem: positioned append");
  }
  IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& o,
                    rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation,
                                 "truncate", path_);
    if (s.ok()) s = target()->Truncate(size, o, dbg);
    if (s.ok()) {
      state_->size = size;
      state_->synced = std::min(state_->synced, size);
    }
    return s;
  }
  IOStatus Sync(const rocksdb::IOOptions& o,
                rocksdb::IODebugContext* dbg) override {
    return SyncImpl(/*full=*/false, o, dbg);
  }
  IOStatus Fsync(const rocksdb::IOOptions& o,
                 rocksdb::IODebugContext* dbg) override {
    return SyncImpl(/*full=*/true, o, dbg);
  }
  // sync_file_range: passed on, but no durability credit.
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes,
                     const rocksdb::IOOptions& o,
                     rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation,
                                 "range-sync", path_);
    if (s.ok()) s = target()->RangeSync(offset, nbytes, o, dbg);
    return s;
  }
  // On an injected error the target stays open; its destructor closes it.
  IOStatus Close(const rocksdb::IOOptions& o,
                 rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation, "close",
                                 path_);
    if (s.ok()) s = target()->Close(o, dbg);
    return s;
  }

 private:
  IOStatus SyncImpl(bool full, const rocksdb::IOOptions& o,
                    rocksdb::IODebugContext* dbg) {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation, "sync",
                                 path_);
    if (s.ok()) s = full ? target()->Fsync(o, dbg) : target()->Sync(o, dbg);
    if (s.ok()) {
      state_->synced = state_->size;
      state_->appends.clear();
      fs_->Trace("  synced " + std::to_string(state_->synced));
    }
    return s;
  }

  std::unique_ptr<rocksdb::FSWritableFile> owned_;
  FaultFileSystem* const fs_;
  const std::string path_;
  const std::shared_ptr<FaultFileSystem::FileState> state_;
};

// A file read sequentially (WAL, MANIFEST, CURRENT, the marker).
class FaultSequentialFile final : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile> target,
                      FaultFileSystem* fs, std::string path)
      : FSSequentialFileOwnerWrapper(std::move(target)),
        fs_(fs),
        path_(std::move(path)) {}

  IOStatus Read(size_t n, const rocksdb::IOOptions& o, rocksdb::Slice* result,
                char* scratch, rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s =
        fs_->CheckFault(FaultFileSystem::OpKind::kRead, "read", path_);
    if (s.ok()) s = target()->Read(n, o, result, scratch, dbg);
    return s;
  }
  IOStatus PositionedRead(uint64_t offset, size_t n,
                          const rocksdb::IOOptions& o, rocksdb::Slice* result,
                          char* scratch,
                          rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s =
        fs_->CheckFault(FaultFileSystem::OpKind::kRead, "read", path_);
    if (s.ok()) s = target()->PositionedRead(offset, n, o, result, scratch, dbg);
    return s;
  }

 private:
  FaultFileSystem* const fs_;
  const std::string path_;
};

// A file read at offsets (SST files). Reads of SST files may get a flipped
// bit.
class FaultRandomAccessFile final
    : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> target,
                        FaultFileSystem* fs, std::string path)
      : FSRandomAccessFileOwnerWrapper(std::move(target)),
        fs_(fs),
        path_(std::move(path)),
        is_sst_(EndsWith(path_, ".sst")) {}

  IOStatus Read(uint64_t offset, size_t n, const rocksdb::IOOptions& o,
                rocksdb::Slice* result, char* scratch,
                rocksdb::IODebugContext* dbg) const override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s =
        fs_->CheckFault(FaultFileSystem::OpKind::kRead, "read", path_);
    if (!s.ok()) return s;
    s = target()->Read(offset, n, o, result, scratch, dbg);
    uint64_t seed;
    if (s.ok() && is_sst_ && fs_->TakeSstFlip(&seed) && result->size() > 0) {
      // Corrupt our own copy, never the file or a shared mapping.
      if (result->data() != scratch) {
        std::copy(result->data(), result->data() + result->size(), scratch);
      }
      FlipBit(scratch, result->size(), seed);
      *result = rocksdb::Slice(scratch, result->size());
    }
    return s;
  }
  // One request at a time, through Read, so that faults apply.
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                     const rocksdb::IOOptions& o,
                     rocksdb::IODebugContext* dbg) override {
    for (size_t i = 0; i < num_reqs; ++i) {
      reqs[i].status = Read(reqs[i].offset, reqs[i].len, o, &reqs[i].result,
                            reqs[i].scratch, dbg);
    }
    return IOStatus::OK();
  }
  IOStatus ReadAsync(rocksdb::FSReadRequest&, const rocksdb::IOOptions&,
                     std::function<void(const rocksdb::FSReadRequest&, void*)>,
                     void*, void**, rocksdb::IOHandleDeleter*,
                     rocksdb::IODebugContext*) override {
    return IOStatus::NotSupported("FaultFileSystem: async reads");
  }

 private:
  FaultFileSystem* const fs_;
  const std::string path_;
  const bool is_sst_;
};

// A directory handle: its Fsync makes the directory's entries durable.
class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> target,
                 FaultFileSystem* fs, std::string path)
      : FSDirectoryWrapper(std::move(target)), fs_(fs), path_(std::move(path)) {}

  IOStatus Fsync(const rocksdb::IOOptions& o,
                 rocksdb::IODebugContext* dbg) override {
    return FsyncWithDirOptions(o, dbg, rocksdb::DirFsyncOptions());
  }
  IOStatus FsyncWithDirOptions(
      const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg,
      const rocksdb::DirFsyncOptions& dir_options) override {
    std::lock_guard<std::mutex> lock(fs_->mu());
    IOStatus s = fs_->CheckFault(FaultFileSystem::OpKind::kMutation,
                                 "sync-dir", path_);
    if (s.ok()) s = FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, dir_options);
    if (s.ok()) fs_->RecordDirSync(path_);
    return s;
  }

 private:
  FaultFileSystem* const fs_;
  const std::string path_;
};

}  // namespace

FaultFileSystem::FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base,
                                 std::string stash_dir)
    : FileSystemWrapper(base),
      stash_dir_(Normalize(stash_dir)),
      verbose_(std::getenv("COWDB_FAULT_FS_VERBOSE") != nullptr),
      trace_path_(std::getenv("COWDB_FAULT_FS_TRACE") != nullptr
                      ? std::getenv("COWDB_FAULT_FS_TRACE")
                      : "") {}

FaultFileSystem::~FaultFileSystem() {
  std::error_code ec;
  stdfs::remove_all(stash_dir_, ec);
}

// ------------------------------------------------------------ bookkeeping

IOStatus FaultFileSystem::CheckFault(OpKind kind, const char* what,
                                     const std::string& path) {
  const uint64_t n = ++ops_;
  if (op_names_.size() < 20000) {
    op_names_.push_back(std::to_string(n) + " " + what + " " + path);
  }
  Trace("op " + std::to_string(n) + " seq " + std::to_string(seq_) + " " +
        what + " " + path +
        (kind == OpKind::kMutation && (frozen_ || (freeze_at_mutation_ != 0 &&
                                                   mutations_ + 1 >= freeze_at_mutation_))
             ? " [frozen]"
             : ""));
  if (kind == OpKind::kMutation) {
    ++mutations_;
    if (freeze_at_mutation_ != 0 && mutations_ >= freeze_at_mutation_) {
      frozen_ = true;
    }
    if (frozen_) {
      ++injected_;
      if (verbose_) {
        std::cerr << "FaultFileSystem: frozen, fails op " << n << " " << what
                  << " " << path << std::endl;
      }
      return IOStatus::IOError("FaultFileSystem: frozen (power lost) at ",
                               std::string(what) + " " + path);
    }
  }
  if (n == fail_once_ || (fail_from_ != 0 && n >= fail_from_)) {
    ++injected_;
    if (verbose_) {
      std::cerr << "FaultFileSystem: fails op " << n << " " << what << " "
                << path << std::endl;
    }
    return IOStatus::IOError(
        "FaultFileSystem: injected error at operation ",
        std::to_string(n) + " (" + what + " " + path + ")");
  }
  return IOStatus::OK();
}

bool FaultFileSystem::TakeSstFlip(uint64_t* seed) {
  ++sst_reads_;
  if (flip_read_ == 0 || sst_reads_ != flip_read_) return false;
  *seed = flip_seed_;
  ++injected_;
  return true;
}

void FaultFileSystem::LogDirOp(DirOp op) {
  op.seq = NextSeq();
  Trace("  dir-op seq " + std::to_string(op.seq) + " kind " +
        std::to_string(op.kind) + " " + op.path +
        (op.target.empty() ? "" : " -> " + op.target) +
        (op.stash.empty() ? "" : " stash " + op.stash));
  dir_log_.push_back(std::move(op));
}

void FaultFileSystem::RecordDirSync(const std::string& dir) {
  Trace("  dir synced " + dir);
  for (DirOp& op : dir_log_) {
    if (op.dir == dir) op.synced = true;
  }
}

std::shared_ptr<FaultFileSystem::FileState> FaultFileSystem::StateFor(
    const std::string& path, bool create) {
  auto it = files_.find(path);
  if (it != files_.end()) return it->second;
  if (!create) return nullptr;
  auto state = std::make_shared<FileState>();
  std::error_code ec;
  uint64_t size = stdfs::file_size(path, ec);
  if (!ec) state->size = state->synced = size;  // existing: durable
  files_[path] = state;
  return state;
}

void FaultFileSystem::MoveState(const std::string& from,
                                const std::string& to) {
  auto it = files_.find(from);
  if (it == files_.end()) {
    files_.erase(to);  // `to` now holds an untracked (durable) file
    return;
  }
  std::shared_ptr<FileState> state = std::move(it->second);
  files_.erase(it);
  files_[to] = std::move(state);
}

std::string FaultFileSystem::NewStashPath() {
  target()->CreateDirIfMissing(stash_dir_, rocksdb::IOOptions(), nullptr)
      .PermitUncheckedError();
  return stash_dir_ + "/" + std::to_string(++stash_seq_);
}

std::string FaultFileSystem::StashFile(const std::string& path) {
  std::error_code ec;
  if (!stdfs::exists(path, ec)) return "";
  std::string stash = NewStashPath();
  stdfs::rename(path, stash, ec);
  if (ec) return "";
  MoveState(path, stash);
  return stash;
}

// ------------------------------------------------------------ power loss

void FaultFileSystem::Freeze() {
  std::lock_guard<std::mutex> lock(mu_);
  frozen_ = true;
}

void FaultFileSystem::FreezeAtMutation(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n == 0) {
    frozen_ = true;
  } else {
    freeze_at_mutation_ = mutations_ + n;
  }
}

bool FaultFileSystem::frozen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frozen_;
}

void FaultFileSystem::UndoDirOp(const DirOp& op) {
  std::error_code ec;
  switch (op.kind) {
    case DirOp::kCreateFile:
      stdfs::remove(op.path, ec);
      files_.erase(op.path);
      break;
    case DirOp::kCreateDir:
      stdfs::remove_all(op.path, ec);
      break;
    case DirOp::kRename:
      if (stdfs::exists(op.target, ec)) {
        stdfs::rename(op.target, op.path, ec);
        MoveState(op.target, op.path);
      }
      if (!op.stash.empty()) {
        stdfs::rename(op.stash, op.target, ec);
        MoveState(op.stash, op.target);
      }
      break;
    case DirOp::kDelete:
      if (!op.stash.empty()) {
        stdfs::rename(op.stash, op.path, ec);
        MoveState(op.stash, op.path);
      }
      break;
    case DirOp::kDeleteDir:
      stdfs::create_directory(op.path, ec);
      break;
  }
}

PowerLossReport FaultFileSystem::SimulatePowerLoss(std::mt19937_64& rng,
                                                   double torn_fraction,
                                                   int keep_unsynced_dir_ops) {
  std::lock_guard<std::mutex> lock(mu_);
  PowerLossReport report;
  // 1. Directory operations: all synced ones survive, and a prefix of the
  //    unsynced ones -- none, all, or a random number, a third each.
  std::vector<size_t> unsynced;
  for (size_t i = 0; i < dir_log_.size(); ++i) {
    if (!dir_log_[i].synced) unsynced.push_back(i);
  }
  report.dir_ops_unsynced = unsynced.size();
  size_t keep = 0;
  switch (rng() % 3) {
    case 0: keep = 0; break;
    case 1: keep = unsynced.size(); break;
    default: keep = rng() % (unsynced.size() + 1); break;
  }
  if (keep_unsynced_dir_ops >= 0) {
    keep = std::min<size_t>(keep_unsynced_dir_ops, unsynced.size());
  }
  std::vector<DirOp> carried;  // unsynced directory creations that survive
  for (size_t k = 0; k < keep; ++k) {
    const DirOp& op = dir_log_[unsynced[k]];
    if (op.kind == DirOp::kCreateDir) {
      carried.push_back(op);
      report.unsynced_dirs.push_back(op.path);
    }
  }
  // Bytes appended after the first lost directory operation cannot
  // survive (the journal keeps metadata, file sizes included, in order).
  const uint64_t cut_seq = keep < unsynced.size()
                               ? dir_log_[unsynced[keep]].seq
                               : std::numeric_limits<uint64_t>::max();
  for (size_t k = unsynced.size(); k > keep; --k) {
    Trace("loss: undo dir-op seq " + std::to_string(dir_log_[unsynced[k - 1]].seq));
    UndoDirOp(dir_log_[unsynced[k - 1]]);
    ++report.dir_ops_undone;
  }
  // 2. File data: each file keeps its synced bytes, and in the torn
  //    variant a random part of the unsynced tail.
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  for (const auto& [path, state] : files_) {
    std::error_code ec;
    if (Parent(path) == stash_dir_ || !stdfs::is_regular_file(path, ec)) {
      continue;
    }
    uint64_t actual = stdfs::file_size(path, ec);
    if (ec) continue;
    uint64_t len = state->synced;
    uint64_t limit = state->synced;
    for (const auto& [seq, size_after] : state->appends) {
      if (seq < cut_seq) limit = std::max(limit, size_after);
    }
    if (limit > state->synced && coin(rng) < torn_fraction) {
      len += rng() % (limit - state->synced + 1);
      ++report.files_torn;
    }
    Trace("loss: file " + path + " size " + std::to_string(state->size) +
          " synced " + std::to_string(state->synced) + " limit " +
          std::to_string(limit) + " actual " + std::to_string(actual) +
          " keeps " + std::to_string(std::min(len, actual)));
    if (len >= actual) continue;
    stdfs::resize_file(path, len, ec);
    ++report.files_cut;
    report.bytes_dropped += actual - len;
  }
  if (tracing()) {
    Trace("loss: unsynced dir ops " + std::to_string(unsynced.size()) +
          " kept " + std::to_string(keep) + " cut_seq " + std::to_string(cut_seq));
    std::ofstream out(trace_path_, std::ios::trunc);
    for (const std::string& line : trace_) out << line << "\n";
    trace_.clear();
  }
  // 3. Start afresh, still frozen: the machine is off. A process that
  //    keeps running on this file system (a database that was not closed,
  //    with its background threads, some of them waiting for mu_ right
  //    now) must change nothing on disk after the power loss. Unfrozen,
  //    a flush blocked in its directory sync went on to sync the directory
  //    and append a MANIFEST record naming an SST whose create had just
  //    been undone, and WAL and MANIFEST appends landed past the cut tails.
  files_.clear();
  dir_log_ = std::move(carried);
  std::error_code ec;
  stdfs::remove_all(stash_dir_, ec);
  frozen_ = true;
  freeze_at_mutation_ = 0;
  fail_once_ = fail_from_ = flip_read_ = 0;
  return report;
}

void FaultFileSystem::AddUnsyncedDirCreation(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string p = Normalize(path);
  LogDirOp({DirOp::kCreateDir, Parent(p), p, "", ""});
}

void FaultFileSystem::ResetDurability() {
  std::lock_guard<std::mutex> lock(mu_);
  files_.clear();
  dir_log_.clear();
  std::error_code ec;
  stdfs::remove_all(stash_dir_, ec);
  frozen_ = false;
  freeze_at_mutation_ = 0;
  fail_once_ = fail_from_ = flip_read_ = 0;
}

// ------------------------------------------------------------ faults

uint64_t FaultFileSystem::ops() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

uint64_t FaultFileSystem::mutations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mutations_;
}

uint64_t FaultFileSystem::sst_reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sst_reads_;
}

uint64_t FaultFileSystem::injected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_;
}

std::string FaultFileSystem::DescribeOp(uint64_t n) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (n == 0 || n > op_names_.size()) return std::to_string(n) + " (?)";
  return op_names_[n - 1];
}

void FaultFileSystem::ResetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  ops_ = mutations_ = sst_reads_ = injected_ = 0;
  op_names_.clear();
}

void FaultFileSystem::FailOnce(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_once_ = n;
}

void FaultFileSystem::FailFrom(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_from_ = n;
}

void FaultFileSystem::FlipBitInSstRead(uint64_t n, uint64_t seed) {
  std::lock_guard<std::mutex> lock(mu_);
  flip_read_ = n;
  flip_seed_ = seed;
}

void FaultFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  fail_once_ = fail_from_ = flip_read_ = 0;
}

// ------------------------------------------------------------ opening

IOStatus FaultFileSystem::NewSequentialFile(
    const std::string& f, const rocksdb::FileOptions& file_opts,
    std::unique_ptr<rocksdb::FSSequentialFile>* r,
    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kRead, "open-read", path);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  s = target()->NewSequentialFile(f, file_opts, &file, dbg);
  if (s.ok()) r->reset(new FaultSequentialFile(std::move(file), this, path));
  return s;
}

IOStatus FaultFileSystem::NewRandomAccessFile(
    const std::string& f, const rocksdb::FileOptions& file_opts,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kRead, "open-read", path);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  s = target()->NewRandomAccessFile(f, file_opts, &file, dbg);
  if (s.ok()) r->reset(new FaultRandomAccessFile(std::move(file), this, path));
  return s;
}

IOStatus FaultFileSystem::NewWritableFile(
    const std::string& f, const rocksdb::FileOptions& file_opts,
    std::unique_ptr<rocksdb::FSWritableFile>* r,
    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "create", path);
  if (!s.ok()) return s;
  std::error_code ec;
  const bool existed = stdfs::exists(path, ec);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->NewWritableFile(f, file_opts, &file, dbg);
  if (!s.ok()) return s;
  if (!existed) {
    LogDirOp({DirOp::kCreateFile, Parent(path), path, "", ""});
  }
  // Truncated (or new): nothing of it is durable yet.
  auto state = std::make_shared<FileState>();
  files_[path] = state;
  r->reset(new FaultWritableFile(std::move(file), this, path, state));
  return s;
}

IOStatus FaultFileSystem::ReopenWritableFile(
    const std::string& f, const rocksdb::FileOptions& file_opts,
    std::unique_ptr<rocksdb::FSWritableFile>* r,
    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "reopen", path);
  if (!s.ok()) return s;
  std::error_code ec;
  const bool existed = stdfs::exists(path, ec);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->ReopenWritableFile(f, file_opts, &file, dbg);
  if (!s.ok()) return s;
  if (!existed) {
    LogDirOp({DirOp::kCreateFile, Parent(path), path, "", ""});
  }
  r->reset(new FaultWritableFile(std::move(file), this, path,
                                 StateFor(path, /*create=*/true)));
  return s;
}

IOStatus FaultFileSystem::ReuseWritableFile(
    const std::string&, const std::string&, const rocksdb::FileOptions&,
    std::unique_ptr<rocksdb::FSWritableFile>*, rocksdb::IODebugContext*) {
  return IOStatus::NotSupported("FaultFileSystem: file reuse is not modeled");
}

IOStatus FaultFileSystem::NewRandomRWFile(
    const std::string&, const rocksdb::FileOptions&,
    std::unique_ptr<rocksdb::FSRandomRWFile>*, rocksdb::IODebugContext*) {
  return IOStatus::NotSupported(
      "FaultFileSystem: random read-write files are not modeled");
}

IOStatus FaultFileSystem::NewDirectory(
    const std::string& name, const rocksdb::IOOptions& io_opts,
    std::unique_ptr<rocksdb::FSDirectory>* r, rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(name);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kRead, "open-dir", path);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSDirectory> dir;
  s = target()->NewDirectory(name, io_opts, &dir, dbg);
  if (s.ok()) r->reset(new FaultDirectory(std::move(dir), this, path));
  return s;
}

// ------------------------------------------------------------ lookups

IOStatus FaultFileSystem::FileExists(const std::string& f,
                                     const rocksdb::IOOptions& io_opts,
                                     rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "exists", Normalize(f));
  return s.ok() ? target()->FileExists(f, io_opts, dbg) : s;
}

IOStatus FaultFileSystem::GetChildren(const std::string& dir,
                                      const rocksdb::IOOptions& io_opts,
                                      std::vector<std::string>* r,
                                      rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "list", Normalize(dir));
  return s.ok() ? target()->GetChildren(dir, io_opts, r, dbg) : s;
}

IOStatus FaultFileSystem::GetChildrenFileAttributes(
    const std::string& dir, const rocksdb::IOOptions& io_opts,
    std::vector<rocksdb::FileAttributes>* r, rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "list", Normalize(dir));
  return s.ok() ? target()->GetChildrenFileAttributes(dir, io_opts, r, dbg) : s;
}

IOStatus FaultFileSystem::GetFileSize(const std::string& f,
                                      const rocksdb::IOOptions& io_opts,
                                      uint64_t* size,
                                      rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "size", Normalize(f));
  return s.ok() ? target()->GetFileSize(f, io_opts, size, dbg) : s;
}

IOStatus FaultFileSystem::GetFileModificationTime(
    const std::string& f, const rocksdb::IOOptions& io_opts, uint64_t* mtime,
    rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "mtime", Normalize(f));
  return s.ok() ? target()->GetFileModificationTime(f, io_opts, mtime, dbg)
                : s;
}

IOStatus FaultFileSystem::IsDirectory(const std::string& path,
                                      const rocksdb::IOOptions& io_opts,
                                      bool* is_dir,
                                      rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "is-dir", Normalize(path));
  return s.ok() ? target()->IsDirectory(path, io_opts, is_dir, dbg) : s;
}

IOStatus FaultFileSystem::LockFile(const std::string& f,
                                   const rocksdb::IOOptions& io_opts,
                                   rocksdb::FileLock** lock_out,
                                   rocksdb::IODebugContext* dbg) {
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kQuery, "lock", Normalize(f));
  return s.ok() ? target()->LockFile(f, io_opts, lock_out, dbg) : s;
}

// ------------------------------------------------------------ directory ops

IOStatus FaultFileSystem::DeleteFile(const std::string& f,
                                     const rocksdb::IOOptions& io_opts,
                                     rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "delete", path);
  if (!s.ok()) return s;
  std::error_code ec;
  if (!stdfs::is_regular_file(path, ec)) {
    return target()->DeleteFile(f, io_opts, dbg);  // its error
  }
  // Kept in the stash, so that a power loss can bring it back.
  std::string stash = StashFile(path);
  if (stash.empty()) return IOStatus::IOError("FaultFileSystem: cannot stash ", path);
  LogDirOp({DirOp::kDelete, Parent(path), path, "", stash});
  return IOStatus::OK();
}

IOStatus FaultFileSystem::Truncate(const std::string& f, size_t size,
                                   const rocksdb::IOOptions& io_opts,
                                   rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(f);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "truncate", path);
  if (s.ok()) s = target()->Truncate(f, size, io_opts, dbg);
  if (s.ok()) {
    std::shared_ptr<FileState> state = StateFor(path, /*create=*/true);
    state->size = size;
    state->synced = std::min<uint64_t>(state->synced, size);
  }
  return s;
}

IOStatus FaultFileSystem::CreateDir(const std::string& d,
                                    const rocksdb::IOOptions& io_opts,
                                    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(d);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "mkdir", path);
  if (s.ok()) s = target()->CreateDir(d, io_opts, dbg);
  if (s.ok()) LogDirOp({DirOp::kCreateDir, Parent(path), path, "", ""});
  return s;
}

IOStatus FaultFileSystem::CreateDirIfMissing(const std::string& d,
                                             const rocksdb::IOOptions& io_opts,
                                             rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(d);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "mkdir", path);
  if (!s.ok()) return s;
  std::error_code ec;
  const bool existed = stdfs::exists(path, ec);
  s = target()->CreateDirIfMissing(d, io_opts, dbg);
  if (s.ok() && !existed) {
    LogDirOp({DirOp::kCreateDir, Parent(path), path, "", ""});
  }
  return s;
}

IOStatus FaultFileSystem::DeleteDir(const std::string& d,
                                    const rocksdb::IOOptions& io_opts,
                                    rocksdb::IODebugContext* dbg) {
  const std::string path = Normalize(d);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "rmdir", path);
  if (s.ok()) s = target()->DeleteDir(d, io_opts, dbg);
  if (s.ok()) LogDirOp({DirOp::kDeleteDir, Parent(path), path, "", ""});
  return s;
}

IOStatus FaultFileSystem::RenameFile(const std::string& src,
                                     const std::string& dst,
                                     const rocksdb::IOOptions& io_opts,
                                     rocksdb::IODebugContext* dbg) {
  const std::string from = Normalize(src);
  const std::string to = Normalize(dst);
  std::lock_guard<std::mutex> lock(mu_);
  IOStatus s = CheckFault(OpKind::kMutation, "rename", from + " -> " + to);
  if (!s.ok()) return s;
  std::error_code ec;
  if (!stdfs::exists(from, ec)) return target()->RenameFile(src, dst, io_opts, dbg);
  // What the rename replaces waits in the stash, so that a power loss can
  // bring it back.
  std::string stash = StashFile(to);
  s = target()->RenameFile(src, dst, io_opts, dbg);
  if (!s.ok()) {
    if (!stash.empty()) {
      stdfs::rename(stash, to, ec);
      MoveState(stash, to);
    }
    return s;
  }
  MoveState(from, to);
  LogDirOp({DirOp::kRename, Parent(to), from, to, stash});
  return s;
}

IOStatus FaultFileSystem::LinkFile(const std::string&, const std::string&,
                                   const rocksdb::IOOptions&,
                                   rocksdb::IODebugContext*) {
  return IOStatus::NotSupported("FaultFileSystem: hard links are not modeled");
}

}  // namespace cowdb::testing
