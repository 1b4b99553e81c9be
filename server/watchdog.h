// The watchdog that cancels calls blocked past their deadline.
#ifndef COWDB_SERVER_WATCHDOG_H_
#define COWDB_SERVER_WATCHDOG_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::server {

// Cancels calls that run past their deadline. gRPC itself enforces only a
// deadline that the client set, and the handlers check the server's
// default deadline between messages, which a handler blocked in a Write to
// a client that does not read never reaches: it would hold its server
// thread (and its snapshot) for as long as the client keeps the connection
// open. The watchdog calls ServerContextBase::TryCancel() on such a call,
// which fails the blocked Write.
//
// Thread safety: all methods may be called concurrently.
// REQUIRES: no Guard outlives its watchdog.
class CallWatchdog {
 public:
  // Keeps one call under watch while it lives. Movable.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept : watchdog_(other.watchdog_), id_(other.id_) {
      other.watchdog_ = nullptr;
    }
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class CallWatchdog;
    Guard(CallWatchdog* watchdog, uint64_t id) : watchdog_(watchdog), id_(id) {}
    CallWatchdog* watchdog_ = nullptr;
    uint64_t id_ = 0;
  };

  CallWatchdog();
  ~CallWatchdog();
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // Cancels the call of `ctx` once `deadline` has passed, unless the
  // returned guard is destroyed first. After the guard is gone the
  // watchdog never touches `ctx` again.
  Guard Watch(grpc::ServerContextBase* ctx, absl::Time deadline);

 private:
  struct Call {
    absl::Time deadline;
    grpc::ServerContextBase* ctx;
  };
  void Unwatch(uint64_t id);
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Call> calls_;  // by id; guarded by mu_
  uint64_t next_id_ = 1;            // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  // When the watchdog thread wakes next; guarded by mu_.
  absl::Time next_wake_ = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_WATCHDOG_H_
