#include "client/local_client.h"

#include <atomic>
#include <utility>

#include "proto/wire/engine_ops.h"
#include "proto/wire/wire.h"

namespace cowdb::client {
namespace {

// The bounds of `range` as [start, end) (empty end: unbounded).
absl::Status Bounds(const Range& range, std::string* start, std::string* end) {
  return wire::ToBounds(wire::ToProto(range), start, end);
}

ReadOptions At(std::optional<uint64_t> at, const std::string& branch = "") {
  ReadOptions ro;
  ro.version = at;
  ro.branch = branch;
  return ro;
}

class LocalTransaction final : public Transaction {
 public:
  LocalTransaction(std::unique_ptr<cowdb::Transaction> txn, std::atomic<uint64_t>* open)
      : txn_(std::move(txn)), open_(open) {
    ++*open_;
  }
  ~LocalTransaction() override { --*open_; }

  uint64_t read_version() const override { return txn_->read_version(); }

  absl::StatusOr<Entry> Get(std::string_view key) override {
    absl::StatusOr<cowdb::Entry> e = txn_->GetEntry(key);
    if (!e.ok()) return e.status();
    return Entry{std::move(e->value), e->mod_version, e->version};
  }

  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit) override {
    if (options.at) {
      return absl::InvalidArgumentError("a transaction reads at its own snapshot; no `at`");
    }
    if (!options.branch.empty()) {
      return absl::InvalidArgumentError(
          "a transaction reads the branch it began on; no `branch`");
    }
    std::string start, end;
    if (absl::Status s = Bounds(options.range, &start, &end); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<Iterator>> it =
        txn_->NewIterator(IterateBounds{start, end});
    if (!it.ok()) return it.status();
    absl::Status s = wire::ScanRange(**it, start, end, options.reverse, options.limit,
                                         options.keys_only, visit);
    if (!s.ok()) return s;
    return txn_->read_version();
  }

  absl::StatusOr<uint64_t> Count(const Range& range) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    return txn_->Count(start, end);
  }

  absl::Status Put(std::string_view key, std::string_view value) override {
    return txn_->Put(key, value);
  }
  absl::Status Delete(std::string_view key) override { return txn_->Delete(key); }
  absl::StatusOr<uint64_t> Commit() override { return txn_->Commit(); }
  absl::Status Rollback() override { return txn_->Rollback(); }

 private:
  std::unique_ptr<cowdb::Transaction> txn_;
  std::atomic<uint64_t>* const open_;
};

class LocalClient final : public Client {
 public:
  // Uses `db`; owns it if `owned` is set.
  LocalClient(DB* db, std::unique_ptr<DB> owned) : db_(db), owned_(std::move(owned)) {}

  absl::StatusOr<Entry> Get(std::string_view key, const TreeAt& at) override {
    absl::StatusOr<cowdb::Entry> e = db_->GetEntry(At(at.version, at.branch), key);
    if (!e.ok()) return e.status();
    return Entry{std::move(e->value), e->mod_version, e->version};
  }

  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(options.range, &start, &end); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<Iterator>> it =
        db_->NewIterator(At(options.at, options.branch));
    if (!it.ok()) return it.status();
    absl::Status s = wire::ScanRange(**it, start, end, options.reverse, options.limit,
                                         options.keys_only, visit);
    if (!s.ok()) return s;
    return (*it)->version();
  }

  absl::StatusOr<uint64_t> Count(const Range& range, const TreeAt& at) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    return db_->Count(At(at.version, at.branch), start, end);
  }

  absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value,
                               const WriteOptions& options) override {
    WriteBatch batch;  // as the server: one batch, on the branch
    batch.SetBranch(options.branch);
    batch.Put(key, value);
    return db_->Write(batch);
  }
  absl::StatusOr<uint64_t> Delete(std::string_view key, const WriteOptions& options) override {
    WriteBatch batch;
    batch.SetBranch(options.branch);
    batch.Delete(key);
    return db_->Write(batch);
  }

  absl::StatusOr<TxnResult> Txn(const TxnRequest& request) override {
    v1::TxnResponse resp;
    absl::Status s = wire::ExecuteTxn(*db_, wire::ToProto(request), &resp);
    if (!s.ok()) return s;
    return wire::FromProto(resp);
  }

  absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options) override {
    cowdb::TransactionOptions o;
    o.read_only = options.read_only;
    o.read_version = options.read_version;
    o.isolation = options.snapshot_isolation ? Isolation::kSnapshot : Isolation::kSerializable;
    o.branch = options.branch;
    absl::StatusOr<std::unique_ptr<cowdb::Transaction>> t = db_->Begin(o);
    if (!t.ok()) return t.status();
    return std::unique_ptr<Transaction>(new LocalTransaction(*std::move(t), &open_));
  }

  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override {
    absl::StatusOr<std::vector<cowdb::VersionInfo>> vs = db_->ListVersions();
    if (!vs.ok()) return vs.status();
    std::vector<VersionInfo> out;
    for (const cowdb::VersionInfo& v : *vs) {
      out.push_back(VersionInfo{v.version, v.commit_micros, v.entries,
                                v.branch.empty() ? std::string("main") : v.branch});
    }
    return out;
  }

  absl::Status Tag(std::string_view name, uint64_t version) override {
    return db_->Tag(name, version);
  }
  absl::Status Untag(std::string_view name) override { return db_->Untag(name); }
  absl::StatusOr<std::map<std::string, uint64_t>> ListTags() override {
    return db_->ListTags();
  }

  absl::Status Diff(const TreeAt& from, const TreeAt& to, const Range& range,
                    const std::function<bool(const Change&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    auto fn = [&](const cowdb::Change& c) { return visit(wire::FromEngine(c)); };
    // An unset version: the latest, one for both sides (as the remote client).
    const uint64_t latest =
        from.version && to.version ? 0 : db_->LatestVersion();
    const uint64_t from_version = from.version.value_or(latest);
    const uint64_t to_version = to.version.value_or(latest);
    if (from.branch.empty() && to.branch.empty()) {  // as the server does
      return db_->Diff(from_version, to_version, start, end, fn);
    }
    return db_->DiffTrees(wire::TreeOf(from.branch, from_version),
                          wire::TreeOf(to.branch, to_version), start, end, fn);
  }

  absl::Status Watch(const TreeAt& from, const Range& range,
                     const std::function<bool(const WatchEvent&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    const uint64_t from_version = from.version ? *from.version : db_->LatestVersion();
    absl::StatusOr<std::unique_ptr<Watcher>> w =
        from.branch.empty() ? db_->Watch(from_version, start, end)
                            : db_->WatchBranch(from.branch, from_version, start, end);
    if (!w.ok()) return w.status();
    while (true) {
      absl::StatusOr<cowdb::WatchEvent> e = (*w)->Next(absl::Seconds(1));
      if (absl::IsDeadlineExceeded(e.status())) continue;  // no change yet
      if (!e.ok()) return e.status();
      if (!visit(WatchEvent{e->version, wire::FromEngine(e->change), e->net})) {
        return absl::OkStatus();
      }
    }
  }

  absl::StatusOr<KeyHistory> History(std::string_view key,
                                     const HistoryOptions& options) override {
    KeyHistory h;
    absl::Status s = wire::RunHistory(*db_, wire::ToProto(key, options),
                                          [&](const v1::HistoryResponse& r) {
                                            wire::AppendFromProto(r, &h);
                                            return absl::OkStatus();
                                          });
    if (!s.ok()) return s;
    return h;
  }

  absl::StatusOr<CheckReport> Check(
      const std::function<void(uint64_t, uint64_t)>& progress) override {
    absl::StatusOr<cowdb::CheckReport> r = db_->Check([&](uint64_t done, uint64_t total) {
      if (progress) progress(done, total);
      return true;
    });
    if (!r.ok()) return r.status();
    return CheckReport{r->versions_checked, r->pages_reachable, r->blobs_reachable,
                       r->pages_stored,     r->blobs_stored,    r->pages_pending,
                       r->blobs_pending,    r->pages_leaked,    r->blobs_leaked};
  }

  absl::Status Export(std::optional<uint64_t> version, const std::string& path,
                      const std::function<void(uint64_t, uint64_t)>& progress) override {
    absl::Status s = db_->Export(version.value_or(db_->LatestVersion()), path);
    if (s.ok() && progress) progress(1, 1);
    return s;
  }

  absl::Status ExportChanges(uint64_t from, std::optional<uint64_t> to, const std::string& path,
                             const std::function<void(uint64_t, uint64_t)>& progress) override {
    absl::Status s = db_->ExportChanges(from, to.value_or(db_->LatestVersion()), path);
    if (s.ok() && progress) progress(1, 1);
    return s;
  }

  absl::StatusOr<uint64_t> Import(const std::string& path,
                                  const std::function<void(uint64_t, uint64_t)>& progress) override {
    absl::StatusOr<uint64_t> n = db_->Import(path);
    if (n.ok() && progress) progress(1, 1);
    return n;
  }

  absl::StatusOr<Retention> GetRetention() override {
    const DB::Retention r = db_->GetRetention();
    return Retention{r.retain_versions == Options::kRetainAll ? 0 : r.retain_versions,
                     r.retain_seconds, db_->OldestVersion(), db_->ReleaseFloor(),
                     db_->LatestVersion()};
  }

  absl::StatusOr<Retention> SetRetention(uint64_t retain_versions,
                                         uint64_t retain_seconds) override {
    DB::Retention r;
    r.retain_versions = retain_versions == 0 ? Options::kRetainAll : retain_versions;
    r.retain_seconds = retain_seconds;
    if (absl::Status s = db_->SetRetention(r); !s.ok()) return s;
    return GetRetention();
  }

  absl::Status Backup(const std::string& dir,
                      const std::function<void(uint64_t, uint64_t)>& progress) override {
    absl::Status s = db_->Backup(dir);
    if (s.ok() && progress) progress(1, 1);
    return s;
  }

  absl::StatusOr<uint64_t> VersionAt(absl::Time time) override {
    return db_->VersionAt(absl::ToUnixMicros(time));
  }

  absl::StatusOr<ProvedValue> ProveGet(std::string_view key,
                                       std::optional<uint64_t> at) override {
    return db_->ProveGet(At(at), key);
  }

  absl::StatusOr<ProvedRange> ProveScan(const ScanOptions& options) override {
    if (options.reverse || options.keys_only) {
      return absl::InvalidArgumentError("a scan with a proof reads in key order, with values");
    }
    std::string start, end;
    if (absl::Status s = Bounds(options.range, &start, &end); !s.ok()) return s;
    absl::StatusOr<cowdb::ProvedRange> r =
        db_->ProveScan(At(options.at, options.branch), start, end, options.limit);
    if (!r.ok()) return r.status();
    ProvedRange out;
    size_t next = 0;
    for (const RangeProofNode& n : r->proof.nodes) {  // mod_versions, in key order
      for (const ProofEntry& e : n.entries) {
        if (next < r->kvs.size() && e.key == r->kvs[next].first) {
          out.kvs.push_back({e.key, std::move(r->kvs[next].second), e.mod_version});
          ++next;
        }
      }
    }
    out.proved_end = std::move(r->proved_end);
    out.proof = std::move(r->proof);
    return out;
  }

  absl::StatusOr<VersionDigest> Digest(std::optional<uint64_t> version) override {
    return db_->GetDigest(version ? *version : db_->LatestVersion());
  }

  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from, uint64_t to) override {
    return db_->DigestLinks(from, to);
  }

  absl::StatusOr<ServerStatus> Status() override {
    return wire::FromProto(wire::StatusOf(*db_, open_.load()));
  }

  absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from) override {
    return db_->Fork(name, wire::TreeOf(from.branch, from.version));
  }

  absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) override {
    return db_->DeleteBranch(name);
  }

  absl::StatusOr<std::vector<BranchInfo>> ListBranches() override {
    std::vector<BranchInfo> out;
    for (const cowdb::BranchInfo& b : db_->ListBranches()) out.push_back(wire::FromEngine(b));
    return out;
  }

  absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                    MergePolicy policy) override {
    absl::StatusOr<cowdb::MergeResult> r = db_->Merge(from, into, wire::ToEngine(policy));
    if (!r.ok()) return r.status();
    return wire::FromEngine(*r);
  }

 private:
  DB* const db_;
  const std::unique_ptr<DB> owned_;
  std::atomic<uint64_t> open_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> OpenLocal(const std::string& dir,
                                                  const Options& options) {
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(options, dir);
  if (!db.ok()) return db.status();
  DB* raw = db->get();
  return std::unique_ptr<Client>(new LocalClient(raw, *std::move(db)));
}

std::unique_ptr<Client> WrapLocal(DB* db) {
  return std::unique_ptr<Client>(new LocalClient(db, nullptr));
}

}  // namespace cowdb::client
