#include <map>

#include "engine/util/mutex.h"
#include "engine/store/page_store.h"

namespace cowdb::internal {
namespace {

class MemoryPageStore final : public PageStore {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Space space,
                                                 std::string_view key) override {
    MutexLock lock(&mu_);
    ++stats_.reads;
    const auto& m = spaces_[static_cast<int>(space)];
    auto it = m.find(std::string(key));
    if (it == m.end()) return std::nullopt;
    return it->second;
  }

  absl::Status Scan(Space space, std::string_view start,
                    const std::function<bool(std::string_view,
                                             std::string_view)>& fn) override {
    // Copy out under the lock so `fn` may call back into the store.
    std::vector<std::pair<std::string, std::string>> items;
    {
      MutexLock lock(&mu_);
      const auto& m = spaces_[static_cast<int>(space)];
      for (auto it = m.lower_bound(std::string(start)); it != m.end(); ++it) {
        items.emplace_back(it->first, it->second);
      }
    }
    for (const auto& [k, v] : items) {
      if (!fn(k, v)) break;
    }
    return absl::OkStatus();
  }

  absl::Status Commit(const StoreBatch& batch, bool sync) override {
    MutexLock lock(&mu_);
    for (const auto& op : batch.ops()) {
      auto& m = spaces_[static_cast<int>(op.space)];
      if (op.is_delete) {
        m.erase(op.key);
      } else {
        m[op.key] = op.value;
      }
    }
    ++stats_.commits;
    if (sync) ++stats_.syncs;
    stats_.bytes_written += batch.bytes();
    return absl::OkStatus();
  }

  StoreStats GetStats() override {
    MutexLock lock(&mu_);
    StoreStats s = stats_;
    for (int i = 0; i < kNumSpaces; ++i) {
      for (const auto& [k, v] : spaces_[i]) s.space_bytes[i] += k.size() + v.size();
      s.disk_bytes += s.space_bytes[i];
    }
    return s;
  }

 private:
  Mutex mu_;
  std::map<std::string, std::string> spaces_[kNumSpaces] ABSL_GUARDED_BY(mu_);
  StoreStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::shared_ptr<PageStore> NewMemoryPageStore() {
  return std::make_shared<MemoryPageStore>();
}

}  // namespace cowdb::internal
