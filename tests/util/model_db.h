// ModelDB: the executable specification of cowdb::DB. A std::map per
// version behind the DB interface, simple enough to be obviously right,
// driven beside the real database by the model test and the fuzzers (as
// LevelDB's ModelDB is by its randomized test).
//
//   ModelDB model(options);            // the options the real DB got
//   uint64_t v = model.Put("k", "1").value();
//   ModelDB::State s = model.StateAt(v).value();  // {"k": {"1", mod 1, ...}}
//
// What it models, as engine/db.h and engine/transaction.h document it:
//  - versions: every commit makes the next version (0 is empty); an empty
//    batch commits nothing.
//  - per-key metadata (KeyMeta, iterator.h): mod_version; create_version
//    and writes, counted per put in the order a commit applies them (a
//    batch's ops in order, so a key put twice in one batch has two more
//    writes; a delete then a put of a key in one commit recreates it);
//    the lease of the last put. A transaction's own uncommitted write
//    reads as its lease with the rest 0.
//  - errors: InvalidArgument for an empty or too long key, a too long
//    value, a tag name outside 1..256 bytes, snapshot and version set
//    together, a read_version on a read-write transaction; NotFound for an
//    absent key, a version after the latest, an unknown tag; OutOfRange
//    (naming the oldest retained version) for a released one.
//  - retention: a version is retained while it is the latest, at or above
//    the floor of the last reclamation pass, tagged, or pinned (by a Pin,
//    an iterator, an open transaction or a watcher). Reclaim() computes the
//    floor as the engine does: max(old floor, min(window, latest)), where
//    the window keeps the last `retain_versions` versions, or also those
//    younger than `retain_seconds` by the model's own commit clock.
//    ReleaseBefore(v) raises the floor to v (NotFound after the latest).
//  - transactions: read-your-writes (iterators both ways), read-only
//    transactions at a version, FailedPrecondition once finished or for a
//    write to a read-only one. SNAPSHOT validates the written keys;
//    SERIALIZABLE validates every key read from the snapshot (existence
//    and mod_version) and every key range an iterator observed or Count
//    covered, recorded exactly as the engine's transaction iterator
//    records them (a positioning observes from where it started to the key
//    it landed on, or to the end). A conflict is Aborted and applies
//    nothing.
//  - Diff, and Watch: a watcher pins its position and steps lazily, on
//    Next, to the next retained version (a net step if versions between
//    were released); starting from a released version queues the whole
//    state of the first retained version after it as net events. Next
//    waits up to its timeout for a commit (made by another thread).
//
// What it does not model:
//  - Snapshots. cowdb::Snapshot has no public constructor (only the
//    engine's DBImpl can make a valid one), so GetSnapshot() returns an
//    empty Snapshot, which by snapshot.h reads the latest version, and
//    SnapshotAt() checks the version (its errors are modeled) and returns
//    an empty one too. Hold a version with Pin() instead. A ReadOptions
//    carrying a valid snapshot (from a real DB) is read at its version().
//  - Maintenance: Checkpoint() does nothing and returns OK; Check() returns
//    a report with versions_checked = the retained versions with records
//    and every page count 0; Backup, Export, Import and the
//    verified reads are Unimplemented;
//    GetStats() fills latest_version, entries and commits only.
//  - Commit times: the model stamps commits with its own clock (monotonic,
//    like the engine's), so VersionAt, ListVersions' commit_micros and
//    time-based retention follow the model's commits, not another DB's.
//  - Group commit, storage errors (no Unknown outcomes), persistence:
//    there is no reopen; drop pins, iterators and transactions where the
//    real DB is reopened.
//  - WriteAsync and CommitAsync commit on the caller's thread and run the
//    callback before returning.
//
// Thread safety: all methods may be called concurrently (one mutex).
// REQUIRES: pins, iterators, transactions and watchers are destroyed
// before the ModelDB.

#ifndef COWDB_TESTS_UTIL_MODEL_DB_H_
#define COWDB_TESTS_UTIL_MODEL_DB_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/db.h"

namespace cowdb::testing {

class ModelDB final : public DB {
 public:
  // A key's value and what KeyMeta reports of it (a transaction's own
  // uncommitted write: its lease, the rest 0).
  struct Value {
    std::string value;
    uint64_t mod_version = 0;
    uint64_t create_version = 0;
    uint64_t writes = 0;
    uint64_t lease = 0;
    KeyMeta meta() const {
      return KeyMeta{mod_version, create_version, writes, lease};
    }
    bool operator==(const Value& o) const {
      return value == o.value && mod_version == o.mod_version &&
             create_version == o.create_version && writes == o.writes &&
             lease == o.lease;
    }
    bool operator!=(const Value& o) const { return !(*this == o); }
  };
  using State = std::map<std::string, Value, std::less<>>;
  // What a put writes.
  struct PutValue {
    std::string value;
    uint64_t lease = 0;
  };
  // A transaction's writes by key; nullopt deletes.
  using Writes = std::map<std::string, std::optional<PutValue>, std::less<>>;
  // One mutation of a commit; no `put` deletes.
  struct Mutation {
    std::string key;
    std::optional<PutValue> put;
  };
  // Holds a version retained while it lives (see Pin).
  using PinHandle = std::shared_ptr<const void>;

  // Uses the limits and retention fields of `options`; the storage fields
  // (page size, cache, sync, checkpoints) mean nothing to the model.
  explicit ModelDB(const Options& options = Options());
  ~ModelDB() override;

  // ------------------------------------------------------------------ DB
  absl::StatusOr<uint64_t> Put(std::string_view key,
                               std::string_view value) override;
  absl::StatusOr<uint64_t> Delete(std::string_view key) override;
  absl::StatusOr<uint64_t> Write(const WriteBatch& batch) override;
  void WriteAsync(WriteBatch batch, WriteCallback done) override;
  absl::StatusOr<std::string> Get(const ReadOptions& options,
                                  std::string_view key) override;
  absl::Status Get(const ReadOptions& options, std::string_view key,
                   std::string* value) override;
  absl::StatusOr<Entry> GetEntry(const ReadOptions& options,
                                 std::string_view key) override;
  absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options) override;
  Snapshot GetSnapshot() override;  // empty: see the banner
  absl::StatusOr<Snapshot> SnapshotAt(uint64_t version) override;
  absl::StatusOr<std::unique_ptr<Iterator>> NewIterator(
      const ReadOptions& options) override;
  absl::StatusOr<uint64_t> Count(const ReadOptions& options,
                                 std::string_view begin,
                                 std::string_view end) override;
  uint64_t LatestVersion() override;
  uint64_t OldestVersion() override;
  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override;
  absl::StatusOr<uint64_t> VersionAt(int64_t unix_micros) override;
  absl::Status Tag(std::string_view name, uint64_t version) override;
  absl::Status Untag(std::string_view name) override;
  std::map<std::string, uint64_t> ListTags() override;
  absl::StatusOr<std::optional<std::string>> GetSystemRecord(
      std::string_view name) override;
  absl::Status PutSystemRecord(std::string_view name, std::string_view value) override;
  absl::Status Diff(uint64_t from, uint64_t to, std::string_view begin,
                    std::string_view end,
                    const std::function<bool(const Change&)>& fn) override;
  // Replays the key's mutations from version 1 (no hopping).
  absl::StatusOr<KeyHistory> History(std::string_view key,
                                     const HistoryOptions& options) override;
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(uint64_t from_version,
                                                 std::string_view begin,
                                                 std::string_view end) override;
  absl::Status ReleaseBefore(uint64_t version) override;
  uint64_t ReleaseFloor() override;
  Retention GetRetention() override;
  absl::Status SetRetention(const Retention& retention) override;
  absl::StatusOr<ReclaimStats> Reclaim() override;
  absl::Status Checkpoint() override;                  // OK, nothing to do
  using DB::Check;
  absl::StatusOr<CheckReport> Check(const CheckProgress& progress) override;  // trivial
  absl::Status Backup(const std::string& dir) override;  // Unimplemented
  // Unimplemented: the model has no tree to hash.
  absl::StatusOr<ProvedValue> ProveGet(const ReadOptions& options,
                                       std::string_view key) override;
  absl::StatusOr<ProvedRange> ProveScan(const ReadOptions& options, std::string_view begin,
                                        std::string_view end, uint64_t limit) override;
  absl::StatusOr<VersionDigest> GetDigest(uint64_t version) override;
  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from,
                                                      uint64_t to) override;
  absl::Status Export(uint64_t version, const std::string& path) override;
  absl::Status ExportChanges(uint64_t from, uint64_t to, const std::string& path) override;
  absl::StatusOr<uint64_t> Import(const std::string& path) override;
  DBStats GetStats() override;  // latest_version, entries, commits
  // Branches are not modeled (branch_test keeps a model of its own): the
  // branch calls are Unimplemented, as is any read, transaction or batch
  // naming a branch other than main. ListBranches lists main.
  absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from) override;
  absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) override;
  std::vector<BranchInfo> ListBranches() override;
  absl::StatusOr<Snapshot> SnapshotOf(const ReadOptions& options) override;
  absl::Status DiffTrees(const TreeAt& from, const TreeAt& to, std::string_view begin,
                         std::string_view end,
                         const std::function<bool(const Change&)>& fn) override;
  absl::StatusOr<std::unique_ptr<Watcher>> WatchBranch(std::string_view branch,
                                                       uint64_t from_version,
                                                       std::string_view begin,
                                                       std::string_view end) override;
  absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                    MergePolicy policy) override;

  // ------------------------------------------------------------- model
  // The state of `version`. Errors: as SnapshotAt.
  absl::StatusOr<State> StateAt(uint64_t version);
  // OK if `version` can be read; otherwise SnapshotAt's error.
  absl::Status CheckReadable(uint64_t version);
  // Whether `version` (<= latest) is retained.
  bool Retained(uint64_t version);
  // The floor of the last reclamation pass.
  uint64_t floor();
  // Keeps `version` retained while the handle (or a copy) lives: the
  // model's Snapshot. Errors: as SnapshotAt.
  absl::StatusOr<PinHandle> Pin(uint64_t version);

  // The keys that differ between `a` and `b` within [begin, end) (empty
  // `end`: unbounded), in key order, as DB::Diff reports them.
  static std::vector<Change> DiffStates(const State& a, const State& b,
                                        std::string_view begin,
                                        std::string_view end);

 private:
  class ModelIterator;
  class ModelTransaction;
  class ModelWatcher;
  struct Version {
    std::vector<Mutation> ops;  // what its commit applied, in order
    int64_t commit_micros = 0;
    uint64_t entries = 0;
  };

  absl::Status ValidateWrite(std::string_view key,
                             std::string_view value) const;
  // Commits `ops` as the next version. REQUIRES: validated, not empty.
  uint64_t CommitLocked(std::vector<Mutation> ops)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the mutations of version `version` to `state`, with the
  // metadata rules above.
  static void Apply(const std::vector<Mutation>& ops, uint64_t version,
                    State* state);
  absl::StatusOr<uint64_t> ResolveLocked(const ReadOptions& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckReadableLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RetainedLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t OldestLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first retained version at or after `version` (<= latest).
  uint64_t NextRetainedLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const State> StateLocked(uint64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PinHandle PinLocked(uint64_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unpin(uint64_t version);
  uint64_t WindowFloorLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  std::vector<Version> versions_ ABSL_GUARDED_BY(mu_);  // by number
  // Full states every kStateEvery versions, and of the latest; others are
  // rebuilt from the one before (the last one rebuilt is cached).
  std::map<uint64_t, std::shared_ptr<const State>> states_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const State> latest_state_ ABSL_GUARDED_BY(mu_);
  uint64_t cached_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const State> cached_state_ ABSL_GUARDED_BY(mu_);
  uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, int> pins_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> tags_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string, std::less<>> system_records_ ABSL_GUARDED_BY(mu_);
  uint64_t retain_versions_ ABSL_GUARDED_BY(mu_);  // SetRetention changes them
  uint64_t retain_seconds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_MODEL_DB_H_
