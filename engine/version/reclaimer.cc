#include "engine/version/reclaimer.h"

#include <iterator>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"
#include "engine/version/records.h"

namespace cowdb::internal {

Reclaimer::~Reclaimer() {
  {
    std::lock_guard<std::mutex> lock(reclaim_wake_mu_);
    shutting_down_ = true;
  }
  reclaim_cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Reclaimer::Start() {
  if (options_.background_reclaim && !thread_.joinable()) {
    thread_ = std::thread([this] { ReclaimLoop(); });
  }
}

absl::StatusOr<uint64_t> Reclaimer::WindowFloor(const Version& latest) {
  const uint64_t retain_versions = retain_versions_.load();
  const uint64_t retain_seconds = retain_seconds_.load();
  uint64_t by_count = latest.version;
  if (retain_versions == Options::kRetainAll) return 0;
  if (retain_versions > 0 && latest.version + 1 > retain_versions) {
    by_count = latest.version + 1 - retain_versions;
  } else if (retain_versions > 0) {
    by_count = 0;
  }
  if (retain_seconds == 0 || by_count == 0) return by_count;
  // Also keep every version younger than retain_seconds: the version that
  // was latest at (now - retain_seconds) and everything after it.
  int64_t cutoff = absl::ToUnixMicros(absl::Now()) -
                   static_cast<int64_t>(retain_seconds) * 1000000;
  uint64_t lo = versions_->floor(), hi = by_count;
  if (lo >= hi) return by_count;
  ASSIGN_OR_RETURN(std::optional<Version> first, versions_->ReadRecord(lo));
  if (!first || first->commit_micros > cutoff) return lo;
  while (hi - lo > 1) {  // the last version in [lo, hi) committed <= cutoff
    uint64_t mid = lo + (hi - lo) / 2;
    ASSIGN_OR_RETURN(std::optional<Version> m, versions_->ReadRecord(mid));
    if (m && m->commit_micros <= cutoff) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

void Reclaimer::SetRetention(uint64_t retain_versions, uint64_t retain_seconds) {
  retain_versions_ = retain_versions;
  retain_seconds_ = retain_seconds;
  Wake();
}

absl::StatusOr<ReclaimStats> Reclaimer::Reclaim() {
  MutexLock lock(&reclaim_mu_);
  return ReclaimLocked();
}

absl::Status Reclaimer::ReleaseBefore(uint64_t version) {
  // Under the pass lock: a pass persists the floor it planned, which must
  // not land after (and below) this one.
  {
    MutexLock lock(&reclaim_mu_);
    const uint64_t latest = versions_->latest()->version;
    if (version > latest) {
      return absl::NotFoundError(absl::StrCat(
          "version ", version, " does not exist; the latest is ", latest));
    }
    if (version <= versions_->floor()) return absl::OkStatus();
    VersionSet::Plan plan = versions_->PlanRelease(version);
    StoreBatch batch;
    batch.Put(Space::kMeta, kFloorKey, EncodeVarint(plan.floor));
    RETURN_IF_ERROR(store_->Commit(batch, /*sync=*/true));
  }
  Wake();
  return absl::OkStatus();
}

absl::StatusOr<ReclaimStats> Reclaimer::ReclaimLocked() {
  std::shared_ptr<const Version> latest = versions_->latest();
  ASSIGN_OR_RETURN(uint64_t window, WindowFloor(*latest));
  latest.reset();
  VersionSet::Plan plan = versions_->PlanRelease(window);
  ReclaimStats stats;
  stats.floor = plan.floor;
  // A retained version needs its base checkpoint (the last one at or
  // before it: its stored tree) and the log records after that base up to
  // itself. Every version from the floor on is retained, so everything
  // after the floor's base is needed; below it, only what kept versions
  // (tagged or pinned) need.
  std::set<uint64_t> checkpoints;
  for (const auto& [c, root] : versions_->Checkpoints()) checkpoints.insert(c);
  auto base_of = [&](uint64_t v) -> uint64_t {
    auto it = checkpoints.upper_bound(v);
    return it == checkpoints.begin() ? 0 : *std::prev(it);
  };
  const uint64_t floor_base = base_of(plan.floor);
  std::set<uint64_t> kept_bases;
  std::vector<std::pair<uint64_t, uint64_t>> kept_logs;  // (base, version]
  for (uint64_t v : plan.keep) {
    kept_bases.insert(base_of(v));
    kept_logs.emplace_back(base_of(v), v);
  }
  auto log_needed = [&](uint64_t r) {
    if (r > floor_base) return true;
    for (const auto& [base, v] : kept_logs) {
      if (base < r && r <= v) return true;
    }
    return false;
  };
  // Thinning: after the floor's base, keep a checkpoint only every
  // `checkpoint_log_bytes` of log (the versions in between are rebuilt
  // from the one before), unless a tree uses it.
  const uint64_t spacing = options_.checkpoint_log_bytes != 0
                               ? options_.checkpoint_log_bytes
                               : uint64_t{64} << 20;
  std::vector<uint64_t> thinned = versions_->ThinCheckpoints(floor_base, spacing);
  for (uint64_t c : thinned) checkpoints.erase(c);
  // The checkpoints retained versions are based on now.
  std::set<uint64_t> needed_bases = kept_bases;
  needed_bases.insert(checkpoints.lower_bound(floor_base), checkpoints.end());
  const uint64_t last_checkpoint = checkpoints.empty() ? 0 : *checkpoints.rbegin();
  constexpr size_t kBatchOps = 4096;
  StoreBatch batch;
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    // No sync: the deletions are idempotent, and the WAL keeps them in
    // order with everything after them.
    absl::Status s = store_->Commit(batch, /*sync=*/false);
    batch = StoreBatch();
    return s;
  };
  // 1. The floor, then the records of released versions: after this, no
  //    one can pin them, so their pages can go.
  batch.Put(Space::kMeta, kFloorKey, EncodeVarint(plan.floor));
  for (uint64_t c : thinned) batch.Delete(Space::kCheckpoints, BigEndianKey(c));
  stats.checkpoints_deleted += thinned.size();
  absl::Status status;
  auto release_version = [&](uint64_t v) {
    batch.Delete(Space::kVersions, BigEndianKey(v));
    ++stats.versions_released;
  };
  std::set<uint64_t> still_kept;
  for (uint64_t v : kept_versions_) {  // kept by an earlier pass
    if (plan.keep.count(v) != 0) {
      still_kept.insert(v);
    } else {
      release_version(v);
    }
  }
  RETURN_IF_ERROR(store_->Scan(
      Space::kVersions, BigEndianKey(versions_scanned_to_),
      [&](std::string_view k, std::string_view) {
        uint64_t v;
        if (!ParseBigEndianKey(k, &v) || v >= plan.floor) return false;
        if (plan.keep.count(v) == 0) {
          release_version(v);
        } else {
          still_kept.insert(v);
        }
        if (batch.ops().size() >= kBatchOps) status = flush();
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(flush());
  kept_versions_ = std::move(still_kept);
  versions_scanned_to_ = std::max(versions_scanned_to_, plan.floor);

  // 2. Pages and blobs whose life [birth, death) holds no checkpoint a
  //    retained version is based on. Only records up to the last
  //    checkpoint seen above: a later one may die at a checkpoint this
  //    pass does not know of.
  {
  // (A fork of an older tree takes back pages from freed records.)
  MutexLock freed_lock(versions_->freed_mutex());
  std::set<uint64_t> retry;
  auto process = [&](uint64_t death, std::string_view key,
                     std::string_view val) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<FreedItem> items, DecodeFreed(val, death));
    std::vector<FreedItem> remaining;
    for (const FreedItem& item : items) {
      auto kept = needed_bases.lower_bound(item.birth);
      if (kept != needed_bases.end() && *kept < death) {
        remaining.push_back(item);
        continue;
      }
      if (item.kind == FreedItem::kPage) {
        batch.Delete(Space::kPages, BigEndianKey(item.id));
        ++stats.pages_deleted;
      } else {
        batch.Delete(Space::kBlobs, BigEndianKey(item.id));
        ++stats.blobs_deleted;
      }
    }
    if (remaining.empty()) {
      batch.Delete(Space::kFreed, std::string(key));
    } else {
      retry.insert(death);
      if (remaining.size() != items.size()) {
        batch.Put(Space::kFreed, std::string(key), EncodeFreed(remaining));
      }
    }
    if (batch.ops().size() >= kBatchOps) return flush();
    return absl::OkStatus();
  };
  for (uint64_t death : kept_freed_) {  // kept by an earlier pass
    std::string key = BigEndianKey(death);
    ASSIGN_OR_RETURN(std::optional<std::string> val,
                     store_->Get(Space::kFreed, key));
    if (val) RETURN_IF_ERROR(process(death, key, *val));
  }
  RETURN_IF_ERROR(store_->Scan(
      Space::kFreed, BigEndianKey(freed_scanned_to_),
      [&](std::string_view k, std::string_view val) {
        uint64_t death;
        if (!ParseBigEndianKey(k, &death) || death > last_checkpoint) return false;
        status = process(death, k, val);
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(flush());
  kept_freed_ = std::move(retry);
  freed_scanned_to_ = std::max(freed_scanned_to_, last_checkpoint + 1);
  }

  // 3. Log records no retained version needs for its rebuild.
  std::set<uint64_t> log_kept;
  auto consider_log = [&](uint64_t r) {
    if (log_needed(r)) {
      log_kept.insert(r);
    } else {
      batch.Delete(Space::kLog, BigEndianKey(r));
      ++stats.log_records_deleted;
    }
  };
  for (uint64_t r : kept_log_) consider_log(r);
  RETURN_IF_ERROR(store_->Scan(
      Space::kLog, BigEndianKey(log_scanned_to_),
      [&](std::string_view k, std::string_view) {
        uint64_t r;
        if (!ParseBigEndianKey(k, &r) || r > floor_base) return false;
        consider_log(r);
        if (batch.ops().size() >= kBatchOps) status = flush();
        return status.ok();
      }));
  RETURN_IF_ERROR(status);
  log_scanned_to_ = std::max(log_scanned_to_, floor_base + 1);
  kept_log_ = std::move(log_kept);

  // 4. Checkpoint records no retained version is based on.
  std::vector<uint64_t> dropped;
  for (uint64_t b : checkpoints) {
    if (b >= floor_base) break;
    if (kept_bases.count(b) == 0) {
      batch.Delete(Space::kCheckpoints, BigEndianKey(b));
      dropped.push_back(b);
    }
  }
  RETURN_IF_ERROR(flush());
  versions_->DropCheckpoints(dropped);
  stats.checkpoints_deleted += dropped.size();
  return stats;
}

void Reclaimer::Wake() {
  if (!options_.background_reclaim) return;
  {
    std::lock_guard<std::mutex> lock(reclaim_wake_mu_);
    reclaim_requested_ = true;
  }
  reclaim_cv_.notify_one();
}

void Reclaimer::ReclaimLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(reclaim_wake_mu_);
      // Also wake periodically: released snapshots and time-based
      // retention change what can go without a commit.
      reclaim_cv_.wait_for(lock, std::chrono::seconds(1), [&] {
        return reclaim_requested_ || shutting_down_;
      });
      if (shutting_down_) return;
      reclaim_requested_ = false;
    }
    absl::StatusOr<ReclaimStats> r = Reclaim();
    if (!r.ok()) errors_.fetch_add(1, std::memory_order_relaxed);
    // Let a burst of commits accumulate before the next pass.
    std::unique_lock<std::mutex> lock(reclaim_wake_mu_);
    reclaim_cv_.wait_for(lock, std::chrono::milliseconds(50),
                         [&] { return shutting_down_; });
    if (shutting_down_) return;
  }
}

}  // namespace cowdb::internal
