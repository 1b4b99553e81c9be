#include "engine/txn/transaction_impl.h"

#include "absl/strings/str_cat.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

// The smallest key greater than `k`.
std::string Successor(std::string_view k) {
  std::string s(k);
  s.push_back('\0');
  return s;
}

// An iterator over the snapshot merged with the transaction's writes. Own
// writes win over the snapshot; own deletes hide keys. With read tracking
// on, every positioning records the key range it observed in the
// transaction, so that validation can detect phantoms.
class TxnIterator final : public Iterator {
 public:
  TxnIterator(TransactionImpl* txn, NodeSource* src, const Version& v,
              const TransactionImpl::WriteMap* writes, IterateBounds bounds)
      : txn_(txn), version_(v.version), base_(src, v.root), values_(src),
        writes_(writes), lower_(std::move(bounds.lower)) {
    if (!bounds.upper.empty()) upper_ = std::move(bounds.upper);
  }

  bool Valid() const override { return valid_; }

  void SeekToFirst() override { Seek(lower_); }

  void SeekToLast() override {
    range_.reset();
    if (upper_) {
      // The last key before the upper bound.
      absl::Status s = base_.Seek(*upper_);
      if (s.ok()) s = base_.Valid() ? base_.Prev() : base_.SeekToLast();
      Backward(std::move(s), writes_->lower_bound(*upper_));
    } else {
      Backward(base_.SeekToLast(), writes_->end());
    }
    if (txn_->tracks_reads()) {
      // Observed: everything from the last key on (to the upper bound).
      range_ = txn_->AddRange(KeyRange{valid_ ? key_ : lower_, upper_});
    }
  }

  void Seek(std::string_view target) override {
    std::string_view from = std::max(target, std::string_view(lower_));
    if (upper_ && from >= *upper_) {  // outside the bounds: nothing seen
      range_.reset();
      valid_ = false;
      return;
    }
    BeginRange(from);
    Forward(base_.Seek(from), writes_->lower_bound(from));
  }

  void Next() override {
    std::string current = key_;
    absl::Status s;
    if (forward_) {
      // The base cursor is at `current` or at the first base key after it.
      if (base_.Valid() && base_.entry().key == current) s = base_.Next();
    } else {
      s = base_.Seek(current);
      if (s.ok() && base_.Valid() && base_.entry().key == current) {
        s = base_.Next();
      }
    }
    Forward(std::move(s), writes_->upper_bound(current));
  }

  void Prev() override {
    std::string current = key_;
    absl::Status s;
    if (!forward_) {
      // The base cursor is at `current` or at the last base key before it.
      if (base_.Valid() && base_.entry().key == current) s = base_.Prev();
    } else {
      s = base_.Seek(current);
      if (s.ok()) s = base_.Valid() ? base_.Prev() : base_.SeekToLast();
    }
    Backward(std::move(s), writes_->lower_bound(current));
  }

  std::string_view key() const override { return key_; }

  std::string_view value() const override {
    if (own_) return (*own_)->value;
    return values_.Read(base_.entry().value, &status_);
  }

  uint64_t mod_version() const override {
    return own_ ? 0 : base_.entry().mod_version;
  }
  // An own write: its lease, the rest 0 (as Entry's, transaction.h).
  KeyMeta meta() const override {
    if (own_) return KeyMeta{0, 0, 0, (*own_)->lease};
    const LeafEntry& e = base_.entry();
    return KeyMeta{e.mod_version, e.create_version, e.writes, e.lease};
  }
  uint64_t version() const override { return version_; }
  absl::Status status() const override { return status_; }

 private:
  using WriteIt = TransactionImpl::WriteMap::const_iterator;

  // Settles on the first visible key at or after the base cursor and `w`.
  void Forward(absl::Status s, WriteIt w) {
    forward_ = true;
    if (!Track(std::move(s))) return;
    for (;;) {
      bool bv = base_.Valid(), wv = w != writes_->end();
      if (!bv && !wv) {
        valid_ = false;
        break;
      }
      if (wv && (!bv || w->first <= base_.entry().key)) {
        if (!w->second) {  // own delete: skip the key on both sides
          if (bv && base_.entry().key == w->first && !Track(base_.Next())) return;
          ++w;
          continue;
        }
        SetOwn(w);
      } else {
        SetBase();
      }
      break;
    }
    if (valid_ && upper_ && key_ >= *upper_) valid_ = false;  // past the bounds
    ExtendForward();
  }

  // Settles on the last visible key before `w` (exclusive) and at or before
  // the base cursor.
  void Backward(absl::Status s, WriteIt w) {
    forward_ = false;
    if (!Track(std::move(s))) return;
    for (;;) {
      bool bv = base_.Valid(), wv = w != writes_->begin();
      if (!bv && !wv) {
        valid_ = false;
        break;
      }
      WriteIt prev = wv ? std::prev(w) : w;
      if (wv && (!bv || prev->first >= base_.entry().key)) {
        if (!prev->second) {
          if (bv && base_.entry().key == prev->first && !Track(base_.Prev())) return;
          w = prev;
          continue;
        }
        SetOwn(prev);
      } else {
        SetBase();
      }
      break;
    }
    if (valid_ && key_ < lower_) valid_ = false;  // before the bounds
    ExtendBackward();
  }

  void SetOwn(WriteIt w) {
    valid_ = true;
    key_ = w->first;
    own_ = &w->second;
  }
  void SetBase() {
    valid_ = true;
    key_ = base_.entry().key;
    own_ = nullptr;
  }

  bool Track(absl::Status s) {
    if (s.ok()) return true;
    status_ = std::move(s);
    valid_ = false;
    return false;
  }

  void BeginRange(std::string_view lo) {
    if (!txn_->tracks_reads()) return;
    range_ = txn_->AddRange(KeyRange{std::string(lo), Successor(lo)});
  }
  // Grow the observed range to cover the current position (or the end).
  void ExtendForward() {
    if (!range_) return;
    KeyRange& r = txn_->range(*range_);
    if (!valid_) {
      r.hi = upper_;  // to the end, or the upper bound
    } else if (r.hi && *r.hi <= key_) {
      r.hi = Successor(key_);
    }
  }
  void ExtendBackward() {
    if (!range_) return;
    KeyRange& r = txn_->range(*range_);
    if (!valid_) {
      r.lo = lower_;  // from the start, or the lower bound
    } else if (key_ < r.lo) {
      r.lo = key_;
    }
  }

  TransactionImpl* const txn_;
  const uint64_t version_;
  TreeCursor base_;
  mutable ValueReader values_;
  const TransactionImpl::WriteMap* const writes_;
  const std::string lower_;
  std::optional<std::string> upper_;  // nullopt: unbounded
  bool valid_ = false;
  bool forward_ = true;
  std::string key_;
  const std::optional<TransactionImpl::OwnPut>* own_ = nullptr;
  std::optional<size_t> range_;
  mutable absl::Status status_;
};

}  // namespace

TransactionImpl::TransactionImpl(CommitQueue* queue,
                                 std::shared_ptr<const Version> snapshot,
                                 const TransactionOptions& options)
    : queue_(queue),
      snapshot_(std::move(snapshot)),
      options_(options),
      tracks_reads_(!options.read_only &&
                    options.isolation == Isolation::kSerializable) {}

TransactionImpl::~TransactionImpl() = default;  // rollback = drop the buffer

absl::Status TransactionImpl::CheckOpen() const {
  if (finished_) {
    return absl::FailedPreconditionError(
        "the transaction has already committed or rolled back");
  }
  return absl::OkStatus();
}

absl::Status TransactionImpl::CheckWritable() const {
  RETURN_IF_ERROR(CheckOpen());
  if (options_.read_only) {
    return absl::FailedPreconditionError("the transaction is read-only");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Found>> TransactionImpl::ReadSnapshot(
    std::string_view key) {
  ASSIGN_OR_RETURN(std::optional<Found> found,
                   TreeGet(queue_->source(), snapshot_->root, key));
  if (tracks_reads_) {
    reads_.push_back(ReadRecord{std::string(key), found.has_value(),
                                found ? found->entry->mod_version : 0});
  }
  return found;
}

absl::StatusOr<Entry> TransactionImpl::GetEntry(std::string_view key) {
  RETURN_IF_ERROR(CheckOpen());
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  Entry e;
  e.version = snapshot_->version;
  auto own = writes_.find(key);
  if (own != writes_.end()) {
    if (!own->second) return absl::NotFoundError("key not found");
    e.value = own->second->value;
    e.lease = own->second->lease;  // the rest stays 0 until committed
    return e;
  }
  ASSIGN_OR_RETURN(std::optional<Found> found, ReadSnapshot(key));
  if (!found) return absl::NotFoundError("key not found");
  const StoredValue& v = found->entry->value;
  e.mod_version = found->entry->mod_version;
  e.create_version = found->entry->create_version;
  e.writes = found->entry->writes;
  e.lease = found->entry->lease;
  ASSIGN_OR_RETURN(e.value, queue_->source().ReadValue(v));
  return e;
}

absl::StatusOr<std::string> TransactionImpl::Get(std::string_view key) {
  ASSIGN_OR_RETURN(Entry e, GetEntry(key));
  return std::move(e.value);
}

absl::StatusOr<std::unique_ptr<Iterator>> TransactionImpl::NewIterator(
    const IterateBounds& bounds) {
  RETURN_IF_ERROR(CheckOpen());
  if (!bounds.upper.empty() && bounds.upper <= bounds.lower) {
    return absl::InvalidArgumentError("iterator bounds: upper <= lower");
  }
  return std::unique_ptr<Iterator>(
      new TxnIterator(this, &queue_->source(), *snapshot_, &writes_, bounds));
}

absl::StatusOr<uint64_t> TransactionImpl::Count(std::string_view begin,
                                                std::string_view end) {
  RETURN_IF_ERROR(CheckOpen());
  ASSIGN_OR_RETURN(uint64_t n, TreeCount(queue_->source(), snapshot_->root,
                                         begin, end));
  if (!end.empty() && end <= begin) return 0;
  if (tracks_reads_) {
    ranges_.push_back(KeyRange{
        std::string(begin),
        end.empty() ? std::nullopt : std::optional<std::string>(end)});
  }
  // Adjust for own writes in the range.
  for (auto it = writes_.lower_bound(begin);
       it != writes_.end() && (end.empty() || it->first < end); ++it) {
    ASSIGN_OR_RETURN(std::optional<Found> base,
                     TreeGet(queue_->source(), snapshot_->root, it->first));
    if (it->second && !base) ++n;
    if (!it->second && base) --n;
  }
  return n;
}

absl::Status TransactionImpl::Put(std::string_view key, std::string_view value,
                                  uint64_t lease) {
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(queue_->ValidateWrite(key, value));
  auto it = writes_.find(key);
  bool recreate = it != writes_.end() && (!it->second || it->second->recreate);
  writes_.insert_or_assign(std::string(key), OwnPut{std::string(value), lease, recreate});
  return absl::OkStatus();
}

absl::Status TransactionImpl::Delete(std::string_view key) {
  RETURN_IF_ERROR(CheckWritable());
  RETURN_IF_ERROR(queue_->ValidateWrite(key, ""));
  writes_.insert_or_assign(std::string(key), std::nullopt);
  return absl::OkStatus();
}

absl::Status TransactionImpl::Rollback() {
  RETURN_IF_ERROR(CheckOpen());
  finished_ = true;
  writes_.clear();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TransactionImpl::Commit() {
  RETURN_IF_ERROR(CheckOpen());
  finished_ = true;
  // Without writes, the transaction is serializable at its snapshot.
  if (writes_.empty()) return snapshot_->version;
  CommitRequest req;
  PrepareCommit(&req);
  return queue_->SubmitCommit(req);
}

void TransactionImpl::CommitAsync(
    std::function<void(absl::StatusOr<uint64_t>)> done) {
  if (!done) done = [](absl::StatusOr<uint64_t>) {};  // the outcome is dropped
  if (absl::Status s = CheckOpen(); !s.ok()) return done(s);
  finished_ = true;
  if (writes_.empty()) return done(snapshot_->version);
  pending_ = std::make_unique<CommitRequest>();
  PrepareCommit(pending_.get());
  pending_->on_done = std::move(done);
  queue_->SubmitAsync(pending_.get());
}

void TransactionImpl::PrepareCommit(CommitRequest* req) {
  req->snapshot = snapshot_;
  req->branch = snapshot_->branch;
  req->isolation = options_.isolation;
  if (tracks_reads_) {
    req->reads = &reads_;
    req->ranges = &ranges_;
  }
  req->written_keys.reserve(writes_.size());
  for (const auto& [k, v] : writes_) req->written_keys.push_back(k);
  req->mutations.reserve(writes_.size());
  for (const auto& [k, v] : writes_) {
    if (v && v->recreate) req->mutations.push_back(Mutation{true, k, {}, 0});
    req->mutations.push_back(v ? Mutation{false, k, v->value, v->lease}
                               : Mutation{true, k, {}, 0});
  }
}

}  // namespace cowdb::internal
