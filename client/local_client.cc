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

ReadOptions At(std::optional<uint64_t> at) {
  ReadOptions ro;
  ro.version = at;
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

  absl::StatusOr<Entry> Get(std::string_view key, std::optional<uint64_t> at) override {
    absl::StatusOr<cowdb::Entry> e = db_->GetEntry(At(at), key);
    if (!e.ok()) return e.status();
    return Entry{std::move(e->value), e->mod_version, e->version};
  }

  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(options.range, &start, &end); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(At(options.at));
    if (!it.ok()) return it.status();
    absl::Status s = wire::ScanRange(**it, start, end, options.reverse, options.limit,
                                         options.keys_only, visit);
    if (!s.ok()) return s;
    return (*it)->version();
  }

  absl::StatusOr<uint64_t> Count(const Range& range, std::optional<uint64_t> at) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    return db_->Count(At(at), start, end);
  }

  absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value) override {
    return db_->Put(key, value);
  }
  absl::StatusOr<uint64_t> Delete(std::string_view key) override { return db_->Delete(key); }

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
    absl::StatusOr<std::unique_ptr<cowdb::Transaction>> t = db_->Begin(o);
    if (!t.ok()) return t.status();
    return std::unique_ptr<Transaction>(new LocalTransaction(*std::move(t), &open_));
  }

  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override {
    absl::StatusOr<std::vector<cowdb::VersionInfo>> vs = db_->ListVersions();
    if (!vs.ok()) return vs.status();
    std::vector<VersionInfo> out;
    for (const cowdb::VersionInfo& v : *vs) {
      out.push_back(VersionInfo{v.version, v.commit_micros, v.entries});
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

  absl::Status Diff(uint64_t from, uint64_t to, const Range& range,
                    const std::function<bool(const Change&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    return db_->Diff(from, to, start, end,
                     [&](const cowdb::Change& c) { return visit(wire::FromEngine(c)); });
  }

  absl::Status Watch(uint64_t from, const Range& range,
                     const std::function<bool(const WatchEvent&)>& visit) override {
    std::string start, end;
    if (absl::Status s = Bounds(range, &start, &end); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<Watcher>> w = db_->Watch(from, start, end);
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
    absl::StatusOr<cowdb::ProvedRange> r = db_->ProveScan(At(options.at), start, end,
                                                          options.limit);
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
