// A RocksDB FileSystem for fault-injection tests: simulated power loss,
// injected I/O errors and bit flips in reads.
//
// It wraps a real file system (the default one) and passes every call
// through, while it
//  - numbers the file operations (opens, reads, appends, syncs, closes,
//    creates, renames, deletes, directory syncs, lookups), so that a test
//    can fail the n-th one once, or every one from the n-th on;
//  - records what a power loss would keep: how many bytes of each written
//    file were synced, and which directory entries (files and directories
//    created, files renamed and deleted) were made durable by a sync of
//    their directory;
//  - can freeze: every later mutating operation fails and changes nothing,
//    as if the machine had stopped;
//  - can flip one bit in the n-th read of an SST file.
//
// The power-loss model (SimulatePowerLoss), applied to the real files of a
// frozen file system (the database may still be open, as in a crashed
// process; the file system stays frozen afterwards):
//  - A file keeps the bytes that were synced (Sync/Fsync) before the
//    freeze. Torn variant: it also keeps a random prefix of its unsynced
//    tail. RangeSync (sync_file_range) earns no credit: it does not flush
//    the drive's cache or the file's metadata.
//  - Directory operations not made durable by a sync of their directory
//    are lost from the end: a random prefix of them (in the order they
//    happened) survives, possibly none or all. This is the ordered
//    metadata journal of ext4 and XFS; a file's fsync alone never makes
//    its directory entry durable (POSIX's minimum). Lost operations are
//    undone honestly: a lost create removes the file (or the directory
//    with everything in it); a lost rename moves the file back and
//    restores what it had replaced; a lost delete restores the file. To
//    make the last two possible, deleted and replaced files are moved
//    into a stash directory instead of being unlinked.
//  - Not modeled: reordering of data writes within a file (holes, or
//    later bytes surviving without earlier ones), corruption of synced
//    data, hard links (LinkFile and file reuse fail as unsupported), and
//    RocksDB's info LOG, which RocksDB writes through its own logger.
//
// With COWDB_FAULT_FS_VERBOSE set in the environment, every injected fault
// is logged to stderr. With COWDB_FAULT_FS_TRACE=FILE, SimulatePowerLoss
// writes to FILE every operation since the last power loss (appends and
// syncs with the file's sizes) and what the power loss kept.
//
// Thread safety: all methods may be called concurrently; file operations
// are serialized by one mutex (this is a test tool, not a fast one).
//
//   auto fs = std::make_shared<FaultFileSystem>(
//       rocksdb::FileSystem::Default(), dir.Sub("stash"));
//   std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
//   internal::RocksDBStoreOptions store;
//   store.env = env.get();   // then internal::DBImpl::OpenAt(...)

#ifndef COWDB_TESTS_UTIL_FAULT_FS_H_
#define COWDB_TESTS_UTIL_FAULT_FS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace cowdb::testing {

// What SimulatePowerLoss did.
struct PowerLossReport {
  uint64_t files_cut = 0;           // files that lost an unsynced tail
  uint64_t files_torn = 0;          // of which kept part of the tail
  uint64_t bytes_dropped = 0;       // unsynced bytes dropped
  uint64_t dir_ops_unsynced = 0;    // directory operations not yet durable
  uint64_t dir_ops_undone = 0;      // of which lost (undone)
  // Directories whose creation survived without a sync of their parent:
  // still not durable (see AddUnsyncedDirCreation).
  std::vector<std::string> unsynced_dirs;
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // `stash_dir` must not exist; deleted and replaced files wait there until
  // the next ResetDurability or SimulatePowerLoss. It must be on the same
  // file system as the databases (files are renamed into it).
  FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base,
                  std::string stash_dir);
  ~FaultFileSystem() override;

  const char* Name() const override { return "FaultFileSystem"; }

  // ---- Power loss.

  // From now on every mutating file operation fails with an I/O error and
  // changes nothing. Reads still work.
  void Freeze();
  // Freezes when the `n`-th mutating operation from now is attempted (that
  // one already fails). n = 0 freezes at once.
  void FreezeAtMutation(uint64_t n);
  bool frozen() const;

  // Simulates a power loss on the real files, as described above, keeping
  // a random part of each unsynced tail with probability `torn_fraction`.
  // Then starts tracking afresh: what survived counts as durable, except
  // directory creations that survived unsynced (they are listed in the
  // report and stay unsynced here). The file system stays frozen (the
  // machine is off): files still open, and threads still running on it,
  // change nothing any more. ResetDurability unfreezes.
  // REQUIRES: frozen(). The database may still be open (a crashed process
  // never closes it); its later writes all fail.
  // `keep_unsynced_dir_ops` >= 0 keeps exactly that many (at most all) of
  // the unsynced directory operations instead of a random number.
  PowerLossReport SimulatePowerLoss(std::mt19937_64& rng,
                                    double torn_fraction,
                                    int keep_unsynced_dir_ops = -1);

  // Records that directory `path` was created and its parent not synced
  // since (for a process that takes over from one that crashed: see
  // PowerLossReport::unsynced_dirs).
  void AddUnsyncedDirCreation(const std::string& path);

  // Forgets what was synced: the files as they are now count as durable,
  // and the stash is emptied. Also clears faults and unfreezes (also after
  // SimulatePowerLoss: a new machine on the same disk).
  void ResetDurability();

  // ---- Injected errors.

  // File operations numbered from 1 since the last ResetCounters.
  uint64_t ops() const;
  // Mutating operations since the last ResetCounters.
  uint64_t mutations() const;
  // Reads of SST files since the last ResetCounters.
  uint64_t sst_reads() const;
  // Injected errors returned since the last ResetCounters.
  uint64_t injected() const;
  // Names of the first operations since ResetCounters (for failure
  // messages): "123 append /path/000004.log".
  std::string DescribeOp(uint64_t n) const;
  void ResetCounters();

  // Operation number `n` fails with an I/O error, once.
  void FailOnce(uint64_t n);
  // Every operation numbered `n` or later fails.
  void FailFrom(uint64_t n);
  // The `n`-th read of an SST file returns its data with one bit flipped
  // (chosen by `seed`).
  void FlipBitInSstRead(uint64_t n, uint64_t seed);
  // Clears FailOnce, FailFrom and FlipBitInSstRead.
  void ClearFaults();

  // ---- rocksdb::FileSystem.

  rocksdb::IOStatus NewSequentialFile(
      const std::string& f, const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSSequentialFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomAccessFile(
      const std::string& f, const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewWritableFile(
      const std::string& f, const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& f, const std::string& old_f,
      const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(
      const std::string& f, const rocksdb::FileOptions& file_opts,
      std::unique_ptr<rocksdb::FSRandomRWFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& io_opts,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus FileExists(const std::string& f,
                               const rocksdb::IOOptions& io_opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetChildren(const std::string& dir,
                                const rocksdb::IOOptions& io_opts,
                                std::vector<std::string>* r,
                                rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetChildrenFileAttributes(
      const std::string& dir, const rocksdb::IOOptions& io_opts,
      std::vector<rocksdb::FileAttributes>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f,
                               const rocksdb::IOOptions& io_opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, size_t size,
                             const rocksdb::IOOptions& io_opts,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& d,
                              const rocksdb::IOOptions& io_opts,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d,
                                       const rocksdb::IOOptions& io_opts,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& d,
                              const rocksdb::IOOptions& io_opts,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetFileSize(const std::string& f,
                                const rocksdb::IOOptions& io_opts,
                                uint64_t* size,
                                rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus GetFileModificationTime(
      const std::string& f, const rocksdb::IOOptions& io_opts,
      uint64_t* mtime, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& dst,
                               const rocksdb::IOOptions& io_opts,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& dst,
                             const rocksdb::IOOptions& io_opts,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LockFile(const std::string& f,
                             const rocksdb::IOOptions& io_opts,
                             rocksdb::FileLock** lock,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus IsDirectory(const std::string& path,
                                const rocksdb::IOOptions& io_opts,
                                bool* is_dir,
                                rocksdb::IODebugContext* dbg) override;

  // ---- For the file wrappers in fault_fs.cc. All REQUIRE mu() held.

  // How much of a written file is durable.
  struct FileState {
    uint64_t size = 0;    // bytes appended
    uint64_t synced = 0;  // bytes synced
    // Appends since the last sync: (operation sequence number, size after).
    std::vector<std::pair<uint64_t, uint64_t>> appends;
  };
  enum class OpKind { kQuery, kRead, kMutation };
  // Counts one operation and returns the error to inject, if any.
  rocksdb::IOStatus CheckFault(OpKind kind, const char* what,
                               const std::string& path);
  void RecordDirSync(const std::string& dir);
  // The next operation sequence number (orders appends and directory
  // operations for the journal model).
  uint64_t NextSeq() { return ++seq_; }
  // Counts an SST read; true (and the seed) if it is the one to corrupt.
  bool TakeSstFlip(uint64_t* seed);
  // With COWDB_FAULT_FS_TRACE=FILE: notes a line for the trace, which
  // SimulatePowerLoss writes to FILE (every operation, every append and
  // sync with the file's sizes, and what the power loss kept).
  bool tracing() const { return !trace_path_.empty(); }
  void Trace(std::string line) { if (tracing()) trace_.push_back(std::move(line)); }
  std::mutex& mu() const { return mu_; }
  bool frozen_locked() const { return frozen_; }

 private:
  // A directory operation that a power loss may undo.
  struct DirOp {
    enum Kind { kCreateFile, kCreateDir, kRename, kDelete, kDeleteDir };
    Kind kind;
    std::string dir;      // the directory whose sync makes it durable
    std::string path;     // created / deleted path, or rename source
    std::string target;   // rename target
    std::string stash;    // where the deleted or replaced file waits
    bool synced = false;
    uint64_t seq = 0;     // its place among all operations
  };

  std::shared_ptr<FileState> StateFor(const std::string& path, bool create)
      /* REQUIRES: mu_ held */;
  std::string NewStashPath() /* REQUIRES: mu_ held */;
  // Moves `path` into the stash; returns the stash path ("" if absent).
  std::string StashFile(const std::string& path) /* REQUIRES: mu_ held */;
  void MoveState(const std::string& from, const std::string& to)
      /* REQUIRES: mu_ held */;
  void UndoDirOp(const DirOp& op) /* REQUIRES: mu_ held */;
  void LogDirOp(DirOp op) /* REQUIRES: mu_ held */;

  const std::string stash_dir_;
  const bool verbose_;  // COWDB_FAULT_FS_VERBOSE set: log injected faults
  const std::string trace_path_;  // COWDB_FAULT_FS_TRACE, or empty
  std::vector<std::string> trace_;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<FileState>> files_;  // written files
  std::vector<DirOp> dir_log_;
  uint64_t stash_seq_ = 0;
  uint64_t seq_ = 0;
  bool frozen_ = false;
  uint64_t freeze_at_mutation_ = 0;  // 0: none
  uint64_t ops_ = 0;
  uint64_t mutations_ = 0;
  uint64_t sst_reads_ = 0;
  uint64_t injected_ = 0;
  uint64_t fail_once_ = 0;   // 0: none
  uint64_t fail_from_ = 0;   // 0: none
  uint64_t flip_read_ = 0;   // 0: none
  uint64_t flip_seed_ = 0;
  std::vector<std::string> op_names_;  // the first few thousand
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_FAULT_FS_H_
