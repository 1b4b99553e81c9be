// A PageStore in a Ceph RADOS pool, for databases shared by several
// machines: one writer, standbys and read replicas.
//
// Layout. A database is a RADOS namespace in a pool. In it:
//   head          one object whose omap holds every small space (meta,
//                 versions, freed, tags, log, checkpoints, system) under
//                 "<space letter>/<key in hex>"; hex keeps binary keys
//                 ordered and free of NUL bytes (librados takes omap scan
//                 bounds as C strings). Its xattrs: "cowdb" (the layout
//                 marker) and "epoch" (the fencing token, 20 decimal digits).
//   p.<hex key>   one object per page;  b.<hex key> one per blob.
//
// Commit(batch):
//   1. every page and blob the batch puts is written as its own object, and
//      all of them are acknowledged (RADOS acknowledges a write once every
//      replica has it);
//   2. one atomic operation on the head applies the small spaces' puts and
//      deletes, guarded by "head.epoch == my epoch";
//   3. the pages and blobs the batch deletes are removed. The head step
//      records them as pending ("z/..." keys) and a writer that opens the
//      store finishes what a crash interrupted, so nothing leaks.
// A crash between 1 and 2 leaves objects no version names; a later writer
// allocates the same ids again and overwrites them.
//
// Fencing. Every writer has an epoch, larger than every earlier writer's.
// Opening for writing raises head.epoch to it; the head step of every
// commit compares it, inside the OSD, so a writer that was superseded
// cannot append even if it does not know yet. Page and blob objects carry
// the epoch that wrote them: an object is created exclusively, and
// overwritten only by a writer whose epoch is at least the one it carries,
// so a superseded writer can never overwrite what a newer one wrote. A
// fenced commit fails with FailedPrecondition and the store refuses every
// later commit.
//
// This is the only file of cowdb that sees librados.

#ifndef COWDB_ENGINE_STORE_RADOS_PAGE_STORE_H_
#define COWDB_ENGINE_STORE_RADOS_PAGE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/store/page_store.h"

namespace cowdb::internal {

// Layout version, kept in the head's "cowdb" xattr. DO NOT CHANGE without
// a migration.
inline constexpr int kRadosLayoutVersion = 1;

struct RadosStoreOptions {
  // Ceph configuration file; "" uses librados' search (CEPH_CONF, then
  // /etc/ceph/ceph.conf).
  std::string conf_path;
  // The Ceph client id (the "admin" of client.admin).
  std::string client_id = "admin";
  // The pool, which must exist, and the database's namespace in it.
  std::string pool;
  std::string name;

  // Create the database when the namespace has none.
  bool create_if_missing = true;

  // Open for reading only (a replica): no epoch is taken and Commit fails.
  bool read_only = false;

  // The epoch to write as, from the cluster's coordinator; it must be at
  // least the database's. 0: take the database's epoch plus one (a single
  // writer without a coordinator; two such opens at once cannot both win).
  uint64_t epoch = 0;

  // Bound on every monitor and OSD operation, so that an unreachable
  // cluster is an error rather than a hang.
  int op_timeout_seconds = 30;
};

// Opens (or creates) the database `options.name` in `options.pool`.
// Errors:
//  - Unavailable: the cluster cannot be reached within the timeout.
//  - NotFound: the pool does not exist; or no database and
//    create_if_missing is false.
//  - FailedPrecondition: the namespace holds something that is not a cowdb
//    database or a newer layout; `epoch` is older than the database's.
//  - Aborted: with epoch 0, another writer opened at the same moment.
absl::StatusOr<std::unique_ptr<PageStore>> OpenRadosPageStore(
    const RadosStoreOptions& options);

// The database's current epoch (0 if it has none yet), read without
// opening it: a coordinator uses it to pick the next epoch.
absl::StatusOr<uint64_t> ReadRadosEpoch(const RadosStoreOptions& options);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_STORE_RADOS_PAGE_STORE_H_
