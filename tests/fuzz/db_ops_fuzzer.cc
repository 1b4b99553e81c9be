// libFuzzer target: a script of operations on an embedded database (in
// memory), every result checked against a model. The input is a sequence
// of operations (see db_ops_input.h): puts, deletes, batches, reads at the
// latest or an old version or through a snapshot, iteration both ways,
// seeks, counts, interactive transactions (both isolations, read-only at a
// version), snapshots taken and released, tags, reclamation passes, diffs,
// change feeds, reopens and integrity checks.
//
// The model keeps the state of every version. A version is retained while
// it is at or above the floor of the last reclamation pass, tagged, or
// pinned by a snapshot or an open transaction; reading a released one
// must be OutOfRange. A commit must abort exactly when its isolation level
// says so (see Commit). Any mismatch aborts with a message.
//
//   bazel run //tests/fuzz:db_ops_fuzzer -- -max_total_time=600 \
//       $PWD/tests/fuzz/corpus/db_ops

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "tests/fuzz/db_ops_input.h"

namespace cowdb::fuzz {
namespace {

// Aborts with `msg`: libFuzzer reports the input as a crash.
[[noreturn]] void Fail(const std::string& msg) {
  std::cerr << "db_ops_fuzzer: " << msg << std::endl;
  std::abort();
}

// Fails with `msg` unless `cond`; `msg` is only built on failure.
#define FUZZ_EXPECT(cond, msg) \
  do {                         \
    if (!(cond)) Fail(msg);    \
  } while (0)

// Expects `s` to have code `code`.
void ExpectCode(const absl::Status& s, absl::StatusCode code, const std::string& what) {
  if (s.code() != code) {
    Fail(absl::StrCat(what, ": expected ", absl::StatusCodeToString(code), ", got ",
                      s.ToString()));
  }
}

// A key's value and the version that last wrote it (0: the transaction's
// own uncommitted write).
struct Value {
  std::string value;
  uint64_t mod = 0;
  bool operator==(const Value& o) const { return value == o.value && mod == o.mod; }
  bool operator!=(const Value& o) const { return !(*this == o); }
};
using State = std::map<std::string, Value>;

// Reads argument bytes; 0 past the end.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Whether `key` is in [begin, end) (empty end: unbounded).
bool InRange(const std::string& key, const std::string& begin, const std::string& end) {
  return key >= begin && (end.empty() || key < end);
}

// The keys that differ between two states inside [begin, end), in order.
std::vector<Change> ModelDiff(const State& a, const State& b, const std::string& begin,
                              const std::string& end) {
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<Change> out;
  for (const std::string& k : keys) {
    if (!InRange(k, begin, end)) continue;
    auto x = a.find(k), y = b.find(k);
    if (x != a.end() && y != b.end() && x->second == y->second) continue;
    Change c;
    c.key = k;
    if (x != a.end()) c.old_value = x->second.value, c.old_mod_version = x->second.mod;
    if (y != b.end()) c.new_value = y->second.value, c.new_mod_version = y->second.mod;
    out.push_back(c);
  }
  return out;
}

bool SameChange(const Change& a, const Change& b) {
  return a.key == b.key && a.old_value == b.old_value && a.new_value == b.new_value &&
         a.old_mod_version == b.old_mod_version && a.new_mod_version == b.new_mod_version;
}

// Iterates `it` over its whole version, forward or in reverse, and
// expects exactly `m`.
void ExpectIterates(Iterator& it, const State& m, bool reverse, const std::string& what) {
  if (reverse) {
    auto e = m.rbegin();
    for (it.SeekToLast(); it.Valid(); it.Prev(), ++e) {
      FUZZ_EXPECT(e != m.rend(), absl::StrCat(what, ": extra key ", std::string(it.key())));
      FUZZ_EXPECT(it.key() == e->first && it.value() == e->second.value &&
                 it.mod_version() == e->second.mod,
             absl::StrCat(what, ": at ", e->first, " got ", std::string(it.key()), "@", it.mod_version()));
    }
    FUZZ_EXPECT(e == m.rend(), absl::StrCat(what, ": missing key ", e->first));
  } else {
    auto e = m.begin();
    for (it.SeekToFirst(); it.Valid(); it.Next(), ++e) {
      FUZZ_EXPECT(e != m.end(), absl::StrCat(what, ": extra key ", std::string(it.key())));
      FUZZ_EXPECT(it.key() == e->first && it.value() == e->second.value &&
                 it.mod_version() == e->second.mod,
             absl::StrCat(what, ": at ", e->first, " got ", std::string(it.key()), "@", it.mod_version()));
    }
    FUZZ_EXPECT(e == m.end(), absl::StrCat(what, ": missing key ", e->first));
  }
  FUZZ_EXPECT(it.status().ok(), absl::StrCat(what, ": ", it.status().ToString()));
}

uint64_t ModelCount(const State& m, const std::string& begin, const std::string& end) {
  uint64_t n = 0;
  for (const auto& [k, v] : m) n += InRange(k, begin, end);
  return n;
}

// An interactive transaction and what the model knows of it.
struct OpenTxn {
  std::unique_ptr<Transaction> txn;
  bool read_only = false;
  Isolation isolation = Isolation::kSerializable;
  uint64_t read_version = 0;
  State view;                                                // snapshot + own writes
  std::map<std::string, std::optional<std::string>> writes;  // nullopt: delete
  std::set<std::string> reads;                               // snapshot keys read
  bool ranged = false;                                       // iterated or counted
};

class Harness {
 public:
  Harness() : store_(internal::NewMemoryPageStore()) {
    states_.push_back(State());  // version 0
    Open();
  }
  ~Harness() { Close(); }

  void Run(Reader& in) {
    while (!in.done()) Step(in);
    Close();  // releases everything: the database must shut down cleanly
  }

 private:
  // ----------------------------------------------------------- model state

  uint64_t latest() const { return states_.size() - 1; }

  bool Pinned(uint64_t v) const {
    if (pins_.count(v) != 0) return true;
    for (const auto& t : txns_) {
      if (t && t->read_version == v) return true;
    }
    for (const auto& [name, tv] : tags_) {
      if (tv == v) return true;
    }
    return false;
  }

  // Whether version `v` (<= latest) can still be read.
  bool Retained(uint64_t v) const { return v == latest() || v >= floor_ || Pinned(v); }

  // The expected error of reading version `v`, or OK.
  absl::StatusCode ReadCode(uint64_t v) const {
    if (v > latest()) return absl::StatusCode::kNotFound;
    if (!Retained(v)) return absl::StatusCode::kOutOfRange;
    return absl::StatusCode::kOk;
  }

  // A version from an argument byte: 0 the latest, 1 one past it (does
  // not exist), otherwise counting back from the latest.
  uint64_t VersionOf(uint8_t b) const {
    if (b == 0) return latest();
    if (b == 1) return latest() + 1;
    return latest() - (b - 2) % (latest() + 1);
  }

  // Records a commit of `writes` at the next version; checks the version.
  void Committed(const std::map<std::string, std::optional<std::string>>& writes,
                 uint64_t version, const std::string& what) {
    FUZZ_EXPECT(version == latest() + 1,
           absl::StrCat(what, ": committed version ", version, ", expected ", latest() + 1));
    State next = states_.back();
    for (const auto& [k, v] : writes) {
      if (v) {
        next[k] = Value{*v, version};
      } else {
        next.erase(k);
      }
    }
    states_.push_back(std::move(next));
  }

  // --------------------------------------------------------------- database

  void Open() {
    Options o;
    o.sync = false;
    o.page_size = 512;
    o.cache_bytes = 64 << 10;  // small: evictions and page decoding
    o.max_key_size = kMaxKeySize;
    o.max_value_size = kMaxValueSize;
    o.inline_value_limit = kInlineValueLimit;
    o.retain_versions = kRetainVersions;
    o.background_reclaim = false;  // reclamation only when the script says
    absl::StatusOr<std::unique_ptr<internal::DBImpl>> db =
        internal::DBImpl::Open(o, store_);
    FUZZ_EXPECT(db.ok(), absl::StrCat("open: ", db.status().ToString()));
    db_ = *std::move(db);
    FUZZ_EXPECT(db_->LatestVersion() == latest(),
           absl::StrCat("open: latest version ", db_->LatestVersion(), ", expected ",
                        latest()));
    FUZZ_EXPECT(db_->ListTags() == tags_, "open: tags differ");
  }

  void Close() {
    for (auto& t : txns_) t.reset();
    snapshots_.clear();
    pins_.clear();
    db_.reset();
  }

  // ------------------------------------------------------------- operations

  void Step(Reader& in) {
    const uint8_t op = in.Byte() % kNumOps;
    ++serial_;
    switch (op) {
      case kPut: return Put(KeyOf(in.Byte()), ValueOf(in.Byte(), serial_));
      case kDelete: return Delete(KeyOf(in.Byte()));
      case kBatch: return Batch(in);
      case kGet: { uint8_t v = in.Byte(); return Get(v, KeyOf(in.Byte())); }
      case kScan: { uint8_t v = in.Byte(); return Scan(v, in.Byte()); }
      case kSeek: {
        uint8_t v = in.Byte();
        std::string k = KeyOf(in.Byte());
        return Seek(v, k, in.Byte());
      }
      case kCount: {
        uint8_t v = in.Byte();
        std::string a = KeyOf(in.Byte());
        return Count(v, a, KeyOf(in.Byte()));
      }
      case kBegin: {
        uint8_t slot = in.Byte() % 2, mode = in.Byte();
        return Begin(slot, mode, in.Byte());
      }
      case kTxnPut: {
        uint8_t slot = in.Byte() % 2;
        std::string k = KeyOf(in.Byte());
        return TxnWrite(slot, k, ValueOf(in.Byte(), serial_));
      }
      case kTxnDelete: { uint8_t slot = in.Byte() % 2; return TxnWrite(slot, KeyOf(in.Byte()), {}); }
      case kTxnGet: { uint8_t slot = in.Byte() % 2; return TxnGet(slot, KeyOf(in.Byte())); }
      case kTxnScan: { uint8_t slot = in.Byte() % 2; return TxnScan(slot, in.Byte()); }
      case kTxnCount: {
        uint8_t slot = in.Byte() % 2;
        std::string a = KeyOf(in.Byte());
        return TxnCount(slot, a, KeyOf(in.Byte()));
      }
      case kCommit: return Commit(in.Byte() % 2);
      case kRollback: return Rollback(in.Byte() % 2);
      case kSnapshot: return TakeSnapshot();
      case kRelease: return ReleaseSnapshot(in.Byte());
      case kTag: { std::string name = TagOf(in.Byte()); return Tag(name, VersionOf(in.Byte())); }
      case kUntag: return Untag(TagOf(in.Byte()));
      case kReclaim: return Reclaim();
      case kDiff: {
        uint64_t a = VersionOf(in.Byte()), b = VersionOf(in.Byte());
        std::string lo = KeyOf(in.Byte());
        return Diff(a, b, lo, KeyOf(in.Byte()));
      }
      case kWatch: {
        uint64_t from = VersionOf(in.Byte());
        std::string lo = KeyOf(in.Byte());
        return Watch(from, lo, KeyOf(in.Byte()));
      }
      case kReopen: return Reopen();
      case kCheck: return CheckAll();
    }
  }

  static bool ValidKey(const std::string& k) { return !k.empty() && k.size() <= kMaxKeySize; }
  static bool ValidValue(const std::string& v) { return v.size() <= kMaxValueSize; }

  void Put(const std::string& k, const std::string& v) {
    absl::StatusOr<uint64_t> r = db_->Put(k, v);
    if (!ValidKey(k) || !ValidValue(v)) {
      return ExpectCode(r.status(), absl::StatusCode::kInvalidArgument, "put of a bad key/value");
    }
    FUZZ_EXPECT(r.ok(), absl::StrCat("put ", k, ": ", r.status().ToString()));
    Committed({{k, v}}, *r, "put");
  }

  void Delete(const std::string& k) {
    absl::StatusOr<uint64_t> r = db_->Delete(k);
    if (!ValidKey(k)) {
      return ExpectCode(r.status(), absl::StatusCode::kInvalidArgument, "delete of a bad key");
    }
    FUZZ_EXPECT(r.ok(), absl::StrCat("delete ", k, ": ", r.status().ToString()));
    Committed({{k, std::nullopt}}, *r, "delete");
  }

  void Batch(Reader& in) {
    const int n = in.Byte() % 9;  // 0: an empty batch
    WriteBatch batch;
    std::map<std::string, std::optional<std::string>> writes;
    bool valid = true;
    for (int i = 0; i < n; ++i) {
      const uint8_t kind = in.Byte();
      const std::string k = KeyOf(in.Byte());
      const std::string v = ValueOf(in.Byte(), serial_ * 16 + i);
      valid = valid && ValidKey(k);
      if (kind % 3 == 0) {
        batch.Delete(k);
        writes[k] = std::nullopt;
      } else {
        valid = valid && ValidValue(v);
        batch.Put(k, v);
        writes[k] = v;
      }
    }
    absl::StatusOr<uint64_t> r = db_->Write(batch);
    if (!valid) {
      ExpectCode(r.status(), absl::StatusCode::kInvalidArgument, "batch with a bad op");
      FUZZ_EXPECT(db_->LatestVersion() == latest(), "a refused batch committed a version");
      return;
    }
    FUZZ_EXPECT(r.ok(), absl::StrCat("batch: ", r.status().ToString()));
    if (n == 0) {
      FUZZ_EXPECT(*r == latest(), "an empty batch committed a version");
      return;
    }
    Committed(writes, *r, "batch");
  }

  // ReadOptions for version byte `b`: the latest by default.
  ReadOptions ReadAt(uint8_t b, uint64_t* v) const {
    ReadOptions ro;
    *v = VersionOf(b);
    if (b != 0) ro.version = *v;
    return ro;
  }

  void Get(uint8_t vb, const std::string& k) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    absl::StatusOr<Entry> e = db_->GetEntry(ro, k);
    const std::string what = absl::StrCat("get ", k, " at ", v);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(e.status(), ReadCode(v), what);
    const State& m = states_[v];
    auto it = m.find(k);
    if (it == m.end()) {
      // An invalid key is simply absent.
      return ExpectCode(e.status(), absl::StatusCode::kNotFound, what);
    }
    FUZZ_EXPECT(e.ok(), absl::StrCat(what, ": ", e.status().ToString()));
    FUZZ_EXPECT(e->value == it->second.value && e->mod_version == it->second.mod && e->version == v,
           absl::StrCat(what, ": got ", e->value.substr(0, 20), "@", e->mod_version, " read at ",
                        e->version, ", expected ", it->second.value.substr(0, 20), "@",
                        it->second.mod));
  }

  void Scan(uint8_t vb, uint8_t flags) {
    const bool reverse = flags & 1;
    if ((flags & 2) && !snapshots_.empty()) {
      const Snapshot& snap = snapshots_[flags % snapshots_.size()];
      ReadOptions ro;
      ro.snapshot = &snap;
      absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
      FUZZ_EXPECT(it.ok(), "iterator on a snapshot: " + it.status().ToString());
      return ExpectIterates(**it, states_[snap.version()], reverse,
                            absl::StrCat("scan of snapshot ", snap.version()));
    }
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
    const std::string what = absl::StrCat("scan at ", v);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(it.status(), ReadCode(v), what);
    FUZZ_EXPECT(it.ok(), what + ": " + it.status().ToString());
    FUZZ_EXPECT((*it)->version() == v, what + ": iterator at another version");
    ExpectIterates(**it, states_[v], reverse, what);
  }

  void Seek(uint8_t vb, const std::string& target, uint8_t steps) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
    const std::string what = absl::StrCat("seek ", target, " at ", v);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(it.status(), ReadCode(v), what);
    FUZZ_EXPECT(it.ok(), what + ": " + it.status().ToString());
    const State& m = states_[v];
    (*it)->Seek(target);
    auto pos = m.lower_bound(target);
    for (int i = 0; i < 8; ++i) {
      FUZZ_EXPECT((*it)->Valid() == (pos != m.end()), absl::StrCat(what, ": validity at step ", i));
      if (!(*it)->Valid()) break;
      FUZZ_EXPECT((*it)->key() == pos->first && (*it)->value() == pos->second.value,
             absl::StrCat(what, ": at step ", i, " got ", std::string((*it)->key()), ", expected ",
                          pos->first));
      if (steps & (1 << i)) {
        (*it)->Next();
        ++pos;
      } else {
        if (pos == m.begin()) break;
        (*it)->Prev();
        --pos;
      }
    }
    FUZZ_EXPECT((*it)->status().ok(), what + ": " + (*it)->status().ToString());
  }

  void Count(uint8_t vb, const std::string& a, const std::string& b) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    absl::StatusOr<uint64_t> n = db_->Count(ro, a, b);
    const std::string what = absl::StrCat("count [", a, ", ", b, ") at ", v);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(n.status(), ReadCode(v), what);
    FUZZ_EXPECT(n.ok(), what + ": " + n.status().ToString());
    const uint64_t expected = ModelCount(states_[v], a, b);
    FUZZ_EXPECT(*n == expected, absl::StrCat(what, ": got ", *n, ", expected ", expected));
  }

  // ----------------------------------------------------------- transactions

  // mode % 5: 0 read-write serializable, 1 read-write snapshot, 2
  // read-only at the latest, 3 read-only at version `vb`, 4 read-write at
  // a version (InvalidArgument).
  void Begin(uint8_t slot, uint8_t mode, uint8_t vb) {
    txns_[slot].reset();  // an open transaction is rolled back by its destructor
    TransactionOptions o;
    o.isolation = mode % 5 == 1 ? Isolation::kSnapshot : Isolation::kSerializable;
    o.read_only = mode % 5 == 2 || mode % 5 == 3;
    uint64_t v = latest();
    if (mode % 5 >= 3) {
      v = VersionOf(vb);
      o.read_version = v;
    }
    absl::StatusOr<std::unique_ptr<Transaction>> t = db_->Begin(o);
    const std::string what = absl::StrCat("begin mode ", mode % 5, " at ", v);
    if (mode % 5 == 4) return ExpectCode(t.status(), absl::StatusCode::kInvalidArgument, what);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(t.status(), ReadCode(v), what);
    FUZZ_EXPECT(t.ok(), what + ": " + t.status().ToString());
    FUZZ_EXPECT((*t)->read_version() == v, what + ": another read version");
    auto open = std::make_unique<OpenTxn>();
    open->txn = *std::move(t);
    open->read_only = o.read_only;
    open->isolation = o.isolation;
    open->read_version = v;
    open->view = states_[v];
    txns_[slot] = std::move(open);
  }

  void TxnWrite(uint8_t slot, const std::string& k, std::optional<std::string> v) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    absl::Status s = v ? t->txn->Put(k, *v) : t->txn->Delete(k);
    const std::string what = absl::StrCat("txn ", v ? "put " : "delete ", k);
    if (t->read_only) return ExpectCode(s, absl::StatusCode::kFailedPrecondition, what);
    if (!ValidKey(k) || (v && !ValidValue(*v))) {
      return ExpectCode(s, absl::StatusCode::kInvalidArgument, what);
    }
    FUZZ_EXPECT(s.ok(), what + ": " + s.ToString());
    t->writes[k] = v;
    if (v) {
      t->view[k] = Value{*v, 0};
    } else {
      t->view.erase(k);
    }
  }

  void TxnGet(uint8_t slot, const std::string& k) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    absl::StatusOr<Entry> e = t->txn->GetEntry(k);
    // A read of the transaction's own write does not read the snapshot.
    if (t->writes.count(k) == 0) t->reads.insert(k);
    const std::string what = absl::StrCat("txn get ", k);
    auto it = t->view.find(k);
    if (it == t->view.end()) return ExpectCode(e.status(), absl::StatusCode::kNotFound, what);
    FUZZ_EXPECT(e.ok(), what + ": " + e.status().ToString());
    FUZZ_EXPECT(e->value == it->second.value && e->mod_version == it->second.mod &&
               e->version == t->read_version,
           absl::StrCat(what, ": got ", e->value.substr(0, 20), "@", e->mod_version));
  }

  void TxnScan(uint8_t slot, uint8_t flags) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    absl::StatusOr<std::unique_ptr<Iterator>> it = t->txn->NewIterator();
    FUZZ_EXPECT(it.ok(), "txn iterator: " + it.status().ToString());
    t->ranged = true;
    ExpectIterates(**it, t->view, flags & 1, "txn scan");
  }

  void TxnCount(uint8_t slot, const std::string& a, const std::string& b) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    absl::StatusOr<uint64_t> n = t->txn->Count(a, b);
    t->ranged = true;
    FUZZ_EXPECT(n.ok(), "txn count: " + n.status().ToString());
    FUZZ_EXPECT(*n == ModelCount(t->view, a, b),
           absl::StrCat("txn count [", a, ", ", b, "): got ", *n, ", expected ",
                        ModelCount(t->view, a, b)));
  }

  // Whether `key` differs between the transaction's snapshot and the latest.
  bool ChangedSince(const OpenTxn& t, const std::string& key) const {
    const State& a = states_[t.read_version];
    const State& b = states_.back();
    auto x = a.find(key), y = b.find(key);
    if ((x == a.end()) != (y == b.end())) return true;
    return x != a.end() && x->second.mod != y->second.mod;
  }

  void Commit(uint8_t slot) {
    std::unique_ptr<OpenTxn> t = std::move(txns_[slot]);
    if (t == nullptr) return;
    absl::StatusOr<uint64_t> r = t->txn->Commit();
    if (t->writes.empty()) {
      FUZZ_EXPECT(r.ok() && *r == t->read_version,
             "commit without writes: " + r.status().ToString());
    } else {
      // Conflicts the commit must detect, and whether it may abort at all.
      // SNAPSHOT validates the written keys; SERIALIZABLE the keys it read
      // from its snapshot and the ranges it iterated or counted (a blind
      // write serializes after whatever changed the key).
      bool must_abort = false, may_abort = false;
      if (t->isolation == Isolation::kSnapshot) {
        for (const auto& [k, v] : t->writes) must_abort = must_abort || ChangedSince(*t, k);
      } else {
        for (const std::string& k : t->reads) must_abort = must_abort || ChangedSince(*t, k);
        may_abort = t->ranged && t->read_version != latest() &&
                    !ModelDiff(states_[t->read_version], states_.back(), "", "").empty();
      }
      if (must_abort) {
        ExpectCode(r.status(), absl::StatusCode::kAborted, "commit of a conflicting txn");
      } else if (!r.ok()) {
        FUZZ_EXPECT(may_abort && absl::IsAborted(r.status()),
               "commit without a conflict: " + r.status().ToString());
      } else {
        Committed(t->writes, *r, "txn commit");
      }
    }
    // A finished transaction refuses everything.
    ExpectCode(t->txn->Commit().status(), absl::StatusCode::kFailedPrecondition,
               "second commit");
    ExpectCode(t->txn->Get("k00").status(), absl::StatusCode::kFailedPrecondition,
               "get after commit");
  }

  void Rollback(uint8_t slot) {
    std::unique_ptr<OpenTxn> t = std::move(txns_[slot]);
    if (t == nullptr) return;
    FUZZ_EXPECT(t->txn->Rollback().ok(), "rollback");
    ExpectCode(t->txn->Rollback(), absl::StatusCode::kFailedPrecondition, "second rollback");
  }

  // -------------------------------------------------- versions and retention

  void TakeSnapshot() {
    if (snapshots_.size() >= 4) return;
    snapshots_.push_back(db_->GetSnapshot());
    FUZZ_EXPECT(snapshots_.back().version() == latest(), "snapshot of another version");
    ++pins_[latest()];
  }

  void ReleaseSnapshot(uint8_t pick) {
    if (snapshots_.empty()) return;
    auto it = snapshots_.begin() + pick % snapshots_.size();
    const uint64_t v = it->version();
    snapshots_.erase(it);
    if (--pins_[v] == 0) pins_.erase(v);
  }

  void Tag(const std::string& name, uint64_t v) {
    absl::Status s = db_->Tag(name, v);
    const std::string what = absl::StrCat("tag ", name, " at ", v);
    if (name.empty()) return ExpectCode(s, absl::StatusCode::kInvalidArgument, what);
    if (ReadCode(v) != absl::StatusCode::kOk) return ExpectCode(s, ReadCode(v), what);
    FUZZ_EXPECT(s.ok(), what + ": " + s.ToString());
    tags_[name] = v;
    FUZZ_EXPECT(db_->ListTags() == tags_, what + ": tags differ");
  }

  void Untag(const std::string& name) {
    absl::Status s = db_->Untag(name);
    const std::string what = "untag " + name;
    if (tags_.count(name) == 0) return ExpectCode(s, absl::StatusCode::kNotFound, what);
    FUZZ_EXPECT(s.ok(), what + ": " + s.ToString());
    tags_.erase(name);
  }

  void Reclaim() {
    absl::StatusOr<ReclaimStats> st = db_->Reclaim();
    FUZZ_EXPECT(st.ok(), "reclaim: " + st.status().ToString());
    const uint64_t window = latest() + 1 > kRetainVersions ? latest() + 1 - kRetainVersions : 0;
    FUZZ_EXPECT(st->floor >= floor_ && st->floor <= std::max(window, floor_),
           absl::StrCat("reclaim floor ", st->floor, " (was ", floor_, ", window ", window, ")"));
    floor_ = st->floor;
  }

  void Diff(uint64_t a, uint64_t b, const std::string& lo, const std::string& hi) {
    std::vector<Change> got;
    absl::Status s = db_->Diff(a, b, lo, hi, [&](const Change& c) {
      got.push_back(c);
      return true;
    });
    const std::string what = absl::StrCat("diff ", a, "..", b, " [", lo, ", ", hi, ")");
    if (ReadCode(a) != absl::StatusCode::kOk) return ExpectCode(s, ReadCode(a), what);
    if (ReadCode(b) != absl::StatusCode::kOk) return ExpectCode(s, ReadCode(b), what);
    FUZZ_EXPECT(s.ok(), what + ": " + s.ToString());
    std::vector<Change> want = ModelDiff(states_[a], states_[b], lo, hi);
    FUZZ_EXPECT(got.size() == want.size(),
           absl::StrCat(what, ": ", got.size(), " changes, expected ", want.size()));
    for (size_t i = 0; i < got.size(); ++i) {
      FUZZ_EXPECT(SameChange(got[i], want[i]), absl::StrCat(what, ": change ", i, " on ", got[i].key));
    }
  }

  void Watch(uint64_t from, const std::string& lo, const std::string& hi) {
    absl::StatusOr<std::unique_ptr<Watcher>> w = db_->Watch(from, lo, hi);
    const std::string what = absl::StrCat("watch from ", from, " [", lo, ", ", hi, ")");
    if (from > latest()) return ExpectCode(w.status(), absl::StatusCode::kNotFound, what);
    FUZZ_EXPECT(w.ok(), what + ": " + w.status().ToString());
    // Expected events: from the first retained version at or after `from`
    // (its whole state, net, if `from` was released), then each step to
    // the next retained version.
    std::vector<WatchEvent> want;
    uint64_t at = from;
    if (!Retained(from)) {
      do ++at; while (!Retained(at));
      for (Change& c : ModelDiff(State(), states_[at], lo, hi)) {
        want.push_back(WatchEvent{at, c, true});
      }
    }
    for (uint64_t next = at + 1; next <= latest(); ++next) {
      if (!Retained(next)) continue;
      for (Change& c : ModelDiff(states_[at], states_[next], lo, hi)) {
        want.push_back(WatchEvent{next, c, next != at + 1});
      }
      at = next;
    }
    for (size_t i = 0;; ++i) {
      absl::StatusOr<WatchEvent> e = (*w)->Next(absl::ZeroDuration());
      if (i == want.size()) {
        ExpectCode(e.status(), absl::StatusCode::kDeadlineExceeded, what + ": after the end");
        break;
      }
      FUZZ_EXPECT(e.ok(), absl::StrCat(what, ": event ", i, ": ", e.status().ToString()));
      FUZZ_EXPECT(e->version == want[i].version && e->net == want[i].net &&
                 SameChange(e->change, want[i].change),
             absl::StrCat(what, ": event ", i, " got ", e->change.key, "@", e->version,
                          e->net ? " net" : "", ", expected ", want[i].change.key, "@",
                          want[i].version, want[i].net ? " net" : ""));
    }
    FUZZ_EXPECT((*w)->position() == latest(), what + ": position is not the latest");
  }

  void Reopen() {
    Close();
    Open();
  }

  // Every retained version reads as its model; released ones are
  // OutOfRange; the stored pages are exactly the reachable and pending.
  void CheckAll() {
    for (uint64_t v = 0; v <= latest(); ++v) {
      ReadOptions ro;
      ro.version = v;
      absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro);
      const std::string what = absl::StrCat("check version ", v);
      if (!Retained(v)) {
        ExpectCode(it.status(), absl::StatusCode::kOutOfRange, what);
        continue;
      }
      FUZZ_EXPECT(it.ok(), what + ": " + it.status().ToString());
      ExpectIterates(**it, states_[v], false, what);
      absl::Status tree = db_->VerifyVersion(v, /*strict=*/true);
      FUZZ_EXPECT(tree.ok(), what + ": " + tree.ToString());
    }
    absl::StatusOr<CheckReport> r = db_->Check();
    FUZZ_EXPECT(r.ok(), "check: " + r.status().ToString());
    FUZZ_EXPECT(r->pages_leaked == 0 && r->blobs_leaked == 0,
           absl::StrCat("check: ", r->pages_leaked, " pages and ", r->blobs_leaked,
                        " blobs leaked"));
  }

  std::shared_ptr<internal::PageStore> store_;
  std::unique_ptr<internal::DBImpl> db_;
  std::vector<State> states_;             // by version
  uint64_t floor_ = 0;                    // of the last reclamation pass
  std::vector<Snapshot> snapshots_;
  std::map<uint64_t, int> pins_;          // snapshot count by version
  std::map<std::string, uint64_t> tags_;
  std::unique_ptr<OpenTxn> txns_[2];
  uint64_t serial_ = 0;                   // operations so far
};

}  // namespace
}  // namespace cowdb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowdb::fuzz::Reader in(data, size);
  cowdb::fuzz::Harness h;
  h.Run(in);
  return 0;
}
