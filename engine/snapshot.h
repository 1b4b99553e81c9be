// A snapshot: the database as it was at one version.
//
// A Snapshot is a value. While any copy of it exists, its version stays
// readable and unchanged, whatever commits run meanwhile. Copying is cheap
// (a reference count); destroying the last copy releases the version.
//
//   cowdb::Snapshot snap = db->GetSnapshot();
//   db->Put("k", "new").IgnoreError();
//   cowdb::ReadOptions ro;
//   ro.snapshot = &snap;
//   db->Get(ro, "k");  // the value as of snap.version()
//
// Thread safety: a Snapshot may be shared by any number of threads.
// REQUIRES: a snapshot is not used after its DB is destroyed.

#ifndef COWDB_ENGINE_SNAPSHOT_H_
#define COWDB_ENGINE_SNAPSHOT_H_

#include <cstdint>
#include <memory>

namespace cowdb {

namespace internal {
struct Version;
class DBImpl;
}  // namespace internal

class Snapshot {
 public:
  // An empty snapshot; reads through it see the latest version.
  Snapshot() = default;

  // The version this snapshot reads; 0 for an empty snapshot.
  uint64_t version() const;
  // The branch it reads ("main" for an empty snapshot).
  std::string branch() const;

  // True for a snapshot obtained from a DB.
  bool valid() const { return version_ != nullptr; }

 private:
  friend class internal::DBImpl;
  explicit Snapshot(std::shared_ptr<const internal::Version> v)
      : version_(std::move(v)) {}

  std::shared_ptr<const internal::Version> version_;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_SNAPSHOT_H_
