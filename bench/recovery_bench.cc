// Recovery time: how long DB::Open takes after a crash that left a whole
// checkpoint interval of log to replay (Options::checkpoint_log_bytes,
// 64 MiB by default).
//
//   bazel run --config=opt //bench:recovery_bench -- [--dir=/var/tmp/rb] \
//       [--log_mb=64] [--batch=1] [--keys=1000000] [--value_bytes=100]
//
// A child process writes random puts (commits of --batch puts) into a new
// database with background checkpoints off until the log since the last
// checkpoint reaches --log_mb, then exits without closing (the OS keeps
// its writes, as after a process crash; sync is off to generate the load
// quickly, which does not change what is replayed). The parent then opens
// the database and reports the wall time of Open and the engine's
// recovery figures.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "engine/db.h"

ABSL_FLAG(std::string, dir, "/var/tmp/cowdb_recovery_bench", "database directory (replaced)");
ABSL_FLAG(int, log_mb, 64, "log to leave behind, MiB");
ABSL_FLAG(int, batch, 1, "puts per commit");
ABSL_FLAG(int, keys, 1000000, "key space");
ABSL_FLAG(int, value_bytes, 100, "value size");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_dir);
  std::filesystem::remove_all(dir);
  const uint64_t log_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_log_mb)) << 20;

  pid_t pid = fork();
  if (pid == 0) {
    cowdb::Options o;
    o.sync = false;
    o.background_checkpoint = false;
    auto db = cowdb::DB::Open(o, dir);
    if (!db.ok()) {
      fprintf(stderr, "open: %s\n", db.status().ToString().c_str());
      _exit(1);
    }
    std::mt19937_64 rng(1);
    const std::string value(absl::GetFlag(FLAGS_value_bytes), 'v');
    uint64_t commits = 0;
    while ((*db)->GetStats().log_bytes < log_bytes) {
      cowdb::WriteBatch b;
      for (int i = 0; i < absl::GetFlag(FLAGS_batch); ++i) {
        b.Put(absl::StrFormat("key%016x", rng() % absl::GetFlag(FLAGS_keys)), value);
      }
      if (!(*db)->Write(b).ok()) _exit(1);
      ++commits;
    }
    fprintf(stderr, "wrote %llu commits, %.1f MiB of log; crashing\n",
            static_cast<unsigned long long>(commits),
            (*db)->GetStats().log_bytes / 1048576.0);
    _exit(0);  // no close: no closing checkpoint
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "the writer failed\n");
    return 1;
  }
  const absl::Time start = absl::Now();
  auto db = cowdb::DB::Open(cowdb::Options(), dir);
  const absl::Duration open = absl::Now() - start;
  if (!db.ok()) {
    fprintf(stderr, "reopen: %s\n", db.status().ToString().c_str());
    return 1;
  }
  cowdb::DBStats s = (*db)->GetStats();
  printf("open %.2f s (engine recovery %.2f s): replayed %llu commits, latest version %llu, "
         "%llu keys\n",
         absl::ToDoubleSeconds(open), s.recovery_micros / 1e6,
         static_cast<unsigned long long>(s.replayed_commits),
         static_cast<unsigned long long>(s.latest_version),
         static_cast<unsigned long long>(s.entries));
  db->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
