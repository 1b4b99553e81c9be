// Uses the embedded engine and the in-process client library, as a
// program built outside Bazel (tests/packaging/cmake_example) or in another
// Bazel workspace (tests/packaging/bazel_example) would. Prints "ok" and
// exits 0, or says what went wrong and exits 1.  Usage: example DIR

#include <iostream>
#include <memory>
#include <string>

#include "client/client.h"
#include "client/local_client.h"
#include "engine/db.h"

int Fail(const std::string& what) {
  std::cerr << "example: " << what << "\n";
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: example DIR");
  const std::string dir = argv[1];
  {
    absl::StatusOr<std::unique_ptr<cowdb::DB>> db = cowdb::DB::Open(cowdb::Options(), dir + "/db");
    if (!db.ok()) return Fail(db.status().ToString());
    absl::StatusOr<uint64_t> v1 = (*db)->Put("greeting", "hello");
    if (!v1.ok()) return Fail(v1.status().ToString());
    if (!(*db)->Put("greeting", "bye").ok()) return Fail("second put");
    cowdb::ReadOptions at;
    at.version = *v1;
    absl::StatusOr<std::string> old = (*db)->Get(at, "greeting");
    if (!old.ok() || *old != "hello") return Fail("read at version 1");
    absl::StatusOr<cowdb::KeyHistory> h = (*db)->History("greeting", {});
    if (!h.ok() || h->changes.size() != 2) return Fail("history");
  }
  absl::StatusOr<std::unique_ptr<cowdb::client::Client>> client =
      cowdb::client::OpenLocal(dir + "/db", cowdb::Options());
  if (!client.ok()) return Fail(client.status().ToString());
  absl::StatusOr<cowdb::client::Entry> e = (*client)->Get("greeting");
  if (!e.ok() || e->value != "bye") return Fail("client get");
  std::cout << "ok\n";
  return 0;
}
