// History checking against a real cowdb_server: concurrent clients run a
// random mix of reads, writes, compare-and-swaps and serializable
// transactions while the server is SIGKILLed and restarted; the checker
// (checker.h) must find no violation in the recorded history.
//
// Default: 1 history, 4 clients, 10 s, 2 kills (plus one at the end).
// Heavier runs set, e.g.
//   --test_env=COWDB_HISTORY_RUNS=5 --test_env=COWDB_HISTORY_SECONDS=60
//   --test_env=COWDB_HISTORY_KILLS=10 --test_env=COWDB_HISTORY_CLIENTS=8
// COWDB_SEED fixes the seed. Each history is written to
// $TEST_UNDECLARED_OUTPUTS_DIR/history-<n>.txt.

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/history/checker.h"
#include "tests/history/load_generator.h"
#include "tests/util/temp_dir.h"

namespace cowdb::history {
namespace {

// The integer in environment variable `name`, or `fallback`.
int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoll(v, nullptr, 10) : fallback;
}

uint64_t Seed() {
  const int64_t seed = EnvInt("COWDB_SEED", 0);
  return seed != 0 ? static_cast<uint64_t>(seed) : std::random_device{}();
}

// Writes the history where Bazel keeps test outputs, if it says where.
void SaveHistory(const History& h, int run) {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (dir == nullptr) return;
  std::ofstream out(absl::StrCat(dir, "/history-", run, ".txt"));
  WriteHistory(h, out);
}

TEST(OutcomeTest, OnlyDefiniteFailuresCountAsNotApplied) {
  EXPECT_EQ(OutcomeOf(absl::OkStatus()), Outcome::kOk);
  EXPECT_EQ(OutcomeOf(absl::AbortedError("conflict")), Outcome::kFailed);
  EXPECT_EQ(OutcomeOf(absl::NotFoundError("no open transaction")), Outcome::kFailed);
  EXPECT_EQ(OutcomeOf(absl::FailedPreconditionError("refused")), Outcome::kFailed);
  EXPECT_EQ(OutcomeOf(absl::UnavailableError("socket closed")), Outcome::kUnknown);
  EXPECT_EQ(OutcomeOf(absl::DeadlineExceededError("timeout")), Outcome::kUnknown);
  EXPECT_EQ(OutcomeOf(absl::UnknownError("storage failed")), Outcome::kUnknown);
  EXPECT_EQ(OutcomeOf(absl::CancelledError("cancelled")), Outcome::kUnknown);
}

TEST(HistoryTest, ClientsAgainstAKilledServer) {
  const int runs = static_cast<int>(EnvInt("COWDB_HISTORY_RUNS", 1));
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << "\n";
  CheckStats total;
  uint64_t violations = 0;
  int kills = 0;
  for (int run = 0; run < runs; ++run) {
    testing::TempDir dir;
    LoadOptions options;
    options.data_dir = dir.Sub("db");
    options.clients = static_cast<int>(EnvInt("COWDB_HISTORY_CLIENTS", 4));
    options.duration = absl::Seconds(EnvInt("COWDB_HISTORY_SECONDS", 10));
    options.kills = static_cast<int>(EnvInt("COWDB_HISTORY_KILLS", 2));
    options.seed = seed + run;
    absl::StatusOr<LoadReport> report = RunLoad(options);
    ASSERT_TRUE(report.ok()) << report.status();
    SaveHistory(report->history, run);
    CheckResult result = CheckHistory(report->history);
    const CheckStats& s = result.stats;
    std::cout << "history " << run << ": " << s.ops << " ops (" << s.ok << " ok, " << s.failed
              << " failed, " << s.unknown << " unknown, " << s.unknown_writes_applied
              << " unknown writes seen applied), " << report->kills << " kills, "
              << report->verifier_ops << " verifier reads, " << s.versions_written
              << " versions written (" << s.shared_versions << " shared), "
              << s.key_reads_checked << " key reads checked, " << result.violations.size()
              << " violations\n";
    for (size_t i = 0; i < result.violations.size() && i < 20; ++i) {
      ADD_FAILURE() << result.violations[i];
    }
    // The run must have exercised what it claims to.
    EXPECT_GT(s.versions_written, 100u);
    EXPECT_GT(s.key_reads_checked, 1000u);
    EXPECT_EQ(report->kills, options.kills + 1);
    total.ops += s.ops;
    total.unknown += s.unknown;
    total.key_reads_checked += s.key_reads_checked;
    violations += result.violations.size();
    kills += report->kills;
  }
  std::cout << "total: " << runs << " histories, " << total.ops << " ops, " << total.unknown
            << " unknown outcomes, " << kills << " kills, " << total.key_reads_checked
            << " key reads checked, " << violations << " violations\n";
}

}  // namespace
}  // namespace cowdb::history
