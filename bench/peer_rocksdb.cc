// RocksDB behind the peer interface: WriteOptions::sync = true on every
// write, a 256 MiB LRU block cache (the size of cowdb's node cache), a
// 10-bit bloom filter, IncreaseParallelism(2) as cowdb's own page store
// uses; everything else RocksDB's defaults (64 MiB memtable, leveled
// compaction, default compression). Readers use RocksDB snapshots.

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "bench/peer.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/version.h"

namespace cowdb::bench {
namespace {

void RocksCheck(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) {
    std::cerr << "rocksdb " << what << ": " << s.ToString() << std::endl;
    std::exit(1);
  }
}

rocksdb::Slice S(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view V(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

class RocksIterator final : public PeerIterator {
 public:
  explicit RocksIterator(rocksdb::Iterator* it) : it_(it) {}
  void Seek(std::string_view target) override { it_->Seek(S(target)); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override {
    if (it_->Valid()) return true;
    RocksCheck(it_->status(), "iterator");
    return false;
  }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return V(it_->key()); }
  std::string_view value() const override { return V(it_->value()); }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksReader final : public PeerReader {
 public:
  explicit RocksReader(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {
    ro_.snapshot = snap_;
  }
  ~RocksReader() override { db_->ReleaseSnapshot(snap_); }
  bool Get(std::string_view key, std::string_view* value) override {
    buf_.Reset();
    rocksdb::Status s = db_->Get(ro_, db_->DefaultColumnFamily(), S(key), &buf_);
    if (s.IsNotFound()) return false;
    RocksCheck(s, "get");
    *value = V(buf_);
    return true;
  }
  std::unique_ptr<PeerIterator> NewIterator() override {
    return std::make_unique<RocksIterator>(db_->NewIterator(ro_));
  }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snap_;
  rocksdb::ReadOptions ro_;
  rocksdb::PinnableSlice buf_;
};

class RocksPeer final : public PeerDB {
 public:
  RocksPeer(rocksdb::DB* db, size_t cache_bytes)
      : db_(db), cache_bytes_(cache_bytes) {
    wo_.sync = true;
  }
  ~RocksPeer() override { RocksCheck(db_->Close(), "close"); }
  const char* name() const override { return "rocksdb"; }
  void Put(std::string_view key, std::string_view value) override {
    RocksCheck(db_->Put(wo_, S(key), S(value)), "put");
  }
  void Write(const std::vector<KV>& puts) override {
    rocksdb::WriteBatch batch;
    for (const KV& kv : puts) RocksCheck(batch.Put(S(kv.first), S(kv.second)), "batch");
    RocksCheck(db_->Write(wo_, &batch), "write");
  }
  std::unique_ptr<PeerReader> NewReader() override {
    return std::make_unique<RocksReader>(db_.get());
  }
  bool reads_old_versions() const override { return true; }
  std::string Settings() const override {
    return absl::StrFormat(
        "RocksDB %d.%d.%d: WriteOptions.sync = true, LRU block cache %u MiB, "
        "bloom filter 10 bits/key, IncreaseParallelism(2), otherwise defaults "
        "(64 MiB memtable, leveled compaction, default compression); "
        "readers use snapshots",
        ROCKSDB_MAJOR, ROCKSDB_MINOR, ROCKSDB_PATCH, cache_bytes_ >> 20);
  }
  std::string Stats() override {
    uint64_t sst = 0;
    db_->GetIntProperty("rocksdb.total-sst-files-size", &sst);
    return absl::StrFormat("rocksdb: %.1f MiB of SST files", sst / 1048576.0);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions wo_;
  size_t cache_bytes_;
};

}  // namespace

std::unique_ptr<PeerDB> OpenRocksdbPeer(const std::string& dir,
                                        const PeerOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.IncreaseParallelism(2);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* db = nullptr;
  RocksCheck(rocksdb::DB::Open(o, dir, &db), "open");
  return std::make_unique<RocksPeer>(db, options.cache_bytes);
}

}  // namespace cowdb::bench
