#include "engine/version/version_set.h"

#include "absl/strings/str_cat.h"

namespace cowdb::internal {

absl::StatusOr<std::shared_ptr<const Version>> BranchView(
    std::shared_ptr<const Version> v, std::string_view branch) {
  branch = InternalBranchName(branch);
  if (branch == v->branch) return v;
  if (!v->branch.empty()) {
    return absl::InternalError("a branch view of a branch view");
  }
  auto holder =
      std::make_shared<std::pair<std::shared_ptr<const Version>, Version>>(v, *v);
  Version& view = holder->second;
  auto it = v->branches ? v->branches->find(branch) : BranchTable::const_iterator();
  if (!v->branches || it == v->branches->end()) {
    return absl::NotFoundError(absl::StrCat("no branch named \"", std::string(branch),
                                            "\" at version ", v->version));
  }
  view.root = it->second.root;
  view.branch = std::string(branch);
  view.branch_created = it->second.created;
  return std::shared_ptr<const Version>(holder, &view);
}

VersionSet::VersionSet(const Version& latest, uint64_t floor,
                       std::map<std::string, uint64_t> tags)
    : state_(std::make_shared<State>()) {
  std::shared_ptr<const Version> handle = MakeHandle(latest);
  MutexLock lock(&state_->mu);
  state_->floor = floor;
  state_->tags = std::move(tags);
  for (const auto& [name, v] : state_->tags) state_->tagged.insert(v);
  ++state_->pins[latest.version];
  state_->latest = std::move(handle);
}

VersionSet::~VersionSet() {
  // Drop the latest handle while the state is alive.
  std::shared_ptr<const Version> last;
  {
    MutexLock lock(&state_->mu);
    last = std::move(state_->latest);
  }
}

std::shared_ptr<const Version> VersionSet::MakeHandle(const Version& v) {
  std::weak_ptr<State> weak = state_;
  return std::shared_ptr<const Version>(new Version(v),
                                        [weak](const Version* p) {
                                          if (auto s = weak.lock()) {
                                            s->Release(p->version);
                                          }
                                          delete p;
                                        });
}

void VersionSet::State::Release(uint64_t version) {
  MutexLock lock(&mu);
  auto it = pins.find(version);
  if (it != pins.end() && --it->second == 0) pins.erase(it);
}

std::shared_ptr<const Version> VersionSet::latest() const {
  MutexLock lock(&state_->mu);
  return state_->latest;
}

void VersionSet::Publish(const Version& v) {
  std::shared_ptr<const Version> handle = MakeHandle(v);
  std::shared_ptr<const Version> old;
  {
    MutexLock lock(&state_->mu);
    ++state_->pins[v.version];
    old = std::move(state_->latest);
    state_->latest = std::move(handle);
  }
  // `old` may release its pin here, outside the lock.
}

void VersionSet::ReplaceLatest(const Version& v) { Publish(v); }

uint64_t VersionSet::State::OldestRetainedLocked() const {
  uint64_t oldest = std::min(floor, latest->version);
  for (const auto& [v, n] : pins) {
    if (n > 0) {
      oldest = std::min(oldest, v);
      break;
    }
  }
  if (!tagged.empty()) oldest = std::min(oldest, *tagged.begin());
  return oldest;
}

uint64_t VersionSet::oldest_retained() const {
  MutexLock lock(&state_->mu);
  return state_->OldestRetainedLocked();
}

uint64_t VersionSet::NextRetained(uint64_t version) const {
  MutexLock lock(&state_->mu);
  if (version >= state_->floor) return version;
  uint64_t next = state_->floor;
  for (auto it = state_->pins.lower_bound(version);
       it != state_->pins.end() && it->first < next; ++it) {
    if (it->second > 0) {
      next = it->first;
      break;
    }
  }
  auto tag = state_->tagged.lower_bound(version);
  if (tag != state_->tagged.end()) next = std::min(next, *tag);
  return next;
}

uint64_t VersionSet::floor() const {
  MutexLock lock(&state_->mu);
  return state_->floor;
}

absl::Status VersionSet::State::CheckRetainedLocked(uint64_t version) const {
  const uint64_t last = latest->version;
  if (version > last) {
    return absl::NotFoundError(absl::StrCat(
        "version ", version, " does not exist; the latest is ", last));
  }
  if (version >= floor || tagged.count(version) != 0) return absl::OkStatus();
  auto pin = pins.find(version);
  if (pin != pins.end() && pin->second > 0) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(
      "version ", version, " is no longer retained; the oldest retained "
      "version is ", OldestRetainedLocked(), " and the latest is ", last));
}

absl::Status VersionSet::CheckRetained(uint64_t version) {
  MutexLock lock(&state_->mu);
  return state_->CheckRetainedLocked(version);
}

absl::Status VersionSet::AcquirePin(uint64_t version) {
  MutexLock lock(&state_->mu);
  absl::Status s = state_->CheckRetainedLocked(version);
  if (s.ok()) ++state_->pins[version];
  return s;
}

std::shared_ptr<const Version> VersionSet::AdoptPin(const Version& v) {
  return MakeHandle(v);
}

void VersionSet::SetTag(const std::string& name, uint64_t version) {
  MutexLock lock(&state_->mu);
  auto it = state_->tags.find(name);
  if (it != state_->tags.end()) {
    state_->tagged.erase(state_->tagged.find(it->second));
  }
  state_->tags[name] = version;
  state_->tagged.insert(version);
}

void VersionSet::RemoveTag(const std::string& name) {
  MutexLock lock(&state_->mu);
  auto it = state_->tags.find(name);
  if (it == state_->tags.end()) return;
  state_->tagged.erase(state_->tagged.find(it->second));
  state_->tags.erase(it);
}

std::map<std::string, uint64_t> VersionSet::tags() const {
  MutexLock lock(&state_->mu);
  return state_->tags;
}

VersionSet::Plan VersionSet::PlanRelease(uint64_t window_floor) {
  State& s = *state_;
  MutexLock lock(&s.mu);
  s.floor = std::max(s.floor, std::min(window_floor, s.latest->version));
  Plan plan;
  plan.floor = s.floor;
  for (const auto& [v, n] : s.pins) {
    if (v >= s.floor) break;
    if (n > 0) plan.keep.insert(v);
  }
  for (uint64_t v : s.tagged) {
    if (v < s.floor) plan.keep.insert(v);
  }
  return plan;
}

}  // namespace cowdb::internal
