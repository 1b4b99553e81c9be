#include "engine/version/version_set.h"

#include "absl/strings/str_cat.h"

namespace cowdb::internal {

VersionSet::VersionSet(const Version& latest, uint64_t floor,
                       std::map<std::string, uint64_t> tags) {
  MutexLock lock(&mu_);
  floor_ = floor;
  tags_ = std::move(tags);
  for (const auto& [name, v] : tags_) tagged_.insert(v);
  ++pins_[latest.version];
  latest_ = std::shared_ptr<const Version>(
      new Version(latest), [this](const Version* v) {
        ReleasePin(v->version);
        delete v;
      });
}

VersionSet::~VersionSet() {
  // The latest handle's deleter reaches into pins_: drop it while the maps
  // are alive.
  std::shared_ptr<const Version> last;
  {
    MutexLock lock(&mu_);
    last = std::move(latest_);
  }
}

std::shared_ptr<const Version> VersionSet::latest() const {
  MutexLock lock(&mu_);
  return latest_;
}

void VersionSet::Publish(const Version& v) {
  std::shared_ptr<const Version> old;
  {
    MutexLock lock(&mu_);
    ++pins_[v.version];
    old = std::move(latest_);
    latest_ = std::shared_ptr<const Version>(
        new Version(v), [this](const Version* p) {
          ReleasePin(p->version);
          delete p;
        });
  }
  // `old` may release its pin here, outside the lock.
}

uint64_t VersionSet::OldestRetainedLocked() const {
  uint64_t oldest = std::min(floor_, latest_->version);
  for (const auto& [v, n] : pins_) {
    if (n > 0) {
      oldest = std::min(oldest, v);
      break;
    }
  }
  if (!tagged_.empty()) oldest = std::min(oldest, *tagged_.begin());
  return oldest;
}

uint64_t VersionSet::oldest_retained() const {
  MutexLock lock(&mu_);
  return OldestRetainedLocked();
}

uint64_t VersionSet::floor() const {
  MutexLock lock(&mu_);
  return floor_;
}

absl::Status VersionSet::CheckRetainedLocked(uint64_t version) const {
  const uint64_t latest = latest_->version;
  if (version > latest) {
    return absl::NotFoundError(absl::StrCat(
        "version ", version, " does not exist; the latest is ", latest));
  }
  if (version >= floor_ || tagged_.count(version) != 0) return absl::OkStatus();
  auto pin = pins_.find(version);
  if (pin != pins_.end() && pin->second > 0) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(
      "version ", version, " is no longer retained; the oldest retained "
      "version is ", OldestRetainedLocked(), " and the latest is ", latest));
}

absl::Status VersionSet::CheckRetained(uint64_t version) {
  MutexLock lock(&mu_);
  return CheckRetainedLocked(version);
}

absl::Status VersionSet::AcquirePin(uint64_t version) {
  MutexLock lock(&mu_);
  absl::Status s = CheckRetainedLocked(version);
  if (s.ok()) ++pins_[version];
  return s;
}

std::shared_ptr<const Version> VersionSet::AdoptPin(const Version& v) {
  return std::shared_ptr<const Version>(new Version(v),
                                        [this](const Version* p) {
                                          ReleasePin(p->version);
                                          delete p;
                                        });
}

void VersionSet::ReleasePin(uint64_t version) {
  MutexLock lock(&mu_);
  auto it = pins_.find(version);
  if (it != pins_.end() && --it->second == 0) pins_.erase(it);
}

void VersionSet::SetTag(const std::string& name, uint64_t version) {
  MutexLock lock(&mu_);
  auto it = tags_.find(name);
  if (it != tags_.end()) tagged_.erase(tagged_.find(it->second));
  tags_[name] = version;
  tagged_.insert(version);
}

void VersionSet::RemoveTag(const std::string& name) {
  MutexLock lock(&mu_);
  auto it = tags_.find(name);
  if (it == tags_.end()) return;
  tagged_.erase(tagged_.find(it->second));
  tags_.erase(it);
}

std::map<std::string, uint64_t> VersionSet::tags() const {
  MutexLock lock(&mu_);
  return tags_;
}

VersionSet::Plan VersionSet::PlanRelease(uint64_t window_floor) {
  MutexLock lock(&mu_);
  floor_ = std::max(floor_, std::min(window_floor, latest_->version));
  Plan plan;
  plan.floor = floor_;
  for (const auto& [v, n] : pins_) {
    if (v >= floor_) break;
    if (n > 0) plan.keep.insert(v);
  }
  for (uint64_t v : tagged_) {
    if (v < floor_) plan.keep.insert(v);
  }
  return plan;
}

}  // namespace cowdb::internal
