// A small common interface over the engines that //bench:peer_bench
// compares: cowdb, LMDB and RocksDB, each in its own peer_<engine>.cc.
//
// The interface is what the side-by-side workloads need and no more:
// durable commits of one put or of a batch, a read view (a snapshot) with
// point gets and an iterator, and the settings each engine runs with.
// Every write through it is durable (synced before it returns) on every
// engine, so rows compare equal durability.
//
// Errors stop the benchmark (bench::Check): a benchmark has no use for a
// failed write.
//
// Thread safety: a PeerDB may be used by many threads at once. A
// PeerReader, and the iterators made from it, belong to the thread that
// created the reader: LMDB binds a read transaction to its thread, so a
// reader is created, used and destroyed on one thread, and a thread holds
// at most one LMDB reader at a time.

#ifndef COWDB_BENCH_PEER_H_
#define COWDB_BENCH_PEER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cowdb::bench {

// One put of a batch. The views must outlive the Write call.
using KV = std::pair<std::string_view, std::string_view>;

// An ordered cursor over a reader's version.
class PeerIterator {
 public:
  virtual ~PeerIterator() = default;
  // Positions at the first key >= `target`.
  virtual void Seek(std::string_view target) = 0;
  virtual void SeekToFirst() = 0;
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  // REQUIRES: Valid(). Valid until the iterator moves.
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
};

// A consistent read view of the database as of its creation: a cowdb
// Snapshot, a RocksDB snapshot, an LMDB read transaction. Destroying it
// releases the version.
class PeerReader {
 public:
  virtual ~PeerReader() = default;
  // Sets *value to the value of `key` and returns true, or returns false
  // if the key is absent. *value stays valid until the next call on this
  // reader (engines that can return a view into their pages do so).
  virtual bool Get(std::string_view key, std::string_view* value) = 0;
  // REQUIRES: the iterator is destroyed before this reader.
  virtual std::unique_ptr<PeerIterator> NewIterator() = 0;
};

class PeerDB {
 public:
  virtual ~PeerDB() = default;
  virtual const char* name() const = 0;
  // One durable commit of one put.
  virtual void Put(std::string_view key, std::string_view value) = 0;
  // One durable, atomic commit of all `puts`.
  virtual void Write(const std::vector<KV>& puts) = 0;
  // A read view of the latest committed state (see thread safety above).
  virtual std::unique_ptr<PeerReader> NewReader() = 0;
  // Whether a reader can be kept to read an old version while commits go
  // on, for the old-version rows (W5). LMDB is reported n/a there.
  virtual bool reads_old_versions() const = 0;
  // The settings this engine runs with, one line, for the report.
  virtual std::string Settings() const = 0;
  // Engine counters worth printing after the run (may be empty).
  virtual std::string Stats() { return ""; }
};

struct PeerOptions {
  // Bytes of cache for decoded pages / blocks: cowdb's node cache,
  // RocksDB's block cache. LMDB has none (the OS page cache serves it).
  size_t cache_bytes = 256 << 20;
  // LMDB's map size (address space reserved; the file grows as written).
  size_t lmdb_map_bytes = size_t{64} << 30;
  // cowdb's Options::checkpoint_memory_bytes; 0 keeps the default.
  uint64_t cowdb_checkpoint_memory_bytes = 0;
};

// Opens (creating) a database of `engine` ("cowdb", "lmdb", "rocksdb") in
// the directory `dir`, which must not exist or be empty.
std::unique_ptr<PeerDB> OpenCowdbPeer(const std::string& dir,
                                      const PeerOptions& options);
std::unique_ptr<PeerDB> OpenLmdbPeer(const std::string& dir,
                                     const PeerOptions& options);
std::unique_ptr<PeerDB> OpenRocksdbPeer(const std::string& dir,
                                        const PeerOptions& options);

}  // namespace cowdb::bench

#endif  // COWDB_BENCH_PEER_H_
