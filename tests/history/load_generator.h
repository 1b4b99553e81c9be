// A load generator for history checking: concurrent clients run a random
// mix of operations against a real cowdb_server on loopback while the
// server is SIGKILLed and restarted on the same data directory; every
// operation is recorded (history.h) for the checker (checker.h).
//
// The mix: Gets at the latest version and at recent versions, Scans,
// blind Puts and Deletes, compare-and-swap Txns (two keys), serializable
// interactive transactions (read two keys and a range, write one or two
// keys) and read-only transactions at a recent version. Every value
// written is unique ("c<client>.<seq>.<i>").
//
// At the end the server is killed and restarted once more, and a verifier
// reads back every acknowledged write at its version and scans the latest
// version; those reads are part of the history.
//
// Operations are not started while the server is down (the clients wait),
// so a call that fails is either in flight at a kill (its outcome is
// unknown unless the status says it was not applied) or failed for its own
// reasons.

#ifndef COWDB_TESTS_HISTORY_LOAD_GENERATOR_H_
#define COWDB_TESTS_HISTORY_LOAD_GENERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/history/history.h"

namespace cowdb::history {

struct LoadOptions {
  // The server's data directory (created by the server if missing).
  std::string data_dir;
  // Extra cowdb_server flags. Every version is retained (the verifier reads
  // old versions), so --retain_versions=0 is always passed first.
  std::vector<std::string> server_flags;
  int clients = 4;
  absl::Duration duration = absl::Seconds(10);
  // SIGKILLs during the run, evenly spaced; one more follows the run.
  int kills = 2;
  int keys = 12;
  uint64_t seed = 1;
  // The deadline of each call.
  absl::Duration call_timeout = absl::Seconds(5);
};

struct LoadReport {
  History history;
  int kills = 0;  // SIGKILLs done, the final one included
  uint64_t verifier_ops = 0;
};

// Runs the load. Errors: the server failed to start or to answer.
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

// Whether a call that failed with `status` might still have been applied.
// ABORTED, INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND, OUT_OF_RANGE,
// RESOURCE_EXHAUSTED and the authentication codes are definite failures;
// UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN, CANCELLED and the rest are not.
Outcome OutcomeOf(const absl::Status& status);

}  // namespace cowdb::history

#endif  // COWDB_TESTS_HISTORY_LOAD_GENERATOR_H_
