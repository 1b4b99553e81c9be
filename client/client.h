// The cowdb client API: one interface over a remote cowdb_server (Connect)
// or a database directory opened in-process (OpenLocal, local_client.h).
//
// It mirrors the embedded API of engine/db.h: reads at the latest or a
// retained version, blind puts and deletes, interactive transactions,
// etcd-style compare-and-swap, versions, tags, diffs, watches, key
// histories and reads as of a time (VersionAt). Every
// read says the version it read; every write the version that made it
// visible; every key its mod_version.
//
//   cowdb::client::ConnectOptions options;  // default target 127.0.0.1:7390
//   ASSIGN_OR_RETURN(auto db, cowdb::client::Connect(options));
//   ASSIGN_OR_RETURN(uint64_t v, db->Put("greeting", "hello"));
//   ASSIGN_OR_RETURN(cowdb::client::Entry e, db->Get("greeting"));
//
// Errors are absl::Status with the codes of the wire API
// (proto/cowdb/v1/cowdb.proto): NotFound (missing key, tag, transaction, or
// a version after the latest), OutOfRange (a released version), Aborted
// (a transaction conflict: retry, see RunTransaction), InvalidArgument,
// ResourceExhausted (over a server limit), Unknown (a commit whose outcome
// is unknown), DataLoss, Unauthenticated, Unavailable and DeadlineExceeded
// (the server could not be reached in time).
//
// Thread safety: a Client may be used from many threads at once; a
// Transaction by one thread at a time.

#ifndef COWDB_CLIENT_CLIENT_H_
#define COWDB_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

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
};

// An interactive transaction: reads see its snapshot plus its own writes;
// Commit applies its writes atomically or fails with Aborted. Destroying an
// unfinished transaction rolls it back.
class Transaction {
 public:
  virtual ~Transaction() = default;
  virtual uint64_t read_version() const = 0;
  // NotFound if the key is absent.
  virtual absl::StatusOr<Entry> Get(std::string_view key) = 0;
  // Calls `visit` for each key in order until it returns false; returns
  // the version read.
  virtual absl::StatusOr<uint64_t> Scan(
      const ScanOptions& options,
      const std::function<bool(const KeyValue&)>& visit) = 0;
  virtual absl::StatusOr<uint64_t> Count(const Range& range) = 0;
  virtual absl::Status Put(std::string_view key, std::string_view value) = 0;
  virtual absl::Status Delete(std::string_view key) = 0;
  // The version that made the writes visible (the read version if there
  // were none).
  virtual absl::StatusOr<uint64_t> Commit() = 0;
  virtual absl::Status Rollback() = 0;
};

struct VersionInfo {
  uint64_t version = 0;
  int64_t commit_unix_micros = 0;
  uint64_t entries = 0;
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

// Changes need the role root (UserPassword: or to be that user). Errors:
// PermissionDenied, NotFound, AlreadyExists, InvalidArgument, and
// FailedPrecondition for a change that would leave no root user while auth
// is enabled.
class AuthAdmin {
 public:
  virtual ~AuthAdmin() = default;
  virtual absl::StatusOr<bool> Enabled() = 0;
  // Enabling needs a user with the role root.
  virtual absl::Status SetEnabled(bool enabled) = 0;
  virtual absl::Status AddUser(std::string_view user, std::string_view password) = 0;
  virtual absl::Status DeleteUser(std::string_view user) = 0;
  virtual absl::Status SetPassword(std::string_view user, std::string_view password) = 0;
  virtual absl::Status GrantRole(std::string_view user, std::string_view role) = 0;
  virtual absl::Status RevokeRole(std::string_view user, std::string_view role) = 0;
  virtual absl::StatusOr<std::vector<User>> ListUsers() = 0;
  virtual absl::Status AddRole(std::string_view role) = 0;
  virtual absl::Status DeleteRole(std::string_view role) = 0;
  // Grants `permission` (replacing one on the same keys).
  virtual absl::Status GrantPermission(std::string_view role, const Permission& permission) = 0;
  virtual absl::Status RevokePermission(std::string_view role, std::string_view key,
                                        std::string_view range_end) = 0;
  virtual absl::StatusOr<std::vector<Role>> ListRoles() = 0;
};

class Client {
 public:
  virtual ~Client() = default;

  // NotFound if the key is absent.
  virtual absl::StatusOr<Entry> Get(std::string_view key,
                                    std::optional<uint64_t> at = std::nullopt) = 0;
  // Calls `visit` for each key in order until it returns false; returns
  // the version read.
  virtual absl::StatusOr<uint64_t> Scan(
      const ScanOptions& options,
      const std::function<bool(const KeyValue&)>& visit) = 0;
  // Keys in `range` (O(log n)).
  virtual absl::StatusOr<uint64_t> Count(const Range& range,
                                         std::optional<uint64_t> at = std::nullopt) = 0;

  // Each returns the version that made the write visible.
  virtual absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value) = 0;
  virtual absl::StatusOr<uint64_t> Delete(std::string_view key) = 0;
  virtual absl::StatusOr<TxnResult> Txn(const TxnRequest& request) = 0;

  virtual absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options = {}) = 0;

  virtual absl::StatusOr<std::vector<VersionInfo>> ListVersions() = 0;
  virtual absl::Status Tag(std::string_view name, uint64_t version) = 0;
  virtual absl::Status Untag(std::string_view name) = 0;
  virtual absl::StatusOr<std::map<std::string, uint64_t>> ListTags() = 0;
  // The changes from version `from` to `to` in `range`, in key order, until
  // `visit` returns false.
  virtual absl::Status Diff(uint64_t from, uint64_t to, const Range& range,
                            const std::function<bool(const Change&)>& visit) = 0;
  // Every change after version `from` in `range`, in version order, as it
  // commits; blocks until `visit` returns false or an error ends the watch.
  virtual absl::Status Watch(uint64_t from, const Range& range,
                             const std::function<bool(const WatchEvent&)>& visit) = 0;
  virtual absl::StatusOr<ServerStatus> Status() = 0;

  // The changes of `key` (puts, and deletes of a present key) made by the
  // versions in [options.from, options.to], newest first. Changes older
  // than the release floor cannot be known: see complete_from.
  virtual absl::StatusOr<KeyHistory> History(std::string_view key,
                                             const HistoryOptions& options = {}) = 0;
  // The version that was the latest at wall-clock `time`: reads "as of"
  // a time. OutOfRange if that version is released (or the time is before
  // the database existed).
  virtual absl::StatusOr<uint64_t> VersionAt(absl::Time time) = 0;
  // Verifies every retained version (cowdb::DB::Check). `progress` (may
  // be empty) is told the versions checked so far and the total, now and
  // then. It can take long: the call has no deadline of the client's (the
  // server's --max_deadline still applies). Errors: DataLoss or Internal
  // naming the first problem.
  virtual absl::StatusOr<CheckReport> Check(
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;
  // A hot backup of the whole database (every retained version, the tags)
  // into the new directory `dir` on this machine, taken while reads and
  // writes go on. The copy is a database directory: open it with OpenLocal
  // or serve it. `progress` (may be empty) is told the bytes received and
  // the total. The files are written into `dir`.partial, synced, and
  // renamed to `dir` at the end, so `dir` appears only complete. Errors:
  // AlreadyExists if `dir` (or `dir`.partial) exists; I/O errors.
  // The retention window; SetRetention changes it until the server (or
  // the local database) restarts, whose options apply again then.
  // Widening it does not bring back released versions.
  virtual absl::StatusOr<Retention> GetRetention() = 0;
  virtual absl::StatusOr<Retention> SetRetention(uint64_t retain_versions,
                                                 uint64_t retain_seconds) = 0;
  virtual absl::Status Backup(
      const std::string& dir,
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;
  // Writes the keys and values of `version` (unset: the latest) to the
  // portable export file `path` on this machine (cowdb::DB::Export's
  // format; written to `path`.partial, synced, renamed). `progress` is
  // told bytes. Errors: as a read at that version; I/O errors.
  virtual absl::Status Export(
      std::optional<uint64_t> version, const std::string& path,
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;
  // Writes the keys of the export file `path` into the database, in
  // commits of up to 10,000 keys, after verifying the whole file's
  // checksum (cowdb::DB::Import). Returns the number of keys. Errors:
  // DataLoss for a damaged file (nothing written); I/O errors.
  virtual absl::StatusOr<uint64_t> Import(
      const std::string& path,
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;

  // The server's users and roles; nullptr for a local client (a database
  // opened in-process has no users).
  virtual AuthAdmin* Auth() { return nullptr; }

  // Collects a scan (convenience over Scan).
  absl::StatusOr<std::vector<KeyValue>> ScanAll(const ScanOptions& options,
                                                uint64_t* read_version = nullptr);
};

struct ConnectOptions {
  // "host:port" of a cowdb_server.
  std::string target = "127.0.0.1:7390";
  // Sent as "authorization: Bearer <token>" when not empty.
  std::string token;
  // With a user, Connect authenticates (the server must have auth enabled)
  // and the client sends the token it got; a token expires after some
  // minutes unused (the server's setting), then calls are Unauthenticated.
  std::string user;
  std::string password;
  // TLS: PEM root certificates to trust (enables TLS), and optionally a
  // PEM client certificate and key (mTLS). Contents, not file names.
  std::string tls_root_certs;
  std::string tls_client_cert;
  std::string tls_client_key;
  // Deadline of each call (a Watch has none). Streams must finish in it.
  absl::Duration timeout = absl::Seconds(30);
  // How long Connect waits for the server to answer.
  absl::Duration connect_timeout = absl::Seconds(5);
  int max_message_bytes = 64 << 20;
};

// Connects to a cowdb_server. Errors: Unavailable if it does not answer
// within connect_timeout; InvalidArgument for bad TLS settings, or both a
// token and a user; Unauthenticated for a wrong user or password;
// FailedPrecondition for a user while the server's auth is disabled.
absl::StatusOr<std::unique_ptr<Client>> Connect(const ConnectOptions& options);

// Runs `body` in a transaction and commits it, retrying (with a short,
// growing backoff) while the commit or a read fails with Aborted, at most
// `max_attempts` times. Returns the commit version, or the last error.
absl::StatusOr<uint64_t> RunTransaction(
    Client& client, const TransactionOptions& options,
    const std::function<absl::Status(Transaction&)>& body, int max_attempts = 10);

}  // namespace cowdb::client

#endif  // COWDB_CLIENT_CLIENT_H_
