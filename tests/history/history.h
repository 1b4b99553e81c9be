// A history of operations against a cowdb server, as clients saw them: the
// input of the history checker (checker.h), produced by the load generator
// (load_generator.h) or written by hand in the checker's unit tests.
//
// Each operation records when it was invoked and when it completed (on one
// monotonic clock), its outcome, the versions the server returned, what it
// read (values with their mod_versions) and what it meant to write. Every
// value written in a history is unique, so a read can be attributed to the
// one write that produced it.
//
//   Op put;
//   put.type = OpType::kPut;
//   put.writes = {{"k", "v1"}};
//   put.outcome = Outcome::kOk;
//   put.commit_version = 7;

#ifndef COWDB_TESTS_HISTORY_HISTORY_H_
#define COWDB_TESTS_HISTORY_HISTORY_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace cowdb::history {

enum class OpType {
  kGet,   // one key, at the latest version or at `at_version`
  kScan,  // a key range, at the latest version
  kPut,   // blind put
  kDelete,  // blind delete
  kCas,   // one-shot compare-and-swap (Client::Txn)
  kTxn,   // interactive transaction (Begin ... Commit)
};

enum class Outcome {
  kOk,       // the server answered OK
  kFailed,   // definitely had no effect (e.g. ABORTED, never sent)
  kUnknown,  // may or may not have taken effect (timeout, UNAVAILABLE, UNKNOWN)
};

// One key as read: absent, or a value with the version that last wrote it.
struct KeyRead {
  std::string key;
  bool found = false;
  std::string value;
  uint64_t mod_version = 0;
};

// A scan of every key in [start, end) (empty end: no bound), without a
// limit: keys missing from `found` were read as absent.
struct RangeRead {
  std::string start;
  std::string end;
  std::vector<KeyRead> found;

  bool Contains(const std::string& key) const {
    return start <= key && (end.empty() || key < end);
  }
};

// One intended write; no value means a delete.
struct KeyWrite {
  std::string key;
  std::optional<std::string> value;
};

struct Op {
  uint64_t id = 0;
  int client = 0;
  OpType type = OpType::kGet;
  int64_t invoke_ns = 0;
  int64_t complete_ns = 0;
  Outcome outcome = Outcome::kOk;
  std::string error;  // the status of a failed or unknown operation

  // Reads. They hold at `read_version`; 0 means the server did not say (a
  // Get at the latest version of an absent key). `at_version` is set when
  // the client chose the version (such reads are not real-time ordered).
  std::optional<uint64_t> at_version;
  uint64_t read_version = 0;
  std::vector<KeyRead> reads;
  std::vector<RangeRead> ranges;

  // Writes the operation meant to make; a kCas makes them only if
  // `cas_succeeded`. `commit_version` is the version the server said made
  // them visible (outcome kOk only).
  std::vector<KeyWrite> writes;
  uint64_t commit_version = 0;
  bool cas_succeeded = false;
  // kCas: the compare was "mod_version(cas_key) == cas_expected_mod".
  std::string cas_key;
  uint64_t cas_expected_mod = 0;

  // A serializable read-write transaction (kTxn or kCas): what it read
  // must still hold just before its commit version.
  bool serializable = false;

  // True if the server said the writes were applied.
  bool AckedWrites() const {
    return outcome == Outcome::kOk && !writes.empty() &&
           (type != OpType::kCas || cas_succeeded);
  }
  // True if the writes may have been applied without the server saying so.
  bool MaybeWrites() const { return outcome == Outcome::kUnknown && !writes.empty(); }
};

using History = std::vector<Op>;

const char* OpTypeName(OpType t);
const char* OutcomeName(Outcome o);

// One line describing `op`, for violation messages and history logs.
std::string Describe(const Op& op);

// Writes the history, one operation per line.
void WriteHistory(const History& history, std::ostream& out);

}  // namespace cowdb::history

#endif  // COWDB_TESTS_HISTORY_HISTORY_H_
