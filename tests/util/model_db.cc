#include "tests/util/model_db.h"

#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/strings/match.h"
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
  // On `branch`, which version `created` created (main: 0).
  ModelTransaction(ModelDB* db, std::string branch, uint64_t created, uint64_t version,
                   std::shared_ptr<const State> base, PinHandle pin,
                   const TransactionOptions& options)
      : db_(db), branch_(std::move(branch)), created_(created), version_(version),
        base_(std::move(base)), pin_(std::move(pin)), options_(options),
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
    // Validated against its branch's latest tree (gone: NotFound).
    std::shared_ptr<const State> now =
        db_->StateLocked(db_->versions_.size() - 1, branch_);
    if (now == nullptr) {
      return absl::NotFoundError(absl::StrCat("no branch named \"", branch_, "\""));
    }
    if (db_->CreatedLocked(branch_, db_->versions_.size() - 1) != created_) {
      return absl::AbortedError(absl::StrCat("branch \"", branch_,
                                             "\" was deleted and created again"));
    }
    if (absl::Status s = ValidateLocked(*now); !s.ok()) return s;
    std::vector<Mutation> ops;
    for (const auto& [k, v] : writes_) {
      if (v && recreated_.count(k) != 0) ops.push_back(Mutation{k, std::nullopt});
      ops.push_back(Mutation{k, v});
    }
    return db_->CommitLocked(branch_, std::move(ops));
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

  // transaction.h's isolation rules against `now`, the branch's latest
  // tree.
  absl::Status ValidateLocked(const State& now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_->mu_) {
    const uint64_t latest = db_->versions_.size() - 1;
    if (latest == version_) return absl::OkStatus();
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
  const std::string branch_;
  const uint64_t created_;  // of the branch read and committed to
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
  // Watches `branch`'s tree, which is `state` at `at`.
  ModelWatcher(ModelDB* db, std::string branch, uint64_t at,
               std::shared_ptr<const State> state, PinHandle pin,
               std::string begin, std::string end)
      : db_(db), branch_(std::move(branch)), at_(at), state_(std::move(state)),
        pin_(std::move(pin)), begin_(std::move(begin)), end_(std::move(end)) {}

  // Queues the whole state of the range at `at_` as net events.
  void QueueState() {
    for (Change& c : DiffStates(State(), *state_, begin_, end_)) {
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
      std::shared_ptr<const State> state = db_->StateLocked(next, branch_);
      if (state == nullptr) {  // deleted: the watcher stays where it is
        return absl::NotFoundError(absl::StrCat(
            "branch \"", branch_, "\" was deleted after version ", at_));
      }
      for (Change& c : DiffStates(*state_, *state, begin_, end_)) {
        pending_.push_back(WatchEvent{next, std::move(c), net});
      }
      old = std::move(pin_);
      pin_ = db_->PinLocked(next);
      at_ = next;
      state_ = std::move(state);
    }
  }

  uint64_t position() const override { return at_; }

 private:
  ModelDB* const db_;
  const std::string branch_;
  uint64_t at_;  // pinned: everything up to it queued
  std::shared_ptr<const State> state_;  // the branch's tree at at_
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
  latest_trees_ = std::make_shared<const Trees>(
      Trees{{"main", std::make_shared<const State>()}});
  states_[0] = latest_trees_;
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

uint64_t ModelDB::CommitLocked(const std::string& branch,
                               std::vector<Mutation> ops) {
  const uint64_t version = versions_.size();
  auto next = std::make_shared<State>(*latest_trees_->at(branch));
  Apply(ops, version, next.get());
  auto trees = std::make_shared<Trees>(*latest_trees_);
  (*trees)[branch] = std::move(next);
  Version rec;
  rec.branch = branch;
  rec.ops = std::move(ops);
  ++commits_;
  return AppendLocked(std::move(rec), std::move(trees));
}

uint64_t ModelDB::AppendLocked(Version rec, std::shared_ptr<const Trees> trees) {
  const uint64_t version = versions_.size();
  // Commit times never go backwards (as the engine's).
  rec.commit_micros = std::max(absl::ToUnixMicros(absl::Now()),
                               versions_.back().commit_micros);
  rec.entries = trees->at("main")->size();
  versions_.push_back(std::move(rec));
  latest_trees_ = std::move(trees);
  if (version % kStateEvery == 0) states_[version] = latest_trees_;
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

// "" names main, as "main" does.
std::string PublicName(std::string_view branch) {
  return branch.empty() ? "main" : std::string(branch);
}

// 1 to 100 of [A-Za-z0-9._/-], not "main".
absl::Status ValidateBranchName(std::string_view name) {
  if (name.empty() || name.size() > 100) {
    return absl::InvalidArgumentError("a branch name is 1 to 100 bytes");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
                    c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          "a branch name is made of letters, digits and . _ / -");
    }
  }
  if (name == "main") {
    return absl::InvalidArgumentError("the branch \"main\" always exists");
  }
  return absl::OkStatus();
}

std::string ForkTag(const std::string& branch) { return absl::StrCat("fork:", branch); }
std::string MergeTag(const std::string& from, const std::string& into) {
  return absl::StrCat("merge:", from, ":", into);
}

}  // namespace

uint64_t ModelDB::CreatedLocked(std::string_view branch, uint64_t version) const {
  for (uint64_t v = version; v > 0; --v) {
    if (versions_[v].kind == Version::kFork && versions_[v].branch == branch) return v;
  }
  return 0;  // main
}

absl::StatusOr<uint64_t> ModelDB::Write(const WriteBatch& batch) {
  std::vector<Mutation> ops;  // in batch order: each put counts
  for (const WriteBatch::Op& op : batch.ops()) {
    if (absl::Status s = ValidateWrite(op.key, op.value); !s.ok()) return s;
    if (op.is_delete) {
      ops.push_back(Mutation{op.key, std::nullopt});
    } else {
      ops.push_back(Mutation{op.key, PutValue{op.value, op.lease}});
    }
  }
  const std::string branch = PublicName(batch.branch());
  absl::MutexLock lock(&mu_);
  if (ops.empty()) return versions_.size() - 1;
  if (latest_trees_->count(branch) == 0) {
    return absl::NotFoundError(absl::StrCat("no branch named \"", branch, "\""));
  }
  return CommitLocked(branch, std::move(ops));
}

void ModelDB::WriteAsync(WriteBatch batch, WriteCallback done) {
  absl::StatusOr<uint64_t> r = Write(batch);
  if (done) done(std::move(r));
}

absl::StatusOr<uint64_t> ModelDB::Fork(std::string_view name_view, const TreeAt& from) {
  if (absl::Status s = ValidateBranchName(name_view); !s.ok()) return s;
  const std::string name(name_view);
  const std::string source = PublicName(from.branch);
  absl::MutexLock lock(&mu_);
  const uint64_t latest = versions_.size() - 1;
  // Errors in the engine's order: the version asked for, the name, the
  // source at the latest version.
  TreeRef tree;
  if (from.version) {
    absl::StatusOr<TreeRef> t = TreeLocked(*from.version, source);
    if (!t.ok()) return t.status();
    tree = *std::move(t);
  }
  if (heads_.count(name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("a branch named \"", name, "\" exists"));
  }
  std::shared_ptr<const State> now = StateLocked(latest, source);
  if (!from.version) {
    if (now == nullptr) {
      return absl::NotFoundError(absl::StrCat("no branch named \"", source, "\""));
    }
    tree = TreeRef{latest, now};
  }
  // The engine records the source's latest version when the tree forked
  // is the same branch's latest tree (it shares it), else the version
  // asked for.
  const bool same = !from.version ||
                    (now != nullptr && CreatedLocked(source, latest) ==
                                           CreatedLocked(source, tree.version) &&
                     (tree.version == latest || *now == *tree.state));
  Version rec;
  rec.kind = Version::kFork;
  rec.branch = name;
  rec.tree = tree.state;
  auto trees = std::make_shared<Trees>(*latest_trees_);
  (*trees)[name] = tree.state;
  const uint64_t version = AppendLocked(std::move(rec), std::move(trees));
  heads_[name] = Head{version, source, same ? latest : tree.version};
  tags_[ForkTag(name)] = version;
  return version;
}

absl::StatusOr<uint64_t> ModelDB::DeleteBranch(std::string_view name_view) {
  const std::string name = PublicName(name_view);
  if (name == "main") {
    return absl::InvalidArgumentError("the branch \"main\" cannot be deleted");
  }
  absl::MutexLock lock(&mu_);
  if (heads_.count(name) == 0) {
    return absl::NotFoundError(absl::StrCat("no branch named \"", name, "\""));
  }
  Version rec;
  rec.kind = Version::kDrop;
  rec.branch = name;
  auto trees = std::make_shared<Trees>(*latest_trees_);
  trees->erase(name);
  const uint64_t version = AppendLocked(std::move(rec), std::move(trees));
  heads_.erase(name);
  // Its merge bookkeeping goes with it (by the engine's rule on names).
  for (auto it = tags_.begin(); it != tags_.end();) {
    const std::string& tag = it->first;
    const bool mine = tag == ForkTag(name) ||
                      absl::StartsWith(tag, absl::StrCat("merge:", name, ":")) ||
                      (absl::StartsWith(tag, "merge:") &&
                       absl::EndsWith(tag, absl::StrCat(":", name)));
    it = mine ? tags_.erase(it) : std::next(it);
  }
  return version;
}

std::vector<BranchInfo> ModelDB::ListBranches() {
  absl::MutexLock lock(&mu_);
  std::vector<BranchInfo> out;
  out.push_back({"main", 0, "", 0, latest_trees_->at("main")->size()});
  for (const auto& [name, head] : heads_) {
    out.push_back({name, head.created, head.source, head.source_version,
                   latest_trees_->at(name)->size()});
  }
  return out;
}

absl::StatusOr<Snapshot> ModelDB::SnapshotOf(const ReadOptions& options) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<TreeRef> t = ResolveLocked(options);
  if (!t.ok()) return t.status();
  return Snapshot();
}

absl::Status ModelDB::DiffTrees(const TreeAt& from, const TreeAt& to, std::string_view begin,
                                std::string_view end,
                                const std::function<bool(const Change&)>& fn) {
  std::vector<Change> changes;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t latest = versions_.size() - 1;
    absl::StatusOr<TreeRef> a = TreeLocked(from.version.value_or(latest), PublicName(from.branch));
    if (!a.ok()) return a.status();
    absl::StatusOr<TreeRef> b = TreeLocked(to.version.value_or(latest), PublicName(to.branch));
    if (!b.ok()) return b.status();
    changes = DiffStates(*a->state, *b->state, begin, end);
  }
  for (const Change& c : changes) {
    if (!fn(c)) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Watcher>> ModelDB::WatchBranch(std::string_view branch_view,
                                                              uint64_t from_version,
                                                              std::string_view begin,
                                                              std::string_view end) {
  const std::string branch = PublicName(branch_view);
  absl::MutexLock lock(&mu_);
  uint64_t at = from_version;
  bool whole_state = false;
  if (absl::Status s = CheckReadableLocked(from_version); !s.ok()) {
    if (!absl::IsOutOfRange(s)) return s;
    // Released: start from the first retained version after it, with its
    // whole state.
    at = NextRetainedLocked(from_version + 1);
    whole_state = true;
  }
  absl::StatusOr<TreeRef> t = TreeLocked(at, branch);
  if (!t.ok()) return t.status();
  auto w = std::make_unique<ModelWatcher>(this, branch, at, t->state, PinLocked(at),
                                          std::string(begin), std::string(end));
  if (whole_state) w->QueueState();
  return std::unique_ptr<Watcher>(std::move(w));
}

absl::StatusOr<TreeAt> ModelDB::MergeBaseLocked(const std::string& from,
                                                const std::string& into) {
  // The candidates DBImpl::MergeBase weighs, in its order; the latest
  // version wins (the first of equals).
  std::optional<TreeAt> best;
  auto consider = [&](const std::string& branch, uint64_t version) {
    if (!best || version > *best->version) best = TreeAt{branch, version};
  };
  if (auto it = tags_.find(MergeTag(from, into)); it != tags_.end()) consider(from, it->second);
  if (auto it = tags_.find(MergeTag(into, from)); it != tags_.end()) consider(into, it->second);
  auto f_it = heads_.find(from), i_it = heads_.find(into);  // main has none
  const Head* f = f_it == heads_.end() ? nullptr : &f_it->second;
  const Head* i = i_it == heads_.end() ? nullptr : &i_it->second;
  // Whether branch `b` as it is now existed at `version` (a branch deleted
  // and created again under its name since is another branch).
  auto existed_at = [&](const std::string& b, uint64_t version)
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (b == "main") return true;
    auto it = heads_.find(b);
    return it != heads_.end() && it->second.created <= version;
  };
  if (f != nullptr && f->source == into && existed_at(into, f->source_version)) {
    consider(from, f->created);
  }
  if (i != nullptr && i->source == from && existed_at(from, i->source_version)) {
    consider(into, i->created);
  }
  if (f != nullptr && i != nullptr && f->source == i->source &&
      existed_at(f->source, std::min(f->source_version, i->source_version))) {
    if (f->source_version <= i->source_version) {
      consider(from, f->created);
    } else {
      consider(into, i->created);
    }
  }
  if (!best) {
    return absl::FailedPreconditionError(absl::StrCat(
        "branches \"", from, "\" and \"", into, "\" have no known common ancestor"));
  }
  return *best;
}

absl::StatusOr<MergeResult> ModelDB::Merge(std::string_view from_view,
                                           std::string_view into_view,
                                           MergePolicy policy) {
  const std::string from = PublicName(from_view), into = PublicName(into_view);
  if (from == into) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot merge branch \"", from, "\" into itself"));
  }
  absl::MutexLock lock(&mu_);
  const uint64_t latest = versions_.size() - 1;
  absl::StatusOr<TreeRef> theirs = TreeLocked(latest, from);
  if (!theirs.ok()) return theirs.status();
  absl::StatusOr<TreeRef> ours = TreeLocked(latest, into);
  if (!ours.ok()) return ours.status();
  absl::StatusOr<TreeAt> base_at = MergeBaseLocked(from, into);
  if (!base_at.ok()) return base_at.status();
  absl::StatusOr<TreeRef> base = TreeLocked(*base_at->version, base_at->branch);
  if (!base.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the common ancestor cannot be read: ", base.status().message()));
  }
  MergeResult result;
  result.base_version = *base_at->version;
  result.base_branch = base_at->branch;
  // Each side's changes of values since the ancestor.
  auto changes = [&](const State& side) {
    std::map<std::string, Change> out;
    for (Change& c : DiffStates(*base->state, side, "", "")) {
      if (c.old_value != c.new_value) out.emplace(c.key, std::move(c));
    }
    return out;
  };
  const std::map<std::string, Change> their_changes = changes(*theirs->state);
  const std::map<std::string, Change> our_changes = changes(*ours->state);
  std::vector<Mutation> ops;  // in key order, as the engine's transaction
  for (const auto& [key, change] : their_changes) {
    auto mine = our_changes.find(key);
    if (mine != our_changes.end()) {
      if (mine->second.new_value == change.new_value) continue;  // the same change
      result.conflicts.push_back(
          {key, change.old_value, mine->second.new_value, change.new_value});
      if (policy != MergePolicy::kTheirs) continue;
    }
    ops.push_back(Mutation{key, change.new_value
                                    ? std::optional<PutValue>(PutValue{*change.new_value, 0})
                                    : std::nullopt});
    ++result.changes;
  }
  if (policy == MergePolicy::kFail && !result.conflicts.empty()) {
    result.changes = 0;
    return result;
  }
  result.version = ops.empty() ? latest : CommitLocked(into, std::move(ops));
  result.merged = true;
  tags_[MergeTag(from, into)] = latest;
  return result;
}

absl::StatusOr<ModelDB::TreeRef> ModelDB::ResolveLocked(const ReadOptions& options) {
  if (options.snapshot != nullptr && options.version.has_value()) {
    return absl::InvalidArgumentError(
        "ReadOptions: set snapshot or version, not both");
  }
  uint64_t v = versions_.size() - 1;
  std::string branch = PublicName(options.branch);
  if (options.snapshot != nullptr && options.snapshot->valid()) {
    if (!options.branch.empty() && branch != options.snapshot->branch()) {
      return absl::InvalidArgumentError("ReadOptions: the branch is not the snapshot's");
    }
    v = options.snapshot->version();
    branch = options.snapshot->branch();
  } else if (options.version.has_value()) {
    v = *options.version;
  }
  return TreeLocked(v, branch);
}

absl::StatusOr<ModelDB::TreeRef> ModelDB::TreeLocked(uint64_t version,
                                                     const std::string& branch) {
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  std::shared_ptr<const State> state = StateLocked(version, branch);
  if (state == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no branch named \"", branch, "\" at version ", version));
  }
  return TreeRef{version, std::move(state)};
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

std::shared_ptr<const ModelDB::Trees> ModelDB::TreesLocked(uint64_t version) {
  if (version == versions_.size() - 1) return latest_trees_;
  if (cached_trees_ != nullptr && cached_version_ == version) return cached_trees_;
  auto base = std::prev(states_.upper_bound(version));
  if (base->first == version) return base->second;
  // Replays the records after `base`, each on the branch it names. A tree
  // is copied once, at its first commit here (`owned` then holds it).
  Trees trees = *base->second;
  std::map<std::string, std::shared_ptr<State>, std::less<>> owned;
  for (uint64_t x = base->first + 1; x <= version; ++x) {
    const Version& rec = versions_[x];
    switch (rec.kind) {
      case Version::kCommit: {
        std::shared_ptr<State>& tree = owned[rec.branch];
        if (tree == nullptr) {
          tree = std::make_shared<State>(*trees.at(rec.branch));
          trees[rec.branch] = tree;
        }
        Apply(rec.ops, x, tree.get());
        break;
      }
      case Version::kFork:
        trees[rec.branch] = rec.tree;
        owned.erase(rec.branch);
        break;
      case Version::kDrop:
        trees.erase(rec.branch);
        owned.erase(rec.branch);
        break;
    }
  }
  cached_version_ = version;
  cached_trees_ = std::make_shared<const Trees>(std::move(trees));
  return cached_trees_;
}

std::shared_ptr<const ModelDB::State> ModelDB::StateLocked(uint64_t version,
                                                         std::string_view branch) {
  std::shared_ptr<const Trees> trees = TreesLocked(version);
  auto it = trees->find(branch);
  return it == trees->end() ? nullptr : it->second;
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
  absl::StatusOr<TreeRef> t = ResolveLocked(options);
  if (!t.ok()) return t.status();
  auto it = t->state->find(key);
  if (it == t->state->end()) return absl::NotFoundError("key not found");
  const Value& x = it->second;
  return Entry{x.value, x.mod_version, t->version, x.create_version, x.writes, x.lease};
}

absl::StatusOr<std::unique_ptr<Transaction>> ModelDB::Begin(
    const TransactionOptions& options) {
  const std::string branch = PublicName(options.branch);
  absl::MutexLock lock(&mu_);
  uint64_t v = versions_.size() - 1;
  if (options.read_version.has_value()) {
    if (!options.read_only) {
      return absl::InvalidArgumentError(
          "read_version is only for read-only transactions; a read-write "
          "transaction reads the latest version");
    }
    v = *options.read_version;
  }
  absl::StatusOr<TreeRef> t = TreeLocked(v, branch);
  if (!t.ok()) return t.status();
  return std::unique_ptr<Transaction>(
      new ModelTransaction(this, branch, CreatedLocked(branch, v), v, t->state,
                           PinLocked(v), options));
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
  absl::StatusOr<TreeRef> t = ResolveLocked(options);
  if (!t.ok()) return t.status();
  return std::unique_ptr<Iterator>(
      new ModelIterator(t->state, t->version, PinLocked(t->version)));
}

absl::StatusOr<uint64_t> ModelDB::Count(const ReadOptions& options,
                                        std::string_view begin,
                                        std::string_view end) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<TreeRef> t = ResolveLocked(options);
  if (!t.ok()) return t.status();
  const State* s = t->state.get();
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

absl::StatusOr<uint64_t> ModelDB::CatchUp() {
  return absl::FailedPreconditionError(
      "CatchUp is for read-only databases (replicas); this one writes");
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
    out.push_back({v, versions_[v].commit_micros, versions_[v].entries,
                   versions_[v].branch});
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
    changes = DiffStates(*StateLocked(from), *StateLocked(to), begin, end);  // main's
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
  // Every change of the key in main's tree, oldest first: the versions
  // whose mutations leave it present (a put), or absent where it was
  // present (a delete).
  std::vector<KeyChange> changes;
  State state;  // at most `key`
  for (uint64_t v = 1; v <= h.to; ++v) {
    if (versions_[v].kind != Version::kCommit || versions_[v].branch != "main") continue;
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
  return WatchBranch("main", from_version, begin, end);
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
  s.entries = latest_trees_->at("main")->size();
  s.commits = commits_;
  return s;
}

absl::StatusOr<ModelDB::State> ModelDB::StateAt(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  return *StateLocked(version);
}

absl::StatusOr<ModelDB::State> ModelDB::StateAt(uint64_t version, std::string_view branch) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<TreeRef> t = TreeLocked(version, PublicName(branch));
  if (!t.ok()) return t.status();
  return *t->state;
}

absl::StatusOr<std::vector<std::string>> ModelDB::BranchesAt(uint64_t version) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckReadableLocked(version); !s.ok()) return s;
  std::vector<std::string> out;
  for (const auto& [name, tree] : *TreesLocked(version)) out.push_back(name);
  return out;
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
