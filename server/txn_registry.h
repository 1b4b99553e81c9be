// The interactive transactions cowdb_server holds open between calls.
#ifndef COWDB_SERVER_TXN_REGISTRY_H_
#define COWDB_SERVER_TXN_REGISTRY_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cowdb/v1/cowdb.pb.h"
#include "engine/transaction.h"
#include "server/service_options.h"

namespace cowdb::server {

// Open interactive transactions.
class TransactionRegistry {
 public:
  TransactionRegistry(const ServiceOptions& options);
  ~TransactionRegistry();

  // Registers `txn` for `client` (any stable name of the caller: its peer
  // address) and `owner` (the user who began it; "" without users); returns
  // its id (128 random bits from the system's CSPRNG). Every later call on
  // the id must come from the same owner: for anyone else the id is
  // unknown. Errors: RESOURCE_EXHAUSTED over max_open_transactions, or over
  // max_open_transactions_per_client for `client`.
  absl::StatusOr<std::string> Add(std::unique_ptr<Transaction> txn,
                                  const std::string& client = "local",
                                  const std::string& owner = "");

  // Runs `fn` on the transaction with `id` (one call at a time per
  // transaction). Errors: NOT_FOUND for an unknown or expired id, or one
  // of another owner; FAILED_PRECONDITION for a finished one.
  absl::Status With(const std::string& id, const std::string& owner,
                    const std::function<absl::Status(Transaction&)>& fn);

  // Buffers `mutations` in the transaction within the limits
  // (RESOURCE_EXHAUSTED beyond them, nothing applied). If a mutation is
  // bad, the transaction ends there and then (rolled back, removed), so no
  // request is ever half applied and no later call can commit part of it.
  absl::Status Mutate(const std::string& id, const std::string& owner,
                      const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations);

  // Mutate, then, in the same hold of the transaction, removes it and
  // hands it to the caller to commit (asynchronously); it is remembered as
  // "being committed" until SetOutcome. Over a limit the transaction stays
  // open (nothing applied). Errors: as Mutate.
  absl::StatusOr<std::unique_ptr<Transaction>> TakeForCommit(
      const std::string& id, const std::string& owner,
      const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations);
  // Updates how a removed transaction ended (if it is still remembered).
  void SetOutcome(const std::string& id, std::string how);

  // Rolls the transaction back and removes it. Errors: as With.
  absl::Status Rollback(const std::string& id, const std::string& owner);

  // The last kRememberedFinished ended ids are remembered with how they
  // ended: a later call on one is FAILED_PRECONDITION ("already <how>").
  static constexpr size_t kRememberedFinished = 4096;

  uint64_t size();

 private:
  struct Entry {
    std::mutex mu;
    std::unique_ptr<Transaction> txn;
    absl::Time last_used;
    uint64_t ops = 0;    // mutations buffered so far
    uint64_t bytes = 0;  // their keys' and values' bytes
    std::string client;  // who opened it (its connection)
    std::string owner;   // the user who began it
  };
  // Forgets `it`'s entry and its client's count; returns the next one.
  // REQUIRES: mu_ held.
  std::map<std::string, std::shared_ptr<Entry>>::iterator EraseLocked(
      std::map<std::string, std::shared_ptr<Entry>>::iterator it);
  // Runs `fn` on the entry of `id` under its lock (errors: as With).
  absl::Status WithEntry(const std::string& id, const std::string& owner,
                         const std::function<absl::Status(Entry&)>& fn);
  // Applies `mutations` to `e` within the limits; a bad one ends the
  // transaction (removed as `id`). REQUIRES: e.mu held.
  absl::Status MutateLocked(const std::string& id, Entry& e,
                            const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations);
  // Forgets the entry of `id`, remembering `how` it ended; null if none.
  // May be called with an entry's lock held (the reaper only try-locks).
  std::shared_ptr<Entry> Unregister(const std::string& id, std::string how);

  void ReapLoop();

  const ServiceOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // guarded by mu_
  std::map<std::string, uint64_t> per_client_;  // open ones; guarded by mu_
  std::map<std::string, std::string> finished_;  // id -> how; guarded by mu_
  std::deque<std::string> finished_order_;       // oldest first; guarded by mu_
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread reaper_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_TXN_REGISTRY_H_
