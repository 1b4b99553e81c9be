#include "tests/util/model_db.h"

#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cowdb::testing {
namespace {

constexpr uint64_t kStateEvery = 64;

bool InRange(std::string_view key, std::string_view begin,
             std::string_view end) {
  return key >= begin && (end.empty() || key < end);
}

// The smallest key greater than `k`.
std::string Successor(std::string_view k) {
  std::string s(k);
  s.push_back('\0');
  return s;
}

// A key range a serializable transaction observed: [lo, hi), hi unset =
// unbounded.
struct KeyRange {
  std::string lo;
  std::optional<std::string> hi;
};

}  // namespace

// ---------------------------------------------------------------- iterator

// An iterator over one version's state; holds the version pinned.
class ModelDB::ModelIterator final : public Iterator {
 public:
  ModelIterator(std::shared_ptr<const State> state, uint64_t version,
                PinHandle pin)
      : state_(std::move(state)), version_(version), pin_(std::move(pin)),
        pos_(state_->end()) {}

  bool Valid() const override { return pos_ != state_->end(); }
  void SeekToFirst() override { pos_ = state_->begin(); }
  void SeekToLast() override {
    pos_ = state_->empty() ? state_->end() : std::prev(state_->end());
  }
  void Seek(std::string_view target) override {
    pos_ = state_->lower_bound(target);
  }
  void Next() override { ++pos_; }
  void Prev() override {
    pos_ = pos_ == state_->begin() ? state_->end() : std::prev(pos_);
  }
  std::string_view key() const override { return pos_->first; }
  std::string_view value() const override { return pos_->second.value; }
  uint64_t mod_version() const override { return pos_->second.mod_version; }
  KeyMeta meta() const override { return pos_->second.meta(); }
  uint64_t version() const override { return version_; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  const std::shared_ptr<const State> state_;
  const uint64_t version_;
  const PinHandle pin_;
  State::const_iterator pos_;
};

// ------------------------------------------------------------- transaction

class ModelDB::ModelTransaction final : public Transaction {
 public:
  ModelTransaction(ModelDB* db, uint64_t version,
                   std::shared_ptr<const State> base, PinHandle pin,
                   const TransactionOptions& options)
      : db_(db), version_(version), base_(std::move(base)),
        pin_(std::move(pin)), options_(options),
        tracks_reads_(!options.read_only &&
                      options.isolation == Isolation::kSerializable) {}

  uint64_t read_version() const override { return version_; }

  absl::StatusOr<std::string> Get(std::string_view key) override {
    absl::StatusOr<Entry> e = GetEntry(key);
    if (!e.ok()) return e.status();
    return std::move(e->value);
  }

  absl::StatusOr<Entry> GetEntry(std::string_view key) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    if (key.empty()) return absl::InvalidArgumentError("empty key");
    Entry e;
    e.version = version_;
    auto own = writes_.find(key);
    if (own != writes_.end()) {
      if (!own->second) return absl::NotFoundError("key not found");
      e.value = own->second->value;
      e.lease = own->second->lease;
      return e;
    }
    auto it = base_->find(key);
    if (tracks_reads_) {
      reads_.push_back(ReadRecord{std::string(key), it != base_->end(),
                                  it != base_->end() ? it->second.mod_version : 0});
    }
    if (it == base_->end()) return absl::NotFoundError("key not found");
    e.value = it->second.value;
    e.mod_version = it->second.mod_version;
    e.create_version = it->second.create_version;
    e.writes = it->second.writes;
    e.lease = it->second.lease;
    return e;
  }

  using Transaction::NewIterator;
  absl::StatusOr<std::unique_ptr<Iterator>> NewIterator(
      const IterateBounds& bounds) override;

  absl::StatusOr<uint64_t> Count(std::string_view begin,
                                 std::string_view end) override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    if (!end.empty() && end <= begin) return 0;
    if (tracks_reads_) {
      ranges_.push_back(KeyRange{std::string(begin),
                                 end.empty() ? std::nullopt
                                             : std::optional<std::string>(end)});
    }
    uint64_t n = 0;
    for (auto it = base_->lower_bound(begin);
         it != base_->end() && InRange(it->first, begin, end); ++it) {
      ++n;
    }
    for (auto it = writes_.lower_bound(begin);
         it != writes_.end() && InRange(it->first, begin, end); ++it) {
      const bool in_base = base_->count(it->first) != 0;
      if (it->second && !in_base) ++n;
      if (!it->second && in_base) --n;
    }
    return n;
  }

  using Transaction::Put;  // the overload without a lease
  absl::Status Put(std::string_view key, std::string_view value,
                   uint64_t lease) override {
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    if (absl::Status s = db_->ValidateWrite(key, value); !s.ok()) return s;
    // A put after this transaction deleted the key starts it over: the
    // commit deletes it before the put (new create_version, writes 1).
    auto own = writes_.find(key);
    if (own != writes_.end() && (!own->second || recreated_.count(key) != 0)) {
      recreated_.insert(std::string(key));
    } else {
      recreated_.erase(std::string(key));
    }
    writes_.insert_or_assign(std::string(key),
                             PutValue{std::string(value), lease});
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    if (absl::Status s = db_->ValidateWrite(key, ""); !s.ok()) return s;
    writes_.insert_or_assign(std::string(key), std::nullopt);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Commit() override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    finished_ = true;
    if (writes_.empty()) return version_;
    absl::MutexLock lock(&db_->mu_);
    if (absl::Status s = ValidateLocked(); !s.ok()) return s;
    std::vector<Mutation> ops;
    for (const auto& [k, v] : writes_) {
      if (v && recreated_.count(k) != 0) ops.push_back(Mutation{k, std::nullopt});
      ops.push_back(Mutation{k, v});
    }
    return db_->CommitLocked(std::move(ops));
  }

  void CommitAsync(std::function<void(absl::StatusOr<uint64_t>)> done) override {
    absl::StatusOr<uint64_t> r = Commit();
    if (done) done(std::move(r));
  }

  absl::Status Rollback() override {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    finished_ = true;
    writes_.clear();
    return absl::OkStatus();
  }

  // The merged view (snapshot + own writes): the first visible key after
  // (or at, if `inclusive`) `k`, and the last one before (or at) it.
  std::optional<std::pair<std::string, Value>> After(std::string_view k,
                                                     bool inclusive) const {
    auto b = inclusive ? base_->lower_bound(k) : base_->upper_bound(k);
    auto w = inclusive ? writes_.lower_bound(k) : writes_.upper_bound(k);
    for (;;) {
      const bool bv = b != base_->end(), wv = w != writes_.end();
      if (!bv && !wv) return std::nullopt;
      if (wv && (!bv || w->first <= b->first)) {
        if (bv && b->first == w->first) ++b;
        if (w->second) return std::make_pair(w->first, Own(*w->second));
        ++w;
        continue;
      }
      return std::make_pair(b->first, b->second);
    }
  }
  // `k` unset: the last visible key.
  std::optional<std::pair<std::string, Value>> Before(
      std::optional<std::string_view> k, bool inclusive) const {
    auto b = std::make_reverse_iterator(
        !k ? base_->end()
           : inclusive ? base_->upper_bound(*k) : base_->lower_bound(*k));
    auto w = std::make_reverse_iterator(
        !k ? writes_.end()
           : inclusive ? writes_.upper_bound(*k) : writes_.lower_bound(*k));
    for (;;) {
      const bool bv = b != base_->rend(), wv = w != writes_.rend();
      if (!bv && !wv) return std::nullopt;
      if (wv && (!bv || w->first >= b->first)) {
        if (bv && b->first == w->first) ++b;
        if (w->second) return std::make_pair(w->first, Own(*w->second));
        ++w;
        continue;
      }
      return std::make_pair(b->first, b->second);
    }
  }
  // An own write as the merged view shows it.
  static Value Own(const PutValue& p) {
    Value v;
    v.value = p.value;
    v.lease = p.lease;
    return v;
  }

  bool tracks_reads() const { return tracks_reads_; }
  size_t AddRange(KeyRange r) {
    ranges_.push_back(std::move(r));
    return ranges_.size() - 1;
  }
  KeyRange& range(size_t i) { return ranges_[i]; }

 private:
  struct ReadRecord {
    std::string key;
    bool exists;
    uint64_t mod_version;
  };

  absl::Status CheckOpen() const {
    if (finished_) {
      return absl::FailedPreconditionError(
          "the transaction has already committed or rolled back");
    }
    return absl::OkStatus();
  }
  absl::Status CheckWritable() const {
    if (absl::Status s = CheckOpen(); !s.ok()) return s;
    if (options_.read_only) {
      return absl::FailedPreconditionError("the transaction is read-only");
    }
    return absl::OkStatus();
  }

  absl::Status Conflict(std::string_view what, std::string_view key) const {
    return absl::AbortedError(absl::StrCat(
        "conflict: ", std::string(what), " \"", std::string(key),
        "\" changed after version ", version_));
  }

  // transaction.h's isolation rules against the latest version.
  absl::Status ValidateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_->mu_) {
    const uint64_t latest = db_->versions_.size() - 1;
    if (latest == version_) return absl::OkStatus();
    const State& now = *db_->latest_state_;
    auto entry = [](const State& s, const std::string& k) -> std::optional<uint64_t> {
      auto it = s.find(k);
      if (it == s.end()) return std::nullopt;
      return it->second.mod_version;
    };
    if (options_.isolation == Isolation::kSnapshot) {
      for (const auto& [k, v] : writes_) {
        if (entry(*base_, k) != entry(now, k)) return Conflict("written key", k);
      }
      return absl::OkStatus();
    }
    for (const ReadRecord& r : reads_) {
      std::optional<uint64_t> e = entry(now, r.key);
      if (e.has_value() != r.exists || (e && *e != r.mod_version)) {
        return Conflict("read key", r.key);
      }
    }
    for (const KeyRange& r : ranges_) {
      if (!DiffStates(*base_, now, r.lo, r.hi ? std::string_view(*r.hi) : "")
               .empty()) {
        return Conflict("a key in the range from", r.lo);
      }
    }
    return absl::OkStatus();
  }

  ModelDB* const db_;
  const uint64_t version_;
  const std::shared_ptr<const State> base_;
  const PinHandle pin_;
  const TransactionOptions options_;
  const bool tracks_reads_;
  bool finished_ = false;
  Writes writes_;
  std::set<std::string, std::less<>> recreated_;  // puts after an own delete
  std::vector<ReadRecord> reads_;
  std::vector<KeyRange> ranges_;
};

// The merged iterator of a transaction. With read tracking on, every
// positioning records the range it observed, as the engine's does: a seek
// observes from its target to the key it lands on (or to the end), a step
// extends the current range, SeekToLast observes from the last key on;
// nothing outside the iterator's bounds.
absl::StatusOr<std::unique_ptr<Iterator>>
ModelDB::ModelTransaction::NewIterator(const IterateBounds& bounds) {
  class It final : public Iterator {
   public:
    It(ModelTransaction* txn, const IterateBounds& b) : txn_(txn), lower_(b.lower) {
      if (!b.upper.empty()) upper_ = b.upper;
    }
    bool Valid() const override { return cur_.has_value(); }
    void SeekToFirst() override { Seek(lower_); }
    void SeekToLast() override {
      range_.reset();
      cur_ = upper_ ? txn_->Before(*upper_, false) : txn_->Before(std::nullopt, true);
      ClipLower();
      if (txn_->tracks_reads()) {
        range_ = txn_->AddRange(KeyRange{cur_ ? cur_->first : lower_, upper_});
      }
    }
    void Seek(std::string_view target) override {
      const std::string from(std::max(target, std::string_view(lower_)));
      if (upper_ && from >= *upper_) {
        range_.reset();
        cur_.reset();
        return;
      }
      BeginRange(from);
      cur_ = txn_->After(from, true);
      ClipUpper();
      ExtendForward();
    }
    void Next() override {
      cur_ = txn_->After(cur_->first, false);
      ClipUpper();
      ExtendForward();
    }
    void Prev() override {
      cur_ = txn_->Before(cur_->first, false);
      ClipLower();
      ExtendBackward();
    }
    std::string_view key() const override { return cur_->first; }
    std::string_view value() const override { return cur_->second.value; }
    uint64_t mod_version() const override { return cur_->second.mod_version; }
    KeyMeta meta() const override { return cur_->second.meta(); }
    uint64_t version() const override { return txn_->read_version(); }
    absl::Status status() const override { return absl::OkStatus(); }

   private:
    void ClipUpper() {
      if (cur_ && upper_ && cur_->first >= *upper_) cur_.reset();
    }
    void ClipLower() {
      if (cur_ && cur_->first < lower_) cur_.reset();
    }
    void BeginRange(std::string_view lo) {
      if (!txn_->tracks_reads()) return;
      range_ = txn_->AddRange(KeyRange{std::string(lo), Successor(lo)});
    }
    void ExtendForward() {
      if (!range_) return;
      KeyRange& r = txn_->range(*range_);
      if (!cur_) {
        r.hi = upper_;
      } else if (r.hi && *r.hi <= cur_->first) {
        r.hi = Successor(cur_->first);
      }
    }
    void ExtendBackward() {
      if (!range_) return;
      KeyRange& r = txn_->range(*range_);
      if (!cur_) {
        r.lo = lower_;
      } else if (cur_->first < r.lo) {
        r.lo = cur_->first;
      }
    }

    ModelTransaction* const txn_;
    const std::string lower_;
    std::optional<std::string> upper_;
    std::optional<std::pair<std::string, Value>> cur_;
    std::optional<size_t> range_;
  };
  if (absl::Status s = CheckOpen(); !s.ok()) return s;
  if (!bounds.upper.empty() && bounds.upper <= bounds.lower) {
    return absl::InvalidArgumentError("iterator bounds: upper <= lower");
  }
  return std::unique_ptr<Iterator>(new It(this, bounds));
}

// ----------------------------------------------------------------- watcher

class ModelDB::ModelWatcher final : public Watcher {
 public:
  ModelWatcher(ModelDB* db, uint64_t at, PinHandle pin, std::string begin,
               std::string end)
      : db_(db), at_(at), pin_(std::move(pin)), begin_(std::move(begin)),
        end_(std::move(end)) {}

  // Queues the whole state of the range at `at_` as net events.
  void QueueState(const State& s) {
    for (Change& c : DiffStates(State(), s, begin_, end_)) {
      pending_.push_back(WatchEvent{at_, std::move(c), /*net=*/true});
    }
  }

  absl::StatusOr<WatchEvent> Next(absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (!pending_.empty()) {
        WatchEvent e = std::move(pending_.front());
        pending_.pop_front();
        return e;
      }
      PinHandle old;  // released after the lock
      absl::MutexLock lock(&db_->mu_);
      const uint64_t at = at_;
      auto moved = [this, at]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_->mu_) {
        return db_->versions_.size() - 1 > at;
      };
      if (!db_->mu_.AwaitWithDeadline(absl::Condition(&moved), deadline)) {
        return absl::DeadlineExceededError(
            absl::StrCat("no change after version ", at_, " in time"));
      }
      // Step to the next version, or to the first retained one after it (a
      // net step over released versions).
      const uint64_t next = db_->NextRetainedLocked(at_ + 1);
      const bool net = next != at_ + 1;
      for (Change& c : DiffStates(*db_->StateLocked(at_),
                                  *db_->StateLocked(next), begin_, end_)) {
        pending_.push_back(WatchEvent{next, std::move(c), net});
      }
      old = std::move(pin_);
      pin_ = db_->PinLocked(next);
      at_ = next;
    }
  }

  uint64_t position() const override { return at_; }

 private:
  ModelDB* const db_;
  uint64_t at_;  // pinned: everything up to it queued
  PinHandle pin_;
  const std::string begin_, end_;
  std::deque<WatchEvent> pending_;
};

// ------------------------------------------------------------------ ModelDB

ModelDB::ModelDB(const Options& options)
    : options_(options),
      retain_versions_(options.retain_versions),
      retain_seconds_(options.retain_seconds) {
  absl::MutexLock lock(&mu_);
  Version v0;
  v0.commit_micros = absl::ToUnixMicros(absl::Now());
  versions_.push_back(std::move(v0));
  latest_state_ = std::make_shared<const State>();
  states_[0] = latest_state_;
}

ModelDB::~ModelDB() = default;

std::vector<Change> ModelDB::DiffStates(const State& a, const State& b,
                                        std::string_view begin,
                                        std::string_view end) {
  std::vector<Change> out;
  auto x = a.lower_bound(begin), y = b.lower_bound(begin);
  auto x_in = [&] { return x != a.end() && InRange(x->first, begin, end); };
  auto y_in = [&] { return y != b.end() && InRange(y->first, begin, end); };
  while (x_in() || y_in()) {
    Change c;
    if (x_in() && (!y_in() || x->first < y->first)) {
      c.key = x->first;
      c.old_value = x->second.value;
      c.old_meta = x->second.meta();
      ++x;
    } else if (y_in() && (!x_in() || y->first < x->first)) {
      c.key = y->first;
      c.new_value = y->second.value;
      c.new_meta = y->second.meta();
      ++y;
    } else {
      const bool same = x->second == y->second;
      c.key = x->first;
      c.old_value = x->second.value;
      c.old_meta = x->second.meta();
      c.new_value = y->second.value;
      c.new_meta = y->second.meta();
      ++x;
      ++y;
      if (same) continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

absl::Status ModelDB::ValidateWrite(std::string_view key,
                                    std::string_view value) const {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  if (key.size() > options_.max_key_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("key of ", key.size(), " bytes exceeds max_key_size ",
                     options_.max_key_size));
  }
  if (value.size() > options_.max_value_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("value of ", value.size(), " bytes exceeds max_value_size ",
                     options_.max_value_size));
  }
  return absl::OkStatus();
}

void ModelDB::Apply(const std::vector<Mutation>& ops, uint64_t version,
                    State* state) {
  for (const Mutation& m : ops) {
    if (!m.put) {
      state->erase(m.key);
      continue;
    }
    Value v;
    v.value = m.put->value;
    v.mod_version = version;
    v.lease = m.put->lease;
    auto old = state->find(m.key);
    if (old != state->end()) {  // an overwrite: one more write
      v.create_version = old->second.create_version;
      v.writes = old->second.writes + 1;
    } else {  // (re)created
      v.create_version = version;
      v.writes = 1;
    }
    (*state)[m.key] = std::move(v);
  }
}

uint64_t ModelDB::CommitLocked(std::vector<Mutation> ops) {
  const uint64_t version = versions_.size();
  auto next = std::make_shared<State>(*latest_state_);
  Apply(ops, version, next.get());
  Version rec;
  rec.ops = std::move(ops);
  // Commit times never go backwards (as the engine's).
  rec.commit_micros = std::max(absl::ToUnixMicros(absl::Now()),
                               versions_.back().commit_micros);
  rec.entries = next->size();
  versions_.push_back(std::move(rec));
  latest_state_ = std::move(next);
  if (version % kStateEvery == 0) states_[version] = latest_state_;
  return version;
}

absl::StatusOr<uint64_t> ModelDB::Put(std::string_view key,
                                      std::string_view value) {
  WriteBatch b;
  b.Put(key, value);
  return Write(b);
}

absl::StatusOr<uint64_t> ModelDB::Delete(std::string_view key) {
  WriteBatch b;
  b.Delete(key);
  return Write(b);
}

namespace {

absl::Status MainOnly(std::string_view branch) {
  if (branch.empty() || branch == "main") return absl::OkStatus();
  return absl::UnimplementedError("ModelDB does not model branches");
}

}  // namespace

absl::StatusOr<uint64_t> ModelDB::Write(const WriteBatch& batch) {
  if (absl::Status s = MainOnly(batch.branch()); !s.ok()) return s;
  std::vector<Mutation> ops;  // in batch order: each put counts
  for (const WriteBatch::Op& op : batch.ops()) {
    if (absl::Status s = ValidateWrite(op.key, op.value); !s.ok()) return s;
    if (op.is_delete) {
      ops.push_back(Mutation{op.key, std::nullopt});
    } else {
      ops.push_back(Mutation{op.key, PutValue{op.value, op.lease}});
    }
  }
  absl::MutexLock lock(&mu_);
  if (ops.empty()) return versions_.size() - 1;
  return CommitLocked(std::move(ops));
}

void ModelDB::WriteAsync(WriteBatch batch, WriteCallback done) {
  absl::StatusOr<uint64_t> r = Write(batch);
  if (done) done(std::move(r));
}

absl::StatusOr<uint64_t> ModelDB::Fork(std::string_view, const TreeAt&) {
  return MainOnly("-");
}
absl::StatusOr<uint64_t> ModelDB::DeleteBranch(std::string_view) { return MainOnly("-"); }
std::vector<BranchInfo> ModelDB::ListBranches() {
  BranchInfo main;
  main.name = "main";
  main.entries = GetStats().entries;
  return {main};
}
absl::StatusOr<Snapshot> ModelDB::SnapshotOf(const ReadOptions& options) {
  if (absl::Status s = MainOnly(options.branch); !s.ok()) return s;
  if (options.version) return SnapshotAt(*options.version);
  return GetSnapshot();
}
absl::Status ModelDB::DiffTrees(const TreeAt& from, const TreeAt& to, std::string_view begin,
                                std::string_view end,
                                const std::function<bool(const Change&)>& fn) {
  if (absl::Status s = MainOnly(from.branch); !s.ok()) return s;
  if (absl::Status s = MainOnly(to.branch); !s.ok()) return s;
  return Diff(from.version.value_or(LatestVersion()), to.version.value_or(LatestVersion()),
              begin, end, fn);
}
absl::StatusOr<std::unique_ptr<Watcher>> ModelDB::WatchBranch(std::string_view branch,
                                                              uint64_t from_version,
                                                              std::string_view begin,
                                                              std::string_view end) {
  if (absl::Status s = MainOnly(branch); !s.ok()) return s;
  return Watch(from_version, begin, end);
}
absl::StatusOr<MergeResult> ModelDB::Merge(std::string_view, std::string_view, MergePolicy) {
  return MainOnly("-");
}

absl::StatusOr<uint64_t> ModelDB::ResolveLocked(const ReadOptions& options) {
  if (absl::Status s = MainOnly(options.branch); !s.ok()) return s;
  if (options.snapshot != nullptr && options.version.has_value()) {
    return absl::InvalidArgumentError(
        "ReadOptions: set snapshot or version, not both");
  }
  uint64_t v = versions_.size() - 1;
  if (options.snapshot != nullptr && options.snapshot->valid()) {
    v = options.snapshot->version();
  } else if (options.version.has_value()) {
    v = *options.version;
  }
  if (absl::Status s = CheckReadableLocked(v); !s.ok()) return s;
  return v;
}

absl::Status ModelDB::CheckReadableLocked(uint64_t version) const {
  const uint64_t last = versions_.size() - 1;
  if (version > last) {
    return absl::NotFoundError(absl::StrCat(
        "version ", version, " does not exist; the latest is ", last));
  }
  if (RetainedLocked(version)) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(
      "version ", version, " is no longer retained; the oldest retained "
      "version is ", OldestLocked(), " and the latest is ", last));
}

bool ModelDB::RetainedLocked(uint64_t version) const {
  if (version >= floor_ || version == versions_.size() - 1) return true;
  auto pin = pins_.find(version);
  if (pin != pins_.end() && pin->second > 0) return true;
  for (const auto& [name, v] : tags_) {
    if (v == version) return true;
  }
  return false;
}

uint64_t ModelDB::OldestLocked() const {
  uint64_t oldest = std::min<uint64_t>(floor_, versions_.size() - 1);
  for (const auto& [v, n] : pins_) {
    if (n > 0) {
      oldest = std::min(oldest, v);
      break;
    }
  }
  for (const auto& [name, v] : tags_) oldest = std::min(oldest, v);
  return oldest;
}

uint64_t ModelDB::NextRetainedLocked(uint64_t version) const {
  while (!RetainedLocked(version)) ++version;
  return version;
}

std::shared_ptr<const ModelDB::State> ModelDB::StateLocked(uint64_t version) {
  if (version == versions_.size() - 1) return latest_state_;
  if (cached_state_ != nullptr && cached_version_ == version) return cached_state_;
  auto base = std::prev(states_.upper_bound(version));
  if (base->first == version) return base->second;
  auto s = std::make_shared<State>(*base->second);
  for (uint64_t x = base->first + 1; x <= version; ++x) {
    Apply(versions_[x].ops, x, s.get());
  }
  cached_version_ = version;
  cached_state_ = std::move(s);
  return cached_state_;
}

ModelDB::PinHandle ModelDB::PinLocked(uint64_t version) {
  ++pins_[version];
  return PinHandle(reinterpret_cast<const void*>(version + 1),
                   [this, version](const void*) { Unpin(version); });
}

void ModelDB::Unpin(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (--pins_[version] == 0) pins_.erase(version);
}

absl::StatusOr<std::string> ModelDB::Get(const ReadOptions& options,
                                         std::string_view key) {
  absl::StatusOr<Entry> e = GetEntry(options, key);
  if (!e.ok()) return e.status();
  return std::move(e->value);
}

absl::Status ModelDB::Get(const ReadOptions& options, std::string_view key,
                          std::string* value) {
  absl::StatusOr<Entry> e = GetEntry(options, key);
  if (!e.ok()) return e.status();
  *value = std::move(e->value);
  return absl::OkStatus();
}

absl::StatusOr<Entry> ModelDB::GetEntry(const ReadOptions& options,
                                        std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty key");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<uint64_t> v = ResolveLocked(options);
  if (!v.ok()) return v.status();
  std::shared_ptr<const State> s = StateLocked(*v);
  auto it = s->find(key);
  if (it == s->end()) return absl::NotFoundError("key not found");
  const Value& x = it->second;
  return Entry{x.value, x.mod_version, *v, x.create_version, x.writes, x.lease};
}

absl::StatusOr<std::unique_ptr<Transaction>> ModelDB::Begin(
    const TransactionOptions& options) {
  if (absl::Status s = MainOnly(options.branch); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  uint64_t v = versions_.size() - 1;
  if (options.read_version.has_value()) {
    if (!options.read_only) {
      return absl::InvalidArgumentError(
          "read_version is only for read-only transactions; a read-write "
          "transaction reads the latest version");
    }
    v = *options.read_version;
    if (absl::Status s = CheckReadableLocked(v); !s.ok()) return s;
  }
  return std::unique_ptr<Transaction>(
      new ModelTransaction(this, v, StateLocked(v), PinLocked(v), options));
}

Snapshot ModelDB::GetSnapshot() { return Snapshot(); }

absl::StatusOr<Snapshot> ModelDB::SnapshotAt(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  return Snapshot();
}

absl::StatusOr<std::unique_ptr<Iterator>> ModelDB::NewIterator(
    const ReadOptions& options) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<uint64_t> v = ResolveLocked(options);
  if (!v.ok()) return v.status();
  return std::unique_ptr<Iterator>(
      new ModelIterator(StateLocked(*v), *v, PinLocked(*v)));
}

absl::StatusOr<uint64_t> ModelDB::Count(const ReadOptions& options,
                                        std::string_view begin,
                                        std::string_view end) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<uint64_t> v = ResolveLocked(options);
  if (!v.ok()) return v.status();
  std::shared_ptr<const State> s = StateLocked(*v);
  uint64_t n = 0;
  for (auto it = s->lower_bound(begin);
       it != s->end() && InRange(it->first, begin, end); ++it) {
    ++n;
  }
  return n;
}

uint64_t ModelDB::LatestVersion() {
  absl::MutexLock lock(&mu_);
  return versions_.size() - 1;
}

uint64_t ModelDB::OldestVersion() {
  absl::MutexLock lock(&mu_);
  return OldestLocked();
}

absl::StatusOr<std::vector<VersionInfo>> ModelDB::ListVersions() {
  absl::MutexLock lock(&mu_);
  std::vector<VersionInfo> out;
  for (uint64_t v = 0; v < versions_.size(); ++v) {
    if (!RetainedLocked(v)) continue;
    out.push_back({v, versions_[v].commit_micros, versions_[v].entries});
  }
  return out;
}

absl::StatusOr<uint64_t> ModelDB::VersionAt(int64_t unix_micros) {
  absl::MutexLock lock(&mu_);
  // The version latest at that time: the last one committed by then.
  uint64_t best = 0;
  bool found = false;
  for (uint64_t v = 0; v < versions_.size(); ++v) {
    if (versions_[v].commit_micros > unix_micros) break;
    best = v;
    found = true;
  }
  const uint64_t last = versions_.size() - 1;
  // Below the floor the engine knows a version was the latest at that time
  // only when its successor is retained too.
  if (found && RetainedLocked(best) &&
      (best >= floor_ || best == last || RetainedLocked(best + 1))) {
    return best;
  }
  return absl::OutOfRangeError(absl::StrCat(
      "the version latest at ", unix_micros,
      " is no longer retained; the oldest retained version is ",
      OldestLocked()));
}

absl::Status ModelDB::Tag(std::string_view name, uint64_t version) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError("a tag name is 1 to 256 bytes");
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  tags_[std::string(name)] = version;
  return absl::OkStatus();
}

absl::Status ModelDB::Untag(std::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError("a tag name is 1 to 256 bytes");
  }
  absl::MutexLock lock(&mu_);
  auto it = tags_.find(std::string(name));
  if (it == tags_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no tag named \"", std::string(name), "\""));
  }
  tags_.erase(it);
  return absl::OkStatus();
}

std::map<std::string, uint64_t> ModelDB::ListTags() {
  absl::MutexLock lock(&mu_);
  return tags_;
}

absl::StatusOr<std::optional<std::string>> ModelDB::GetSystemRecord(std::string_view name) {
  if (name.empty() || name.size() > 256) return absl::InvalidArgumentError("bad name");
  absl::MutexLock lock(&mu_);
  auto it = system_records_.find(name);
  if (it == system_records_.end()) return std::nullopt;
  return it->second;
}

absl::Status ModelDB::PutSystemRecord(std::string_view name, std::string_view value) {
  if (name.empty() || name.size() > 256) return absl::InvalidArgumentError("bad name");
  absl::MutexLock lock(&mu_);
  system_records_[std::string(name)] = std::string(value);
  return absl::OkStatus();
}

absl::Status ModelDB::Diff(uint64_t from, uint64_t to, std::string_view begin,
                           std::string_view end,
                           const std::function<bool(const Change&)>& fn) {
  if (from > to) {
    return absl::InvalidArgumentError(
        absl::StrCat("diff from version ", from, " after to version ", to));
  }
  std::vector<Change> changes;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckReadableLocked(from); !s.ok()) return s;
    if (absl::Status s = CheckReadableLocked(to); !s.ok()) return s;
    changes = DiffStates(*StateLocked(from), *StateLocked(to), begin, end);
  }
  for (const Change& c : changes) {
    if (!fn(c)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyHistory> ModelDB::History(std::string_view key,
                                            const HistoryOptions& options) {
  if (absl::Status s = ValidateWrite(key, ""); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  KeyHistory h;
  h.to = options.to ? *options.to : versions_.size() - 1;
  if (absl::Status s = CheckReadableLocked(h.to); !s.ok()) return s;
  if (options.from > h.to) {
    return absl::InvalidArgumentError(absl::StrCat(
        "history from version ", options.from, " after to version ", h.to));
  }
  // Every change of the key, oldest first: the versions whose mutations
  // leave it present (a put), or absent where it was present (a delete).
  std::vector<KeyChange> changes;
  State state;  // at most `key`
  for (uint64_t v = 1; v <= h.to; ++v) {
    std::vector<Mutation> mine;
    for (const Mutation& m : versions_[v].ops) {
      if (m.key == key) mine.push_back(m);
    }
    if (mine.empty()) continue;
    const bool was_present = !state.empty();
    Apply(mine, v, &state);
    if (!state.empty()) {
      const Value& now = state.begin()->second;
      changes.push_back(KeyChange{v, now.value, now.meta()});
    } else if (was_present) {
      changes.push_back(KeyChange{v, std::nullopt, KeyMeta{}});
    }
  }
  // What the engine can know: versions after the release floor.
  h.complete_from = std::max<uint64_t>({options.from, floor_ + 1, 1});
  for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
    if (it->version < h.complete_from) break;
    h.changes.push_back(*it);
    if (options.limit != 0 && h.changes.size() >= options.limit) {
      h.more = true;
      h.complete_from = it->version;
      break;
    }
  }
  return h;
}

absl::StatusOr<std::unique_ptr<Watcher>> ModelDB::Watch(uint64_t from_version,
                                                        std::string_view begin,
                                                        std::string_view end) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(from_version); !s.ok()) {
    if (!absl::IsOutOfRange(s)) return s;
    // Released: start from the first retained version after it, with its
    // whole state.
    const uint64_t base = NextRetainedLocked(from_version + 1);
    auto w = std::make_unique<ModelWatcher>(this, base, PinLocked(base),
                                            std::string(begin), std::string(end));
    w->QueueState(*StateLocked(base));
    return std::unique_ptr<Watcher>(std::move(w));
  }
  return std::unique_ptr<Watcher>(
      new ModelWatcher(this, from_version, PinLocked(from_version),
                       std::string(begin), std::string(end)));
}

uint64_t ModelDB::WindowFloorLocked() const {
  const uint64_t latest = versions_.size() - 1;
  if (retain_versions_ == Options::kRetainAll) return 0;
  uint64_t by_count = latest;
  if (retain_versions_ > 0) {
    by_count = latest + 1 > retain_versions_
                   ? latest + 1 - retain_versions_
                   : 0;
  }
  if (retain_seconds_ == 0 || by_count == 0) return by_count;
  // Also keep every version younger than retain_seconds: the version that
  // was the latest at (now - retain_seconds) and everything after it.
  const int64_t cutoff = absl::ToUnixMicros(absl::Now()) -
                         static_cast<int64_t>(retain_seconds_) * 1000000;
  uint64_t lo = floor_;
  if (lo >= by_count) return by_count;
  if (versions_[lo].commit_micros > cutoff) return lo;
  while (lo + 1 < by_count && versions_[lo + 1].commit_micros <= cutoff) ++lo;
  return lo;
}

absl::Status ModelDB::ReleaseBefore(uint64_t version) {
  absl::MutexLock lock(&mu_);
  const uint64_t last = versions_.size() - 1;
  if (version > last) {
    return absl::NotFoundError(absl::StrCat(
        "version ", version, " does not exist; the latest is ", last));
  }
  floor_ = std::max(floor_, version);
  return absl::OkStatus();
}

DB::Retention ModelDB::GetRetention() {
  absl::MutexLock lock(&mu_);
  return Retention{retain_versions_, retain_seconds_};
}

absl::Status ModelDB::SetRetention(const Retention& retention) {
  absl::MutexLock lock(&mu_);
  retain_versions_ = retention.retain_versions;
  retain_seconds_ = retention.retain_seconds;
  return absl::OkStatus();
}

uint64_t ModelDB::ReleaseFloor() {
  absl::MutexLock lock(&mu_);
  return floor_;
}

absl::StatusOr<ReclaimStats> ModelDB::Reclaim() {
  absl::MutexLock lock(&mu_);
  ReclaimStats stats;
  const uint64_t old_floor = floor_;
  floor_ = std::max(floor_, std::min<uint64_t>(WindowFloorLocked(),
                                               versions_.size() - 1));
  for (uint64_t v = old_floor; v < floor_; ++v) {
    stats.versions_released += !RetainedLocked(v);
  }
  stats.floor = floor_;
  return stats;
}

absl::Status ModelDB::Checkpoint() { return absl::OkStatus(); }

absl::StatusOr<CheckReport> ModelDB::Check(const CheckProgress&) {
  absl::MutexLock lock(&mu_);
  CheckReport r;
  for (uint64_t v = 0; v < versions_.size(); ++v) {
    r.versions_checked += RetainedLocked(v);
  }
  return r;
}

absl::StatusOr<ProvedValue> ModelDB::ProveGet(const ReadOptions&,
                                              std::string_view) {
  return absl::UnimplementedError("ModelDB has no Merkle tree");
}
absl::StatusOr<ProvedRange> ModelDB::ProveScan(const ReadOptions&, std::string_view,
                                               std::string_view, uint64_t) {
  return absl::UnimplementedError("ModelDB has no Merkle tree");
}
absl::StatusOr<VersionDigest> ModelDB::GetDigest(uint64_t) {
  return absl::UnimplementedError("ModelDB has no Merkle tree");
}
absl::StatusOr<std::vector<DigestLink>> ModelDB::DigestLinks(uint64_t,
                                                             uint64_t) {
  return absl::UnimplementedError("ModelDB has no Merkle tree");
}

absl::Status ModelDB::Backup(const std::string&) {
  return absl::UnimplementedError("ModelDB has no storage to back up");
}

absl::Status ModelDB::Export(uint64_t, const std::string&) {
  return absl::UnimplementedError("ModelDB does not export");
}

absl::Status ModelDB::ExportChanges(uint64_t, uint64_t, const std::string&) {
  return absl::UnimplementedError("ModelDB has no export");
}

absl::StatusOr<uint64_t> ModelDB::Import(const std::string&) {
  return absl::UnimplementedError("ModelDB does not import");
}

DBStats ModelDB::GetStats() {
  absl::MutexLock lock(&mu_);
  DBStats s;
  s.latest_version = versions_.size() - 1;
  s.entries = latest_state_->size();
  s.commits = versions_.size() - 1;
  return s;
}

absl::StatusOr<ModelDB::State> ModelDB::StateAt(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  return *StateLocked(version);
}

absl::Status ModelDB::CheckReadable(uint64_t version) {
  absl::MutexLock lock(&mu_);
  return CheckReadableLocked(version);
}

bool ModelDB::Retained(uint64_t version) {
  absl::MutexLock lock(&mu_);
  return RetainedLocked(version);
}

uint64_t ModelDB::floor() {
  absl::MutexLock lock(&mu_);
  return floor_;
}

absl::StatusOr<ModelDB::PinHandle> ModelDB::Pin(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  return PinLocked(version);
}

}  // namespace cowdb::testing
