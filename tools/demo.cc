// A tour of the embedded API on a real database directory.
//
//   bazel run //tools:demo -- /tmp/cowdb-demo
//
// Writes a few versions, reads an old version back, iterates, counts, and
// prints what it did. Safe to run repeatedly on the same directory: each
// run adds versions on top of the previous ones.

#include <cstdlib>
#include <iostream>
#include <string>

#include "engine/db.h"

namespace {

int Fail(const absl::Status& s) {
  std::cerr << "error: " << s << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = argc > 1 ? argv[1] : "cowdb-data";
  // Under `bazel run`, resolve relative paths against the caller's cwd.
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd != nullptr && !path.empty() && path[0] != '/') {
    path = std::string(cwd) + "/" + path;
  }
  absl::StatusOr<std::unique_ptr<cowdb::DB>> opened =
      cowdb::DB::Open(cowdb::Options(), path);
  if (!opened.ok()) return Fail(opened.status());
  cowdb::DB& db = **opened;
  std::cout << "opened " << path << " at version " << db.LatestVersion()
            << "\n";

  // Version A: a batch of three accounts, committed atomically.
  cowdb::WriteBatch batch;
  batch.Put("account/alice", "100");
  batch.Put("account/bob", "50");
  batch.Put("account/carol", "75");
  absl::StatusOr<uint64_t> a = db.Write(batch);
  if (!a.ok()) return Fail(a.status());
  std::cout << "version " << *a << ": put alice=100 bob=50 carol=75\n";

  // Hold a snapshot of version A while the data moves on.
  cowdb::Snapshot snap = db.GetSnapshot();

  // Version B: a transfer; version C: bob closes his account.
  cowdb::WriteBatch transfer;
  transfer.Put("account/alice", "70");
  transfer.Put("account/bob", "80");
  absl::StatusOr<uint64_t> b = db.Write(transfer);
  if (!b.ok()) return Fail(b.status());
  std::cout << "version " << *b << ": alice pays bob 30\n";
  absl::StatusOr<uint64_t> c = db.Delete("account/bob");
  if (!c.ok()) return Fail(c.status());
  std::cout << "version " << *c << ": delete bob\n";

  auto show = [&](const char* label, const cowdb::ReadOptions& ro) -> int {
    absl::StatusOr<std::unique_ptr<cowdb::Iterator>> it = db.NewIterator(ro);
    if (!it.ok()) return Fail(it.status());
    std::cout << label << " (version " << (*it)->version() << "):";
    for ((*it)->Seek("account/"); (*it)->Valid() && (*it)->key() < "account0";
         (*it)->Next()) {
      std::cout << " " << (*it)->key().substr(8) << "=" << (*it)->value()
                << "@v" << (*it)->mod_version();
    }
    std::cout << "\n";
    return (*it)->status().ok() ? 0 : Fail((*it)->status());
  };

  cowdb::ReadOptions latest;
  cowdb::ReadOptions at_snapshot;
  at_snapshot.snapshot = &snap;
  cowdb::ReadOptions at_b;
  at_b.version = *b;
  if (show("latest       ", latest) || show("snapshot of A", at_snapshot) ||
      show("version B    ", at_b)) {
    return 1;
  }

  absl::StatusOr<std::string> bob = db.Get(latest, "account/bob");
  std::cout << "get bob at latest: "
            << (bob.ok() ? *bob : std::string(bob.status().message())) << "\n";
  absl::StatusOr<uint64_t> n = db.Count(at_snapshot, "account/", "account0");
  if (!n.ok()) return Fail(n.status());
  std::cout << "accounts at version " << snap.version() << ": " << *n << "\n";

  absl::StatusOr<cowdb::Snapshot> future = db.SnapshotAt(db.LatestVersion() + 1);
  std::cout << "snapshot of a future version: " << future.status() << "\n";

  cowdb::DBStats s = db.GetStats();
  std::cout << "stats: latest version " << s.latest_version << ", "
            << s.entries << " keys, " << s.commits << " commits, "
            << s.pages_written << " pages written, cache " << s.cache_hits
            << " hits / " << s.cache_misses << " misses\n";
  return 0;
}
