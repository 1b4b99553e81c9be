// The versions layer with its own I/O: which versions exist and what their
// trees are, the records that make them durable, recovery and checkpoints.
//
// Durable state (formats in records.h): a commit is a log record; a
// checkpoint stores the latest tree's pages (tree/checkpoint.h) with its
// checkpoint record; the meta record names the last complete checkpoint.
//
// In memory: the versions after the last checkpoint are held trees (their
// new nodes since their commit); an older retained version is rebuilt on
// first use from its base checkpoint (the last one at or before it) plus
// the log records after that base, and cached.
//
// Invariants:
//  - The database after any crash is exactly the last complete checkpoint
//    plus every whole log record after it, replayed in version order; a
//    record is applied once (its version says whether it already is).
//  - A checkpoint's pages, freed record, checkpoint record and meta record
//    go in one synced write; a torn checkpoint leaves the previous one.
//  - Planning a checkpoint (ids into nodes) never runs beside a commit's
//    TreeBuilder: both hold write_mutex().
//  - latest() moves forward by one version per commit, only after that
//    commit's log record is durable.
//
// Thread safety: all methods may be called concurrently, except as noted.
// Lock order: checkpoint_mu_, freed_mu_, write_mu_, roots_mu_ (the
// reclaimer takes freed_mu_ under its own pass lock).

#ifndef COWDB_ENGINE_VERSION_VERSION_STORE_H_
#define COWDB_ENGINE_VERSION_VERSION_STORE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/db.h"
#include "engine/options.h"
#include "engine/store/page_store.h"
#include "engine/tree/btree.h"
#include "engine/tree/checkpoint.h"
#include "engine/util/mutex.h"
#include "engine/version/records.h"
#include "engine/version/version_set.h"

namespace cowdb::internal {

// Applies `ops` to `builder` in order: a commit's mutations, or a log
// record's on replay.
absl::Status ApplyMutations(TreeBuilder& builder,
                            const std::vector<Mutation>& ops);

class VersionStore {
 public:
  // Opens the records of `store` (creating a new database if it has none;
  // upgrading formats 1 and 2 in place), then replays the log after the last
  // checkpoint. `source` reads `store` through the node cache `cache`; all
  // three must outlive the VersionStore. Errors: DataLoss for damaged or
  // missing records (naming them); FailedPrecondition for a newer format.
  static absl::StatusOr<std::unique_ptr<VersionStore>> Open(
      const Options& options, PageStore* store, NodeCache* cache,
      NodeSource* source);

  // Stops the background checkpointer and, unless turned off, writes a
  // last checkpoint (a clean close).
  ~VersionStore();

  VersionStore(const VersionStore&) = delete;
  VersionStore& operator=(const VersionStore&) = delete;

  // Starts the background checkpointer (Options::background_checkpoint).
  void StartCheckpointer();

  size_t page_size() const { return page_size_; }
  // Whether trees have Merkle hashes (MetaRecord::hashed).
  bool hashed() const { return hashed_; }
  // A builder of `version` on `base`, with this database's page size,
  // inline limit and hashing.
  TreeBuilder NewBuilder(const Root& base, uint64_t version);

  // The trees of a version: main's, and the other branches'.
  struct Trees {
    Root root;
    std::shared_ptr<const BranchTable> branches;
  };

  // ---- reading

  std::shared_ptr<const Version> latest() const { return set_.latest(); }
  // The latest version seen as `branch` ("" or "main": main). Errors:
  // NotFound for a branch that does not exist.
  absl::StatusOr<std::shared_ptr<const Version>> Latest(std::string_view branch) {
    return BranchView(set_.latest(), branch);
  }
  // Pin(version) seen as `branch`.
  absl::StatusOr<std::shared_ptr<const Version>> Pin(uint64_t version,
                                                     std::string_view branch);
  // A handle that pins retained `version` (held, stored or rebuilt).
  // Errors: OutOfRange for a released version (naming the oldest retained),
  // NotFound after the latest, DataLoss if it cannot be rebuilt.
  absl::StatusOr<std::shared_ptr<const Version>> Pin(uint64_t version);
  // Pins `version`, or if it was released the first retained version after
  // it (for watchers that fell behind).
  absl::StatusOr<std::shared_ptr<const Version>> PinAtOrAfter(uint64_t version);
  // Waits until the latest version is after `version` or `timeout` passes.
  bool WaitForVersionAfter(uint64_t version, absl::Duration timeout);
  uint64_t oldest_retained() const { return set_.oldest_retained(); }
  absl::StatusOr<std::vector<VersionInfo>> ListVersions();
  absl::StatusOr<uint64_t> VersionAt(int64_t unix_micros);
  // The record of `version`, or nullopt if it has none (released).
  absl::StatusOr<std::optional<Version>> ReadRecord(uint64_t version) {
    return ReadRecord(version, nullptr);
  }
  // The stored root of `version` if it is a checkpoint.
  std::optional<Trees> CheckpointRoot(uint64_t version);

  // ---- key history (DB::History)

  // Whether `version` is read without a rebuild: the latest, held in
  // memory since its commit, a checkpoint, or rebuilt and still cached.
  bool Resident(uint64_t version);

  // One state of a key, from version `since` on.
  struct KeyState {
    uint64_t since = 0;
    bool present = false;
    std::string value;  // when present; a blob's bytes
    EntryMeta meta;     // when present
  };
  // A key's states in the versions [base, to]: `base` is the last
  // checkpoint at or before `to`.
  struct KeyStates {
    uint64_t base = 0;
    uint64_t to = 0;
    // states[0]: the key in base's stored tree, `since` as TreeRead sets
    // it (at or before base; 0 when unknown). Then one state per version
    // in (base, to] whose mutations changed the key (any put: present
    // with the value and metadata of the last put; a delete that left a
    // present key absent), ascending.
    std::vector<KeyState> states;
    // The state at version v, for base <= v <= to.
    const KeyState& At(uint64_t v) const;
  };
  // The states of `key` in [base, version] (see KeyStates), from one read
  // of the base checkpoint's stored tree and one pass over the log records
  // (base, version]: the key's mutations replayed as TreeBuilder::Put and
  // Delete apply them, with no tree rebuilt. `version` is pinned meanwhile.
  // Cost: one pass over the interval's log records (about the log
  // checkpoint trigger's bytes, or thinning's spacing); memory: one state
  // per change of the key. Errors: as Pin (OutOfRange for a released version);
  // DataLoss for a missing or damaged log record.
  absl::StatusOr<KeyStates> ScanKeyStates(std::string_view key,
                                          uint64_t version);

  // ---- tags (durable)

  absl::Status Tag(std::string_view name, uint64_t version);
  absl::Status Untag(std::string_view name);
  std::map<std::string, uint64_t> ListTags() const { return set_.tags(); }

  // ---- committing (the group-commit leader)

  // Held while one group builds, logs and publishes its version.
  Mutex* write_mutex() ABSL_LOCK_RETURNED(write_mu_) { return &write_mu_; }
  // Ok unless a write of unknown outcome happened (then FailedPrecondition).
  absl::Status CheckWritable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // Read-only databases: replays the log records committed since (by a
  // writer elsewhere) and refreshes tags and the release floor. Returns
  // the latest version.
  absl::StatusOr<uint64_t> CatchUp();
  // Makes the tree `builder` built (on latest()'s tree of `branch`, "" =
  // main) that branch's tree in the next version: writes its log record of
  // `ops` and its version record in one write, then publishes. Returns the
  // version. On a storage failure the outcome is unknown: returns Unknown
  // and refuses writes until reopen. Errors: NotFound for a branch that
  // does not exist.
  // `tags` are written (and applied) with the commit. REQUIRES: the
  // versions they name are pinned by the caller.
  absl::StatusOr<uint64_t> Commit(TreeBuilder& builder,
                                  const std::vector<Mutation>& ops,
                                  std::string_view branch = {},
                                  const std::vector<TagWrite>& tags = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  // ---- branches (a version holds every branch's tree; see version_set.h)

  // Commits a version that adds branch `name` with the tree `source` ("" =
  // main) has at `source_version`, sharing its pages. O(1) when that tree
  // is the source's latest (no commit changed the source since): a log
  // record. Otherwise (an older tree, or a branch deleted since) the fork
  // is written with a checkpoint of its version (ForkOlder). Errors:
  // InvalidArgument for a bad name; AlreadyExists; as Pin(source_version,
  // source) (NotFound for a branch that did not exist then).
  // `source_version` unset: the source's latest tree, as of the fork.
  // `tags` are written with the fork.
  absl::StatusOr<uint64_t> Fork(std::string_view name, std::string_view source,
                                std::optional<uint64_t> source_version,
                                const std::vector<TagWrite>& tags = {});
  // Commits a version without branch `name`. Its versions before stay
  // readable while retained; what only it reached is freed at the next
  // checkpoint. Errors: NotFound; InvalidArgument for main.
  absl::StatusOr<uint64_t> DropBranch(std::string_view name,
                                      const std::vector<TagWrite>& tags = {});

  // ---- checkpoints

  // Writes a checkpoint of the latest version now (see DB::Checkpoint).
  absl::Status Checkpoint();
  // Whether a trigger (log bytes, held bytes, time) is reached.
  bool CheckpointDue() const;
  void set_checkpoint_on_close(bool on) { checkpoint_on_close_ = on; }

  // ---- for the reclaimer

  // Held while freed records are read and rewritten (the reclaimer; a
  // fork of an older tree, which takes back what it reaches).
  Mutex* freed_mutex() ABSL_LOCK_RETURNED(freed_mu_) { return &freed_mu_; }

  VersionSet::Plan PlanRelease(uint64_t window_floor) {
    return set_.PlanRelease(window_floor);
  }
  uint64_t floor() const { return set_.floor(); }
  // The checkpoints on record: version -> stored root (main's), and with
  // every branch's.
  std::map<uint64_t, Root> Checkpoints();
  std::map<uint64_t, Trees> CheckpointTrees();
  // Forgets checkpoints whose records the reclaimer deleted.
  void DropCheckpoints(const std::vector<uint64_t>& versions);
  // Thins the checkpoints after `from` (and before the last one): forgets
  // each that no tree uses and that lies less than `spacing` log bytes
  // after the previous one kept, so that the versions based on it are
  // rebuilt from that one instead, and returns them (their records and
  // the pages only they stored can go). Checkpoints written before this
  // open (log position unknown) are kept.
  std::vector<uint64_t> ThinCheckpoints(uint64_t from, uint64_t spacing);

  // ---- statistics and test hooks

  struct Stats {
    uint64_t log_bytes = 0;
    uint64_t checkpoints = 0;
    uint64_t checkpoint_version = 0;
    uint64_t unwritten_bytes = 0;
    uint64_t pages_written = 0;
    uint64_t blobs_written = 0;
    uint64_t replayed_commits = 0;
    uint64_t commit_syncs = 0;  // synced log writes: one per group commit
    uint64_t rebuilds = 0;      // versions rebuilt from the log (Rebuild)
  };
  Stats GetStats();
  // The nodes the latest version holds in memory, and how many of those a
  // checkpoint has written.
  struct HeldCount {
    size_t held = 0;
    size_t written = 0;
  };
  HeldCount HeldNodesOfLatest();

 private:
  VersionStore(const Options& options, PageStore* store, NodeCache* cache,
               NodeSource* source, const MetaRecord& meta,
               const Version& latest, uint64_t floor,
               std::map<std::string, uint64_t> tags,
               std::map<uint64_t, Trees> checkpoints);

  absl::Status Recover();
  // DataLoss unless `root`, replayed from the log, is the tree of the
  // branch `branch` ("" = main) whose hash `version`'s commit recorded (in
  // a hashed database).
  // `record` is the version's stored record (nullopt: released).
  absl::Status CheckReplayedHash(uint64_t version, const Root& root,
                                 std::string_view branch,
                                 const std::optional<std::string>& record);
  // DataLoss unless the tree of the branch `recorded`'s commit (of
  // `version`) changed, if not main's, has in `trees` the hash recorded.
  static absl::Status CheckReplayedBranchHash(uint64_t version, const VersionRecord& recorded,
                                              const Trees& trees);
  // Pins `version` and reads its record (root unset): the caller adopts
  // the pin (VersionSet::AdoptPin) or releases it. Errors: as Pin.
  // `*raw`, if not null, gets the record as decoded.
  absl::StatusOr<Version> AcquireRecord(uint64_t version, VersionRecord* raw = nullptr);
  absl::StatusOr<std::optional<Version>> ReadRecord(uint64_t version, VersionRecord* raw);
  // The trees after `op` of version `version` on `base`: for a commit,
  // `root` (its new tree) replaces its branch's. Errors: DataLoss for a
  // branch that does not exist (or already does, for a fork), or a fork
  // from an older tree (never logged without its checkpoint).
  static absl::StatusOr<Trees> ApplyBranchOp(const Trees& base, uint64_t version,
                                             const BranchOp& op, const Root& root);
  // The tree of `branch` in `trees`, or NotFound.
  static absl::StatusOr<Root> TreeOf(const Trees& trees, std::string_view branch,
                                     uint64_t version);
  // Publishes `trees` as `version` after `op` (its log record is durable);
  // `builder`, if not null, built the commit's tree.
  void PublishLocked(TreeBuilder* builder, Trees trees, const BranchOp& op,
                     uint64_t version, int64_t commit_micros, size_t log_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // A checkpoint's plan of every tree of a version (PlanTrees), taken
  // between commits.
  struct TreesPlan {
    CheckpointPlan main;
    std::vector<std::pair<std::string, CheckpointPlan>> branches;
    uint64_t next_id = 0;
    uint64_t log_pos = 0;  // log bytes written before the checkpoint
  };
  TreesPlan PlanTrees(const Version& v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Adds the checkpoint of `v` (planned by `plan`) to `batch`: its pages,
  // `freed` (what dies at it), its checkpoint record and the meta record.
  // Returns the stored trees.
  Trees EncodeTrees(const Version& v, const TreesPlan& plan,
                    const std::vector<FreedItem>& freed, StoreBatch* batch);
  // What dies at a checkpoint of `v`: of `freed` (let go by commits) and
  // the trees of the branches `dropped` since the last one, what no tree
  // of `v` reaches (Unreached; everything, with one tree and no drop).
  absl::StatusOr<std::vector<FreedItem>> DyingAt(const Version& v,
                                                 std::vector<FreedItem> freed,
                                                 const std::vector<Root>& dropped);
  // After checkpoint `c` (stored as `stored`) is durable: releases what it
  // wrote from the held trees and records it.
  void Released(uint64_t c, const Trees& stored, const TreesPlan& plan)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Refuses writes after checkpoint `c` failed with `s` (its planned ids
  // are in the nodes); returns the error to report.
  absl::Status CheckpointFailed(uint64_t c, const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // A fork of `tree`, an older tree of its source than the latest: the
  // fork's version is written with its checkpoint (see the .cc).
  absl::StatusOr<uint64_t> ForkOlder(const BranchOp& op, const Root& tree,
                                     const std::vector<TagWrite>& tags);
  // Puts `tags` into `batch`, a commit of `version`; ApplyTags applies
  // them once it is durable.
  absl::Status AddTags(const std::vector<TagWrite>& tags, uint64_t version,
                       StoreBatch* batch);
  void ApplyTags(const std::vector<TagWrite>& tags, uint64_t version);

  // Commit's body: `op` with `ops`, whose tree `builder` built (null for a
  // fork or a drop, which build none).
  absl::StatusOr<uint64_t> CommitLocked(TreeBuilder* builder, const BranchOp& op,
                                        const std::vector<Mutation>& ops,
                                        const std::vector<TagWrite>& tags)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Of the stored pages and blobs in `freed`, those that no tree in `heads`
  // reaches; then adds what the dropped trees `dropped` reach and no head
  // does (each once).
  absl::StatusOr<std::vector<FreedItem>> Unreached(std::vector<FreedItem> freed,
                                                   const std::vector<Root>& dropped,
                                                   const std::vector<Root>& heads);
  absl::StatusOr<Trees> RootOf(uint64_t version);
  absl::StatusOr<Trees> Rebuild(uint64_t version);
  // Calls `fn(v, record)` for the log records of versions from + 1 to `to`
  // in order. Errors: DataLoss if one is missing ("<what> <to> failed:
  // ..."), or a record does not decode; `fn`'s.
  absl::Status ReplayLog(uint64_t from, uint64_t to, const char* what,
                         const std::function<absl::Status(uint64_t, const LogRecord&)>& fn);
  void CheckpointLoop();
  void WakeCheckpointer();

  const Options options_;
  PageStore* const store_;
  NodeCache* const cache_;
  NodeSource* const source_;
  const size_t page_size_;
  const size_t inline_limit_;  // MetaRecord::inline_limit
  const bool hashed_;          // MetaRecord::hashed
  VersionSet set_;

  Mutex write_mu_;
  // The id counter for pages and blobs; checkpoints take ids from it.
  uint64_t next_id_ ABSL_GUARDED_BY(write_mu_);
  // Set when a commit's or a checkpoint's outcome became unknown.
  absl::Status write_error_ ABSL_GUARDED_BY(write_mu_);
  // What the commits since the last planned checkpoint freed: the next
  // checkpoint's freed record.
  std::vector<FreedItem> pending_freed_ ABSL_GUARDED_BY(write_mu_);
  // The trees of the branches dropped since then.
  std::vector<Root> pending_dropped_ ABSL_GUARDED_BY(write_mu_);
  std::atomic<uint64_t> unwritten_bytes_{0};
  std::atomic<uint64_t> log_bytes_since_checkpoint_{0};
  std::atomic<int64_t> last_checkpoint_micros_{0};

  // Roots: the checkpoints on record (stored roots), the versions after
  // the last complete checkpoint (held since their commit), and a few
  // versions rebuilt by replay.
  mutable Mutex roots_mu_;
  std::map<uint64_t, Trees> checkpoints_ ABSL_GUARDED_BY(roots_mu_);
  std::map<uint64_t, Trees> recent_ ABSL_GUARDED_BY(roots_mu_);
  std::map<uint64_t, Trees> rebuilt_ ABSL_GUARDED_BY(roots_mu_);
  std::map<uint64_t, uint64_t> rebuilt_bytes_ ABSL_GUARDED_BY(roots_mu_);
  uint64_t last_checkpoint_ ABSL_GUARDED_BY(roots_mu_) = 0;
  // Log bytes written before each checkpoint made since open.
  std::map<uint64_t, uint64_t> log_pos_ ABSL_GUARDED_BY(roots_mu_);
  // Checkpoints never thinned: those of forks of older trees.
  std::set<uint64_t> unthinned_ ABSL_GUARDED_BY(roots_mu_);
  Mutex freed_mu_;
  Mutex rebuild_mu_;  // one rebuild at a time

  // Checkpoints run one at a time; the background checkpointer.
  Mutex checkpoint_mu_;
  std::mutex checkpoint_wake_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_requested_ = false;    // guarded by checkpoint_wake_mu_
  bool checkpointer_stopping_ = false;  // guarded by checkpoint_wake_mu_
  std::thread checkpointer_;
  bool checkpoint_on_close_ = true;

  // Signalled after every published version, for watchers.
  std::mutex published_mu_;
  std::condition_variable published_cv_;

  std::atomic<uint64_t> log_bytes_{0};
  std::atomic<uint64_t> checkpoints_written_{0};
  std::atomic<uint64_t> commit_syncs_{0};
  std::atomic<uint64_t> pages_written_{0};
  std::atomic<uint64_t> blobs_written_{0};
  std::atomic<uint64_t> rebuilds_{0};
  uint64_t replayed_commits_ = 0;  // set by Open
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_VERSION_STORE_H_
