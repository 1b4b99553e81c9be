// cowdb: an embedded, versioned key-value store.
//
// Every commit creates the next version of the database (version 0 is the
// empty database). Any version can be read through a Snapshot; a snapshot
// never changes. Keys and values are arbitrary bytes; keys sort bytewise.
//
//   absl::StatusOr<std::unique_ptr<cowdb::DB>> db =
//       cowdb::DB::Open(cowdb::Options(), "/var/lib/mydb");
//   absl::StatusOr<uint64_t> v1 = (*db)->Put("greeting", "hello");
//   (*db)->Put("greeting", "bye").IgnoreError();
//   cowdb::ReadOptions at_v1;
//   at_v1.version = *v1;
//   (*db)->Get(at_v1, "greeting");  // "hello"
//
// Errors (absl::StatusCode):
//   kInvalidArgument     bad input: empty or too long key, too long value,
//                        bad options
//   kNotFound            Get of a missing key; a version that does not exist
//   kOutOfRange          a version that is no longer retained
//   kFailedPrecondition  not a cowdb directory, a newer format, or writes
//                        refused after an earlier commit of unknown outcome
//   kDataLoss            a corrupt page (the message names it)
//   kUnknown             the storage write of a commit failed: the commit
//                        may or may not be durable. The database then
//                        refuses writes until it is reopened; after
//                        reopening, read to find out.
//
// Thread safety: all methods may be called concurrently. Concurrent commits
// are grouped: one thread validates and applies a whole queue of them in one
// storage write with one sync, and they share the resulting version.
// Readers never wait for commits.

#ifndef COWDB_ENGINE_DB_H_
#define COWDB_ENGINE_DB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/iterator.h"
#include "engine/options.h"
#include "engine/proof.h"
#include "engine/snapshot.h"
#include "engine/transaction.h"
#include "engine/write_batch.h"

namespace cowdb {

// A branch (see DB::Fork).
struct BranchInfo {
  std::string name;
  uint64_t created = 0;         // the version that created it (0: main)
  std::string source;           // the branch it was forked from ("" for main)
  // The version of `source` it started as: for a fork of the latest tree,
  // the latest version then.
  uint64_t source_version = 0;
  uint64_t entries = 0;         // keys in its latest tree
};

// A tree to read: a branch at a version (unset: the latest). A tag or a
// time names a version too: resolve it with ListTags or VersionAt.
struct TreeAt {
  std::string branch = "main";
  std::optional<uint64_t> version;
};

// How Merge settles a key both sides changed differently.
enum class MergePolicy {
  kFail,    // merge nothing and report the conflicts
  kOurs,    // keep the value of the branch merged into
  kTheirs,  // take the value of the branch merged from
};

// A key both sides of a merge changed, differently (nullopt: absent).
struct MergeConflict {
  std::string key;
  std::optional<std::string> base, ours, theirs;
};

struct MergeResult {
  bool merged = false;    // false: kFail found conflicts; nothing was written
  uint64_t version = 0;   // the merge's commit (the latest if nothing changed)
  uint64_t base_version = 0;  // the common ancestor's version
  std::string base_branch;    // ... and branch
  uint64_t changes = 0;       // keys the merge wrote into `into`
  std::vector<MergeConflict> conflicts;  // found (and, unless kFail, settled)
};

// Counters since the database was opened, plus a few gauges.
struct DBStats {
  uint64_t latest_version = 0;
  uint64_t entries = 0;          // keys in the latest version
  uint64_t commits = 0;          // versions committed
  uint64_t syncs = 0;            // synced commit writes (one per group
                                 // commit, so <= commits; tags and
                                 // checkpoints sync too, uncounted)
  uint64_t pages_written = 0;    // tree pages written
  uint64_t blobs_written = 0;    // out-of-line values written
  uint64_t bytes_written = 0;    // bytes handed to storage
  uint64_t page_reads = 0;       // reads from storage (cache misses, blobs)
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t cache_bytes = 0;      // bytes held by the node cache
  uint64_t cache_capacity = 0;   // Options::cache_bytes
  uint64_t disk_bytes = 0;       // approximate size on disk
  // The same by what it holds (column families on RocksDB): tree pages,
  // out-of-line values, the commit log, and the records (versions,
  // checkpoints, freed lists, tags, meta).
  uint64_t disk_bytes_pages = 0;
  uint64_t disk_bytes_blobs = 0;
  uint64_t disk_bytes_log = 0;
  uint64_t disk_bytes_records = 0;
  uint64_t log_bytes = 0;        // commit log bytes written
  uint64_t checkpoints = 0;      // checkpoints written since open
  uint64_t checkpoint_version = 0;  // version of the last checkpoint
  uint64_t unwritten_bytes = 0;  // tree nodes not yet checkpointed
  uint64_t replayed_commits = 0;    // log records replayed by open
  uint64_t recovery_micros = 0;     // time open took to recover
};

// A retained version, as ListVersions reports it.
struct VersionInfo {
  uint64_t version = 0;
  int64_t commit_micros = 0;  // wall-clock commit time, Unix microseconds
  uint64_t entries = 0;       // keys in main's tree at the version
  // The branch the version's commit changed, created or deleted.
  std::string branch = "main";
};

// One difference between two versions (see DB::Diff).
struct Change {
  std::string key;
  std::optional<std::string> old_value;  // nullopt: absent in `from`
  std::optional<std::string> new_value;  // nullopt: absent in `to`
  KeyMeta old_meta;  // zero when absent in `from`
  KeyMeta new_meta;  // zero when absent in `to`
};

// One change of one key (see DB::History).
struct KeyChange {
  uint64_t version = 0;              // the commit that made it
  std::optional<std::string> value;  // nullopt: that commit deleted the key
  KeyMeta meta;                      // after the change; zero for a delete
};

// Which changes DB::History lists: those made by versions in [from, to].
struct HistoryOptions {
  uint64_t from = 0;           // 0: as far back as versions are retained
  std::optional<uint64_t> to;  // unset: the latest version
  uint64_t limit = 0;          // changes at most; 0: no limit
};

// A key's changes, newest first (see DB::History).
struct KeyHistory {
  std::vector<KeyChange> changes;
  uint64_t to = 0;  // the version searched back from
  // Every change made by a version in [complete_from, to] is listed. It is
  // `from`, or later when older versions are released (the release floor
  // + 1: what a released version changed cannot be known) or when `limit`
  // cut the list short (then the last change's version).
  uint64_t complete_from = 0;
  // `limit` stopped the search: there may be older changes; ask again with
  // `to` = changes.back().version - 1.
  bool more = false;
};

// One change delivered by a Watcher.
struct WatchEvent {
  uint64_t version = 0;  // the version whose commit made the change
  Change change;
  // True when versions were skipped (they were released): the event is the
  // net change from the watcher's previous position to `version`. When the
  // watch started at a released version, the first events are the whole
  // state of the range at `version`, all flagged net: replace what you had.
  bool net = false;
};

// A change feed (see DB::Watch). Used by one thread at a time.
// REQUIRES: destroyed before its DB.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // The next change, in version order (key order within a version). Waits
  // up to `timeout` for a new commit; DeadlineExceeded if none came.
  virtual absl::StatusOr<WatchEvent> Next(absl::Duration timeout) = 0;
  // The version up to which every change has been delivered or queued.
  virtual uint64_t position() const = 0;
};

// What one reclamation pass did.
struct ReclaimStats {
  uint64_t floor = 0;  // versions below it are released unless kept
  uint64_t versions_released = 0;
  uint64_t pages_deleted = 0;
  uint64_t blobs_deleted = 0;
  uint64_t log_records_deleted = 0;
  uint64_t checkpoints_deleted = 0;
};

// The result of DB::Check.
// A scan with its proof (DB::ProveScan).
struct ProvedRange {
  std::vector<std::pair<std::string, std::string>> kvs;
  // The proof covers [begin, proved_end): the scan's end, or just after the
  // last key when `limit` cut it short ("" = no bound).
  std::string proved_end;
  RangeProof proof;
};

struct CheckReport {
  uint64_t versions_checked = 0;
  uint64_t pages_reachable = 0;  // distinct pages reachable from them
  uint64_t blobs_reachable = 0;
  uint64_t pages_stored = 0;
  uint64_t blobs_stored = 0;
  uint64_t pages_pending = 0;  // freed, awaiting reclamation
  uint64_t blobs_pending = 0;
  uint64_t pages_leaked = 0;   // stored, unreachable and not pending
  uint64_t blobs_leaked = 0;
};

class DB {
 public:
  // Opens the database in directory `path`, creating it if allowed.
  // Errors: InvalidArgument (bad options); FailedPrecondition (`path` holds
  // something that is not a cowdb database, or a newer format; nothing is
  // changed); NotFound (no database and !create_if_missing); storage errors.
  static absl::StatusOr<std::unique_ptr<DB>> Open(const Options& options,
                                                  const std::string& path);

  // Opens (or creates) the database `rados.name` in a Ceph RADOS pool, so
  // that several machines share it: one writer (per epoch) and any number
  // of replicas (Options::read_only). Errors as Open, plus Unavailable (the
  // cluster cannot be reached), NotFound (no such pool), FailedPrecondition
  // (`rados.epoch` is older than the database's).
  static absl::StatusOr<std::unique_ptr<DB>> OpenRados(
      const Options& options, const RadosOptions& rados);

  DB() = default;
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;
  // Closes the database. REQUIRES: no snapshot or iterator outlives it.
  virtual ~DB() = default;

  // Sets `key` to `value` in a new version and returns that version.
  virtual absl::StatusOr<uint64_t> Put(std::string_view key,
                                       std::string_view value) = 0;

  // Removes `key` in a new version and returns that version (a new version
  // is committed even if `key` was absent).
  virtual absl::StatusOr<uint64_t> Delete(std::string_view key) = 0;

  // Applies `batch` atomically in one new version and returns it. An empty
  // batch commits nothing and returns the latest version.
  virtual absl::StatusOr<uint64_t> Write(const WriteBatch& batch) = 0;

  // The outcome of WriteAsync: the version, or why nothing was committed.
  using WriteCallback = std::function<void(absl::StatusOr<uint64_t>)>;

  // As Write, without waiting: queues `batch` for the next group commit and
  // returns. `done` runs once with Write's result, when the commit is as
  // durable as Write's would be. It runs on the thread that led the
  // commit (a background committer, or another writer's thread; a bad
  // batch: the caller's, before WriteAsync returns), so it must be quick
  // and must not call the blocking writes (Put, Delete, Write, a
  // transaction's Commit); WriteAsync is fine. An empty `done` drops the
  // outcome. Versions follow queue order, but callbacks run after the
  // blocking writers of the same group are woken, so a later Write can
  // return before an earlier WriteAsync's callback has run. Nothing bounds
  // the queue: a caller with many writers in flight should bound them. For
  // a server that answers many writers without a thread per write. The
  // database waits for every queued write when it closes.
  virtual void WriteAsync(WriteBatch batch, WriteCallback done) = 0;

  // Returns the value of `key`. Errors: NotFound if absent; InvalidArgument
  // for the empty key.
  virtual absl::StatusOr<std::string> Get(const ReadOptions& options,
                                          std::string_view key) = 0;

  // As Get, into `*value`, whose capacity is reused for values stored
  // inline: a loop of reads into one string allocates only when a value
  // outgrows it (a value above Options::inline_value_limit is read into a
  // new buffer). `*value` is unspecified after an error.
  virtual absl::Status Get(const ReadOptions& options, std::string_view key,
                           std::string* value) = 0;

  // As Get, with the key's mod_version and the version read.
  virtual absl::StatusOr<Entry> GetEntry(const ReadOptions& options,
                                         std::string_view key) = 0;

  // Starts a transaction (see transaction.h). Errors: InvalidArgument for
  // a read_version on a read-write transaction; as SnapshotAt for an
  // unknown read_version.
  virtual absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options) = 0;

  // The latest version. O(1).
  virtual Snapshot GetSnapshot() = 0;

  // A retained version. Errors: NotFound for a version after the latest;
  // OutOfRange for one no longer retained. Both name the latest version.
  virtual absl::StatusOr<Snapshot> SnapshotAt(uint64_t version) = 0;

  // An iterator over the version chosen by `options`, initially not
  // positioned. Errors: as SnapshotAt.
  virtual absl::StatusOr<std::unique_ptr<Iterator>> NewIterator(
      const ReadOptions& options) = 0;

  // The number of keys k with begin <= k < end; an empty `end` means no
  // upper bound. O(log n).
  virtual absl::StatusOr<uint64_t> Count(const ReadOptions& options,
                                         std::string_view begin,
                                         std::string_view end) = 0;

  virtual uint64_t LatestVersion() = 0;

  // A replica (Options::read_only): applies the versions its writer
  // committed since the last call and returns the latest version. Errors:
  // FailedPrecondition on a database that writes; DataLoss when the writer
  // already discarded log records this replica has not applied (it fell
  // too far behind: reopen it).
  virtual absl::StatusOr<uint64_t> CatchUp() = 0;

  // The oldest version that can still be read.
  virtual uint64_t OldestVersion() = 0;

  // The retained versions that have records (see Options retention), in
  // ascending order.
  virtual absl::StatusOr<std::vector<VersionInfo>> ListVersions() = 0;

  // The version that was the latest at wall-clock time `unix_micros`.
  // Errors: OutOfRange if that version is no longer retained (or the time
  // is before the database existed).
  virtual absl::StatusOr<uint64_t> VersionAt(int64_t unix_micros) = 0;

  // Names `version` so that it is retained until untagged; persistent.
  // Moving an existing tag is allowed. Errors: InvalidArgument for an empty
  // or over-long name; as SnapshotAt for the version.
  virtual absl::Status Tag(std::string_view name, uint64_t version) = 0;
  // Errors: NotFound for an unknown tag; InvalidArgument for a name Tag
  // would refuse.
  virtual absl::Status Untag(std::string_view name) = 0;
  virtual std::map<std::string, uint64_t> ListTags() = 0;

  // System records: named values kept in the database's files but outside
  // its versions (cowdb_server keeps its users and roles there). No read,
  // scan, diff, history, watch or export sees them; Backup copies them.
  // A put is durable (synced) when it returns. Errors: InvalidArgument for
  // an empty name or one over 256 bytes; I/O errors.
  virtual absl::StatusOr<std::optional<std::string>> GetSystemRecord(
      std::string_view name) = 0;
  virtual absl::Status PutSystemRecord(std::string_view name, std::string_view value) = 0;

  // Calls `fn` for every key in [begin, end) (empty `end` = unbounded)
  // that differs between versions `from` and `to`, in key order, until it
  // returns false. Cost grows with the number of differences, not with the
  // size of the database. Errors: InvalidArgument if from > to; as
  // SnapshotAt.
  virtual absl::Status Diff(uint64_t from, uint64_t to, std::string_view begin,
                            std::string_view end,
                            const std::function<bool(const Change&)>& fn) = 0;

  // The changes of `key` (puts, and deletes of a present key) made by the
  // versions in [options.from, options.to], newest first. It hops back
  // from version to version through each state's start (a value's
  // mod_version; for an absent key, the last change of the leaf where it
  // would be), so the cost grows with the changes near the key, times the
  // depth, not with the number of versions. Before the last checkpoint,
  // the key's changes in a checkpoint interval come from one pass over
  // that interval's log records (no version is rebuilt). Errors:
  // InvalidArgument for a bad key or from > to; as SnapshotAt for `to`.
  virtual absl::StatusOr<KeyHistory> History(std::string_view key,
                                             const HistoryOptions& options) = 0;

  // A change feed of keys in [begin, end) (empty `end` = unbounded): every
  // change after `from_version`, in version order, then new commits as they
  // happen. The watcher pins the version it has reached, which holds back
  // reclamation of what comes after it until it moves on. Starting from a
  // released version is allowed: the watcher then starts from the oldest
  // retained version with its whole state as net events (see WatchEvent).
  // Errors: NotFound for a version after the latest.
  virtual absl::StatusOr<std::unique_ptr<Watcher>> Watch(
      uint64_t from_version, std::string_view begin, std::string_view end) = 0;

  // Releases every version below `version` except tagged ones, whatever
  // the retention options keep, persistently (etcd's Compact). Reads below
  // it then fail with OutOfRange. Lowering it again has no effect.
  // Errors: NotFound for a version after the latest.
  virtual absl::Status ReleaseBefore(uint64_t version) = 0;

  // The retention window (Options::retain_versions, retain_seconds), and
  // a change of it that applies from the next reclamation pass until the
  // database is closed (the Options given to Open apply again after).
  // Widening it keeps what is still retained; it does not bring back what
  // was released.
  struct Retention {
    uint64_t retain_versions = 0;  // Options::kRetainAll: every version
    uint64_t retain_seconds = 0;
  };
  virtual Retention GetRetention() = 0;
  virtual absl::Status SetRetention(const Retention& retention) = 0;

  // The release floor: versions below it are released unless tagged or
  // pinned by a snapshot, iterator or watcher. ReleaseBefore and the
  // retention options raise it (retention when the reclaimer runs); it
  // never goes down. 0 until anything was released.
  virtual uint64_t ReleaseFloor() = 0;

  // Runs one reclamation pass now: releases versions outside retention and
  // deletes the pages and blobs that no retained version reaches. Never
  // blocks commits or readers.
  virtual absl::StatusOr<ReclaimStats> Reclaim() = 0;

  // Writes a checkpoint now: the tree nodes of the latest version that no
  // checkpoint has written yet become pages, so that opening replays no
  // log before it. Commits and reads go on meanwhile. Usually automatic
  // (see Options::checkpoint_*). Errors: storage errors; after one, writes
  // are refused until the database is reopened (nothing committed is lost:
  // opening replays the log).
  virtual absl::Status Checkpoint() = 0;

  // Verifies every retained version: all reachable pages and blobs decode
  // and pass their checksums, tree invariants hold, no reachable page is
  // recorded as freed before a version that reaches it. Reports stored
  // pages that nothing reaches. `progress` (if set) is called after each
  // version with the versions checked so far and the total; returning
  // false stops the check (Cancelled). Errors: DataLoss or Internal
  // describing the first problem.
  using CheckProgress = std::function<bool(uint64_t done, uint64_t total)>;
  virtual absl::StatusOr<CheckReport> Check(const CheckProgress& progress) = 0;
  absl::StatusOr<CheckReport> Check() { return Check(CheckProgress()); }

  // Hot backup: writes a consistent copy of the whole database (every
  // retained version and the tags) into the new directory `dir`, while
  // reads and writes go on. The copy is a database: open it with DB::Open
  // to restore. Errors: AlreadyExists if `dir` exists; I/O errors.
  virtual absl::Status Backup(const std::string& dir) = 0;

  // Writes the keys and values of `version` to a portable file at `path`
  // (format in engine/format/export_file.h; written to a temporary file,
  // synced, then renamed). Errors: as SnapshotAt; I/O errors.
  virtual absl::Status Export(uint64_t version, const std::string& path) = 0;

  // An incremental export: the changes from version `from` to `to` (what
  // Diff(from, to) yields: the keys put with their new values, and the
  // keys deleted), written as Export writes. Importing it into a database
  // at `from`'s state brings it to `to`'s. Errors: as Diff; I/O errors.
  virtual absl::Status ExportChanges(uint64_t from, uint64_t to, const std::string& path) = 0;

  // Restores an export file into this database: its keys are written (an
  // incremental export's deletes applied) in commits of up to 10,000 (so
  // not atomically as a whole; import a full export into an empty
  // database to recreate the exported version; importing a file again
  // converges to the same state). The file's checksum is verified before
  // anything is written. Returns the number of records. Errors: DataLoss
  // for a damaged file; as Write.
  virtual absl::StatusOr<uint64_t> Import(const std::string& path) = 0;

  // ---- Verified reads (engine/proof.h). In a database created with
  // Options::verifiable (the default); elsewhere these fail with
  // FailedPrecondition.

  // The value of `key` (nullopt when absent) at the version `options`
  // chooses, with a proof of that answer: VerifyRead(proof, key, value)
  // recomputes the version's digest from it. Errors: InvalidArgument for
  // the empty key; as Get.
  virtual absl::StatusOr<ProvedValue> ProveGet(const ReadOptions& options,
                                               std::string_view key) = 0;

  // The keys and values of [begin, end) (empty `end`: no bound; at most
  // `limit` keys, 0: no limit) at the version `options` chooses, with a
  // proof: VerifyScan(proof, begin, proved_end, kvs) recomputes the
  // version's digest. Errors: InvalidArgument for end < begin; as Get.
  virtual absl::StatusOr<ProvedRange> ProveScan(const ReadOptions& options,
                                                std::string_view begin,
                                                std::string_view end,
                                                uint64_t limit) = 0;

  // The root hash and digest of a retained `version`. Errors: as
  // SnapshotAt.
  virtual absl::StatusOr<VersionDigest> GetDigest(uint64_t version) = 0;

  // What takes a trusted digest of version `from` to the digest of `to`
  // (VerifyChain): one link per version in (from, to]. Errors:
  // InvalidArgument if from > to; OutOfRange if a version in between is
  // released (its record, and so its link, is gone); NotFound after the
  // latest.
  virtual absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from,
                                                              uint64_t to) = 0;

  // ---- Branches. A branch is a named, writable line of versions. "main"
  // always exists; the calls above without a branch act on it. Versions
  // are numbered globally: every commit, on any branch, makes the next
  // version, and a version holds every branch's tree as it was then (a
  // commit to one branch leaves the others' trees as they were). So a
  // version number (or a tag, or a time) names a state of all branches,
  // and ReadOptions::branch picks the tree. Retention is global too: the
  // window counts versions of all branches; a branch's latest tree is
  // always retained while it exists.

  // Creates branch `name` as the tree of `from` (its latest when
  // from.version is unset) in a new version, which it returns. The branch
  // shares every page with its source until either is written. Forking a
  // branch's latest tree is O(1) (one log record). Forking an older tree
  // (a version, tag or time after which the branch changed, or a branch
  // deleted since) also writes a checkpoint with the fork: the nodes no
  // checkpoint wrote yet, not the database; commits wait for it. A
  // branch's name is 1 to 100 of [A-Za-z0-9._/-], not "main". Errors:
  // InvalidArgument for a bad name; AlreadyExists; NotFound for a source
  // branch that does not exist at from.version; as SnapshotAt for
  // from.version.
  virtual absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from) = 0;

  // Deletes branch `name` in a new version, which it returns. Its earlier
  // versions stay readable while retained; the pages only it reached are
  // reclaimed after. Errors: NotFound; InvalidArgument for "main".
  virtual absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) = 0;

  // The branches at the latest version, main first.
  virtual std::vector<BranchInfo> ListBranches() = 0;

  // A snapshot of the tree `options` chooses (branch and version or
  // latest). Errors: as SnapshotAt; NotFound for an unknown branch.
  virtual absl::StatusOr<Snapshot> SnapshotOf(const ReadOptions& options) = 0;

  // Diff between any two trees: of two branches, or of one at two
  // versions (no order required). Cost grows with the differences: trees
  // of branches share their unchanged pages, which are skipped. Errors:
  // as SnapshotAt; NotFound for an unknown branch.
  virtual absl::Status DiffTrees(const TreeAt& from, const TreeAt& to,
                                 std::string_view begin, std::string_view end,
                                 const std::function<bool(const Change&)>& fn) = 0;

  // Watch (above) on one branch: only changes to its tree. A watcher on a
  // branch that gets deleted fails with NotFound once it reaches the
  // deletion.
  virtual absl::StatusOr<std::unique_ptr<Watcher>> WatchBranch(
      std::string_view branch, uint64_t from_version, std::string_view begin,
      std::string_view end) = 0;

  // Three-way merge of branch `from` into branch `into`: the changes
  // `from` made since their common ancestor (the fork between them, the
  // last merge between them, or for two forks of one branch the earlier
  // fork's first tree) are applied to `into` in one commit.
  // A key both changed since, to different values, is a conflict, settled
  // by `policy`; keys changed the same way on both sides are not. Errors:
  // NotFound for an unknown branch; InvalidArgument if from == into;
  // FailedPrecondition when no common ancestor is known (or it is no
  // longer readable: forks and merges keep theirs tagged, as "fork:NAME"
  // and "merge:FROM:INTO"); Aborted if a key the merge writes changed in
  // `into` meanwhile (retry); as Write.
  virtual absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                            MergePolicy policy) = 0;

  virtual DBStats GetStats() = 0;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_DB_H_
