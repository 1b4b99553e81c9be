// Admission of writes: a bound on the writes a server has accepted but not
// yet answered, in all and per client, in count and in bytes. The callback
// API answers a write when its group commit is durable, and no thread
// waits meanwhile, so without a bound a flood of writes would queue
// without limit (memory grows until the process dies). Over a bound a
// write is refused at once with RESOURCE_EXHAUSTED and a retry hint; one
// client may hold at most a quarter of the total, so a flooding client
// cannot starve the others.
//
// Thread-safe.

#ifndef COWDB_SERVER_ADMISSION_H_
#define COWDB_SERVER_ADMISSION_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cowdb::server {

class WriteAdmission {
 public:
  WriteAdmission(uint64_t max_writes, uint64_t max_bytes);

  // A write held in flight; released (once) by Release or its destruction.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept { *this = std::move(o); }
    Ticket& operator=(Ticket&& o) noexcept;
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { Release(); }
    void Release();

   private:
    friend class WriteAdmission;
    WriteAdmission* owner_ = nullptr;
    std::string client_;
    uint64_t bytes_ = 0;
  };

  // Admits a write of `bytes` from `client` (any stable name of the caller:
  // its peer address). ResourceExhausted if the server or the client is at
  // its bound; `*ticket` is then untouched.
  absl::Status Admit(std::string_view client, uint64_t bytes, Ticket* ticket);

  uint64_t in_flight_writes() const { return writes_.load(std::memory_order_relaxed); }
  uint64_t in_flight_bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  void Release(const std::string& client, uint64_t bytes);

  const uint64_t max_writes_, max_bytes_;
  const uint64_t client_writes_, client_bytes_;  // a quarter of the above
  std::mutex mu_;
  struct Use {
    uint64_t writes = 0;
    uint64_t bytes = 0;
  };
  std::map<std::string, Use, std::less<>> clients_;  // guarded by mu_
  std::atomic<uint64_t> writes_{0}, bytes_{0}, rejected_{0};
};

// Counts what each client holds open (watches), against a per-client cap.
class PerClientSlots {
 public:
  explicit PerClientSlots(uint64_t max_per_client) : max_(max_per_client) {}
  // Takes one of `client`'s slots; false if it holds the maximum.
  bool Acquire(const std::string& client);
  void Release(const std::string& client);
  uint64_t max() const { return max_; }

 private:
  const uint64_t max_;
  std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> held_;  // guarded by mu_
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_ADMISSION_H_
