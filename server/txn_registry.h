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
  // address); returns its id. Errors: RESOURCE_EXHAUSTED over
  // max_open_transactions, or over max_open_transactions_per_client for
  // `client`.
  absl::StatusOr<std::string> Add(std::unique_ptr<Transaction> txn,
                                  const std::string& client = "local");

  // Runs `fn` on the transaction with `id` (one call at a time per
  // transaction). Errors: NOT_FOUND for an unknown or expired id.
  absl::Status With(const std::string& id,
                    const std::function<absl::Status(Transaction&)>& fn);

  // Buffers `mutations` in the transaction with `id` within the limits
  // (RESOURCE_EXHAUSTED beyond them, nothing applied), then runs `then`
  // (may be null). If a mutation is bad, the transaction is rolled back
  // and removed, so no request is ever half applied.
  absl::Status Mutate(const std::string& id,
                      const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations,
                      const std::function<absl::Status(Transaction&)>& then);

  // Removes (and so rolls back, if still open) the transaction. The last
  // kRememberedFinished removed ids are remembered with `how` they ended:
  // a later call on one is FAILED_PRECONDITION ("already <how>").
  void Remove(const std::string& id, std::string how);

  // Removes the transaction as Remove does, but hands it to the caller
  // (to commit it asynchronously) instead of rolling it back; it is
  // remembered as `how` until SetOutcome. Errors: as With.
  absl::StatusOr<std::unique_ptr<Transaction>> Take(const std::string& id, std::string how);
  // Updates how a removed transaction ended (if it is still remembered).
  void SetOutcome(const std::string& id, std::string how);
  static constexpr size_t kRememberedFinished = 4096;

  uint64_t size();

 private:
  struct Entry {
    std::mutex mu;
    std::unique_ptr<Transaction> txn;
    absl::Time last_used;
    uint64_t ops = 0;    // mutations buffered so far
    uint64_t bytes = 0;  // their keys' and values' bytes
    std::string client;  // who opened it
  };
  // Forgets `it`'s entry and its client's count; returns the next one.
  // REQUIRES: mu_ held.
  std::map<std::string, std::shared_ptr<Entry>>::iterator EraseLocked(
      std::map<std::string, std::shared_ptr<Entry>>::iterator it);
  absl::Status WithEntry(const std::string& id, const std::function<absl::Status(Entry&)>& fn);
  // Forgets the entry of `id`, remembering `how` it ended; null if none.
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
