// cowdb behind the peer interface: the public embedded API with default
// options (sync = true), as an application would use it.

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "bench/peer.h"
#include "engine/db.h"

namespace cowdb::bench {
namespace {

class CowdbIterator final : public PeerIterator {
 public:
  explicit CowdbIterator(std::unique_ptr<Iterator> it) : it_(std::move(it)) {}
  void Seek(std::string_view target) override { it_->Seek(target); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override {
    if (it_->Valid()) return true;
    Check(it_->status(), "cowdb iterator");
    return false;
  }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return it_->key(); }
  std::string_view value() const override { return it_->value(); }

 private:
  std::unique_ptr<Iterator> it_;
};

class CowdbReader final : public PeerReader {
 public:
  explicit CowdbReader(DB* db) : db_(db), snap_(db->GetSnapshot()) {
    ro_.snapshot = &snap_;
  }
  bool Get(std::string_view key, std::string_view* value) override {
    absl::Status s = db_->Get(ro_, key, &buf_);
    if (!s.ok()) {
      if (absl::IsNotFound(s)) return false;
      Check(s, "cowdb get");
    }
    *value = buf_;
    return true;
  }
  std::unique_ptr<PeerIterator> NewIterator() override {
    absl::StatusOr<std::unique_ptr<Iterator>> it = db_->NewIterator(ro_);
    Check(it.status(), "cowdb iterator");
    return std::make_unique<CowdbIterator>(*std::move(it));
  }

 private:
  DB* const db_;
  Snapshot snap_;
  ReadOptions ro_;
  std::string buf_;
};

class CowdbPeer final : public PeerDB {
 public:
  CowdbPeer(std::unique_ptr<DB> db, const Options& options)
      : db_(std::move(db)), options_(options) {}
  const char* name() const override { return "cowdb"; }
  void Put(std::string_view key, std::string_view value) override {
    Check(db_->Put(key, value).status(), "cowdb put");
  }
  void Write(const std::vector<KV>& puts) override {
    WriteBatch batch;
    for (const KV& kv : puts) batch.Put(kv.first, kv.second);
    Check(db_->Write(batch).status(), "cowdb write");
  }
  std::unique_ptr<PeerReader> NewReader() override {
    return std::make_unique<CowdbReader>(db_.get());
  }
  bool reads_old_versions() const override { return true; }
  std::string Settings() const override {
    return absl::StrFormat(
        "cowdb defaults: sync = %s, page_size = %u B, node cache = %u MiB, "
        "retain_versions = %u, background reclaim; its RocksDB page store: "
        "8 MiB block cache, bloom 10 bits/key, IncreaseParallelism(2), "
        "default compression",
        options_.sync ? "true" : "false", options_.page_size,
        options_.cache_bytes >> 20, options_.retain_versions);
  }
  std::string Stats() override {
    DBStats s = db_->GetStats();
    return absl::StrFormat(
        "cowdb: %u commits, %u syncs, %u pages written, %.1f MiB handed to "
        "storage, node cache hit rate %.1f %%",
        s.commits, s.syncs, s.pages_written, s.bytes_written / 1048576.0,
        100.0 * s.cache_hits /
            std::max<uint64_t>(1, s.cache_hits + s.cache_misses));
  }

 private:
  std::unique_ptr<DB> db_;
  Options options_;
};

}  // namespace

std::unique_ptr<PeerDB> OpenCowdbPeer(const std::string& dir,
                                      const PeerOptions& peer_options) {
  Options options;  // defaults: sync = true
  options.cache_bytes = peer_options.cache_bytes;
  if (peer_options.cowdb_checkpoint_memory_bytes != 0) {
    options.checkpoint_memory_bytes = peer_options.cowdb_checkpoint_memory_bytes;
  }
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(options, dir);
  Check(db.status(), "cowdb open");
  return std::make_unique<CowdbPeer>(*std::move(db), options);
}

}  // namespace cowdb::bench
