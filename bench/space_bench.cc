// Space under churn with a long-lived reader: how far stored pages grow
// while a snapshot is held, and how far they come back after it is released.
//
//   bazel run --config=opt //bench:space_bench -- --retain=1
//
// Pages are counted by DB::Check (stored vs reachable from retained
// versions). With --retain=1 and no reader, what is reachable is the
// latest version alone: the live data.

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bench_util.h"
#include "engine/db.h"

ABSL_FLAG(uint64_t, keys, 100000, "keys");
ABSL_FLAG(uint64_t, commits, 20000, "update commits while the reader holds on");
ABSL_FLAG(uint64_t, retain, 1, "Options::retain_versions");

namespace {

using cowdb::bench::Check;
using cowdb::bench::Key;



cowdb::CheckReport Report(cowdb::DB* db) {
  absl::StatusOr<cowdb::CheckReport> r = db->Check();
  Check(r.status());
  return *r;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string dir = (std::filesystem::temp_directory_path() / "cowdb_space_bench").string();
  std::filesystem::remove_all(dir);
  cowdb::Options o;
  o.sync = false;  // space, not durability, is measured here
  o.retain_versions = absl::GetFlag(FLAGS_retain);
  o.background_reclaim = false;  // passes run at known points below
  auto opened = cowdb::DB::Open(o, dir);
  Check(opened.status());
  std::unique_ptr<cowdb::DB> db = *std::move(opened);
  const uint64_t keys = absl::GetFlag(FLAGS_keys);
  cowdb::bench::Load(db.get(), keys, 100);
  Check(db->Reclaim().status());
  cowdb::CheckReport start = Report(db.get());
  printf("space_bench: %llu keys, retain %llu versions, %llu commits of 10 "
         "updates\n", static_cast<unsigned long long>(keys),
         static_cast<unsigned long long>(o.retain_versions),
         static_cast<unsigned long long>(absl::GetFlag(FLAGS_commits)));
  printf("live pages at start:              %8llu\n",
         static_cast<unsigned long long>(start.pages_stored));
  auto reader = std::make_unique<cowdb::Snapshot>(db->GetSnapshot());
  std::mt19937_64 rng(1);
  for (uint64_t c = 0; c < absl::GetFlag(FLAGS_commits); ++c) {
    cowdb::WriteBatch b;
    std::string value(100, 'a' + c % 26);  // same size: the live data stays put
    for (int j = 0; j < 10; ++j) b.Put(Key(rng() % keys), value);
    Check(db->Write(b).status());
    if (c % 1000 == 999) Check(db->Reclaim().status());
  }
  Check(db->Reclaim().status());
  cowdb::CheckReport held = Report(db.get());
  printf("stored pages, reader holding:     %8llu  (%.2fx of start)\n",
         static_cast<unsigned long long>(held.pages_stored),
         static_cast<double>(held.pages_stored) / start.pages_stored);
  reader.reset();
  Check(db->Reclaim().status());
  cowdb::CheckReport after = Report(db.get());
  printf("stored pages, reader released:    %8llu  (%.2fx of start)\n",
         static_cast<unsigned long long>(after.pages_stored),
         static_cast<double>(after.pages_stored) / start.pages_stored);
  printf("reachable from retained versions: %8llu; leaked %llu\n",
         static_cast<unsigned long long>(after.pages_reachable),
         static_cast<unsigned long long>(after.pages_leaked));
  db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
