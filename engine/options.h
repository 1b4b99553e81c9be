// Options for opening a database and for reads.
//
// Plain structs: set the fields you need, keep the defaults for the rest.

#ifndef COWDB_ENGINE_OPTIONS_H_
#define COWDB_ENGINE_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cowdb {

class Snapshot;

struct Options {
  // Create the database if the directory does not exist or is empty.
  // Default: true.
  bool create_if_missing = true;

  // Acknowledge a commit only after it is synced to stable storage. With
  // false, a machine crash (not a process crash) may lose the most recent
  // acknowledged commits, and may damage the database: the power-loss
  // harness sees, in about 1 of 10 runs of 30 cycles, a store RocksDB
  // refuses to open ("SST file is ahead of WALs") or a version with a
  // missing page. Use false only for data you can rebuild.
  // Default: true.
  bool sync = true;

  // Target size of a tree page in bytes, between 512 and 65536. Fixed when
  // the database is created; reopening uses the stored value.
  // Default: 4096.
  size_t page_size = 4096;

  // Bytes of decoded pages kept in memory, shared by all readers.
  // Default: 256 MiB.
  size_t cache_bytes = 256 << 20;

  // Longest accepted key; longer keys fail with InvalidArgument.
  // Default: 4096.
  size_t max_key_size = 4096;

  // Longest accepted value; longer values fail with InvalidArgument.
  // Default: 16 MiB.
  size_t max_value_size = 16 << 20;

  // Retention. The latest version is always kept, and so is every tagged
  // version and every version an open snapshot, iterator or transaction
  // holds. Besides those, a version is kept while it is one of the last
  // `retain_versions` versions OR younger than `retain_seconds`; older ones
  // are released and their pages reclaimed in the background.
  // kRetainAll keeps every version.
  // Default: the last 1000 versions; no time-based retention.
  static constexpr uint64_t kRetainAll = ~0ull;
  uint64_t retain_versions = 1000;
  uint64_t retain_seconds = 0;

  // Reclaim released versions' pages in a background thread. With false,
  // only DB::Reclaim() does it.
  // Default: true.
  bool background_reclaim = true;

  // Checkpoints. A commit writes only its log record; a checkpoint writes
  // the latest version's new tree nodes as pages, each once, so that
  // opening replays only the log after it. A background thread starts one
  // when any trigger is reached (0 turns a trigger off); DB::Checkpoint()
  // and a clean close always do. The log bytes bound recovery time; the
  // memory bytes bound the tree nodes held in memory until written.
  // Defaults: 64 MiB of log, 64 MiB of unwritten nodes, 60 seconds (time
  // counts only when something was committed since the last checkpoint).
  uint64_t checkpoint_log_bytes = 64 << 20;
  uint64_t checkpoint_memory_bytes = 64 << 20;
  uint64_t checkpoint_interval_seconds = 60;
  // With false, only DB::Checkpoint() and a clean close checkpoint.
  // Default: true.
  bool background_checkpoint = true;

  // Values longer than this are stored out of line (as blobs), so that
  // pages stay small and scans of keys stay fast. At most page_size / 4.
  // Fixed when the database is created (a tree's shape, and so its hash,
  // depends on it); reopening uses the stored value.
  // Default: 1024.
  size_t inline_value_limit = 1024;

  // Whether every version's tree has Merkle hashes, so that reads can be
  // proved (DB::ProveGet, engine/proof.h). Costs a SHA-256 of each node a
  // commit changes. Fixed when the database is created; a database
  // created by a build before verified reads (format 3 or older) never
  // hashes. Default: true.
  bool verifiable = true;

  // Open for reading only, as a replica of a database that a writer
  // elsewhere changes through a shared store (DB::OpenRados): no commits,
  // checkpoints or reclamation; DB::CatchUp() applies what the writer
  // committed since. Writes fail with FailedPrecondition. The database
  // must exist.
  // Default: false.
  bool read_only = false;

  // On a read-only database, a read at a version after the latest waits up
  // to this long for CatchUp to reach it before failing with NotFound.
  // Default: 2000 (2 s).
  uint64_t read_only_wait_millis = 2000;
};

// Where a database in a Ceph RADOS pool lives (DB::OpenRados).
struct RadosOptions {
  // Ceph configuration file; "" uses librados' search (CEPH_CONF, then
  // /etc/ceph/ceph.conf).
  std::string conf_path;
  // The Ceph client id (the "admin" of client.admin).
  std::string client_id = "admin";
  // The pool, which must exist, and the database's name: a RADOS
  // namespace in the pool.
  std::string pool;
  std::string name;
  // The writer's fencing epoch, from the cluster's coordinator: it must be
  // larger than every earlier writer's, and a writer whose epoch was
  // superseded can no longer commit (FailedPrecondition "fenced").
  // 0: the database's epoch plus one (a single writer, no coordinator).
  // Ignored with Options::read_only.
  uint64_t epoch = 0;
  // Bound on every Ceph operation, so that an unreachable cluster is an
  // error rather than a hang.
  int op_timeout_seconds = 30;
};

struct ReadOptions {
  // Read as of this snapshot. Not owned; must outlive the read (and any
  // iterator created with these options may outlive it: the iterator pins
  // the version itself).
  // Default: nullptr, meaning the version given below, or the latest.
  const Snapshot* snapshot = nullptr;

  // Read as of this version (0 = the empty database). Must not be set
  // together with `snapshot`.
  // Default: unset (the latest version).
  std::optional<uint64_t> version;

  // Read this branch's tree ("" or "main": the main branch; see DB::Fork).
  // With `snapshot`, it must be the snapshot's branch or empty.
  // Default: main.
  std::string branch;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_OPTIONS_H_
