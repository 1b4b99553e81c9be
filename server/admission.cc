#include "server/admission.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cowdb::server {

WriteAdmission::WriteAdmission(uint64_t max_writes, uint64_t max_bytes)
    : max_writes_(max_writes),
      max_bytes_(max_bytes),
      client_writes_(std::max<uint64_t>(1, max_writes / 4)),
      client_bytes_(std::max<uint64_t>(1, max_bytes / 4)) {}

absl::Status WriteAdmission::Admit(std::string_view client, uint64_t bytes, Ticket* ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t writes = writes_.load(std::memory_order_relaxed);
  const uint64_t held = bytes_.load(std::memory_order_relaxed);
  auto it = clients_.find(client);
  const Use use = it == clients_.end() ? Use() : it->second;
  // A write larger than a bound on its own is admitted when nothing else
  // of its kind is in flight, so that every valid write can go through.
  const bool server_full =
      writes >= max_writes_ || (held > 0 && held + bytes > max_bytes_);
  const bool client_full =
      use.writes >= client_writes_ || (use.bytes > 0 && use.bytes + bytes > client_bytes_);
  if (server_full || client_full) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(absl::StrCat(
        client_full ? "this client has " : "the server has ",
        client_full ? use.writes : writes, " writes (",
        client_full ? use.bytes : held, " bytes) in flight, its bound (",
        client_full ? client_writes_ : max_writes_, " writes, ",
        client_full ? client_bytes_ : max_bytes_,
        " bytes); retry after a short backoff (50 ms, doubling)"));
  }
  Use& u = clients_[std::string(client)];
  ++u.writes;
  u.bytes += bytes;
  writes_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  ticket->Release();
  ticket->owner_ = this;
  ticket->client_ = std::string(client);
  ticket->bytes_ = bytes;
  return absl::OkStatus();
}

void WriteAdmission::Release(const std::string& client, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = clients_.find(client);
  if (it != clients_.end()) {
    --it->second.writes;
    it->second.bytes -= bytes;
    if (it->second.writes == 0) clients_.erase(it);
  }
  writes_.fetch_sub(1, std::memory_order_relaxed);
  bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

WriteAdmission::Ticket& WriteAdmission::Ticket::operator=(Ticket&& o) noexcept {
  if (this != &o) {
    Release();
    owner_ = std::exchange(o.owner_, nullptr);
    client_ = std::move(o.client_);
    bytes_ = o.bytes_;
  }
  return *this;
}

void WriteAdmission::Ticket::Release() {
  if (owner_ == nullptr) return;
  std::exchange(owner_, nullptr)->Release(client_, bytes_);
}

bool PerClientSlots::Acquire(const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t& n = held_[client];
  if (n >= max_) {
    if (n == 0) held_.erase(client);
    return false;
  }
  ++n;
  return true;
}

void PerClientSlots::Release(const std::string& client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(client);
  if (it != held_.end() && --it->second == 0) held_.erase(it);
}

}  // namespace cowdb::server
