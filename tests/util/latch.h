// A countdown latch over std::mutex, which TSan sees (Debian's Abseil is
// not instrumented, so absl::Notification and absl::BlockingCounter would
// hide the ordering they create and TSan would report false races).

#ifndef COWDB_TESTS_UTIL_LATCH_H_
#define COWDB_TESTS_UTIL_LATCH_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace cowdb::testing {

class Latch {
 public:
  explicit Latch(int count) : count_(count) {}

  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ == 0) cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return count_ <= 0; });
  }

  // Whether the count reached zero within `timeout`.
  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_LATCH_H_
