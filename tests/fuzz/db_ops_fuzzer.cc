// libFuzzer target: a script of operations run on an embedded database (in
// memory) and on ModelDB (tests/util/model_db.h), the executable
// specification of the DB API, side by side; every result must agree. The
// input is a sequence of operations (see db_ops_input.h): puts, deletes,
// batches, reads at the latest or an old version or through a snapshot,
// iteration both ways, seeks, counts, interactive transactions (both
// isolations, read-only at a version), snapshots taken and released, tags,
// reclamation passes, diffs, change feeds, key histories, reopens and
// integrity checks; and branches: forks of latest and older trees,
// deletions, writes, reads, snapshots and transactions on a branch, merges
// with each policy, diffs between any two trees and watchers on a branch.
//
// What must agree: status codes, versions, values and each key's metadata
// (mod_version, create_version, writes, lease; puts attach leases, see
// LeaseOf), the keys an iterator visits, counts, tags, the reclamation
// floor (also after ReleaseBefore), diffs with the metadata before and
// after, watch events, key histories, and whether a transaction commits
// or aborts (the model validates exactly the keys and ranges the engine's
// rules name); fork, deletion and merge results (MergeResult field by
// field), the branch list, the version list (each version's branch), and
// every retained version of every branch at a check.
// Any mismatch aborts with a message.
//
//   bazel run //tests/fuzz:db_ops_fuzzer -- -max_total_time=600 \
//       $PWD/tests/fuzz/corpus/db_ops

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "tests/fuzz/db_ops_input.h"
#include "tests/util/model_db.h"

namespace cowdb::fuzz {
namespace {

using testing::ModelDB;

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

// With COWDB_FUZZ_TRACE set, every checked operation is printed (to
// replay a crash input: db_ops_fuzzer CRASH_FILE).
const bool kTrace = std::getenv("COWDB_FUZZ_TRACE") != nullptr;

// Expects the database's status to have the model's code.
void ExpectSame(const absl::Status& got, const absl::Status& want,
                const std::string& what) {
  if (kTrace) std::cerr << "op: " << what << " -> " << want.ToString() << "\n";
  if (got.code() != want.code()) {
    Fail(absl::StrCat(what, ": got ", got.ToString(), ", the model says ",
                      want.ToString()));
  }
}

// Expects the same outcome: the same code and, if OK, the same value.
template <typename T>
void ExpectSameResult(const absl::StatusOr<T>& got, const absl::StatusOr<T>& want,
                      const std::string& what) {
  ExpectSame(got.status(), want.status(), what);
  FUZZ_EXPECT(!want.ok() || *got == *want, what + ": a different result than the model's");
}

bool SameMeta(const KeyMeta& a, const KeyMeta& b) {
  return a.mod_version == b.mod_version && a.create_version == b.create_version &&
         a.writes == b.writes && a.lease == b.lease;
}

std::string MetaString(const KeyMeta& m) {
  return absl::StrCat("{mod ", m.mod_version, " created ", m.create_version, " writes ",
                      m.writes, " lease ", m.lease, "}");
}

void ExpectSameEntry(const absl::StatusOr<Entry>& got, const absl::StatusOr<Entry>& want,
                     const std::string& what) {
  ExpectSame(got.status(), want.status(), what);
  if (!want.ok()) return;
  const KeyMeta g{got->mod_version, got->create_version, got->writes, got->lease};
  const KeyMeta w{want->mod_version, want->create_version, want->writes, want->lease};
  FUZZ_EXPECT(SameMeta(g, w), absl::StrCat(what, ": metadata ", MetaString(g),
                                          ", the model's ", MetaString(w)));
  FUZZ_EXPECT(got->value == want->value && got->mod_version == want->mod_version &&
                  got->version == want->version,
              absl::StrCat(what, ": got ", got->value.substr(0, 20), "@", got->mod_version,
                           " read at ", got->version, ", expected ", want->value.substr(0, 20),
                           "@", want->mod_version, " read at ", want->version));
}

bool SameChange(const Change& a, const Change& b) {
  return a.key == b.key && a.old_value == b.old_value && a.new_value == b.new_value &&
         SameMeta(a.old_meta, b.old_meta) && SameMeta(a.new_meta, b.new_meta);
}

// Both iterators at the same entry (or both invalid).
void ExpectSamePosition(const Iterator& got, const Iterator& want, const std::string& what) {
  FUZZ_EXPECT(got.Valid() == want.Valid(),
              absl::StrCat(what, ": valid ", got.Valid(), ", the model's ", want.Valid(),
                           want.Valid() ? " at " + std::string(want.key()) : ""));
  if (!want.Valid()) return;
  FUZZ_EXPECT(got.key() == want.key() && got.value() == want.value() &&
                  got.mod_version() == want.mod_version(),
              absl::StrCat(what, ": at ", std::string(got.key()), "@", got.mod_version(),
                           ", the model at ", std::string(want.key()), "@",
                           want.mod_version()));
  FUZZ_EXPECT(SameMeta(got.meta(), want.meta()),
              absl::StrCat(what, ": at ", std::string(got.key()), " metadata ",
                           MetaString(got.meta()), ", the model's ", MetaString(want.meta())));
}

// Walks both iterators over their whole version, forward or in reverse.
void ExpectSameIteration(Iterator& got, Iterator& want, bool reverse, const std::string& what) {
  if (reverse) {
    got.SeekToLast();
    want.SeekToLast();
  } else {
    got.SeekToFirst();
    want.SeekToFirst();
  }
  for (;;) {
    ExpectSamePosition(got, want, what);
    if (!want.Valid()) break;
    if (reverse) {
      got.Prev();
      want.Prev();
    } else {
      got.Next();
      want.Next();
    }
  }
  FUZZ_EXPECT(got.status().ok(), absl::StrCat(what, ": ", got.status().ToString()));
}

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

// An interactive transaction on the database and on the model.
struct OpenTxn {
  std::unique_ptr<Transaction> db;
  std::unique_ptr<Transaction> model;
};

// A snapshot and the model's pin of the same version.
struct Pinned {
  Snapshot snapshot;
  ModelDB::PinHandle pin;
};

class Harness {
 public:
  Harness() : store_(internal::NewMemoryPageStore()), model_(DBOptions()) { Open(); }
  ~Harness() { Close(); }

  void Run(Reader& in) {
    while (!in.done()) Step(in);
    Close();  // releases everything: the database must shut down cleanly
  }

 private:
  static Options DBOptions() {
    Options o;
    o.sync = false;
    o.page_size = 512;
    o.cache_bytes = 64 << 10;  // small: evictions and page decoding
    o.max_key_size = kMaxKeySize;
    o.max_value_size = kMaxValueSize;
    o.inline_value_limit = kInlineValueLimit;
    o.retain_versions = kRetainVersions;
    o.background_reclaim = false;  // reclamation only when the script says
    return o;
  }

  uint64_t latest() { return model_.LatestVersion(); }

  // A version from an argument byte: 0 the latest, 1 one past it (does
  // not exist), otherwise counting back from the latest.
  uint64_t VersionOf(uint8_t b) {
    if (b == 0) return latest();
    if (b == 1) return latest() + 1;
    return latest() - (b - 2) % (latest() + 1);
  }

  // --------------------------------------------------------------- database

  void Open() {
    absl::StatusOr<std::unique_ptr<internal::DBImpl>> db =
        internal::DBImpl::Open(DBOptions(), store_);
    FUZZ_EXPECT(db.ok(), absl::StrCat("open: ", db.status().ToString()));
    db_ = *std::move(db);
    FUZZ_EXPECT(db_->LatestVersion() == latest(),
                absl::StrCat("open: latest version ", db_->LatestVersion(), ", expected ",
                             latest()));
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), "open: tags differ");
    ExpectSameBranches("open");
  }

  // ListBranches is the model's.
  void ExpectSameBranches(const std::string& what) {
    const std::vector<BranchInfo> got = db_->ListBranches();
    const std::vector<BranchInfo> want = model_.ListBranches();
    FUZZ_EXPECT(got.size() == want.size(),
                absl::StrCat(what, ": ", got.size(), " branches, the model has ", want.size()));
    for (size_t i = 0; i < got.size(); ++i) {
      const BranchInfo& g = got[i];
      const BranchInfo& w = want[i];
      FUZZ_EXPECT(g.name == w.name && g.created == w.created && g.source == w.source &&
                      g.source_version == w.source_version && g.entries == w.entries,
                  absl::StrCat(what, ": branch ", g.name, " created ", g.created, " from ",
                               g.source, "@", g.source_version, " with ", g.entries,
                               " keys; the model's ", w.name, " ", w.created, " ", w.source,
                               "@", w.source_version, " ", w.entries));
    }
  }

  void Close() {
    for (auto& t : txns_) t.reset();
    snapshots_.clear();
    db_.reset();
  }

  // ------------------------------------------------------------- operations

  void Step(Reader& in) {
    const uint8_t op = in.Byte() % kNumOps;
    ++serial_;
    switch (op) {
      case kPut: {
        std::string k = KeyOf(in.Byte());
        uint8_t vb = in.Byte();
        return Put(k, ValueOf(vb, serial_), LeaseOf(vb));
      }
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
        uint8_t vb = in.Byte();
        return TxnWrite(slot, k, ValueOf(vb, serial_), LeaseOf(vb));
      }
      case kTxnDelete: {
        uint8_t slot = in.Byte() % 2;
        return TxnWrite(slot, KeyOf(in.Byte()), {}, 0);
      }
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
      case kReleaseBefore: return ReleaseBefore(VersionOf(in.Byte()));
      case kTxnBoundedScan: {
        uint8_t slot = in.Byte() % 2;
        std::string lo = KeyOf(in.Byte());
        std::string hi = KeyOf(in.Byte());
        return TxnBoundedScan(slot, lo, hi, in.Byte());
      }
      case kHistory: {
        std::string k = KeyOf(in.Byte());
        uint8_t from = in.Byte(), to = in.Byte();
        return History(k, from, to, in.Byte() % 5);
      }
      case kFork: {
        std::string name = BranchOf(in.Byte());
        std::string source = BranchOf(in.Byte());
        return Fork(name, source, in.Byte());
      }
      case kDeleteBranch: return DeleteBranch(BranchOf(in.Byte()));
      case kBranchPut: {
        std::string branch = BranchOf(in.Byte());
        std::string k = KeyOf(in.Byte());
        uint8_t vb = in.Byte();
        return BranchWrite(branch, k, ValueOf(vb, serial_), LeaseOf(vb));
      }
      case kBranchDelete: {
        std::string branch = BranchOf(in.Byte());
        return BranchWrite(branch, KeyOf(in.Byte()), std::nullopt, 0);
      }
      case kBranchRead: {
        std::string branch = BranchOf(in.Byte());
        uint8_t v = in.Byte();
        std::string k = KeyOf(in.Byte());
        return BranchRead(branch, v, k, in.Byte());
      }
      case kBranchBegin: {
        uint8_t slot = in.Byte() % 2;
        std::string branch = BranchOf(in.Byte());
        uint8_t mode = in.Byte();
        return Begin(slot, mode, in.Byte(), branch);
      }
      case kBranchSnapshot: return TakeSnapshot(BranchOf(in.Byte()));
      case kMerge: {
        std::string from = BranchOf(in.Byte());
        std::string into = BranchOf(in.Byte());
        return Merge(from, into, static_cast<MergePolicy>(in.Byte() % 3));
      }
      case kDiffTrees: {
        uint8_t a[4];
        for (uint8_t& x : a) x = in.Byte();
        std::string lo = KeyOf(in.Byte());
        return DiffTrees(TreeOf(a[0], a[1]), TreeOf(a[2], a[3]), lo, KeyOf(in.Byte()));
      }
      case kWatchBranch: {
        std::string branch = BranchOf(in.Byte());
        uint64_t from = VersionOf(in.Byte());
        std::string lo = KeyOf(in.Byte());
        return Watch(from, lo, KeyOf(in.Byte()), branch);
      }
    }
  }

  // A commit on both: the same outcome, and the same latest version after.
  void ExpectSameCommit(const absl::StatusOr<uint64_t>& got,
                        const absl::StatusOr<uint64_t>& want, const std::string& what) {
    ExpectSameResult(got, want, what);
    FUZZ_EXPECT(db_->LatestVersion() == latest(),
                absl::StrCat(what, ": latest version ", db_->LatestVersion(),
                             ", the model's ", latest()));
  }

  void Put(const std::string& k, const std::string& v, uint64_t lease) {
    if (lease == 0) {
      ExpectSameCommit(db_->Put(k, v), model_.Put(k, v), "put " + k);
      return;
    }
    WriteBatch batch;
    batch.Put(k, v, lease);
    ExpectSameCommit(db_->Write(batch), model_.Write(batch),
                     absl::StrCat("put ", k, " with lease ", lease));
  }

  void Delete(const std::string& k) {
    ExpectSameCommit(db_->Delete(k), model_.Delete(k), "delete " + k);
  }

  void Batch(Reader& in) {
    const int n = in.Byte() % 9;  // 0: an empty batch
    WriteBatch batch;
    for (int i = 0; i < n; ++i) {
      const uint8_t kind = in.Byte();
      const std::string k = KeyOf(in.Byte());
      const uint8_t vb = in.Byte();
      const std::string v = ValueOf(vb, serial_ * 16 + i);
      if (kind % 3 == 0) {
        batch.Delete(k);
      } else {
        batch.Put(k, v, LeaseOf(vb));
      }
    }
    ExpectSameCommit(db_->Write(batch), model_.Write(batch),
                     absl::StrCat("batch of ", n));
  }

  // ReadOptions for version byte `b`: the latest by default.
  ReadOptions ReadAt(uint8_t b, uint64_t* v) {
    ReadOptions ro;
    *v = VersionOf(b);
    if (b != 0) ro.version = *v;
    return ro;
  }

  void Get(uint8_t vb, const std::string& k) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    ExpectSameEntry(db_->GetEntry(ro, k), model_.GetEntry(ro, k),
                    absl::StrCat("get ", k, " at ", v));
  }

  // Iterators on both for `ro`; false if they (rightly) failed alike.
  bool NewIterators(const ReadOptions& ro, const std::string& what,
                    std::unique_ptr<Iterator>* got, std::unique_ptr<Iterator>* want) {
    absl::StatusOr<std::unique_ptr<Iterator>> a = db_->NewIterator(ro);
    absl::StatusOr<std::unique_ptr<Iterator>> b = model_.NewIterator(ro);
    ExpectSame(a.status(), b.status(), what);
    if (!b.ok()) return false;
    *got = *std::move(a);
    *want = *std::move(b);
    FUZZ_EXPECT((*got)->version() == (*want)->version(),
                absl::StrCat(what, ": iterator at version ", (*got)->version()));
    return true;
  }

  void Scan(uint8_t vb, uint8_t flags) {
    const bool reverse = flags & 1;
    ReadOptions ro;
    uint64_t v = 0;
    if ((flags & 2) && !snapshots_.empty()) {
      // The model reads a snapshot at its version (and holds its own pin).
      ro.snapshot = &snapshots_[flags % snapshots_.size()].snapshot;
      v = ro.snapshot->version();
    } else {
      ro = ReadAt(vb, &v);
    }
    const std::string what = absl::StrCat("scan at ", v, ro.snapshot ? " (snapshot)" : "");
    std::unique_ptr<Iterator> got, want;
    if (!NewIterators(ro, what, &got, &want)) return;
    ExpectSameIteration(*got, *want, reverse, what);
  }

  void Seek(uint8_t vb, const std::string& target, uint8_t steps) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    const std::string what = absl::StrCat("seek ", target, " at ", v);
    std::unique_ptr<Iterator> got, want;
    if (!NewIterators(ro, what, &got, &want)) return;
    got->Seek(target);
    want->Seek(target);
    for (int i = 0; i < 8; ++i) {
      ExpectSamePosition(*got, *want, absl::StrCat(what, ": step ", i));
      if (!want->Valid()) break;
      if (steps & (1 << i)) {
        got->Next();
        want->Next();
      } else {
        got->Prev();
        want->Prev();
      }
    }
    FUZZ_EXPECT(got->status().ok(), what + ": " + got->status().ToString());
  }

  void Count(uint8_t vb, const std::string& a, const std::string& b) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    ExpectSameResult(db_->Count(ro, a, b), model_.Count(ro, a, b),
                     absl::StrCat("count [", a, ", ", b, ") at ", v));
  }

  // ----------------------------------------------------------- transactions

  // mode % 5: 0 read-write serializable, 1 read-write snapshot, 2
  // read-only at the latest, 3 read-only at version `vb`, 4 read-write at
  // a version (InvalidArgument).
  void Begin(uint8_t slot, uint8_t mode, uint8_t vb, const std::string& branch = "") {
    txns_[slot].reset();  // an open transaction is rolled back by its destructor
    TransactionOptions o;
    o.branch = branch;
    o.isolation = mode % 5 == 1 ? Isolation::kSnapshot : Isolation::kSerializable;
    o.read_only = mode % 5 == 2 || mode % 5 == 3;
    if (mode % 5 >= 3) o.read_version = VersionOf(vb);
    absl::StatusOr<std::unique_ptr<Transaction>> got = db_->Begin(o);
    absl::StatusOr<std::unique_ptr<Transaction>> want = model_.Begin(o);
    const std::string what = absl::StrCat("begin mode ", mode % 5, " on ", branch, " at ",
                                          o.read_version.value_or(latest()));
    ExpectSame(got.status(), want.status(), what);
    if (!want.ok()) return;
    FUZZ_EXPECT((*got)->read_version() == (*want)->read_version(),
                what + ": another read version");
    txns_[slot] = std::make_unique<OpenTxn>(OpenTxn{*std::move(got), *std::move(want)});
  }

  void TxnWrite(uint8_t slot, const std::string& k, std::optional<std::string> v,
                uint64_t lease) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    ExpectSame(v ? t->db->Put(k, *v, lease) : t->db->Delete(k),
               v ? t->model->Put(k, *v, lease) : t->model->Delete(k),
               absl::StrCat("txn ", v ? "put " : "delete ", k));
  }

  void TxnGet(uint8_t slot, const std::string& k) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    ExpectSameEntry(t->db->GetEntry(k), t->model->GetEntry(k), "txn get " + k);
  }

  void TxnScan(uint8_t slot, uint8_t flags) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    absl::StatusOr<std::unique_ptr<Iterator>> got = t->db->NewIterator();
    absl::StatusOr<std::unique_ptr<Iterator>> want = t->model->NewIterator();
    ExpectSame(got.status(), want.status(), "txn iterator");
    if (!want.ok()) return;
    ExpectSameIteration(**got, **want, flags & 1, "txn scan");
  }

  // A scan within bounds (an empty upper: unbounded): the same keys, and
  // (through the commit's outcome) the same observed ranges.
  void TxnBoundedScan(uint8_t slot, const std::string& lo, const std::string& hi,
                      uint8_t flags) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    const IterateBounds b{lo, hi};
    absl::StatusOr<std::unique_ptr<Iterator>> got = t->db->NewIterator(b);
    absl::StatusOr<std::unique_ptr<Iterator>> want = t->model->NewIterator(b);
    const std::string what = absl::StrCat("txn scan [", lo, ", ", hi, ")");
    ExpectSame(got.status(), want.status(), what);
    if (!want.ok()) return;
    ExpectSameIteration(**got, **want, flags & 1, what);
  }

  void TxnCount(uint8_t slot, const std::string& a, const std::string& b) {
    OpenTxn* t = txns_[slot].get();
    if (t == nullptr) return;
    ExpectSameResult(t->db->Count(a, b), t->model->Count(a, b),
                     absl::StrCat("txn count [", a, ", ", b, ")"));
  }

  void Commit(uint8_t slot) {
    std::unique_ptr<OpenTxn> t = std::move(txns_[slot]);
    if (t == nullptr) return;
    // Commits or aborts as the model does: SNAPSHOT validates the written
    // keys; SERIALIZABLE the keys read from the snapshot and the ranges
    // iterated or counted.
    ExpectSameCommit(t->db->Commit(), t->model->Commit(), "txn commit");
    // A finished transaction refuses everything.
    ExpectSame(t->db->Commit().status(), t->model->Commit().status(), "second commit");
    ExpectSame(t->db->Get("k00").status(), t->model->Get("k00").status(),
               "get after commit");
  }

  void Rollback(uint8_t slot) {
    std::unique_ptr<OpenTxn> t = std::move(txns_[slot]);
    if (t == nullptr) return;
    ExpectSame(t->db->Rollback(), t->model->Rollback(), "rollback");
    ExpectSame(t->db->Rollback(), t->model->Rollback(), "second rollback");
  }

  // -------------------------------------------------- versions and retention

  // A snapshot of main's latest tree, or with `branch` of that branch's
  // (SnapshotOf).
  void TakeSnapshot(std::optional<std::string> branch = std::nullopt) {
    if (snapshots_.size() >= 4) return;
    Snapshot snapshot;
    if (branch) {
      ReadOptions ro;
      ro.branch = *branch;
      absl::StatusOr<Snapshot> got = db_->SnapshotOf(ro);
      ExpectSame(got.status(), model_.SnapshotOf(ro).status(), "snapshot of " + *branch);
      if (!got.ok()) return;
      snapshot = *std::move(got);
    } else {
      snapshot = db_->GetSnapshot();
    }
    absl::StatusOr<ModelDB::PinHandle> pin = model_.Pin(latest());
    FUZZ_EXPECT(pin.ok(), "pin of the latest version: " + pin.status().ToString());
    snapshots_.push_back(Pinned{std::move(snapshot), *std::move(pin)});
    FUZZ_EXPECT(snapshots_.back().snapshot.version() == latest(),
                "snapshot of another version");
  }

  void ReleaseSnapshot(uint8_t pick) {
    if (snapshots_.empty()) return;
    snapshots_.erase(snapshots_.begin() + pick % snapshots_.size());
  }

  void Tag(const std::string& name, uint64_t v) {
    const std::string what = absl::StrCat("tag ", name, " at ", v);
    ExpectSame(db_->Tag(name, v), model_.Tag(name, v), what);
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), what + ": tags differ");
  }

  void Untag(const std::string& name) {
    ExpectSame(db_->Untag(name), model_.Untag(name), "untag " + name);
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), "untag " + name + ": tags differ");
  }

  void Reclaim() {
    absl::StatusOr<ReclaimStats> got = db_->Reclaim();
    absl::StatusOr<ReclaimStats> want = model_.Reclaim();
    FUZZ_EXPECT(got.ok(), "reclaim: " + got.status().ToString());
    FUZZ_EXPECT(got->floor == want->floor,
                absl::StrCat("reclaim floor ", got->floor, ", the model's ", want->floor));
    FUZZ_EXPECT(db_->OldestVersion() == model_.OldestVersion(),
                absl::StrCat("oldest version ", db_->OldestVersion(), ", the model's ",
                             model_.OldestVersion()));
  }

  void ReleaseBefore(uint64_t v) {
    const std::string what = absl::StrCat("release before ", v);
    ExpectSame(db_->ReleaseBefore(v), model_.ReleaseBefore(v), what);
    FUZZ_EXPECT(db_->OldestVersion() == model_.OldestVersion(),
                absl::StrCat(what, ": oldest version ", db_->OldestVersion(),
                             ", the model's ", model_.OldestVersion()));
  }

  void Diff(uint64_t a, uint64_t b, const std::string& lo, const std::string& hi) {
    std::vector<Change> got, want;
    auto into = [](std::vector<Change>* out) {
      return [out](const Change& c) {
        out->push_back(c);
        return true;
      };
    };
    const std::string what = absl::StrCat("diff ", a, "..", b, " [", lo, ", ", hi, ")");
    ExpectSame(db_->Diff(a, b, lo, hi, into(&got)), model_.Diff(a, b, lo, hi, into(&want)),
               what);
    FUZZ_EXPECT(got.size() == want.size(),
                absl::StrCat(what, ": ", got.size(), " changes, expected ", want.size()));
    for (size_t i = 0; i < got.size(); ++i) {
      FUZZ_EXPECT(SameChange(got[i], want[i]),
                  absl::StrCat(what, ": change ", i, " on ", got[i].key));
    }
  }

  // History from version byte `from_b` (0: from the start) to `to_b`
  // (0: the latest), at most `limit` changes.
  void History(const std::string& k, uint8_t from_b, uint8_t to_b, uint8_t limit) {
    HistoryOptions o;
    if (from_b != 0) o.from = VersionOf(from_b);
    if (to_b != 0) o.to = VersionOf(to_b);
    o.limit = limit;
    const std::string what =
        absl::StrCat("history of ", k, " from ", o.from, " to ", o.to.value_or(latest()),
                     " limit ", limit);
    absl::StatusOr<KeyHistory> got = db_->History(k, o);
    absl::StatusOr<KeyHistory> want = model_.History(k, o);
    ExpectSame(got.status(), want.status(), what);
    if (!want.ok()) return;
    FUZZ_EXPECT(got->to == want->to && got->complete_from == want->complete_from &&
                    got->more == want->more,
                absl::StrCat(what, ": to ", got->to, " complete from ", got->complete_from,
                             " more ", got->more, ", the model's ", want->to, " ",
                             want->complete_from, " ", want->more));
    FUZZ_EXPECT(got->changes.size() == want->changes.size(),
                absl::StrCat(what, ": ", got->changes.size(), " changes, expected ",
                             want->changes.size()));
    for (size_t i = 0; i < got->changes.size(); ++i) {
      const KeyChange& g = got->changes[i];
      const KeyChange& w = want->changes[i];
      FUZZ_EXPECT(g.version == w.version && g.value == w.value && SameMeta(g.meta, w.meta),
                  absl::StrCat(what, ": change ", i, " at ", g.version,
                               g.value ? " put " : " delete ", MetaString(g.meta),
                               ", the model's at ", w.version,
                               w.value ? " put " : " delete ", MetaString(w.meta)));
    }
  }

  // Watch, or with `branch` WatchBranch.
  void Watch(uint64_t from, const std::string& lo, const std::string& hi,
             std::optional<std::string> branch = std::nullopt) {
    absl::StatusOr<std::unique_ptr<Watcher>> got =
        branch ? db_->WatchBranch(*branch, from, lo, hi) : db_->Watch(from, lo, hi);
    absl::StatusOr<std::unique_ptr<Watcher>> want =
        branch ? model_.WatchBranch(*branch, from, lo, hi) : model_.Watch(from, lo, hi);
    const std::string what = absl::StrCat("watch ", branch.value_or("main"), " from ", from,
                                          " [", lo, ", ", hi, ")");
    ExpectSame(got.status(), want.status(), what);
    if (!want.ok()) return;
    // Every event up to the latest version, then nothing (or, for a
    // branch deleted meanwhile, NotFound there).
    for (size_t i = 0;; ++i) {
      absl::StatusOr<WatchEvent> g = (*got)->Next(absl::ZeroDuration());
      absl::StatusOr<WatchEvent> w = (*want)->Next(absl::ZeroDuration());
      ExpectSame(g.status(), w.status(), absl::StrCat(what, ": event ", i));
      if (absl::IsNotFound(w.status())) {
        FUZZ_EXPECT((*got)->position() == (*want)->position(),
                    absl::StrCat(what, ": stopped at ", (*got)->position(),
                                 ", the model at ", (*want)->position()));
        return;
      }
      if (!w.ok()) break;
      FUZZ_EXPECT(g->version == w->version && g->net == w->net &&
                      SameChange(g->change, w->change),
                  absl::StrCat(what, ": event ", i, " got ", g->change.key, "@", g->version,
                               g->net ? " net" : "", ", expected ", w->change.key, "@",
                               w->version, w->net ? " net" : ""));
    }
    FUZZ_EXPECT((*got)->position() == (*want)->position() && (*want)->position() == latest(),
                absl::StrCat(what, ": position ", (*got)->position(), ", the model's ",
                             (*want)->position()));
  }

  // --------------------------------------------------------------- branches

  // The tree of branch byte `b` at version byte `vb` (0: its latest).
  TreeAt TreeOf(uint8_t b, uint8_t vb) {
    TreeAt at;
    at.branch = BranchOf(b);
    if (vb != 0) at.version = VersionOf(vb);
    return at;
  }

  static std::string TreeString(const TreeAt& at) {
    return absl::StrCat(at.branch.empty() ? "\"\"" : at.branch, "@",
                        at.version ? std::to_string(*at.version) : "latest");
  }

  // A fork on both: the same outcome, tags and branches.
  void Fork(const std::string& name, const std::string& source, uint8_t vb) {
    TreeAt at;
    at.branch = source;
    if (vb != 0) at.version = VersionOf(vb);
    const std::string what = absl::StrCat("fork ", name, " of ", TreeString(at));
    ExpectSameCommit(db_->Fork(name, at), model_.Fork(name, at), what);
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), what + ": tags differ");
    ExpectSameBranches(what);
  }

  void DeleteBranch(const std::string& name) {
    const std::string what = "delete branch " + name;
    ExpectSameCommit(db_->DeleteBranch(name), model_.DeleteBranch(name), what);
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), what + ": tags differ");
    ExpectSameBranches(what);
  }

  // A put (or, without `v`, a delete) on `branch`.
  void BranchWrite(const std::string& branch, const std::string& k,
                   std::optional<std::string> v, uint64_t lease) {
    WriteBatch batch;
    batch.SetBranch(branch);
    if (v) {
      batch.Put(k, *v, lease);
    } else {
      batch.Delete(k);
    }
    ExpectSameCommit(db_->Write(batch), model_.Write(batch),
                     absl::StrCat(v ? "put " : "delete ", k, " on ", branch));
  }

  // A get of `k`, a count from `k` on and a scan, of `branch` at version
  // byte `vb`.
  void BranchRead(const std::string& branch, uint8_t vb, const std::string& k,
                  uint8_t flags) {
    uint64_t v;
    ReadOptions ro = ReadAt(vb, &v);
    ro.branch = branch;
    const std::string what = absl::StrCat("read ", branch, " at ", v);
    ExpectSameEntry(db_->GetEntry(ro, k), model_.GetEntry(ro, k), what + ": get " + k);
    ExpectSameResult(db_->Count(ro, k, ""), model_.Count(ro, k, ""), what + ": count");
    std::unique_ptr<Iterator> got, want;
    if (!NewIterators(ro, what, &got, &want)) return;
    ExpectSameIteration(*got, *want, flags & 1, what);
  }

  void Merge(const std::string& from, const std::string& into, MergePolicy policy) {
    const std::string what =
        absl::StrCat("merge ", from, " into ", into, " policy ", static_cast<int>(policy));
    absl::StatusOr<MergeResult> got = db_->Merge(from, into, policy);
    absl::StatusOr<MergeResult> want = model_.Merge(from, into, policy);
    ExpectSame(got.status(), want.status(), what);
    FUZZ_EXPECT(db_->LatestVersion() == latest(),
                absl::StrCat(what, ": latest version ", db_->LatestVersion(), ", expected ",
                             latest()));
    FUZZ_EXPECT(db_->ListTags() == model_.ListTags(), what + ": tags differ");
    if (!want.ok()) return;
    FUZZ_EXPECT(got->merged == want->merged && got->version == want->version &&
                    got->base_version == want->base_version &&
                    got->base_branch == want->base_branch && got->changes == want->changes &&
                    got->conflicts.size() == want->conflicts.size(),
                absl::StrCat(what, ": merged ", got->merged, " at ", got->version, " from ",
                             got->base_branch, "@", got->base_version, ", ", got->changes,
                             " changes, ", got->conflicts.size(), " conflicts; the model's ",
                             want->merged, " ", want->version, " ", want->base_branch, "@",
                             want->base_version, " ", want->changes, " ",
                             want->conflicts.size()));
    for (size_t i = 0; i < got->conflicts.size(); ++i) {
      const MergeConflict& g = got->conflicts[i];
      const MergeConflict& w = want->conflicts[i];
      FUZZ_EXPECT(g.key == w.key && g.base == w.base && g.ours == w.ours && g.theirs == w.theirs,
                  absl::StrCat(what, ": conflict ", i, " on ", g.key, ", the model's on ",
                               w.key));
    }
    ExpectSameBranches(what);
  }

  void DiffTrees(const TreeAt& a, const TreeAt& b, const std::string& lo,
                 const std::string& hi) {
    std::vector<Change> got, want;
    auto into = [](std::vector<Change>* out) {
      return [out](const Change& c) {
        out->push_back(c);
        return true;
      };
    };
    const std::string what =
        absl::StrCat("diff ", TreeString(a), " .. ", TreeString(b), " [", lo, ", ", hi, ")");
    ExpectSame(db_->DiffTrees(a, b, lo, hi, into(&got)),
               model_.DiffTrees(a, b, lo, hi, into(&want)), what);
    FUZZ_EXPECT(got.size() == want.size(),
                absl::StrCat(what, ": ", got.size(), " changes, expected ", want.size()));
    for (size_t i = 0; i < got.size(); ++i) {
      FUZZ_EXPECT(SameChange(got[i], want[i]),
                  absl::StrCat(what, ": change ", i, " on ", got[i].key));
    }
  }

  void Reopen() {
    Close();
    Open();
  }

  // Every version reads as the model's, or fails as the model's does; the
  // stored pages are exactly the reachable and pending.
  void CheckAll() {
    for (uint64_t v = 0; v <= latest(); ++v) {
      ReadOptions ro;
      ro.version = v;
      const std::string what = absl::StrCat("check version ", v);
      std::unique_ptr<Iterator> got, want;
      if (!NewIterators(ro, what, &got, &want)) continue;
      ExpectSameIteration(*got, *want, false, what);
      absl::Status tree = db_->VerifyVersion(v, /*strict=*/true);
      FUZZ_EXPECT(tree.ok(), what + ": " + tree.ToString());
      // Its other branches.
      absl::StatusOr<std::vector<std::string>> branches = model_.BranchesAt(v);
      FUZZ_EXPECT(branches.ok(), what + ": " + branches.status().ToString());
      for (const std::string& branch : *branches) {
        if (branch == "main") continue;
        ro.branch = branch;
        const std::string on = absl::StrCat(what, " of ", branch);
        if (!NewIterators(ro, on, &got, &want)) continue;
        ExpectSameIteration(*got, *want, false, on);
      }
    }
    absl::StatusOr<std::vector<VersionInfo>> got = db_->ListVersions();
    absl::StatusOr<std::vector<VersionInfo>> want = model_.ListVersions();
    FUZZ_EXPECT(got.ok() && got->size() == want->size(),
                absl::StrCat("versions listed: ", got.ok() ? got->size() : 0,
                             ", the model's ", want->size()));
    for (size_t i = 0; i < got->size(); ++i) {
      const VersionInfo& g = (*got)[i];
      const VersionInfo& w = (*want)[i];
      FUZZ_EXPECT(g.version == w.version && g.entries == w.entries && g.branch == w.branch,
                  absl::StrCat("versions listed: ", g.version, " of ", g.branch, " with ",
                               g.entries, " keys; the model's ", w.version, " ", w.branch,
                               " ", w.entries));
    }
    ExpectSameBranches("check");
    absl::StatusOr<CheckReport> r = db_->Check();
    FUZZ_EXPECT(r.ok(), "check: " + r.status().ToString());
    FUZZ_EXPECT(r->pages_leaked == 0 && r->blobs_leaked == 0,
                absl::StrCat("check: ", r->pages_leaked, " pages and ", r->blobs_leaked,
                             " blobs leaked"));
  }

  std::shared_ptr<internal::PageStore> store_;
  ModelDB model_;  // outlives db_'s snapshots, transactions and pins
  std::unique_ptr<internal::DBImpl> db_;
  std::vector<Pinned> snapshots_;
  std::unique_ptr<OpenTxn> txns_[2];
  uint64_t serial_ = 0;  // operations so far
};

}  // namespace
}  // namespace cowdb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowdb::fuzz::Reader in(data, size);
  cowdb::fuzz::Harness h;
  h.Run(in);
  return 0;
}
