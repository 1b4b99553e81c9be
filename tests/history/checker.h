// Checks a history of client operations (history.h) against what cowdb
// promises: one serial order of commits given by version numbers, exact
// reads at every version, durability of acknowledged writes, and
// serializable transactions. In the spirit of Jepsen's Elle and etcd's
// robustness tests, but using the versions the server returns instead of
// inferring an order.
//
// How: every value in a history is unique, so each value read names its
// write. Writes the server acknowledged carry their commit version; a
// write of unknown outcome takes the version its values were read with
// (never read: it is treated as not applied, except that its deletes may
// explain a key read as absent). The writes are replayed in version order
// into a model of every version -- writes that share a version (group
// commit) apply together -- and the history is checked against it:
//
//   - a read equals the model at its read version (value and mod_version);
//     a value nobody wrote, or a failed write's value, is a violation;
//   - a value carries the version its write was acknowledged with, and a
//     write of unknown outcome appears whole at one version or not at all;
//   - real time: an operation invoked after another completed reads at a
//     version >= that one's version, and commits at a version > it (no
//     stale read after an acknowledgement, no reused version);
//   - a serializable transaction's reads still hold at commit_version - 1,
//     and the members of one commit group can be put in a serial order
//     (none read what another wrote);
//   - a compare-and-swap took the branch its compare called for.
//
// Thread safety: CheckHistory is a pure function.

#ifndef COWDB_TESTS_HISTORY_CHECKER_H_
#define COWDB_TESTS_HISTORY_CHECKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tests/history/history.h"

namespace cowdb::history {

struct CheckStats {
  uint64_t ops = 0;
  uint64_t ok = 0;
  uint64_t failed = 0;
  uint64_t unknown = 0;
  uint64_t unknown_writes_applied = 0;  // unknown outcome, values seen
  uint64_t key_reads_checked = 0;       // key observations compared to the model
  uint64_t versions_written = 0;        // distinct versions with writes
  uint64_t shared_versions = 0;         // versions shared by several write sets
};

struct CheckResult {
  std::vector<std::string> violations;
  CheckStats stats;

  bool ok() const { return violations.empty(); }
};

// Checks `history` (operations in any order; values written must be
// unique). The database starts empty.
CheckResult CheckHistory(const History& history);

}  // namespace cowdb::history

#endif  // COWDB_TESTS_HISTORY_CHECKER_H_
