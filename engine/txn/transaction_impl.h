// The Transaction implementation: a pinned snapshot, an ordered write
// buffer, and the read and range records that validation checks.

#ifndef COWDB_ENGINE_TXN_TRANSACTION_IMPL_H_
#define COWDB_ENGINE_TXN_TRANSACTION_IMPL_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/transaction.h"
#include "engine/txn/commit.h"
#include "engine/txn/commit_queue.h"

namespace cowdb::internal {

class TransactionImpl final : public Transaction {
 public:
  // A buffered put.
  struct OwnPut {
    std::string value;
    uint64_t lease = 0;
    // Deleted earlier in this transaction: the key starts over (new
    // create_version, writes = 1), so the commit deletes it before the put.
    bool recreate = false;
  };
  // The write buffer: key -> put, or nullopt for a delete.
  using WriteMap = std::map<std::string, std::optional<OwnPut>, std::less<>>;

  TransactionImpl(CommitQueue* queue, std::shared_ptr<const Version> snapshot,
                  const TransactionOptions& options);
  ~TransactionImpl() override;

  uint64_t read_version() const override { return snapshot_->version; }
  absl::StatusOr<std::string> Get(std::string_view key) override;
  absl::StatusOr<Entry> GetEntry(std::string_view key) override;
  using Transaction::NewIterator;
  absl::StatusOr<std::unique_ptr<Iterator>> NewIterator(
      const IterateBounds& bounds) override;
  absl::StatusOr<uint64_t> Count(std::string_view begin,
                                 std::string_view end) override;
  using Transaction::Put;  // the overload without a lease
  absl::Status Put(std::string_view key, std::string_view value,
                   uint64_t lease) override;
  absl::Status Delete(std::string_view key) override;
  absl::StatusOr<uint64_t> Commit() override;
  void CommitAsync(std::function<void(absl::StatusOr<uint64_t>)> done) override;
  absl::Status Rollback() override;

  // For iterators: record the ranges they observe.
  bool tracks_reads() const { return tracks_reads_; }
  size_t AddRange(KeyRange r) {
    ranges_.push_back(std::move(r));
    return ranges_.size() - 1;
  }
  KeyRange& range(size_t i) { return ranges_[i]; }

 private:
  absl::Status CheckOpen() const;
  // Fills `req` with this transaction's validation and writes.
  void PrepareCommit(CommitRequest* req);
  absl::Status CheckWritable() const;
  // Reads `key` from the snapshot, recording the read.
  absl::StatusOr<std::optional<Found>> ReadSnapshot(std::string_view key);

  CommitQueue* const queue_;
  const std::shared_ptr<const Version> snapshot_;
  const TransactionOptions options_;
  const bool tracks_reads_;
  bool finished_ = false;
  WriteMap writes_;
  std::vector<ReadRecord> reads_;
  std::vector<KeyRange> ranges_;
  // The request of a CommitAsync in flight; it lives as long as the
  // transaction, which its callback may destroy.
  std::unique_ptr<CommitRequest> pending_;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TXN_TRANSACTION_IMPL_H_
