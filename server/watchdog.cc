#include "server/watchdog.h"


namespace cowdb::server {

CallWatchdog::Guard::~Guard() {
  if (watchdog_ != nullptr) watchdog_->Unwatch(id_);
}

CallWatchdog::CallWatchdog() : thread_([this] { Loop(); }) {}

CallWatchdog::~CallWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

CallWatchdog::Guard CallWatchdog::Watch(grpc::ServerContextBase* ctx, absl::Time deadline) {
  uint64_t id;
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    calls_.emplace(id, Call{deadline, ctx});
    earliest = deadline < next_wake_;
  }
  if (earliest) cv_.notify_all();
  return Guard(this, id);
}

void CallWatchdog::Unwatch(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.erase(id);
}

void CallWatchdog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    // Cancelling under mu_ means a call's guard, which takes mu_, cannot
    // finish while its context is being cancelled.
    const absl::Time now = absl::Now();
    absl::Time next = now + absl::Seconds(1);
    for (auto it = calls_.begin(); it != calls_.end();) {
      if (it->second.deadline <= now) {
        it->second.ctx->TryCancel();
        it = calls_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    next_wake_ = next;
    cv_.wait_for(lock, absl::ToChronoNanoseconds(next - now));
  }
}

}  // namespace cowdb::server
