// Leases: grant, renew, revoke, expire. A lease's keys carry its id in
// KeyMeta::lease; revoking deletes the keys that still carry it, in one
// version. Leases (id and TTL) are persisted in EtcdOptions::lease_file,
// rewritten atomically on grant and revoke; on a restart every lease gets
// its whole TTL again, as etcd's do when a new leader takes over.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/etcd/internal.h"

namespace cowdb::server::etcd {

absl::StatusOr<std::unique_ptr<Lessor>> Lessor::Create(DB* db,
                                                      const EtcdOptions& options) {
  std::unique_ptr<Lessor> l(new Lessor(db, options));
  absl::Status st = l->Load();
  if (!st.ok()) return st;
  l->expirer_ = std::thread([p = l.get()] { p->ExpireLoop(); });
  return l;
}

Lessor::Lessor(DB* db, const EtcdOptions& options) : db_(db), options_(options) {}

Lessor::~Lessor() { Stop(); }

void Lessor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (expirer_.joinable()) expirer_.join();
}

// File format: one line per lease, "<id> <ttl>", decimal.
absl::Status Lessor::Load() {
  absl::Time now = absl::Now();
  if (!options_.lease_file.empty()) {
    std::ifstream in(options_.lease_file);
    if (in) {
      std::string line;
      int n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (line.empty()) continue;
        std::istringstream fields(line);
        int64_t id = 0, ttl = 0;
        std::string extra;
        if (!(fields >> id >> ttl) || (fields >> extra) || id <= 0 || ttl <= 0) {
          return absl::DataLossError(absl::StrCat(
              "lease file ", options_.lease_file, " line ", n, ": bad record \"",
              line, "\""));
        }
        leases_[id] = Lease{ttl, now + absl::Seconds(ttl), {}};
      }
    }
  }
  if (leases_.empty()) return absl::OkStatus();
  // Which keys carry which lease: one pass over the latest version.
  absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ReadOptions());
  if (!it.ok()) return it.status();
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    KeyMeta m = (*it)->meta();
    if (m.lease == 0) continue;
    auto l = leases_.find(static_cast<int64_t>(m.lease));
    if (l != leases_.end()) l->second.keys.insert(std::string((*it)->key()));
  }
  return (*it)->status();
}

absl::Status Lessor::SaveLocked() {
  if (options_.lease_file.empty()) return absl::OkStatus();
  std::string content;
  for (const auto& [id, l] : leases_) absl::StrAppend(&content, id, " ", l.ttl, "\n");
  std::string tmp = options_.lease_file + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  bool ok = ::write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  ok = ok && std::rename(tmp.c_str(), options_.lease_file.c_str()) == 0;
  if (ok) {
    std::string dir = options_.lease_file;
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash == 0 ? 1 : slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ok = ::fsync(dfd) == 0;
      ::close(dfd);
    }
  }
  if (!ok) return absl::InternalError(absl::StrCat("cannot save leases to ", options_.lease_file));
  return absl::OkStatus();
}

absl::StatusOr<Lessor::Granted> Lessor::Grant(int64_t id, int64_t ttl) {
  if (ttl > kMaxTTL) {
    return absl::OutOfRangeError("etcdserver: too large lease TTL");
  }
  ttl = std::max(ttl, kMinTTL);
  std::lock_guard<std::mutex> lock(mu_);
  if (id == 0) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    do {
      id = static_cast<int64_t>(rng() >> 1);
    } while (id == 0 || leases_.count(id) != 0);
  } else if (id < 0) {
    return absl::InvalidArgumentError("lease id must be positive");
  } else if (leases_.count(id) != 0) {
    return absl::AlreadyExistsError("etcdserver: lease already exists");
  }
  leases_[id] = Lease{ttl, absl::Now() + absl::Seconds(ttl), {}};
  absl::Status st = SaveLocked();
  if (!st.ok()) {
    leases_.erase(id);
    return st;
  }
  return Granted{id, ttl};
}

absl::Status Lessor::Revoke(int64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  return RevokeLocked(lock, id);
}

absl::Status Lessor::RevokeLocked(std::unique_lock<std::mutex>& lock, int64_t id) {
  auto l = leases_.find(id);
  if (l == leases_.end() || l->second.revoking) {
    return absl::NotFoundError("etcdserver: requested lease not found");
  }
  // No new holds from here; wait for the running ones to attach their keys.
  l->second.revoking = true;
  released_.wait(lock, [&] { return leases_.at(id).holds == 0; });
  std::set<std::string> keys = leases_.at(id).keys;
  lock.unlock();
  absl::StatusOr<uint64_t> v = DeleteLeased(db_, id, keys);
  lock.lock();
  if (!v.ok()) {
    leases_.at(id).revoking = false;
    return v.status();
  }
  leases_.erase(id);
  return SaveLocked();
}

absl::StatusOr<int64_t> Lessor::Renew(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  // An expired lease is as good as revoked (etcd: its revocation is
  // pending), even before the expiry loop gets to it.
  if (l == leases_.end() || l->second.expiry <= absl::Now()) {
    return absl::NotFoundError("etcdserver: requested lease not found");
  }
  l->second.expiry = absl::Now() + absl::Seconds(l->second.ttl);
  return l->second.ttl;
}

absl::StatusOr<Lessor::Info> Lessor::TimeToLive(int64_t id, bool keys) {
  std::set<std::string> candidates;
  Info info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto l = leases_.find(id);
    if (l == leases_.end()) return absl::NotFoundError("etcdserver: requested lease not found");
    info.granted = l->second.ttl;
    absl::Duration left = l->second.expiry - absl::Now();
    info.remaining = std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(left, absl::Seconds(1))));
    if (keys) candidates = l->second.keys;
  }
  if (keys) {
    ReadOptions ro;
    for (const std::string& k : candidates) {
      absl::StatusOr<Entry> e = db_->GetEntry(ro, k);
      if (e.ok() && e->lease == static_cast<uint64_t>(id)) info.keys.push_back(k);
    }
  }
  return info;
}

std::vector<int64_t> Lessor::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> ids;
  for (const auto& [id, l] : leases_) ids.push_back(id);
  return ids;
}

bool Lessor::Exists(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  return l != leases_.end() && !l->second.revoking && l->second.expiry > absl::Now();
}

bool Lessor::Hold(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  if (l == leases_.end() || l->second.revoking || l->second.expiry <= absl::Now()) return false;
  ++l->second.holds;
  return true;
}

void Lessor::Release(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  if (l != leases_.end() && --l->second.holds == 0) released_.notify_all();
}

void Lessor::Attach(int64_t id, std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  if (l != leases_.end()) l->second.keys.insert(std::string(key));
}

void Lessor::Detach(int64_t id, std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto l = leases_.find(id);
  if (l != leases_.end()) l->second.keys.erase(std::string(key));
}

void Lessor::ExpireLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.lease_tick));
    if (stop_) break;
    absl::Time now = absl::Now();
    std::vector<int64_t> expired;
    for (const auto& [id, l] : leases_) {
      if (l.expiry <= now) expired.push_back(id);
    }
    for (int64_t id : expired) {
      absl::Status st = RevokeLocked(lock, id);
      if (!st.ok() && !absl::IsNotFound(st)) {
        Log("error", "lease expiry failed",
            absl::StrCat("lease=", id, " error=\"", st.ToString(), "\""));
      }
      if (stop_) break;
    }
  }
}

}  // namespace cowdb::server::etcd
