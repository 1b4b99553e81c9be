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
//  - branches: a version holds every branch's tree (a std::map each);
//    each version's record names the one branch it changed and how (a
//    commit's mutations, a fork's tree, a deletion), so the trees of any
//    (version, branch) follow from the records in order. "main" always
//    exists ("" names it too). Fork adds a branch as a tree of another at
//    a version (the latest if unset) and tags its version "fork:NAME";
//    DeleteBranch removes one, with the tags "fork:NAME", "merge:NAME:..."
//    and "merge:...:NAME". A read, transaction, batch, diff or watch of a
//    branch that does not exist at its version is NotFound. A branch
//    deleted and created again under its name is another branch (its
//    identity is the version that created it). ListBranches reports,
//    besides the fork version and source, the source_version the engine
//    records: the version before the fork when the tree forked is the same
//    source branch's tree then (the fork shares it), else the version
//    asked for (equality as a verifiable database's hashes decide it: the
//    same keys, values and metadata). Merge is the engine's three-way merge
//    (DBImpl::MergeBase and Merge): the latest of the candidate ancestors
//    (merge tags both ways, a fork of one from the other, the earlier of
//    two forks of one source; a fork counts only if its source as it is
//    now existed at the version forked), value changes only, conflicts
//    settled by the policy, one commit on `into` when it writes, and the
//    tag "merge:FROM:INTO" at the version the merge started from.
//    ListVersions names each version's branch; its entries are main's.
//  - per-key metadata (KeyMeta, iterator.h): mod_version; create_version
//    and writes, counted per put in the order a commit applies them (a
//    batch's ops in order, so a key put twice in one batch has two more
//    writes; a delete then a put of a key in one commit recreates it);
//    the lease of the last put. A transaction's own uncommitted write
//    reads as its lease with the rest 0. Per branch tree: a fork copies
//    the entries with their metadata.
//  - errors: InvalidArgument for an empty or too long key, a too long
//    value, a tag name outside 1..256 bytes, snapshot and version set
//    together, a snapshot and another branch, a read_version on a
//    read-write transaction, a bad branch name (1 to 100 of
//    [A-Za-z0-9._/-], not "main"), deleting main, merging a branch into
//    itself; NotFound for an absent key, a version after the latest, an
//    unknown tag or branch; AlreadyExists for a fork's taken name;
//    FailedPrecondition for a merge without a readable common ancestor;
//    OutOfRange (naming the oldest retained version) for a released one.
//  - retention: a version is retained while it is the latest, at or above
//    the floor of the last reclamation pass, tagged, or pinned (by a Pin,
//    an iterator, an open transaction or a watcher). Reclaim() computes the
//    floor as the engine does: max(old floor, min(window, latest)), where
//    the window keeps the last `retain_versions` versions (of all
//    branches), or also those younger than `retain_seconds` by the model's
//    own commit clock. ReleaseBefore(v) raises the floor to v (NotFound
//    after the latest).
//  - transactions: read-your-writes (iterators both ways), read-only
//    transactions at a version, FailedPrecondition once finished or for a
//    write to a read-only one. A transaction reads and commits to one
//    branch (at commit: NotFound if it was deleted, Aborted if it was
//    created again since) and is validated against that branch's latest
//    tree only. SNAPSHOT validates the written
//    keys;
//    SERIALIZABLE validates every key read from the snapshot (existence
//    and mod_version) and every key range an iterator observed or Count
//    covered, recorded exactly as the engine's transaction iterator
//    records them (a positioning observes from where it started to the key
//    it landed on, or to the end). A conflict is Aborted and applies
//    nothing.
//  - Diff (main's trees), DiffTrees (any two trees), and Watch and
//    WatchBranch: a watcher pins its position and steps lazily, on
//    Next, to the next retained version (a net step if versions between
//    were released); starting from a released version queues the whole
//    state of the first retained version after it as net events. Next
//    waits up to its timeout for a commit (made by another thread). A
//    step to a version without the watched branch fails NotFound (and
//    stays there).
//
// What it does not model:
//  - Snapshots. cowdb::Snapshot has no public constructor (only the
//    engine's DBImpl can make a valid one), so GetSnapshot() returns an
//    empty Snapshot, which by snapshot.h reads the latest version, and
//    SnapshotAt() and SnapshotOf() check the version and branch (their
//    errors are modeled) and return an empty one too. Hold a version with
//    Pin() instead. A ReadOptions carrying a valid snapshot (from a real
//    DB) is read at its version() and branch().
//  - Maintenance: Checkpoint() does nothing and returns OK; Check() returns
//    a report with versions_checked = the retained versions with records
//    and every page count 0; Backup, Export, Import and the
//    verified reads are Unimplemented;
//    GetStats() fills latest_version, entries (main's) and commits (the
//    versions made by commits, not by forks or deletions) only.
//  - History and proofs of other branches: History is main's (as the
//    engine's), and proofs are Unimplemented for every branch.
//  - A database created with Options::verifiable = false: its forks
//    compare trees by identity, not content, so ListBranches'
//    source_version may differ from the model's there.
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
  absl::StatusOr<uint64_t> CatchUp() override;
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
  // Replays the key's mutations by main's commits from version 1 (no
  // hopping).
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
  // Branches (see the banner). SnapshotOf returns an empty Snapshot.
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
  // The state of main's tree at `version`. Errors: as SnapshotAt.
  absl::StatusOr<State> StateAt(uint64_t version);
  // The state of `branch`'s tree at `version` ("" is main). Errors: as
  // SnapshotAt; NotFound if the branch does not exist then.
  absl::StatusOr<State> StateAt(uint64_t version, std::string_view branch);
  // The branches at `version`, by name (main among them). Errors: as
  // SnapshotAt.
  absl::StatusOr<std::vector<std::string>> BranchesAt(uint64_t version);
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
  // Every branch's tree at one version, by name ("main" included).
  using Trees = std::map<std::string, std::shared_ptr<const State>, std::less<>>;
  // A version's record: the one branch its commit changed, and how.
  struct Version {
    enum Kind { kCommit, kFork, kDrop };
    Kind kind = kCommit;
    std::string branch = "main";
    std::vector<Mutation> ops;          // kCommit: what it applied, in order
    std::shared_ptr<const State> tree;  // kFork: the new branch's tree
    int64_t commit_micros = 0;
    uint64_t entries = 0;  // keys in main's tree
  };
  // A branch other than main at the latest version (BranchInfo's fields).
  struct Head {
    uint64_t created = 0;
    std::string source;
    uint64_t source_version = 0;
  };
  // A tree to read: its version, and its state there.
  struct TreeRef {
    uint64_t version = 0;
    std::shared_ptr<const State> state;
  };

  absl::Status ValidateWrite(std::string_view key,
                             std::string_view value) const;
  // Commits `ops` to `branch` as the next version. REQUIRES: validated,
  // not empty, `branch` exists.
  uint64_t CommitLocked(const std::string& branch, std::vector<Mutation> ops)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends `rec` as the next version, whose trees are `trees`.
  uint64_t AppendLocked(Version rec, std::shared_ptr<const Trees> trees)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies the mutations of version `version` to `state`, with the
  // metadata rules above.
  static void Apply(const std::vector<Mutation>& ops, uint64_t version,
                    State* state);
  // The tree `options` chooses. Errors: as the reads.
  absl::StatusOr<TreeRef> ResolveLocked(const ReadOptions& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `branch`'s tree at `version`. Errors: as SnapshotAt; NotFound if the
  // branch does not exist then.
  absl::StatusOr<TreeRef> TreeLocked(uint64_t version, const std::string& branch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckReadableLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RetainedLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t OldestLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first retained version at or after `version` (<= latest).
  uint64_t NextRetainedLocked(uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const Trees> TreesLocked(uint64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `branch`'s tree at `version` (<= latest); nullptr if it has none.
  std::shared_ptr<const State> StateLocked(uint64_t version,
                                           std::string_view branch = "main")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The version that created `branch` as it is at `version` (the last
  // fork of that name at or before it; main: 0). REQUIRES: it exists then.
  uint64_t CreatedLocked(std::string_view branch, uint64_t version) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The common ancestor Merge starts from (DBImpl::MergeBase).
  absl::StatusOr<TreeAt> MergeBaseLocked(const std::string& from,
                                         const std::string& into)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PinHandle PinLocked(uint64_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unpin(uint64_t version);
  uint64_t WindowFloorLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  std::vector<Version> versions_ ABSL_GUARDED_BY(mu_);  // by number
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;  // versions made by commits
  // Every tree every kStateEvery versions, and of the latest; others are
  // rebuilt from the one before (the last one rebuilt is cached).
  std::map<uint64_t, std::shared_ptr<const Trees>> states_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Trees> latest_trees_ ABSL_GUARDED_BY(mu_);
  uint64_t cached_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const Trees> cached_trees_ ABSL_GUARDED_BY(mu_);
  // The branches other than main at the latest version.
  std::map<std::string, Head, std::less<>> heads_ ABSL_GUARDED_BY(mu_);
  uint64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, int> pins_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> tags_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string, std::less<>> system_records_ ABSL_GUARDED_BY(mu_);
  uint64_t retain_versions_ ABSL_GUARDED_BY(mu_);  // SetRetention changes them
  uint64_t retain_seconds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_MODEL_DB_H_
