// Crash atomicity: a child process commits batches in a loop (sync = true)
// and reports each acknowledged version over a pipe; the parent kills it
// with SIGKILL at a random moment, reopens the database and checks that
//  - every acknowledged version is present,
//  - the latest version equals the model exactly (no partial batch), and
//  - older versions still equal the model.
// The batches are a pure function of (seed, version), so the parent can
// rebuild the model of any version. The child checkpoints every few dozen
// commits (a tiny log trigger), so kills land during checkpoints, between
// a log write and its checkpoint, and during reclamation; half the
// reopens skip the closing checkpoint, so the next open (and kills during
// it) replay the log.
//
// COWDB_SEED fixes the seed; COWDB_CRASH_CYCLES sets the cycles (default 50).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"
#include "tests/util/workload.h"

namespace cowdb {
namespace {

using testing::BatchFor;
using testing::Model;
using testing::ModelHistory;

uint64_t g_seed = 0;

// Sent by the child once the database is open.
constexpr uint64_t kReady = ~0ull;

// Every version stays readable: the parent checks old ones.
Options CrashOptions() {
  Options o;
  o.retain_versions = Options::kRetainAll;
  o.checkpoint_log_bytes = 32 << 10;
  return o;
}

// The child: commit forever, reporting each acknowledged version.
[[noreturn]] void RunChild(const std::string& path, uint64_t seed, int fd) {
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(CrashOptions(), path);
  if (!db.ok()) {
    std::cerr << "child: open failed: " << db.status() << std::endl;
    _exit(2);
  }
  if (write(fd, &kReady, sizeof(kReady)) != sizeof(kReady)) _exit(4);
  for (;;) {
    uint64_t v = (*db)->LatestVersion() + 1;
    absl::StatusOr<uint64_t> got = (*db)->Write(BatchFor(seed, v));
    if (!got.ok() || *got != v) {
      std::cerr << "child: commit failed: " << got.status() << std::endl;
      _exit(3);
    }
    if (write(fd, &v, sizeof(v)) != sizeof(v)) _exit(4);
  }
}

void ExpectVersionEquals(DB* db, uint64_t v, const Model& m) {
  ReadOptions ro;
  ro.version = v;
  ASSERT_OK_AND_ASSIGN(auto it, db->NewIterator(ro));
  SCOPED_TRACE("at version " + std::to_string(v));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectIteratesAs(*it, m));
  // Each key's lease survived the crash and the log replay (op 2).
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ASSERT_EQ(it->meta().lease, testing::LeaseOfValue(it->value())) << it->key();
  }
}

TEST(CrashTest, SigkillLosesNoAcknowledgedCommitAndShowsNoPartialBatch) {
  const char* cycles_env = std::getenv("COWDB_CRASH_CYCLES");
  const int cycles = cycles_env ? std::atoi(cycles_env) : 50;
  std::cout << "COWDB_SEED=" << g_seed << " cycles=" << cycles << std::endl;
  RecordProperty("seed", std::to_string(g_seed));
  testing::TempDir dir;
  const std::string path = dir.Sub("db");
  std::mt19937_64 rng(g_seed);
  ModelHistory history(g_seed);
  uint64_t acked = 0;
  uint64_t kills_mid_run = 0;
  uint64_t replayed = 0, cycles_replaying = 0;

  for (int cycle = 0; cycle < cycles; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      std::string fd = std::to_string(fds[1]);
      std::string seed = std::to_string(g_seed);
      execl("/proc/self/exe", "crash_test", "--child", path.c_str(),
            seed.c_str(), fd.c_str(), static_cast<char*>(nullptr));
      _exit(5);
    }
    close(fds[1]);
    // Mostly kill a running writer; sometimes one that is still opening
    // (recovering) the database.
    if (rng() % 5 != 0) {
      uint64_t ready = 0;
      ASSERT_EQ(read(fds[0], &ready, sizeof(ready)), sizeof(ready))
          << "the child died before opening the database";
      ASSERT_EQ(ready, kReady);
    }
    usleep(1000 + rng() % 100000);
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended on its own (status " << status << ")";
    uint64_t v;
    uint64_t acked_this_cycle = 0;
    while (read(fds[0], &v, sizeof(v)) == sizeof(v)) {
      if (v == kReady) continue;
      ASSERT_EQ(v, acked + acked_this_cycle + 1) << "acks out of order";
      ++acked_this_cycle;
    }
    close(fds[0]);
    acked += acked_this_cycle;
    kills_mid_run += acked_this_cycle > 0;

    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(CrashOptions(), path));
    const uint64_t latest = db->LatestVersion();
    replayed += db->GetStats().replayed_commits;
    cycles_replaying += db->GetStats().replayed_commits > 0;
    // An unacknowledged commit may have landed (the kill came after the
    // sync but before the ack), but at most that one.
    ASSERT_GE(latest, acked) << "lost an acknowledged commit";
    ASSERT_LE(latest, acked + 1);
    acked = latest;  // the next child continues from what is there
    ASSERT_NO_FATAL_FAILURE(ExpectVersionEquals(db.get(), latest, history.At(latest)));
    if (latest > 0) {
      uint64_t old = rng() % latest;
      ASSERT_NO_FATAL_FAILURE(ExpectVersionEquals(db.get(), old, history.At(old)));
    }
    auto* impl = static_cast<internal::DBImpl*>(db.get());
    ASSERT_OK(impl->VerifyVersion(latest, /*strict=*/false));
    if (rng() % 2 == 0) impl->set_checkpoint_on_close(false);
  }
  // Every version, intermediate ones included, after a last crash-like
  // reopen.
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(CrashOptions(), path));
    const uint64_t latest = db->LatestVersion();
    const uint64_t step = latest / 500 + 1;
    for (uint64_t v = 0; v <= latest; v += step) {
      ASSERT_NO_FATAL_FAILURE(ExpectVersionEquals(db.get(), v, history.At(v)));
    }
    ASSERT_OK(db->Check());
  }
  std::cout << "versions committed: " << acked << "; cycles with commits: "
            << kills_mid_run << "; opens that replayed the log: "
            << cycles_replaying << " (" << replayed << " commits)" << std::endl;
  // The test means something only if most kills interrupted a running writer.
  EXPECT_GT(kills_mid_run, static_cast<uint64_t>(cycles) / 2);
}

}  // namespace
}  // namespace cowdb

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--child") {
    cowdb::RunChild(argv[2], std::strtoull(argv[3], nullptr, 10),
                    std::atoi(argv[4]));
  }
  const char* seed = std::getenv("COWDB_SEED");
  cowdb::g_seed = seed ? std::strtoull(seed, nullptr, 10) : std::random_device()();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
