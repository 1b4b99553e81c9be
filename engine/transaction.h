// Transactions: a snapshot plus buffered writes, validated and applied
// atomically at Commit.
//
//   cowdb::TransactionOptions opts;   // read-write, SERIALIZABLE
//   auto txn = db->Begin(opts).value();
//   absl::StatusOr<std::string> from = txn->Get("acct/alice");
//   txn->Put("acct/alice", "70").IgnoreError();
//   txn->Put("acct/bob", "80").IgnoreError();
//   absl::StatusOr<uint64_t> v = txn->Commit();
//   if (absl::IsAborted(v.status())) { /* conflict: retry from Begin */ }
//
// Reads see the transaction's snapshot plus its own writes (including its
// deletes, also in iterators). Nothing is visible to others before Commit.
//
// Isolation:
//  - SERIALIZABLE (default): every key read and every range iterated or
//    counted is validated at commit. A key conflicts when its existence or
//    mod_version at the latest version differs from the snapshot's; a range
//    conflicts when the two versions differ anywhere inside it (so a key
//    inserted into a scanned range - a phantom - aborts the transaction).
//  - SNAPSHOT: only written keys are validated (first committer wins);
//    write skew is possible.
// A conflict makes Commit return Aborted and apply nothing.
//
// Commit status codes:
//   OK                  committed; the value is the version that made the
//                       writes visible (shared with the other transactions
//                       of the same group commit)
//   kAborted            a conflict; nothing applied; retry the transaction
//   kUnknown            the storage write failed: the commit may or may not
//                       be durable. The database refuses writes until it is
//                       reopened (see db.h)
//   kFailedPrecondition the transaction already committed or rolled back,
//                       or the database refuses writes
//   kInvalidArgument    from Put/Delete: a key or value over the limits
//
// Thread safety: a Transaction is used by one thread at a time.
// REQUIRES: a transaction and its iterators are destroyed before the DB; an
// iterator is not used after its transaction commits or rolls back.

#ifndef COWDB_ENGINE_TRANSACTION_H_
#define COWDB_ENGINE_TRANSACTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/iterator.h"

namespace cowdb {

enum class Isolation {
  kSerializable,  // reads and ranges validated; the default
  kSnapshot,      // written keys validated (first committer wins)
};

struct TransactionOptions {
  // A read-only transaction cannot write; its Commit validates nothing.
  // Default: false.
  bool read_only = false;

  // The version to read at. Only for read-only transactions (a read-write
  // transaction reads the latest version). Errors as DB::SnapshotAt.
  // Default: unset (the latest version).
  std::optional<uint64_t> read_version;

  // Default: kSerializable.
  Isolation isolation = Isolation::kSerializable;

  // The branch the transaction reads and commits to ("" or "main": main).
  // Its isolation is the branch's: commits to other branches never
  // conflict with it. Default: main.
  std::string branch;
};

// A read result: the value, the version that last wrote the key, and the
// version the read was made at.
struct Entry {
  std::string value;
  uint64_t mod_version = 0;  // 0 for the transaction's own uncommitted write
  uint64_t version = 0;      // the version read
  // As KeyMeta (iterator.h); 0 for the transaction's own uncommitted
  // write, except `lease`, which is the lease that write attaches.
  uint64_t create_version = 0;
  uint64_t writes = 0;
  uint64_t lease = 0;
};

// The keys a transaction's iterator visits: [lower, upper); an empty
// `upper` is unbounded. A SERIALIZABLE transaction validates what its
// iterators observed; a bounded one observes nothing outside its bounds
// (an unbounded one that walks to the end of a range has seen the next key
// after it, and a change there would abort the transaction).
struct IterateBounds {
  std::string lower;
  std::string upper;
};

class Transaction {
 public:
  Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // Rolls back a transaction that is still open.
  virtual ~Transaction() = default;

  // The version this transaction reads.
  virtual uint64_t read_version() const = 0;

  // Errors: NotFound if absent; FailedPrecondition if finished;
  // InvalidArgument for the empty key.
  virtual absl::StatusOr<std::string> Get(std::string_view key) = 0;
  virtual absl::StatusOr<Entry> GetEntry(std::string_view key) = 0;

  // An iterator over the snapshot merged with this transaction's writes,
  // within `bounds`. Its mod_version() is 0 for keys this transaction
  // wrote. Errors: FailedPrecondition if finished; InvalidArgument if
  // upper <= lower.
  virtual absl::StatusOr<std::unique_ptr<Iterator>> NewIterator(
      const IterateBounds& bounds) = 0;
  absl::StatusOr<std::unique_ptr<Iterator>> NewIterator() {
    return NewIterator(IterateBounds());
  }

  // Keys in [begin, end) (empty `end` = unbounded), including own writes.
  // O(log n + own writes).
  virtual absl::StatusOr<uint64_t> Count(std::string_view begin,
                                         std::string_view end) = 0;

  // Buffered until Commit. Errors: InvalidArgument (limits, as DB::Put);
  // FailedPrecondition if read-only or finished.
  absl::Status Put(std::string_view key, std::string_view value) {
    return Put(key, value, /*lease=*/0);
  }
  // As Put, attaching `lease` to the key (KeyMeta::lease) until its next
  // write.
  virtual absl::Status Put(std::string_view key, std::string_view value,
                           uint64_t lease) = 0;
  virtual absl::Status Delete(std::string_view key) = 0;

  // Validates and applies the writes; see the status codes above. A
  // transaction without writes commits without validation and returns its
  // read version.
  virtual absl::StatusOr<uint64_t> Commit() = 0;

  // As Commit, without waiting: `done` runs once with Commit's result, on
  // the thread that led the commit, under the same rules as
  // DB::WriteAsync's callback. The transaction must stay alive until
  // `done` runs; `done` may destroy it.
  virtual void CommitAsync(std::function<void(absl::StatusOr<uint64_t>)> done) = 0;

  // Discards the writes. Errors: FailedPrecondition if finished.
  virtual absl::Status Rollback() = 0;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_TRANSACTION_H_
