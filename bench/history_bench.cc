// Key history cost: how long DB::History takes, and how many versions it
// had to read, for one key of a large database.
//
//   bazel run --config=opt //bench:history_bench -- [--dir=/var/tmp/hb] \
//       [--keys=1000000] [--changes=1000] [--others=99] [--repeats=5]
//
// Loads --keys keys (batches of 10,000), then makes --changes changes to
// the key "hot" (puts, and every tenth a delete), each followed by
// --others single-put commits to random other keys, with a checkpoint per
// --checkpoint_mb of log (so that most versions are not held in memory
// and are rebuilt from their checkpoint and the log to be read). Then
// times, as the
// median of --repeats runs:
//   - the whole history of "hot" (every change, reaching versions before
//     the last checkpoint, which are rebuilt from the log);
//   - the last 10 changes (held versions only, in memory);
//   - a point read, for scale.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/db.h"

ABSL_FLAG(std::string, dir, "/var/tmp/cowdb_history_bench", "database directory (replaced)");
ABSL_FLAG(int, keys, 1000000, "keys loaded first");
ABSL_FLAG(int, changes, 1000, "changes of the hot key");
ABSL_FLAG(int, others, 99, "commits to other keys after each change of the hot key");
ABSL_FLAG(int, repeats, 5, "runs per figure (the median is reported)");
ABSL_FLAG(int, checkpoint_mb, 2, "log between checkpoints, MiB (the default is 64)");

namespace {

void Die(const std::string& what) {
  fprintf(stderr, "history_bench: %s\n", what.c_str());
  exit(1);
}

template <typename F>
double MedianMillis(int repeats, F f) {
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const absl::Time start = absl::Now();
    f();
    ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::filesystem::remove_all(dir);
  cowdb::Options o;
  o.sync = false;  // loading speed; History reads the same either way
  o.retain_versions = cowdb::Options::kRetainAll;
  o.checkpoint_log_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_checkpoint_mb)) << 20;
  auto opened = cowdb::DB::Open(o, dir);
  if (!opened.ok()) Die(opened.status().ToString());
  cowdb::DB& db = **opened;
  const std::string value(100, 'v');
  const int keys = absl::GetFlag(FLAGS_keys);
  for (int i = 0; i < keys; i += 10000) {
    cowdb::WriteBatch b;
    for (int j = i; j < std::min(keys, i + 10000); ++j) {
      b.Put(absl::StrFormat("key%016d", j), value);
    }
    if (!db.Write(b).ok()) Die("load");
  }
  std::mt19937_64 rng(1);
  const int changes = absl::GetFlag(FLAGS_changes);
  for (int c = 0; c < changes; ++c) {
    if (c % 10 == 9) {
      if (!db.Delete("hot").ok()) Die("delete");
    } else if (!db.Put("hot", absl::StrFormat("%d", c)).ok()) {
      Die("put");
    }
    for (int i = 0; i < absl::GetFlag(FLAGS_others); ++i) {
      if (!db.Put(absl::StrFormat("key%016d", rng() % keys), value).ok()) Die("put");
    }
  }
  const cowdb::DBStats st = db.GetStats();
  const int repeats = absl::GetFlag(FLAGS_repeats);
  size_t listed = 0;
  const double all_ms = MedianMillis(repeats, [&] {
    auto h = db.History("hot", {});
    if (!h.ok()) Die(h.status().ToString());
    listed = h->changes.size();
  });
  cowdb::HistoryOptions last10;
  last10.limit = 10;
  const double last10_ms = MedianMillis(repeats, [&] {
    if (!db.History("hot", last10).ok()) Die("history");
  });
  const double get_ms = MedianMillis(repeats * 100, [&] {
    db.Get(cowdb::ReadOptions(), "hot").IgnoreError();
  });
  printf("keys %d, versions %llu, checkpoints %llu (last at version %llu)\n", keys,
         static_cast<unsigned long long>(st.latest_version),
         static_cast<unsigned long long>(st.checkpoints),
         static_cast<unsigned long long>(st.checkpoint_version));
  printf("history of a key with %zu changes: %.1f ms (%.1f us per change)\n", listed, all_ms,
         1000 * all_ms / std::max<size_t>(1, listed));
  printf("its last 10 changes: %.3f ms; a point read: %.4f ms (medians of %d)\n", last10_ms,
         get_ms, repeats);
  return 0;
}
