// The commit pipeline: the group-commit queue, validation and the log
// write.
//
// LevelDB's writer queue: a request at the front of the queue leads a
// group made of everything queued behind it (up to 4096) and runs it as
// one version; the others wait to be told their outcome, or, for
// asynchronous requests, the leader calls their callbacks after the sync.
// A committer thread (started by the first asynchronous request) leads
// when an asynchronous request is at the front and no writer leads.
//
// A group: the leader takes the versions layer's write lock, validates
// each request against the latest version and the keys written by earlier
// members (transactions' isolation rules, transaction.h), applies the
// accepted requests' mutations to the latest tree by path copying in
// memory, and hands the tree and the mutations to VersionStore::Commit,
// which writes the group's log record with one sync and publishes.
//
// Thread safety: all methods may be called concurrently.

#ifndef COWDB_ENGINE_TXN_COMMIT_QUEUE_H_
#define COWDB_ENGINE_TXN_COMMIT_QUEUE_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/options.h"
#include "engine/tree/btree.h"
#include "engine/txn/commit.h"
#include "engine/version/reclaimer.h"
#include "engine/version/version_store.h"

namespace cowdb::internal {

class CommitQueue {
 public:
  // `source`, `versions` and `reclaimer` (woken after each commit; may be
  // null) must outlive the queue.
  CommitQueue(const Options& options, NodeSource* source,
              VersionStore* versions, Reclaimer* reclaimer)
      : options_(options),
        source_(source),
        versions_(versions),
        reclaimer_(reclaimer) {}
  // Waits for the queued writes (their callbacks run) and stops the
  // committer thread.
  ~CommitQueue();

  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  // Checks a write against the options' limits. Errors: InvalidArgument.
  absl::Status ValidateWrite(std::string_view key, std::string_view value) const;

  // Queues `req` for group commit and waits for its outcome.
  absl::StatusOr<uint64_t> SubmitCommit(CommitRequest& req);
  // Queues `req`, whose `on_done` is set, and returns: the leader of its
  // group calls `on_done` (see DB::WriteAsync).
  void SubmitAsync(CommitRequest* req);

  NodeSource& source() { return *source_; }
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }

 private:
  using KeySet = std::set<std::string, std::less<>>;

  // Leads group commits while `lock` (on queue_mu_) is held on entry and
  // exit: until `self` (null for the committer thread) is done, and a few
  // rounds more while requests wait; then hands leadership to the front.
  void Lead(std::unique_lock<std::mutex>& lock, CommitRequest* self);
  // Commits `group` (the caller is the group's leader): one version per
  // branch its members commit to, in the order of their first member.
  void RunGroup(const std::vector<CommitRequest*>& group);
  // Commits `group`, whose members all commit to `branch`, as one version.
  // REQUIRES: the versions layer's write mutex is held.
  void RunBranchGroup(const std::vector<CommitRequest*>& group,
                      std::string_view branch) ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Checks `req` against `base` and the keys written by earlier members of
  // its group. Returns Aborted on a conflict.
  absl::Status Validate(const CommitRequest& req, const Version& base,
                        const KeySet& group_writes);
  // The committer thread.
  void CommitLoop();

  const Options options_;
  NodeSource* const source_;
  VersionStore* const versions_;
  Reclaimer* const reclaimer_;

  // The request at the front is the leader; it alone runs RunGroup.
  // (std::mutex for std::condition_variable.)
  std::mutex queue_mu_;
  std::deque<CommitRequest*> queue_;   // guarded by queue_mu_
  bool leader_active_ = false;         // guarded by queue_mu_
  std::condition_variable committer_cv_;
  bool committer_stopping_ = false;    // guarded by queue_mu_
  std::thread committer_;              // guarded by queue_mu_

  std::atomic<uint64_t> commits_{0};
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TXN_COMMIT_QUEUE_H_
