// cowdb engine benchmark: its own numbers, one process, -c opt.
//
//   bazel run --config=opt //bench:engine_bench -- --keys=1000000 --repeats=3
//
// Loads --keys keys (16-byte keys, 100-byte values) in batches of 1,000,
// then measures random point gets from a snapshot, seek + 10 nexts, a full
// scan and durable (sync = true) single-put commits. Each figure is the
// median of --repeats runs.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bench_util.h"
#include "engine/db.h"

ABSL_FLAG(uint64_t, keys, 1000000, "keys to load");
ABSL_FLAG(int, repeats, 3, "runs per measurement; the median is reported");
ABSL_FLAG(uint64_t, gets, 1000000, "point gets per run");
ABSL_FLAG(uint64_t, seeks, 200000, "seek + 10 nexts per run");
ABSL_FLAG(uint64_t, commits, 1000, "durable single-put commits per run");
ABSL_FLAG(std::string, dir, "", "database directory (default: a fresh temp dir)");
ABSL_FLAG(uint64_t, cache_mb, 256, "node cache size in MiB");

namespace {

using cowdb::bench::Check;
using cowdb::bench::Key;
using cowdb::bench::Median;
using Clock = std::chrono::steady_clock;


double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}


long RssMiB() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}


// Runs `fn` (which returns ops done) --repeats times; returns median ops/s.
double Measure(const std::function<uint64_t()>& fn) {
  std::vector<double> rates;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    auto t0 = Clock::now();
    uint64_t ops = fn();
    rates.push_back(ops / Seconds(t0, Clock::now()));
  }
  return Median(rates);
}

void Row(const char* name, double rate, const char* unit) {
  printf("%-34s %14.0f %s\n", name, rate, unit);
  fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const uint64_t n = absl::GetFlag(FLAGS_keys);
  std::string dir = absl::GetFlag(FLAGS_dir);
  bool temp = dir.empty();
  if (temp) {
    dir = (std::filesystem::temp_directory_path() / "cowdb_bench").string();
    std::filesystem::remove_all(dir);
  }
  cowdb::Options options;
  options.cache_bytes = absl::GetFlag(FLAGS_cache_mb) << 20;
  auto opened = cowdb::DB::Open(options, dir);
  Check(opened.status(), "open");
  std::unique_ptr<cowdb::DB> db = *std::move(opened);
  const std::string value(100, 'v');

  printf("cowdb engine_bench: %llu keys, 16-byte keys, 100-byte values, "
         "median of %d runs\n",
         static_cast<unsigned long long>(n), absl::GetFlag(FLAGS_repeats));

  // Load (once: it defines the database the other rows read).
  auto t0 = Clock::now();
  cowdb::bench::Load(db.get(), n, value.size());
  double load_s = Seconds(t0, Clock::now());
  cowdb::DBStats after_load = db->GetStats();
  Row("load, batches of 1000 (puts/s)", n / load_s, "puts/s");
  printf("%-34s %14.1f bytes/put\n", "  bytes written per put",
         static_cast<double>(after_load.bytes_written) / n);

  cowdb::Snapshot snap = db->GetSnapshot();
  cowdb::ReadOptions ro;
  ro.snapshot = &snap;
  std::mt19937_64 rng(1);

  double gets = Measure([&] {
    uint64_t count = absl::GetFlag(FLAGS_gets);
    for (uint64_t i = 0; i < count; ++i) {
      absl::StatusOr<std::string> v = db->Get(ro, Key(rng() % n));
      if (!v.ok()) Check(v.status(), "get");
    }
    return count;
  });
  Row("random point gets (1 thread)", gets, "gets/s");

  double seeks = Measure([&] {
    uint64_t count = absl::GetFlag(FLAGS_seeks);
    auto it = *db->NewIterator(ro);
    uint64_t seen = 0;
    for (uint64_t i = 0; i < count; ++i) {
      it->Seek(Key(rng() % n));
      for (int j = 0; j < 10 && it->Valid(); ++j, it->Next()) seen += it->value().size();
    }
    Check(it->status(), "seek");
    cowdb::bench::Consume(seen);
    return count;
  });
  Row("seek + 10 nexts", seeks, "seeks/s");

  double scan = Measure([&] {
    auto it = *db->NewIterator(ro);
    uint64_t entries = 0, bytes = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      bytes += it->key().size() + it->value().size();
      ++entries;
    }
    Check(it->status(), "scan");
    cowdb::bench::Consume(bytes);
    if (entries != n) {
      std::cerr << "scan saw " << entries << " entries, expected " << n << "\n";
      std::exit(1);
    }
    return entries;
  });
  Row("full scan", scan, "entries/s");

  cowdb::DBStats before_commits = db->GetStats();
  double commits = Measure([&] {
    uint64_t count = absl::GetFlag(FLAGS_commits);
    for (uint64_t i = 0; i < count; ++i) {
      Check(db->Put(Key(rng() % n), value).status(), "put");
    }
    return count;
  });
  cowdb::DBStats end = db->GetStats();
  uint64_t commit_count = end.commits - before_commits.commits;
  Row("durable single-put commits", commits, "commits/s");
  printf("%-34s %14.1f bytes/commit, %.1f pages/commit\n", "  written per commit",
         static_cast<double>(end.bytes_written - before_commits.bytes_written) /
             commit_count,
         static_cast<double>(end.pages_written - before_commits.pages_written) /
             commit_count);
  printf("%-34s %14.1f %%\n", "cache hit rate",
         100.0 * end.cache_hits / std::max<uint64_t>(1, end.cache_hits + end.cache_misses));
  printf("%-34s %14llu MiB\n", "on-disk size",
         static_cast<unsigned long long>(end.disk_bytes >> 20));
  printf("%-34s %14ld MiB\n", "peak RSS", RssMiB());
  snap = cowdb::Snapshot();  // snapshots go before their database
  db.reset();
  if (temp) std::filesystem::remove_all(dir);
  return 0;
}
