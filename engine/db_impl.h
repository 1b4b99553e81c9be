// The implementation behind cowdb::DB: wiring, not work. It owns the
// layers and forwards to them:
//   store (PageStore) <- node cache <- NodeSource <- VersionStore (records,
//   recovery, checkpoints) <- Reclaimer, CommitQueue (group commit).
// Reads (gets, iterators, counts, diffs, watches) run here on the trees
// the versions layer pins. Internal: tests use it to open a database over
// any PageStore (e.g. in memory) and to verify trees.

#ifndef COWDB_ENGINE_DB_IMPL_H_
#define COWDB_ENGINE_DB_IMPL_H_

#include <memory>
#include <string>
#include <vector>

#include "engine/cache/node_cache.h"
#include "engine/db.h"
#include "engine/store/page_store.h"
#include "engine/store/rocksdb_page_store.h"
#include "engine/tree/btree.h"
#include "engine/txn/commit_queue.h"
#include "engine/version/reclaimer.h"
#include "engine/version/version_store.h"

namespace cowdb::internal {

class DBImpl final : public DB {
 public:
  // Opens a database over `store` (creating it when the store is empty).
  static absl::StatusOr<std::unique_ptr<DBImpl>> Open(
      const Options& options, std::shared_ptr<PageStore> store);

  // Opens the database in directory `path` on RocksDB, as DB::Open does,
  // with `store_options` for the store (its create_if_missing is taken from
  // `options`). Tests use it to put a fault-injecting Env under the store.
  static absl::StatusOr<std::unique_ptr<DBImpl>> OpenAt(
      const Options& options, const std::string& path,
      RocksDBStoreOptions store_options);

  absl::StatusOr<uint64_t> Put(std::string_view key,
                               std::string_view value) override;
  absl::StatusOr<uint64_t> Delete(std::string_view key) override;
  absl::StatusOr<uint64_t> Write(const WriteBatch& batch) override;
  void WriteAsync(WriteBatch batch, WriteCallback done) override;
  absl::StatusOr<std::string> Get(const ReadOptions& options,
                                  std::string_view key) override;
  absl::Status Get(const ReadOptions& options, std::string_view key,
                   std::string* value) override;
  absl::StatusOr<ProvedValue> ProveGet(const ReadOptions& options,
                                       std::string_view key) override;
  absl::StatusOr<ProvedRange> ProveScan(const ReadOptions& options, std::string_view begin,
                                        std::string_view end, uint64_t limit) override;
  absl::StatusOr<VersionDigest> GetDigest(uint64_t version) override;
  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from,
                                                      uint64_t to) override;
  absl::StatusOr<Entry> GetEntry(const ReadOptions& options,
                                 std::string_view key) override;
  absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options) override;
  Snapshot GetSnapshot() override;
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
  absl::StatusOr<KeyHistory> History(std::string_view key,
                                     const HistoryOptions& options) override;
  absl::Status Diff(uint64_t from, uint64_t to, std::string_view begin,
                    std::string_view end,
                    const std::function<bool(const Change&)>& fn) override;
  absl::Status ReleaseBefore(uint64_t version) override;
  uint64_t ReleaseFloor() override;
  Retention GetRetention() override;
  absl::Status SetRetention(const Retention& retention) override;
  absl::StatusOr<ReclaimStats> Reclaim() override;
  absl::Status Checkpoint() override;
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(uint64_t from_version,
                                                 std::string_view begin,
                                                 std::string_view end) override;
  using DB::Check;
  absl::StatusOr<CheckReport> Check(const CheckProgress& progress) override;
  absl::Status Backup(const std::string& dir) override;
  absl::Status Export(uint64_t version, const std::string& path) override;
  absl::Status ExportChanges(uint64_t from, uint64_t to, const std::string& path) override;
  absl::StatusOr<uint64_t> Import(const std::string& path) override;
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
  DBStats GetStats() override;

  ~DBImpl() override;

  // Turns the differences between `a` and `b` in a range into changes.
  absl::Status DiffRoots(const Root& a, const Root& b, std::string_view begin,
                         std::string_view end,
                         const std::function<bool(const Change&)>& fn);

  // Test hooks.
  // Checks the tree invariants of `version` (see btree.h).
  absl::Status VerifyVersion(uint64_t version, bool strict);
  // The pages and blobs that the checkpoint at `version` freed.
  absl::StatusOr<std::vector<FreedItem>> FreedAt(uint64_t version);
  // The root of `version`: its stored root if it is a checkpoint.
  absl::StatusOr<Root> RootAt(uint64_t version);
  size_t page_size() const { return versions_->page_size(); }
  PageStore* store() { return store_.get(); }
  VersionStore& versions() { return *versions_; }
  // Whether closing writes a checkpoint (default true). With false, the
  // next open replays the log, as after a crash.
  void set_checkpoint_on_close(bool on) {
    versions_->set_checkpoint_on_close(on);
  }
  using HeldCount = VersionStore::HeldCount;
  HeldCount HeldNodesOfLatest() { return versions_->HeldNodesOfLatest(); }

 private:
  // FailedPrecondition on a read-only database: only its writer `what`.
  absl::Status CheckNotReadOnly(const char* what) const;
  DBImpl(const Options& options, std::shared_ptr<PageStore> store);

  absl::Status ValidateBatch(const WriteBatch& batch);
  // The tree `at` names, pinned.
  absl::StatusOr<std::shared_ptr<const Version>> PinTree(const TreeAt& at);
  // The common ancestor of branches `from` and `into` (internal names) at
  // `latest`: the latest state both contain that is on record.
  absl::StatusOr<TreeAt> MergeBase(const Version& latest, std::string_view from,
                                   std::string_view into);
  // FailedPrecondition unless the database hashes its trees.
  absl::Status CheckVerifiable();
  // The version chosen by `options`.
  absl::StatusOr<std::shared_ptr<const Version>> Resolve(
      const ReadOptions& options);
  // The same for the length of one call: a snapshot's version is borrowed
  // (the snapshot outlives the call, and copying its shared_ptr would make
  // every reader of that snapshot contend on one reference count); any
  // other is held in `*hold`.
  absl::StatusOr<const Version*> ResolveForCall(
      const ReadOptions& options, std::shared_ptr<const Version>* hold);

  const Options options_;
  const std::shared_ptr<PageStore> store_;
  NodeCache cache_;
  NodeSource source_;
  // Destroyed in reverse: the queue drains first, then the reclaimer
  // stops, then the versions layer checkpoints and closes.
  std::unique_ptr<VersionStore> versions_;
  std::unique_ptr<Reclaimer> reclaimer_;
  std::unique_ptr<CommitQueue> queue_;
  uint64_t recovery_micros_ = 0;  // set by Open
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_DB_IMPL_H_
