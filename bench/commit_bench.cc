// Durable commit throughput with concurrent committers (group commit), and
// reader throughput while a writer commits as fast as it can.
//
//   bazel run --config=opt //bench:commit_bench -- --repeats=3
//
// Rows:
//  - single-put commits/s (sync = true) with 1, 4, 16, 64 committer threads
//    (also syncs per commit: below 1 means commits shared a sync);
//  - point gets/s of one reader alone, then with one writer committing
//    single-put durable commits in a loop; the ratio is the target.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "engine/db.h"

ABSL_FLAG(int, repeats, 3, "runs per row; the median is reported");
ABSL_FLAG(double, seconds, 2.0, "duration of each run");
ABSL_FLAG(std::string, threads, "1,4,16,64", "committer thread counts");
ABSL_FLAG(uint64_t, keys, 100000, "keys preloaded");
ABSL_FLAG(std::string, dir, "", "database directory (default: temp)");
ABSL_FLAG(bool, sync, true, "sync each commit (false: measure the CPU path)");
ABSL_FLAG(bool, reads, true, "also run the reader rows");

namespace {

using cowdb::bench::Check;
using cowdb::bench::Key;
using cowdb::bench::Median;
using Clock = std::chrono::steady_clock;




struct Run {
  double rate;
  double syncs_per_commit;
};

// `threads` committers put single keys with sync for --seconds.
Run Commits(cowdb::DB* db, int threads, uint64_t keys) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  uint64_t syncs0 = db->GetStats().syncs;
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::string value(100, 'c');
      while (!stop.load(std::memory_order_relaxed)) {
        Check(db->Put(Key(rng() % keys), value).status());
        done.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds)));
  stop = true;
  for (auto& th : pool) th.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  uint64_t syncs = db->GetStats().syncs - syncs0;
  return {done / secs, static_cast<double>(syncs) / done};
}

// One reader's point gets/s, optionally with a writer committing.
double Reads(cowdb::DB* db, uint64_t keys, bool with_writer) {
  std::atomic<bool> stop{false};
  std::thread writer;
  if (with_writer) {
    writer = std::thread([&] {
      std::mt19937_64 rng(99);
      std::string value(100, 'w');
      while (!stop.load(std::memory_order_relaxed)) {
        Check(db->Put(Key(rng() % keys), value).status());
      }
    });
  }
  std::mt19937_64 rng(7);
  uint64_t n = 0;
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration<double>(absl::GetFlag(FLAGS_seconds));
  cowdb::ReadOptions ro;
  while (Clock::now() < end) {
    for (int i = 0; i < 1000; ++i) {
      absl::StatusOr<std::string> v = db->Get(ro, Key(rng() % keys));
      if (!v.ok()) Check(v.status());
    }
    n += 1000;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  if (writer.joinable()) writer.join();
  return n / secs;
}

// Microseconds per 4 KiB write + fdatasync in `dir`: appending to a growing
// file (what a log does) and overwriting in place. The floor under a
// durable commit on this disk.
std::pair<double, double> SyncLatencyMicros(const std::string& dir) {
  std::string path = dir + "/sync_probe";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return {0, 0};
  std::string block(4096, 'x');
  constexpr int kN = 300;
  auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) {
    if (write(fd, block.data(), block.size()) < 0 || fdatasync(fd) != 0) break;
  }
  double append = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kN;
  t0 = Clock::now();
  for (int i = 0; i < kN; ++i) {
    if (pwrite(fd, block.data(), block.size(), 0) < 0 || fdatasync(fd) != 0) break;
  }
  double overwrite = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kN;
  close(fd);
  unlink(path.c_str());
  return {append, overwrite};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string dir = absl::GetFlag(FLAGS_dir);
  bool temp = dir.empty();
  if (temp) {
    dir = (std::filesystem::temp_directory_path() / "cowdb_commit_bench").string();
    std::filesystem::remove_all(dir);
  }
  cowdb::Options options;
  options.sync = absl::GetFlag(FLAGS_sync);
  options.retain_versions = 20000;  // old-version rows read v - 10,000
  auto opened = cowdb::DB::Open(options, dir);
  Check(opened.status());
  std::unique_ptr<cowdb::DB> db = *std::move(opened);
  const uint64_t keys = absl::GetFlag(FLAGS_keys);
  cowdb::bench::Load(db.get(), keys, 100);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  auto [append_us, overwrite_us] = SyncLatencyMicros(dir);
  printf("disk: 4 KiB append + fdatasync %.0f us, overwrite + fdatasync %.0f us\n",
         append_us, overwrite_us);
  printf("cowdb commit_bench: %llu keys preloaded, sync = %s, %.1f s runs, "
         "median of %d\n",
         static_cast<unsigned long long>(keys),
         options.sync ? "true" : "false", absl::GetFlag(FLAGS_seconds),
         repeats);
  for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_threads), ',')) {
    int threads = std::stoi(std::string(t));
    std::vector<double> rates, syncs;
    for (int r = 0; r < repeats; ++r) {
      Run run = Commits(db.get(), threads, keys);
      rates.push_back(run.rate);
      syncs.push_back(run.syncs_per_commit);
    }
    printf("%3d committers: %10.0f commits/s  %.3f syncs/commit\n", threads,
           Median(rates), Median(syncs));
    fflush(stdout);
  }
  if (!absl::GetFlag(FLAGS_reads)) return 0;
  // Point reads at old versions against reads at the latest.
  const uint64_t latest = db->LatestVersion();
  auto reads_at = [&](uint64_t version) {
    absl::StatusOr<cowdb::Snapshot> snap = db->SnapshotAt(version);
    Check(snap.status());
    cowdb::ReadOptions ro;
    ro.snapshot = &*snap;
    std::mt19937_64 rng(11);
    std::vector<double> rates;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = Clock::now();
      for (int i = 0; i < 200000; ++i) {
        absl::StatusOr<std::string> v = db->Get(ro, Key(rng() % keys));
        if (!v.ok()) Check(v.status());
      }
      rates.push_back(200000 / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return Median(rates);
  };
  const double at_latest = reads_at(latest);
  printf("gets at latest:     %10.0f gets/s\n", at_latest);
  for (uint64_t back : {1, 100, 10000}) {
    if (back > latest) continue;
    double rate = reads_at(latest - back);
    printf("gets at v-%-6llu    %10.0f gets/s  (%.2fx of latest)\n",
           static_cast<unsigned long long>(back), rate, rate / at_latest);
  }
  fflush(stdout);
  std::vector<double> solo, mixed;
  for (int r = 0; r < repeats; ++r) {
    solo.push_back(Reads(db.get(), keys, false));
    mixed.push_back(Reads(db.get(), keys, true));
  }
  printf("reader alone:       %10.0f gets/s\n", Median(solo));
  printf("reader + 1 writer:  %10.0f gets/s  (%.2fx of alone)\n", Median(mixed),
         Median(mixed) / Median(solo));
  db.reset();
  if (temp) std::filesystem::remove_all(dir);
  return 0;
}
