#include "server/txn_registry.h"

#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/wire/engine_ops.h"
#include "server/status.h"

namespace cowdb::server {

TransactionRegistry::TransactionRegistry(const ServiceOptions& options)
    : options_(options), reaper_([this] { ReapLoop(); }) {}

TransactionRegistry::~TransactionRegistry() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  reaper_.join();
}

absl::StatusOr<std::string> TransactionRegistry::Add(std::unique_ptr<Transaction> txn,
                                                     const std::string& client,
                                                     const std::string& owner) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    return absl::InternalError("the system's random source failed");
  }
  std::string id = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
  auto entry = std::make_shared<Entry>();
  entry->txn = std::move(txn);
  entry->last_used = absl::Now();
  entry->client = client;
  entry->owner = owner;
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= options_.max_open_transactions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open transactions (max_open_transactions = ",
        options_.max_open_transactions, ")"));
  }
  uint64_t& mine = per_client_[client];
  if (mine >= options_.max_open_transactions_per_client) {
    if (mine == 0) per_client_.erase(client);
    return absl::ResourceExhaustedError(absl::StrCat(
        "this client has ", mine, " open transactions (max_open_transactions_per_client = ",
        options_.max_open_transactions_per_client, "); commit or roll some back"));
  }
  ++mine;
  entries_.emplace(id, std::move(entry));
  return id;
}

std::map<std::string, std::shared_ptr<TransactionRegistry::Entry>>::iterator
TransactionRegistry::EraseLocked(std::map<std::string, std::shared_ptr<Entry>>::iterator it) {
  auto c = per_client_.find(it->second->client);
  if (c != per_client_.end() && --c->second == 0) per_client_.erase(c);
  return entries_.erase(it);
}

absl::Status TransactionRegistry::With(const std::string& id, const std::string& owner,
                                       const std::function<absl::Status(Transaction&)>& fn) {
  return WithEntry(id, owner, [&](Entry& e) { return fn(*e.txn); });
}

absl::Status TransactionRegistry::MutateLocked(
    const std::string& id, Entry& e,
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations) {
  uint64_t bytes = 0;
  for (const v1::Mutation& m : mutations) {
    bytes += m.put().key().size() + m.put().value().size() + m.delete_key().size();
  }
  if (e.ops + mutations.size() > options_.max_transaction_ops) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the transaction would exceed max_transaction_ops = ", options_.max_transaction_ops));
  }
  if (e.bytes + bytes > options_.max_transaction_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the transaction would exceed max_transaction_bytes = ", options_.max_transaction_bytes));
  }
  e.ops += mutations.size();
  e.bytes += bytes;
  for (const v1::Mutation& m : mutations) {
    absl::Status a = wire::ApplyMutation(*e.txn, m);
    if (!a.ok()) {
      // No half-applied request survives, nor can a later call commit it.
      Unregister(id, "rolled back (a mutation was refused)");
      e.txn.reset();
      return absl::Status(a.code(),
                          absl::StrCat(a.message(), "; the transaction was rolled back"));
    }
  }
  return absl::OkStatus();
}

absl::Status TransactionRegistry::Mutate(
    const std::string& id, const std::string& owner,
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations) {
  return WithEntry(id, owner, [&](Entry& e) { return MutateLocked(id, e, mutations); });
}

absl::StatusOr<std::unique_ptr<Transaction>> TransactionRegistry::TakeForCommit(
    const std::string& id, const std::string& owner,
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations) {
  std::unique_ptr<Transaction> taken;
  absl::Status s = WithEntry(id, owner, [&](Entry& e) {
    if (absl::Status m = MutateLocked(id, e, mutations); !m.ok()) return m;
    Unregister(id, "being committed");
    taken = std::move(e.txn);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return taken;
}

absl::Status TransactionRegistry::Rollback(const std::string& id, const std::string& owner) {
  return WithEntry(id, owner, [&](Entry& e) {
    absl::Status s = e.txn->Rollback();
    Unregister(id, "rolled back");
    e.txn.reset();
    return s;
  });
}

absl::Status TransactionRegistry::WithEntry(const std::string& id, const std::string& owner,
                                            const std::function<absl::Status(Entry&)>& fn) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    // Another owner's transaction is as unknown as a missing one.
    if (it != entries_.end() && it->second->owner != owner) it = entries_.end();
    if (it == entries_.end()) {
      if (auto done = finished_.find(id); done != finished_.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("transaction ", QuoteInput(id), " already ", done->second));
      }
      return absl::NotFoundError(absl::StrCat(
          "no open transaction ", QuoteInput(id), " (unknown, or rolled back after ",
          absl::FormatDuration(options_.transaction_idle_timeout), " idle)"));
    }
    entry = it->second;
  }
  std::lock_guard<std::mutex> lock(entry->mu);
  if (entry->txn == nullptr) {
    // It ended while this call waited for it.
    std::lock_guard<std::mutex> registry(mu_);
    auto done = finished_.find(id);
    return absl::FailedPreconditionError(absl::StrCat(
        "transaction ", QuoteInput(id), " already ",
        done != finished_.end() ? done->second : std::string("finished")));
  }
  absl::Status s = fn(*entry);
  entry->last_used = absl::Now();
  return s;
}

std::shared_ptr<TransactionRegistry::Entry> TransactionRegistry::Unregister(
    const std::string& id, std::string how) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return nullptr;
  std::shared_ptr<Entry> entry = it->second;
  EraseLocked(it);
  // Remembered for a while: a late call on it is told it finished.
  finished_order_.push_back(id);
  finished_[id] = std::move(how);
  if (finished_order_.size() > kRememberedFinished) {
    finished_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
  return entry;
}

void TransactionRegistry::SetOutcome(const std::string& id, std::string how) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = finished_.find(id);
  if (it != finished_.end()) it->second = std::move(how);
}

uint64_t TransactionRegistry::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void TransactionRegistry::ReapLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::seconds(1));
    const absl::Time cutoff = absl::Now() - options_.transaction_idle_timeout;
    for (auto it = entries_.begin(); it != entries_.end();) {
      Entry& e = *it->second;
      std::unique_lock<std::mutex> busy(e.mu, std::try_to_lock);
      if (busy.owns_lock() && e.last_used < cutoff) {
        e.txn.reset();
        it = EraseLocked(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace cowdb::server
