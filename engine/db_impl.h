// The implementation behind cowdb::DB. Internal: tests use it to open a
// database over any PageStore (e.g. in memory) and to verify trees.

#ifndef COWDB_ENGINE_DB_IMPL_H_
#define COWDB_ENGINE_DB_IMPL_H_

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "engine/util/mutex.h"
#include "engine/cache/node_cache.h"
#include "engine/db.h"
#include "engine/store/page_store.h"
#include "engine/store/rocksdb_page_store.h"
#include "engine/tree/btree.h"
#include "engine/txn/commit.h"
#include "engine/version/records.h"
#include "engine/version/version_set.h"

namespace cowdb::internal {

class DBImpl final : public DB, public TxnHost {
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
  uint64_t OldestVersion() override;
  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override;
  absl::StatusOr<uint64_t> VersionAt(int64_t unix_micros) override;
  absl::Status Tag(std::string_view name, uint64_t version) override;
  absl::Status Untag(std::string_view name) override;
  std::map<std::string, uint64_t> ListTags() override;
  absl::Status Diff(uint64_t from, uint64_t to, std::string_view begin,
                    std::string_view end,
                    const std::function<bool(const Change&)>& fn) override;
  absl::StatusOr<ReclaimStats> Reclaim() override;
  absl::Status Checkpoint() override;
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(uint64_t from_version,
                                                 std::string_view begin,
                                                 std::string_view end) override;

  // Waits until the latest version is after `version` or `timeout` passes.
  // Returns whether it is.
  bool WaitForVersionAfter(uint64_t version, absl::Duration timeout);
  // Pins `version`, or if it was released the first retained version
  // after it (for watchers that fell behind).
  absl::StatusOr<std::shared_ptr<const Version>> PinAtOrAfter(uint64_t version);
  // Turns the differences between `a` and `b` in a range into changes.
  absl::Status DiffRoots(const Root& a, const Root& b, std::string_view begin,
                         std::string_view end,
                         const std::function<bool(const Change&)>& fn);
  absl::StatusOr<CheckReport> Check() override;
  absl::Status Backup(const std::string& dir) override;
  absl::Status Export(uint64_t version, const std::string& path) override;
  absl::StatusOr<uint64_t> Import(const std::string& path) override;
  DBStats GetStats() override;

  ~DBImpl() override;

  // Checks the tree invariants of `version` (see btree.h).
  absl::Status VerifyVersion(uint64_t version, bool strict);

  // The pages and blobs that `version` made unreachable.
  absl::StatusOr<std::vector<FreedItem>> FreedAt(uint64_t version);

  // The root of `version`: its stored root if it is a checkpoint.
  absl::StatusOr<Root> RootAt(uint64_t version);

  size_t page_size() const { return page_size_; }
  // Test hook: the nodes the latest version holds in memory (reached by
  // pointer), and how many of those a checkpoint has written.
  struct HeldCount {
    size_t held = 0;
    size_t written = 0;
  };
  HeldCount HeldNodesOfLatest();
  // Test hook: whether closing writes a checkpoint (default true). With
  // false, the next open replays the log, as after a crash.
  void set_checkpoint_on_close(bool on) { checkpoint_on_close_ = on; }
  PageStore* store() { return store_.get(); }

  // TxnHost.
  NodeSource& source() override { return source_; }
  absl::Status ValidateWrite(std::string_view key,
                             std::string_view value) override;
  absl::StatusOr<uint64_t> SubmitCommit(CommitRequest& req) override;
  void SubmitAsync(CommitRequest* req) override;

 private:
  DBImpl(const Options& options, std::shared_ptr<PageStore> store,
         size_t page_size, uint64_t next_id, const Version& latest,
         uint64_t floor, std::map<std::string, uint64_t> tags,
         std::map<uint64_t, Root> checkpoints);

  // Replays the log records after the latest checkpoint (Open).
  absl::Status Recover();
  // Applies `ops` to `builder` in order.
  static absl::Status Apply(TreeBuilder& builder,
                            const std::vector<Mutation>& ops);
  // Makes the tree `builder` built the latest version: records what it
  // freed and holds in memory, then publishes it.
  // REQUIRES: tree_mu_ held; the version's log record is durable.
  void PublishLocked(TreeBuilder& builder, uint64_t version,
                     int64_t commit_micros, size_t log_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tree_mu_);
  // The root of retained `version`: held in memory, a checkpoint's, or
  // rebuilt from the checkpoint before it and the log after that.
  absl::StatusOr<Root> RootOf(uint64_t version);
  absl::StatusOr<Root> Rebuild(uint64_t version);
  bool CheckpointDue();
  void CheckpointLoop();
  void WakeCheckpointer();

  using KeySet = std::set<std::string, std::less<>>;

  // Leads group commits while `lock` (on queue_mu_) is held on entry and
  // exit: until `self` (null for the committer thread) is done, and a few
  // rounds more while requests wait; then hands leadership to the front.
  void Lead(std::unique_lock<std::mutex>& lock, CommitRequest* self);
  // Commits `group` as one version (the caller is the group's leader).
  void RunGroup(const std::vector<CommitRequest*>& group);
  absl::Status ValidateBatch(const WriteBatch& batch);
  // The committer thread: leads whenever the front request is asynchronous
  // and no writer leads.
  void CommitLoop();
  // Checks `req` against `base` and the keys written by earlier members of
  // its group. Returns Aborted on a conflict.
  absl::Status Validate(const CommitRequest& req, const Version& base,
                        const KeySet& group_writes);
  // The version chosen by `options`.
  absl::StatusOr<std::shared_ptr<const Version>> Resolve(
      const ReadOptions& options);
  // The same for the length of one call: a snapshot's version is borrowed
  // (the snapshot outlives the call, and copying its shared_ptr would make
  // every reader of that snapshot contend on one reference count); any
  // other is held in `*hold`.
  absl::StatusOr<const Version*> ResolveForCall(
      const ReadOptions& options, std::shared_ptr<const Version>* hold);
  absl::StatusOr<std::shared_ptr<const Version>> LoadVersion(uint64_t version);
  // The record of `version`, or nullopt if it has none (released).
  absl::StatusOr<std::optional<Version>> ReadVersionRecord(uint64_t version);
  // The lowest version the retention options keep.
  absl::StatusOr<uint64_t> WindowFloor(const Version& latest);
  absl::StatusOr<ReclaimStats> ReclaimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reclaim_mu_);
  void ReclaimLoop();
  void WakeReclaimer();

  const Options options_;
  const std::shared_ptr<PageStore> store_;
  const size_t page_size_;
  NodeCache cache_;
  NodeSource source_;
  VersionSet versions_;

  // The group-commit queue. The request at the front is the leader; it
  // alone runs RunGroup. (std::mutex for std::condition_variable.)
  std::mutex queue_mu_;
  std::deque<CommitRequest*> queue_;   // guarded by queue_mu_
  bool leader_active_ = false;         // guarded by queue_mu_
  // The committer thread, started by the first WriteAsync.
  std::condition_variable committer_cv_;
  bool committer_stopping_ = false;    // guarded by queue_mu_
  std::thread committer_;              // guarded by queue_mu_

  // Held while a group is applied and published, and while a checkpoint
  // is planned: a checkpoint's planning step never runs beside a
  // TreeBuilder (see tree/checkpoint.h).
  Mutex tree_mu_;
  // The id counter for pages and blobs; checkpoints take ids from it.
  uint64_t next_id_ ABSL_GUARDED_BY(tree_mu_);
  // Set when a commit's or a checkpoint's outcome became unknown; writes
  // are refused after.
  absl::Status write_error_ ABSL_GUARDED_BY(tree_mu_);
  // What the commits since the last planned checkpoint freed (stored pages
  // and blobs), the bytes of tree nodes they hold in memory, and the log
  // bytes they wrote: the next checkpoint's freed record and triggers.
  std::vector<FreedItem> pending_freed_ ABSL_GUARDED_BY(tree_mu_);
  std::atomic<uint64_t> unwritten_bytes_{0};
  std::atomic<uint64_t> log_bytes_since_checkpoint_{0};
  std::atomic<int64_t> last_checkpoint_micros_{0};

  // Roots: the checkpoints on record (stored roots), the versions after
  // the last complete checkpoint (held in memory since their commit), and
  // a few versions rebuilt by replay.
  Mutex roots_mu_;
  std::map<uint64_t, Root> checkpoints_ ABSL_GUARDED_BY(roots_mu_);
  std::map<uint64_t, Root> recent_ ABSL_GUARDED_BY(roots_mu_);
  std::map<uint64_t, Root> rebuilt_ ABSL_GUARDED_BY(roots_mu_);
  uint64_t last_checkpoint_ ABSL_GUARDED_BY(roots_mu_) = 0;
  Mutex rebuild_mu_;  // one rebuild at a time

  // Checkpoints run one at a time; the background checkpointer and its
  // wake-up.
  Mutex checkpoint_mu_;
  std::mutex checkpoint_wake_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_requested_ = false;    // guarded by checkpoint_wake_mu_
  bool checkpointer_stopping_ = false;  // guarded by checkpoint_wake_mu_
  std::thread checkpointer_;
  bool checkpoint_on_close_ = true;

  // Reclamation passes run one at a time. Each pass scans only what is new
  // since the last one (released records become RocksDB tombstones, and
  // scanning over them again would cost more every pass), plus the records
  // an earlier pass had to keep.
  Mutex reclaim_mu_;
  uint64_t versions_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 0;
  uint64_t freed_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 0;
  std::set<uint64_t> kept_versions_ ABSL_GUARDED_BY(reclaim_mu_);
  std::set<uint64_t> kept_freed_ ABSL_GUARDED_BY(reclaim_mu_);
  uint64_t log_scanned_to_ ABSL_GUARDED_BY(reclaim_mu_) = 1;
  std::set<uint64_t> kept_log_ ABSL_GUARDED_BY(reclaim_mu_);
  // The background reclaimer and its wake-up.
  std::mutex reclaim_wake_mu_;
  std::condition_variable reclaim_cv_;
  bool reclaim_requested_ = false;  // guarded by reclaim_wake_mu_
  bool shutting_down_ = false;      // guarded by reclaim_wake_mu_
  std::thread reclaimer_;
  std::atomic<uint64_t> reclaim_errors_{0};

  // Signalled after every published version, for watchers.
  std::mutex published_mu_;
  std::condition_variable published_cv_;

  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> pages_written_{0};
  std::atomic<uint64_t> blobs_written_{0};
  std::atomic<uint64_t> log_bytes_{0};
  std::atomic<uint64_t> checkpoints_written_{0};
  uint64_t replayed_commits_ = 0;  // set by Open
  uint64_t recovery_micros_ = 0;   // set by Open
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_DB_IMPL_H_
