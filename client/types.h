// The value types of the cowdb client API (client/client.h): keys and
// values as read, trees (a branch at a version), ranges, compare-and-swap
// requests, versions, branches and merges, changes, key histories, check
// reports, retention, server status, users and roles. Plain structs without behaviour, shared by the client library
// and the wire conversions (proto/wire/), which is why they live apart
// from the Client interface.

#ifndef COWDB_CLIENT_TYPES_H_
#define COWDB_CLIENT_TYPES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "engine/proof.h"

namespace cowdb::client {

// A key as read.
struct KeyValue {
  std::string key;
  std::string value;         // empty with ScanOptions::keys_only
  uint64_t mod_version = 0;  // 0 for a transaction's own uncommitted write
};

// One key's value as read (the shape of cowdb::Entry).
struct Entry {
  std::string value;
  uint64_t mod_version = 0;  // 0 for a transaction's own uncommitted write
  uint64_t version = 0;      // the version read
};

// A tree of the database: a branch ("" or "main": the main branch; see
// Client::Fork) at a retained version (unset: the latest). Versions are
// global: a commit on any branch makes the next version, and a version
// names the state of every branch, so the branch picks the tree. A
// version converts to main's tree at it: Get(key, 7) reads main at 7,
// Get(key, TreeAt("dev", 7)) branch "dev" at 7.
struct TreeAt {
  TreeAt() = default;
  // Main's tree (implicit: a version alone means main).
  TreeAt(std::nullopt_t) {}                          // NOLINT(runtime/explicit)
  TreeAt(uint64_t v) : version(v) {}                 // NOLINT(runtime/explicit)
  TreeAt(std::optional<uint64_t> v) : version(v) {}  // NOLINT(runtime/explicit)
  explicit TreeAt(std::string b, std::optional<uint64_t> v = std::nullopt)
      : branch(std::move(b)), version(v) {}

  std::string branch;
  std::optional<uint64_t> version;
};

// Where a write goes.
struct WriteOptions {
  // The branch to write ("" or "main": main). Default: main.
  std::string branch;
};

// Keys in [start, end) (empty end: no bound), or every key with `prefix`
// (then start and end stay empty). The default is every key.
struct Range {
  std::string start;
  std::string end;
  std::string prefix;

  static Range Prefix(std::string p) { return Range{"", "", std::move(p)}; }
};

struct ScanOptions {
  Range range;
  // Read at this retained version; unset: the latest. Not allowed inside a
  // transaction, which reads at its own snapshot.
  std::optional<uint64_t> at;
  uint64_t limit = 0;  // 0: no limit
  bool reverse = false;
  bool keys_only = false;
  // The branch to read ("" or "main": main). Not allowed inside a
  // transaction, which reads the branch it began on.
  std::string branch;
};

// etcd-style compare-and-swap (Client::Txn): if every compare holds at the
// latest version, apply `success`, else `failure`, atomically.
struct Compare {
  enum class Target { kValue, kModVersion, kExists };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kExists;
  Op op = Op::kEqual;
  std::string value;         // kValue; an absent key equals no value
  uint64_t mod_version = 0;  // kModVersion; an absent key has 0
  bool exists = true;        // kExists (kEqual or kNotEqual only)
};

struct TxnOp {
  enum class Kind { kPut, kDelete, kGet };
  Kind kind = Kind::kGet;
  std::string key;
  std::string value;  // kPut

  static TxnOp Put(std::string k, std::string v) {
    return TxnOp{Kind::kPut, std::move(k), std::move(v)};
  }
  static TxnOp Delete(std::string k) { return TxnOp{Kind::kDelete, std::move(k), ""}; }
  static TxnOp Get(std::string k) { return TxnOp{Kind::kGet, std::move(k), ""}; }
};

struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
  // The branch whose latest tree the compares read and the ops change
  // ("" or "main": main).
  std::string branch;
};

struct TxnResult {
  bool succeeded = false;        // the compares held
  std::vector<KeyValue> gets;    // the branch's kGet results, absent keys omitted
  uint64_t version = 0;          // read, and written if the branch wrote
};

struct TransactionOptions {
  bool read_only = false;
  // Read-only transactions only: read at this retained version.
  std::optional<uint64_t> read_version;
  // Serializable (default): commit fails with Aborted if anything the
  // transaction read changed. Snapshot: only if a key it wrote changed.
  bool snapshot_isolation = false;
  // The branch the transaction reads and commits to ("" or "main": main).
  // Only commits to it conflict with the transaction.
  std::string branch;
};

struct VersionInfo {
  uint64_t version = 0;
  int64_t commit_micros = 0;  // wall-clock commit time, Unix microseconds (as cowdb::VersionInfo)
  uint64_t entries = 0;       // keys in main's tree at the version
  // The branch the version's commit changed, created or deleted.
  std::string branch = "main";
};

// A branch (Client::ListBranches; cowdb::BranchInfo).
struct BranchInfo {
  std::string name;
  uint64_t created = 0;         // the version that created it (0: main)
  std::string source;           // the branch it was forked from ("" for main)
  uint64_t source_version = 0;  // the version of `source` it started as
  uint64_t entries = 0;         // keys in its latest tree
};

// How Client::Merge settles a key both sides changed differently.
enum class MergePolicy {
  kFail,    // merge nothing and report the conflicts
  kOurs,    // keep the value of the branch merged into
  kTheirs,  // take the value of the branch merged from
};

// A key both sides of a merge changed, differently (nullopt: absent on
// that side).
struct MergeConflict {
  std::string key;
  std::optional<std::string> base;    // at the common ancestor
  std::optional<std::string> ours;    // in the branch merged into
  std::optional<std::string> theirs;  // in the branch merged from
};

// What Client::Merge did (cowdb::MergeResult).
struct MergeResult {
  bool merged = false;        // false: kFail found conflicts; nothing was written
  uint64_t version = 0;       // the merge's commit (the latest if nothing changed)
  uint64_t base_version = 0;  // the common ancestor's version
  std::string base_branch;    // ... and branch
  uint64_t changes = 0;       // keys the merge wrote into `into`
  // The conflicts found (and, unless kFail, settled), in key order. A
  // server answers the first ones when their keys and values pass 16 MiB;
  // conflict_count is how many there were.
  std::vector<MergeConflict> conflicts;
  uint64_t conflict_count = 0;
};

// A key's change between two versions; nullopt means absent.
struct Change {
  std::string key;
  std::optional<std::string> old_value;
  std::optional<std::string> new_value;
  uint64_t old_mod_version = 0;
  uint64_t new_mod_version = 0;
};

// One change delivered by Watch (see cowdb::WatchEvent for `net`).
struct WatchEvent {
  uint64_t version = 0;
  Change change;
  bool net = false;
};

// One change of one key (see Client::History; cowdb::KeyChange).
struct KeyChange {
  uint64_t version = 0;              // the commit that made it
  std::optional<std::string> value;  // nullopt: that commit deleted the key
  uint64_t create_version = 0;       // 0 for a delete
  uint64_t writes = 0;               // puts since creation, this one included
  uint64_t lease = 0;
};

// The changes made by versions in [from, to] (cowdb::HistoryOptions).
struct HistoryOptions {
  uint64_t from = 0;           // 0: as far back as versions are retained
  std::optional<uint64_t> to;  // unset: the latest
  uint64_t limit = 0;          // 0: no limit
};

// A key's changes, newest first (cowdb::KeyHistory).
struct KeyHistory {
  std::vector<KeyChange> changes;
  uint64_t to = 0;             // the version searched back from
  uint64_t complete_from = 0;  // every change in [complete_from, to] is listed
  bool more = false;           // the limit stopped it
};

// What a check found (cowdb::CheckReport).
struct CheckReport {
  uint64_t versions_checked = 0;
  uint64_t pages_reachable = 0;
  uint64_t blobs_reachable = 0;
  uint64_t pages_stored = 0;
  uint64_t blobs_stored = 0;
  uint64_t pages_pending = 0;  // freed, awaiting reclamation
  uint64_t blobs_pending = 0;
  uint64_t pages_leaked = 0;   // stored, unreachable and not pending
  uint64_t blobs_leaked = 0;
};

// The retention window and where it stands (Client::GetRetention).
struct Retention {
  uint64_t retain_versions = 0;  // 0: every version
  uint64_t retain_seconds = 0;   // 0: no time-based retention
  uint64_t oldest_version = 0;   // the oldest that can still be read
  uint64_t release_floor = 0;    // below it, released unless tagged or pinned
  uint64_t latest_version = 0;
};

struct ServerStatus {
  uint64_t latest_version = 0;
  uint64_t oldest_version = 0;
  uint64_t entries = 0;
  uint64_t disk_bytes = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t open_transactions = 0;
  // Since the server (or the local database) started:
  uint64_t commits = 0;        // versions committed
  uint64_t syncs = 0;          // synced storage writes (group commit: <= commits)
  uint64_t pages_written = 0;  // tree pages written
  uint64_t bytes_written = 0;  // bytes handed to storage
  uint64_t cache_bytes = 0;    // bytes of decoded pages in the node cache
  // The engine's figures (cowdb::DBStats), for `cowdb stats`:
  uint64_t log_bytes = 0;
  uint64_t checkpoints = 0;
  uint64_t checkpoint_version = 0;
  uint64_t unwritten_bytes = 0;
  uint64_t release_floor = 0;
  uint64_t replayed_commits = 0;
  uint64_t recovery_micros = 0;
  uint64_t cache_capacity = 0;
  uint64_t disk_bytes_pages = 0;
  uint64_t disk_bytes_blobs = 0;
  uint64_t disk_bytes_log = 0;
  uint64_t disk_bytes_records = 0;
};

// Users, roles and permissions of a cowdb_server (etcd's model; see the
// Auth section of proto/cowdb/v1/cowdb.proto). The role "root" allows
// everything; the others allow what their permissions list.
struct Permission {
  enum class Type { kRead, kWrite, kReadWrite };
  Type type = Type::kRead;
  // The keys [key, range_end); as etcd: an empty range_end is `key` alone,
  // "\0" (one zero byte) every key from `key` on. PrefixEnd(p) ends a prefix.
  std::string key;
  std::string range_end;
};
// The smallest key after every key that starts with `prefix` ("\0" if
// there is none: every key from `prefix` on).
std::string PrefixEnd(std::string_view prefix);

struct Role {
  std::string name;
  std::vector<Permission> permissions;
};

struct User {
  std::string name;
  std::vector<std::string> roles;
};

// ---- Verified reads (engine/proof.h has the hashes and proofs).

// A version's Merkle root hash and digest, as a server states them, and a
// read with the server's proof, not yet checked (VerifiedReader checks).
using ::cowdb::ProvedValue;
using ::cowdb::VersionDigest;

// A scan with the server's proof, not yet checked: the keys and values of
// [start, proved_end) (empty proved_end: to the range's end).
struct ProvedRange {
  std::vector<KeyValue> kvs;
  std::string proved_end;
  RangeProof proof;
};

// A digest the reader trusts: version `version`'s.
struct TrustedDigest {
  uint64_t version = 0;
  Hash digest{};
};

// A checked read: the value (nullopt: absent) at `version`, whose digest
// is `digest`.
struct VerifiedValue {
  std::optional<std::string> value;
  uint64_t version = 0;
  Hash digest{};
};

}  // namespace cowdb::client

#endif  // COWDB_CLIENT_TYPES_H_
