#include "engine/txn/commit_queue.h"

#include <algorithm>

#include <cassert>
#include <functional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/tree/diff.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {

CommitQueue::~CommitQueue() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    committer_stopping_ = true;
  }
  committer_cv_.notify_one();
  if (committer_.joinable()) committer_.join();  // after the queued writes
}

absl::Status CommitQueue::ValidateWrite(std::string_view key,
                                        std::string_view value) const {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  if (key.size() > options_.max_key_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("key of ", key.size(), " bytes exceeds max_key_size ",
                     options_.max_key_size));
  }
  if (value.size() > options_.max_value_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("value of ", value.size(),
                     " bytes exceeds max_value_size ",
                     options_.max_value_size));
  }
  return absl::OkStatus();
}

void CommitQueue::SubmitAsync(CommitRequest* req) {
  assert(req->on_done);  // without it the request would never be led
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (!committer_.joinable()) committer_ = std::thread([this] { CommitLoop(); });
  queue_.push_back(req);
  if (!leader_active_ && queue_.front() == req) committer_cv_.notify_one();
}

absl::StatusOr<uint64_t> CommitQueue::SubmitCommit(CommitRequest& req) {
  // LevelDB's writer queue: the request at the front leads a group made of
  // everything queued behind it; the others wait to be told their outcome.
  std::unique_lock<std::mutex> lock(queue_mu_);
  queue_.push_back(&req);
  req.cv.wait(lock, [&] {
    return req.done || (!leader_active_ && queue_.front() == &req);
  });
  if (!req.done) Lead(lock, &req);
  lock.unlock();
  if (!req.status.ok()) return req.status;
  return req.version;
}

void CommitQueue::Lead(std::unique_lock<std::mutex>& lock, CommitRequest* self) {
  // A leader that finds more requests queued when it is done leads those
  // too (a few rounds at most), which saves a thread handoff per group.
  constexpr size_t kMaxGroup = 4096;
  constexpr int kMaxRounds = 4;
  leader_active_ = true;
  // The asynchronous requests' callbacks and outcomes, taken out under the
  // lock: once a request is done and the lock is released, its owner may
  // free it (a writer woken below may be the one it waits for).
  std::vector<std::pair<std::function<void(absl::StatusOr<uint64_t>)>,
                        absl::StatusOr<uint64_t>>>
      finished;
  for (int round = 0;
       (self != nullptr && !self->done) || (round < kMaxRounds && !queue_.empty());
       ++round) {
    std::vector<CommitRequest*> group(
        queue_.begin(), queue_.begin() + std::min(queue_.size(), kMaxGroup));
    lock.unlock();
    RunGroup(group);
    lock.lock();
    for (size_t i = 0; i < group.size(); ++i) {
      CommitRequest* member = queue_.front();
      queue_.pop_front();
      member->done = true;
      if (member->on_done) {
        finished.emplace_back(std::move(member->on_done),
                              member->status.ok()
                                  ? absl::StatusOr<uint64_t>(member->version)
                                  : absl::StatusOr<uint64_t>(member->status));
      } else if (member != self) {
        member->cv.notify_one();
      }
    }
    if (!finished.empty()) {  // their callbacks run without the lock
      lock.unlock();
      for (auto& [on_done, outcome] : finished) on_done(std::move(outcome));
      finished.clear();
      lock.lock();
    }
  }
  leader_active_ = false;
  if (queue_.empty()) {
    if (committer_stopping_) committer_cv_.notify_one();
  } else if (queue_.front()->on_done) {
    committer_cv_.notify_one();
  } else {
    queue_.front()->cv.notify_one();
  }
}

void CommitQueue::CommitLoop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  for (;;) {
    committer_cv_.wait(lock, [&] {
      return (!leader_active_ && !queue_.empty() && queue_.front()->on_done) ||
             (committer_stopping_ && queue_.empty() && !leader_active_);
    });
    if (queue_.empty()) return;  // closing, and every write is done
    Lead(lock, nullptr);
  }
}

namespace {

std::string Printable(std::string_view key) {
  constexpr size_t kMax = 64;
  std::string s = absl::CEscape(absl::string_view(
      key.data(), std::min(key.size(), kMax)));
  if (key.size() > kMax) s += "...";
  return s;
}

absl::Status Conflict(std::string_view what, std::string_view key,
                      uint64_t since) {
  return absl::AbortedError(absl::StrCat(
      "transaction conflict: ", std::string(what), " \"", Printable(key),
      "\" changed after version ", since, "; retry the transaction"));
}

bool SameEntry(const std::optional<Found>& a, const std::optional<Found>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || a->entry->mod_version == b->entry->mod_version;
}

}  // namespace

absl::Status CommitQueue::Validate(const CommitRequest& req, const Version& base,
                              const KeySet& group_writes) {
  if (req.snapshot == nullptr) return absl::OkStatus();
  const Version& snap = *req.snapshot;
  if (snap.branch_created != base.branch_created) {
    return absl::AbortedError(absl::StrCat(
        "transaction conflict: branch \"", snap.branch, "\" was deleted and created "
        "again after version ", snap.version, "; retry the transaction"));
  }
  const bool moved = snap.version != base.version;
  if (req.isolation == Isolation::kSnapshot) {
    for (std::string_view k : req.written_keys) {
      if (group_writes.count(k) != 0) return Conflict("written key", k, snap.version);
      if (!moved) continue;
      ASSIGN_OR_RETURN(std::optional<Found> before, TreeGet(*source_, snap.root, k));
      ASSIGN_OR_RETURN(std::optional<Found> now, TreeGet(*source_, base.root, k));
      if (!SameEntry(before, now)) return Conflict("written key", k, snap.version);
    }
    return absl::OkStatus();
  }
  if (req.reads != nullptr) {
    for (const ReadRecord& r : *req.reads) {
      if (group_writes.count(r.key) != 0) return Conflict("read key", r.key, snap.version);
      if (!moved) continue;
      ASSIGN_OR_RETURN(std::optional<Found> now, TreeGet(*source_, base.root, r.key));
      if (now.has_value() != r.exists ||
          (now && now->entry->mod_version != r.mod_version)) {
        return Conflict("read key", r.key, snap.version);
      }
    }
  }
  if (req.ranges != nullptr) {
    for (const KeyRange& r : *req.ranges) {
      auto it = group_writes.lower_bound(r.lo);
      if (it != group_writes.end() && r.Contains(*it)) {
        return Conflict("a key in the range from", r.lo, snap.version);
      }
      if (!moved) continue;
      ASSIGN_OR_RETURN(bool changed,
                       TreeRangeChanged(*source_, snap.root, base.root, r.lo,
                                        r.hi ? std::string_view(*r.hi)
                                             : std::string_view()));
      if (changed) return Conflict("a key in the range from", r.lo, snap.version);
    }
  }
  return absl::OkStatus();
}

void CommitQueue::RunGroup(const std::vector<CommitRequest*>& group) {
  MutexLock lock(versions_->write_mutex());
  if (absl::Status s = versions_->CheckWritable(); !s.ok()) {
    for (CommitRequest* r : group) r->status = s;
    return;
  }
  // Nearly always one branch: then the group as it is.
  bool one_branch = true;
  for (CommitRequest* r : group) one_branch &= r->branch == group.front()->branch;
  if (one_branch) return RunBranchGroup(group, group.front()->branch);
  std::vector<std::string_view> branches;
  for (CommitRequest* r : group) {
    if (std::find(branches.begin(), branches.end(), r->branch) == branches.end()) {
      branches.push_back(r->branch);
    }
  }
  for (std::string_view b : branches) {
    std::vector<CommitRequest*> members;
    for (CommitRequest* r : group) {
      if (r->branch == b) members.push_back(r);
    }
    RunBranchGroup(members, b);
  }
}

void CommitQueue::RunBranchGroup(const std::vector<CommitRequest*>& group,
                                 std::string_view branch) {
  auto fail_all = [&](const absl::Status& s) {
    for (CommitRequest* r : group) r->status = s;
  };
  absl::StatusOr<std::shared_ptr<const Version>> latest = versions_->Latest(branch);
  if (!latest.ok()) {
    fail_all(latest.status());
    return;
  }
  std::shared_ptr<const Version> base = *std::move(latest);
  TreeBuilder builder = versions_->NewBuilder(base->root, base->version + 1);
  KeySet group_writes;
  std::vector<CommitRequest*> accepted;
  std::vector<Mutation> ops;  // the group's log record, as applied
  std::vector<TagWrite> tags;
  for (CommitRequest* r : group) {
    r->status = Validate(*r, *base, group_writes);
    if (!r->status.ok()) continue;
    absl::Status applied = ApplyMutations(builder, r->mutations);
    if (!applied.ok()) {
      // The shared builder is now part-applied: commit nothing.
      fail_all(applied);
      return;
    }
    ops.insert(ops.end(), r->mutations.begin(), r->mutations.end());
    tags.insert(tags.end(), r->tags.begin(), r->tags.end());
    for (std::string_view k : r->written_keys) group_writes.emplace(k);
    accepted.push_back(r);
  }
  if (accepted.empty()) return;
  absl::StatusOr<uint64_t> version = versions_->Commit(builder, ops, branch, tags);
  for (CommitRequest* r : accepted) {
    if (version.ok()) {
      r->version = *version;
    } else {
      r->status = version.status();
    }
  }
  if (!version.ok()) return;
  if (reclaimer_ != nullptr) reclaimer_->Wake();
  commits_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace cowdb::internal
