// Simulated power loss. Each cycle a child process runs the database on a
// FaultFileSystem (tests/util/fault_fs.h) that records what was synced. At
// a random file operation the machine "stops": every later write fails.
// The child then cuts every file back to what a power loss would keep
// (synced bytes, sometimes plus a torn part of the unsynced tail; unsynced
// directory entries lost from the end) and exits without closing anything,
// as a machine that lost power would. The parent reopens the database on
// the plain file system and checks:
//  - every acknowledged commit is present (the latest version is at least
//    the last acknowledged one);
//  - a commit whose call failed is present entirely or not at all, and no
//    version newer than the last attempted one exists;
//  - the latest version equals its model exactly: nothing partial;
//  - DB::Check passes and finds no leaked page.
// The writer then goes on from whatever version survived. A fresh database
// is created every 20 cycles, so that crashes during creation are covered.
//
// The positive control runs the same harness with Options::sync = false and
// requires it to report lost acknowledged commits: the harness can see a
// loss.
//
// COWDB_SEED fixes the seed; COWDB_POWER_LOSS_CYCLES sets the cycles
// (default 200; 50 under ASan).

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/rocksdb_page_store.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "tests/util/fault_fs.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"
#include "tests/util/workload.h"

namespace cowdb {
namespace {

using testing::FaultFileSystem;
using testing::Model;
using testing::ModelHistory;

uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("COWDB_SEED");
    return env ? std::strtoull(env, nullptr, 10) : std::random_device()();
  }();
  return seed;
}

// Sanitized builds run about ten times slower: fewer cycles by default.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr int kDefaultCycles = 50;
#else
constexpr int kDefaultCycles = 200;
#endif
#else
constexpr int kDefaultCycles = 200;
#endif

int CyclesFromEnv(int fallback) {
  const char* env = std::getenv("COWDB_POWER_LOSS_CYCLES");
  return env ? std::atoi(env) : fallback;
}

struct PowerLossConfig {
  bool sync = true;  // Options::sync
  int cycles = 200;
  int commits_per_cycle = 15;
  int cycles_per_db = 20;  // a fresh database every this many cycles
  // The freeze comes at a random mutating file operation in [1, budget]
  // (opening takes about 60, a commit 2 to 3, a memtable flush about 10).
  uint64_t mutation_budget = 120;
  double torn_fraction = 0.5;
};

// What the harness saw. Every field after `acked_lost` must be 0 in a
// correct engine, with or without sync.
struct PowerLossStats {
  int cycles = 0;
  int databases = 0;
  uint64_t commits_acked = 0;
  uint64_t commits_unknown = 0;   // calls that failed (frozen)
  uint64_t unknown_present = 0;   // of which present after the crash
  int freezes_during_open = 0;
  uint64_t files_cut = 0;
  uint64_t files_torn = 0;
  uint64_t dir_ops_undone = 0;
  // File mutations the still-running child tried after its power loss
  // (all must be refused), and the cycles with any.
  uint64_t afterlife_tried = 0;
  int afterlife_cycles = 0;
  uint64_t afterlife_done = 0;    // ... that went through: must be 0
  uint64_t acked_lost = 0;        // acknowledged commits missing
  int cycles_with_loss = 0;
  int wrong_states = 0;           // latest version differs from its model
                                  // in a store that passes Check
  int damaged_states = 0;         // ... in a store that fails Check
  int versions_from_nowhere = 0;  // newer than anything attempted
  int reopen_failures = 0;
  int check_failures = 0;         // Check failed or found leaks
  // Open failed because the MANIFEST names an SST file that is missing,
  // or fails its checksum. The missing SST (about 1 in 600 cycles) came
  // from the fault file system letting the child's still-running threads
  // write after the simulated power loss (fixed); the checksum mismatch
  // (1 in ~1,600 before that fix, 1 in 19,995 after it) is not explained
  // yet (docs/TESTING.md, "Open findings"). Counted apart to name them,
  // and failed on with sync (the control without sync reports them).
  int rocksdb_manifest_errors = 0;
  std::vector<std::string> problems;  // the first few, described

  void Problem(const std::string& what) {
    if (problems.size() < 10) problems.push_back(what);
  }
  std::string Summary() const {
    std::string s = "cycles=" + std::to_string(cycles) +
                    " databases=" + std::to_string(databases) +
                    " acked=" + std::to_string(commits_acked) +
                    " unknown=" + std::to_string(commits_unknown) +
                    " unknown_present=" + std::to_string(unknown_present) +
                    " freezes_in_open=" + std::to_string(freezes_during_open) +
                    " files_cut=" + std::to_string(files_cut) +
                    " files_torn=" + std::to_string(files_torn) +
                    " dir_ops_undone=" + std::to_string(dir_ops_undone) +
                    " afterlife_tried=" + std::to_string(afterlife_tried) +
                    " (cycles " + std::to_string(afterlife_cycles) + ")" +
                    " afterlife_done=" + std::to_string(afterlife_done) +
                    " | acked_lost=" + std::to_string(acked_lost) +
                    " cycles_with_loss=" + std::to_string(cycles_with_loss) +
                    " wrong_states=" + std::to_string(wrong_states) +
                    " damaged_states=" + std::to_string(damaged_states) +
                    " from_nowhere=" + std::to_string(versions_from_nowhere) +
                    " reopen_failures=" + std::to_string(reopen_failures) +
                    " check_failures=" + std::to_string(check_failures) +
                    " rocksdb_manifest_errors=" + std::to_string(rocksdb_manifest_errors);
    for (const std::string& p : problems) s += "\n  " + p;
    return s;
  }
};

Options TestOptions(bool sync) {
  Options o;
  o.sync = sync;
  o.retain_versions = 20;  // reclamation runs (its batches are unsynced)
  o.page_size = 1024;      // deeper trees, more pages per commit
  o.inline_value_limit = 256;
  return o;
}

// The state of one database across cycles.
struct Database {
  std::string path;
  uint64_t seed = 0;
  std::unique_ptr<ModelHistory> history;
  uint64_t durable = 0;  // the latest version after the last recovery
};

// What the parent tells a child: one cycle's work.
struct ChildTask {
  std::string path;        // the database
  std::string stash;       // the fault file system's stash directory
  uint64_t db_seed = 0;    // BatchFor's seed
  bool sync = true;
  uint64_t freeze_at = 1;  // freeze at this mutating file operation
  int commits = 0;
  uint64_t loss_seed = 0;  // for SimulatePowerLoss
  double torn_fraction = 0;
  std::vector<std::string> unsynced_dirs;  // carried from the last cycle

  std::vector<std::string> ToArgs() const {
    std::vector<std::string> a = {
        path, stash, std::to_string(db_seed), sync ? "1" : "0",
        std::to_string(freeze_at), std::to_string(commits),
        std::to_string(loss_seed), std::to_string(torn_fraction)};
    a.insert(a.end(), unsynced_dirs.begin(), unsynced_dirs.end());
    return a;
  }
  static ChildTask FromArgs(int argc, char** argv) {
    ChildTask t;
    t.path = argv[0];
    t.stash = argv[1];
    t.db_seed = std::strtoull(argv[2], nullptr, 10);
    t.sync = std::string(argv[3]) == "1";
    t.freeze_at = std::strtoull(argv[4], nullptr, 10);
    t.commits = std::atoi(argv[5]);
    t.loss_seed = std::strtoull(argv[6], nullptr, 10);
    t.torn_fraction = std::atof(argv[7]);
    for (int i = 8; i < argc; ++i) t.unsynced_dirs.push_back(argv[i]);
    return t;
  }
};

// The child: runs commits on the fault file system until it freezes (or
// the commits are done, then freezes), simulates the power loss and exits
// without closing the database. Reports over `out`, one line each:
//   ack V | unknown V | open-failed | loss CUT TORN UNDONE | unsynced-dir P
[[noreturn]] void RunChild(const ChildTask& task, FILE* out) {
  auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                              task.stash);
  for (const std::string& d : task.unsynced_dirs) fs->AddUnsyncedDirCreation(d);
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  internal::RocksDBStoreOptions store;
  store.env = env.get();
  store.write_buffer_bytes = 64 << 10;  // flushes every few commits
  fs->FreezeAtMutation(task.freeze_at);
  absl::StatusOr<std::unique_ptr<internal::DBImpl>> db =
      internal::DBImpl::OpenAt(TestOptions(task.sync), task.path, store);
  if (!db.ok()) {
    std::fprintf(out, "open-failed\n");
  } else {
    for (int i = 0; i < task.commits; ++i) {
      const uint64_t v = (*db)->LatestVersion() + 1;
      absl::StatusOr<uint64_t> got =
          (*db)->Write(testing::BatchFor(task.db_seed, v));
      if (!got.ok()) {
        std::fprintf(out, "unknown %llu\n", static_cast<unsigned long long>(v));
        break;
      }
      std::fprintf(out, "ack %llu\n", static_cast<unsigned long long>(*got));
      std::fflush(out);
    }
  }
  fs->Freeze();
  std::mt19937_64 rng(task.loss_seed);
  testing::PowerLossReport loss = fs->SimulatePowerLoss(rng, task.torn_fraction);
  std::fprintf(out, "loss %llu %llu %llu\n",
               static_cast<unsigned long long>(loss.files_cut),
               static_cast<unsigned long long>(loss.files_torn),
               static_cast<unsigned long long>(loss.dir_ops_undone));
  for (const std::string& d : loss.unsynced_dirs) {
    std::fprintf(out, "unsynced-dir %s\n", d.c_str());
  }
  // The database is still open: its background threads (flushes,
  // compactions, cowdb's checkpoints) run until the process exits. They
  // must change nothing on disk any more.
  // COWDB_POWER_LOSS_AFTERLIFE_MS (default 2) is how long the child lives
  // on; COWDB_POWER_LOSS_AFTERLIFE_LOG lists the operations tried then.
  const uint64_t mutations = fs->mutations(), injected = fs->injected();
  const uint64_t ops = fs->ops();
  const char* afterlife_ms = std::getenv("COWDB_POWER_LOSS_AFTERLIFE_MS");
  usleep(1000 * (afterlife_ms != nullptr ? std::atoi(afterlife_ms) : 2));
  if (std::getenv("COWDB_POWER_LOSS_AFTERLIFE_LOG") != nullptr) {
    for (uint64_t n = ops + 1; n <= fs->ops(); ++n) {
      std::fprintf(stderr, "afterlife op %s\n", fs->DescribeOp(n).c_str());
    }
  }
  const uint64_t tried = fs->mutations() - mutations;
  const uint64_t refused = fs->injected() - injected;
  std::fprintf(out, "afterlife %llu %llu\n", static_cast<unsigned long long>(tried),
               static_cast<unsigned long long>(tried - std::min(tried, refused)));
  std::fflush(out);
  _exit(0);  // the power is off: no destructor runs
}

// What the child reported.
struct ChildResult {
  uint64_t acked = 0;      // the last acknowledged version (0: none)
  uint64_t attempted = 0;  // a commit whose call failed (0: none)
  uint64_t acks = 0;
  bool open_failed = false;
  bool finished = false;   // it reached the power loss
  uint64_t files_cut = 0, files_torn = 0, dir_ops_undone = 0;
  // File mutations tried after the power loss, and of those done.
  uint64_t afterlife_tried = 0, afterlife_done = 0;
  std::vector<std::string> unsynced_dirs;
};

// Runs one cycle in a child process (a fresh process, as after a reboot).
ChildResult RunCycleInChild(const ChildTask& task) {
  ChildResult r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::vector<std::string> args = task.ToArgs();
    std::string fd = std::to_string(fds[1]);
    std::vector<char*> argv = {const_cast<char*>("power_loss_test"),
                               const_cast<char*>("--child"), fd.data()};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(5);
  }
  close(fds[1]);
  FILE* in = fdopen(fds[0], "r");
  char line[4096];
  while (std::fgets(line, sizeof(line), in) != nullptr) {
    std::istringstream ls(line);
    std::string what;
    ls >> what;
    if (what == "ack") {
      ls >> r.acked;
      ++r.acks;
    } else if (what == "unknown") {
      ls >> r.attempted;
    } else if (what == "open-failed") {
      r.open_failed = true;
    } else if (what == "loss") {
      ls >> r.files_cut >> r.files_torn >> r.dir_ops_undone;
      r.finished = true;
    } else if (what == "afterlife") {
      ls >> r.afterlife_tried >> r.afterlife_done;
    } else if (what == "unsynced-dir") {
      std::string d;
      ls >> d;
      r.unsynced_dirs.push_back(d);
    }
  }
  std::fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  r.finished = r.finished && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return r;
}

// Reopens `d` on the plain file system after a power loss and checks it
// against the model. Returns false if it cannot be opened.
bool Recover(const PowerLossConfig& config, int cycle, uint64_t acked,
             uint64_t attempted, Database* d, PowerLossStats* stats) {
  const std::string where = "cycle " + std::to_string(cycle) + " (" + d->path + "): ";
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(TestOptions(config.sync), d->path);
  if (!db.ok()) {
    const std::string msg(db.status().message());
    if (msg.find("MANIFEST") != std::string::npos &&
        (msg.find("No such file or directory") != std::string::npos ||
         msg.find("checksum mismatch") != std::string::npos)) {
      ++stats->rocksdb_manifest_errors;
    } else {
      ++stats->reopen_failures;
    }
    stats->Problem(where + "reopen failed: " + db.status().ToString());
    return false;
  }
  const uint64_t latest = (*db)->LatestVersion();
  if (latest < acked) {
    stats->acked_lost += acked - latest;
    ++stats->cycles_with_loss;
    stats->Problem(where + "latest version " + std::to_string(latest) +
                   " but version " + std::to_string(acked) + " was acknowledged");
  }
  if (latest > std::max(acked, attempted)) {
    ++stats->versions_from_nowhere;
    stats->Problem(where + "version " + std::to_string(latest) + " was never committed");
  }
  if (attempted != 0 && latest == attempted) ++stats->unknown_present;
  absl::StatusOr<CheckReport> check = (*db)->Check();
  const bool damaged = !check.ok() || check->pages_leaked != 0 || check->blobs_leaked != 0;
  // A store whose pages are damaged (missing, unreadable) also reads wrong;
  // a wrong state in a store that passes Check would be a partial commit.
  std::string diff = testing::DiffWithModel(db->get(), latest, d->history->At(latest));
  if (!diff.empty()) {
    ++(damaged ? stats->damaged_states : stats->wrong_states);
    stats->Problem(where + "version " + std::to_string(latest) + ": " + diff);
  }
  if (damaged) {
    ++stats->check_failures;
    stats->Problem(where + "check: " +
                   (check.ok() ? "leaked " + std::to_string(check->pages_leaked) +
                                     " pages, " + std::to_string(check->blobs_leaked) +
                                     " blobs"
                               : check.status().ToString()));
  }
  d->durable = latest;
  return true;
}

// With COWDB_POWER_LOSS_KEEP=DIR, every cycle whose reopen fails or whose
// check finds a problem leaves in DIR/cycle-N the database as the power
// loss left it (before the reopen touched it) and the fault file system's
// trace of the child (COWDB_FAULT_FS_TRACE): for diagnosis.
const char* KeepDir() { return std::getenv("COWDB_POWER_LOSS_KEEP"); }

PowerLossStats RunPowerLossCycles(const PowerLossConfig& config, uint64_t seed,
                                  const std::string& base) {
  PowerLossStats stats;
  namespace stdfs = std::filesystem;
  if (KeepDir() != nullptr) {
    setenv("COWDB_FAULT_FS_TRACE", (base + "/trace").c_str(), 1);
  }
  std::mt19937_64 rng(seed);
  Database d;
  std::vector<std::string> unsynced_dirs;
  for (int cycle = 0; cycle < config.cycles; ++cycle, ++stats.cycles) {
    if (cycle % config.cycles_per_db == 0) {
      ++stats.databases;
      d.path = base + "/db" + std::to_string(stats.databases);
      d.seed = seed * 7919 + stats.databases;
      d.history = std::make_unique<ModelHistory>(d.seed);
      d.durable = 0;
    }
    ChildTask task;
    task.path = d.path;
    task.stash = base + "/stash";
    task.db_seed = d.seed;
    task.sync = config.sync;
    task.freeze_at = 1 + rng() % config.mutation_budget;
    task.commits = config.commits_per_cycle;
    task.loss_seed = rng();
    task.torn_fraction = config.torn_fraction;
    task.unsynced_dirs = unsynced_dirs;
    ChildResult r = RunCycleInChild(task);
    if (!r.finished) {
      stats.Problem("cycle " + std::to_string(cycle) + ": the child crashed");
      ++stats.reopen_failures;
      break;
    }
    stats.commits_acked += r.acks;
    stats.commits_unknown += r.attempted != 0;
    stats.freezes_during_open += r.open_failed;
    stats.files_cut += r.files_cut;
    stats.files_torn += r.files_torn;
    stats.dir_ops_undone += r.dir_ops_undone;
    stats.afterlife_tried += r.afterlife_tried;
    stats.afterlife_cycles += r.afterlife_tried > 0;
    stats.afterlife_done += r.afterlife_done;
    unsynced_dirs = r.unsynced_dirs;
    const uint64_t acked = r.acks > 0 ? r.acked : d.durable;
    const size_t problems_before = stats.problems.size();
    const int cycles_with_problems_before =
        stats.reopen_failures + stats.rocksdb_manifest_errors + stats.check_failures +
        stats.wrong_states + stats.cycles_with_loss + stats.versions_from_nowhere;
    if (KeepDir() != nullptr) {
      std::error_code ec;
      stdfs::remove_all(base + "/before-reopen", ec);
      stdfs::copy(d.path, base + "/before-reopen", stdfs::copy_options::recursive, ec);
    }
    const bool recovered = Recover(config, cycle, acked, r.attempted, &d, &stats);
    if (KeepDir() != nullptr &&
        (stats.problems.size() != problems_before ||
         stats.reopen_failures + stats.rocksdb_manifest_errors + stats.check_failures +
                 stats.wrong_states + stats.cycles_with_loss +
                 stats.versions_from_nowhere !=
             cycles_with_problems_before)) {
      std::error_code ec;
      const std::string keep = std::string(KeepDir()) + "/cycle-" + std::to_string(cycle);
      stdfs::create_directories(keep, ec);
      stdfs::copy(base + "/before-reopen", keep + "/db", stdfs::copy_options::recursive, ec);
      stdfs::copy(base + "/trace", keep + "/trace", ec);
      std::cout << "kept cycle " << cycle << " in " << keep << std::endl;
    }
    if (!recovered) {
      // Cannot go on with this database: start the next one.
      cycle += config.cycles_per_db - 1 - cycle % config.cycles_per_db;
    }
  }
  return stats;
}

TEST(PowerLossTest, AcknowledgedCommitsSurvivePowerLoss) {
  testing::TempDir dir = testing::TempDir::InMemory();
  PowerLossConfig config;
  config.cycles = CyclesFromEnv(kDefaultCycles);
  std::cout << "COWDB_SEED=" << Seed() << std::endl;
  PowerLossStats stats = RunPowerLossCycles(config, Seed(), dir.path());
  std::cout << stats.Summary() << std::endl;
  RecordProperty("seed", std::to_string(Seed()));
  EXPECT_EQ(stats.acked_lost, 0u) << stats.Summary();
  EXPECT_EQ(stats.wrong_states, 0) << stats.Summary();
  EXPECT_EQ(stats.damaged_states, 0) << stats.Summary();
  EXPECT_EQ(stats.versions_from_nowhere, 0) << stats.Summary();
  EXPECT_EQ(stats.reopen_failures, 0) << stats.Summary();
  EXPECT_EQ(stats.check_failures, 0) << stats.Summary();
  EXPECT_EQ(stats.rocksdb_manifest_errors, 0) << stats.Summary();
  EXPECT_EQ(stats.afterlife_done, 0u) << stats.Summary();
  // The run means something only if it crashed mid-work, tore files and
  // undid directory entries.
  EXPECT_GT(stats.commits_acked, static_cast<uint64_t>(config.cycles));
  EXPECT_GT(stats.commits_unknown, static_cast<uint64_t>(config.cycles) / 4);
  EXPECT_GT(stats.files_torn, 0u);
  EXPECT_GT(stats.dir_ops_undone, 0u);
}

// Positive control: without sync, acknowledged commits live only in the
// page cache, and the harness must see them lost. Nothing partial may show
// even then. Reopen and Check failures are reported, not asserted: with
// unsynced writes about 1 run in 10 (also before the node-layout work)
// ends with a store RocksDB refuses to open ("SST file is ahead of WALs
// in CF pages") or a missing page, which Check reports and which makes
// the store read wrong too; Options::sync documents it. A wrong state in
// a store that passes Check still fails the test.
TEST(PowerLossTest, HarnessDetectsLostCommitsWithoutSync) {
  testing::TempDir dir = testing::TempDir::InMemory();
  PowerLossConfig config;
  config.sync = false;
  config.cycles = 30;
  PowerLossStats stats = RunPowerLossCycles(config, Seed(), dir.path());
  std::cout << stats.Summary() << std::endl;
  EXPECT_GT(stats.acked_lost, 0u) << "the harness cannot see lost commits";
  EXPECT_GT(stats.cycles_with_loss, 0);
  EXPECT_EQ(stats.wrong_states, 0) << stats.Summary();
  EXPECT_EQ(stats.versions_from_nowhere, 0) << stats.Summary();
  EXPECT_EQ(stats.afterlife_done, 0u) << stats.Summary();
  if (stats.reopen_failures + stats.check_failures + stats.rocksdb_manifest_errors > 0) {
    std::cout << "known with sync = false: " << stats.reopen_failures
              << " reopen failures, " << stats.rocksdb_manifest_errors
              << " MANIFEST errors, " << stats.check_failures << " Check failures ("
              << stats.damaged_states << " of them also reading wrong)" << std::endl;
  }
}

// Regression: SimulatePowerLoss used to unfreeze the file system, so the
// child's database, still open, went on writing after the "power loss":
// a flush waiting to sync its directory synced it and appended a MANIFEST
// record naming an SST whose create had just been undone (reopen:
// "No such file or directory ... in file MANIFEST"), and WAL and MANIFEST
// appends landed past the cut tails (reopen: "checksum mismatch in file
// MANIFEST"). After the power loss, a file still open takes no write and
// nothing new is created.
TEST(PowerLossTest, NothingIsWrittenAfterThePowerLoss) {
  testing::TempDir dir = testing::TempDir::InMemory();
  auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                              dir.Sub("stash"));
  const std::string path = dir.Sub("f");
  rocksdb::IOOptions io;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  ASSERT_TRUE(fs->NewWritableFile(path, rocksdb::FileOptions(), &file, nullptr).ok());
  ASSERT_TRUE(file->Append("synced", io, nullptr).ok());
  ASSERT_TRUE(file->Sync(io, nullptr).ok());
  std::unique_ptr<rocksdb::FSDirectory> d;
  ASSERT_TRUE(fs->NewDirectory(dir.path(), io, &d, nullptr).ok());
  ASSERT_TRUE(d->Fsync(io, nullptr).ok());
  ASSERT_TRUE(file->Append("lost", io, nullptr).ok());
  fs->Freeze();
  std::mt19937_64 rng(1);
  fs->SimulatePowerLoss(rng, 0.0, /*keep_unsynced_dir_ops=*/0);
  EXPECT_TRUE(fs->frozen());
  EXPECT_FALSE(file->Append("after", io, nullptr).ok());
  EXPECT_FALSE(file->Sync(io, nullptr).ok());
  EXPECT_FALSE(d->Fsync(io, nullptr).ok());
  std::unique_ptr<rocksdb::FSWritableFile> other;
  EXPECT_FALSE(
      fs->NewWritableFile(dir.Sub("g"), rocksdb::FileOptions(), &other, nullptr).ok());
  EXPECT_EQ(std::filesystem::file_size(path), 6u);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("g")));
}

// Opens a database at a fresh path on a fault file system (first creating
// its directory without syncing the parent, when `interrupted_creation`:
// what an open that failed before that sync leaves behind), commits one
// put, then cuts power undoing every directory operation no directory sync
// covered, and expects the put to survive.
void ExpectCommitSurvivesUndoneDirectoryOps(bool interrupted_creation) {
  testing::TempDir dir = testing::TempDir::InMemory();
  auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                              dir.Sub("stash"));
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  internal::RocksDBStoreOptions store;
  store.env = env.get();
  const std::string path = dir.Sub("db");
  if (interrupted_creation) {
    ASSERT_TRUE(fs->CreateDir(path, rocksdb::IOOptions(), nullptr).ok());
  }
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::DBImpl> db,
                         internal::DBImpl::OpenAt(Options(), path, store));
    ASSERT_OK(db->Put("k", "acknowledged").status());
    fs->Freeze();
  }
  std::mt19937_64 rng(1);
  testing::PowerLossReport loss =
      fs->SimulatePowerLoss(rng, 0.0, /*keep_unsynced_dir_ops=*/0);
  std::cout << "directory operations undone: " << loss.dir_ops_undone << std::endl;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(Options(), path));
  ASSERT_OK_AND_ASSIGN(std::string value, db->Get(ReadOptions(), "k"));
  EXPECT_EQ(value, "acknowledged");
}

// Regression: the directory of a new database was created without a sync
// of its parent, so a power loss could take the whole database with its
// acknowledged commits (found by AcknowledgedCommitsSurvivePowerLoss).
TEST(PowerLossTest, NewDatabaseDirectoryIsSyncedInItsParent) {
  ExpectCommitSurvivesUndoneDirectoryOps(/*interrupted_creation=*/false);
}

// Regression: a database directory that already existed (created by an
// earlier open that failed or crashed before the sync of its parent) was
// opened without a sync of its parent, so a power loss could still take
// the whole database with commits acknowledged since (found by
// AcknowledgedCommitsSurvivePowerLoss, seed 3602511114).
TEST(PowerLossTest, ExistingDatabaseDirectoryIsSyncedInItsParent) {
  ExpectCommitSurvivesUndoneDirectoryOps(/*interrupted_creation=*/true);
}

}  // namespace
}  // namespace cowdb

int main(int argc, char** argv) {
  // power_loss_test --child FD TASK...
  if (argc >= 3 && std::string(argv[1]) == "--child") {
    FILE* out = fdopen(std::atoi(argv[2]), "w");
    cowdb::RunChild(cowdb::ChildTask::FromArgs(argc - 3, argv + 3), out);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
