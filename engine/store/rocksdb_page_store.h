// The default PageStore: one RocksDB database in the cowdb directory, one
// column family per Space.
//
// Directory layout:
//   <path>/COWDB        marker file: "cowdb <layout version>\n"; written
//                       (and synced) before anything else, so a directory
//                       without it is never mistaken for a database. When
//                       the store creates <path>, it syncs the parent
//                       directory too. A directory holding nothing but
//                       COWDB.tmp (an interrupted creation) counts as empty.
//   <path>/...          RocksDB's files
//
// This is the only file of cowdb that sees RocksDB types.

#ifndef COWDB_ENGINE_STORE_ROCKSDB_PAGE_STORE_H_
#define COWDB_ENGINE_STORE_ROCKSDB_PAGE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/store/page_store.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace cowdb::internal {

// Directory layout version written to the marker file. DO NOT CHANGE
// without a migration.
inline constexpr int kStoreLayoutVersion = 1;

struct RocksDBStoreOptions {
  // Create the database when `path` does not exist or is an empty directory.
  bool create_if_missing = true;
  // RocksDB's own block cache; the node cache above is the main cache.
  size_t block_cache_bytes = 8 << 20;

  // For fault-injection tests. When set, every file operation of the store
  // goes through this Env's FileSystem: RocksDB's and the marker file's.
  // Not owned; must outlive the store.
  // Default: nullptr, the process's default file system.
  rocksdb::Env* env = nullptr;

  // RocksDB's memtable size in bytes; 0 keeps RocksDB's default (64 MiB).
  // Tests set it small so that flushes, compactions and manifest updates
  // happen within a short workload.
  // Default: 0.
  size_t write_buffer_bytes = 0;
};

// Opens (or creates) the store at `path`.
// Errors:
//  - FailedPrecondition: `path` is a non-empty directory without a marker
//    (not a cowdb database), or its layout version is newer than this build.
//  - NotFound: nothing at `path` and create_if_missing is false.
//  - others from the file system or RocksDB (e.g. the database is locked by
//    another process).
// Nothing in the directory is modified when an error is returned, except
// when a new database was being created.
absl::StatusOr<std::unique_ptr<PageStore>> OpenRocksDBPageStore(
    const std::string& path, const RocksDBStoreOptions& options);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_STORE_ROCKSDB_PAGE_STORE_H_
