// The cowdb client API: one interface over a remote cowdb_server (Connect)
// or a database directory opened in-process (OpenLocal, local_client.h).
//
// It mirrors the embedded API of engine/db.h: reads at the latest or a
// retained version, blind puts and deletes, interactive transactions,
// etcd-style compare-and-swap, versions, tags, diffs, watches, key
// histories, reads as of a time (VersionAt), and branches (Fork, Merge;
// reads, writes, transactions, diffs and watches take a branch: a TreeAt,
// WriteOptions, or a `branch` in their options). Every
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
// a version after the latest, or an unknown branch), OutOfRange (a
// released version), Aborted (a transaction conflict: retry, see
// RunTransaction), InvalidArgument, AlreadyExists (a branch name in use),
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
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/types.h"

namespace cowdb::client {

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

  // The key in the tree `at` (default: main's latest; a version alone
  // is main at it). NotFound if the key is absent, or for an unknown
  // branch.
  virtual absl::StatusOr<Entry> Get(std::string_view key, const TreeAt& at = {}) = 0;
  // Calls `visit` for each key in order until it returns false; returns
  // the version read.
  virtual absl::StatusOr<uint64_t> Scan(
      const ScanOptions& options,
      const std::function<bool(const KeyValue&)>& visit) = 0;
  // Keys in `range` (O(log n)).
  virtual absl::StatusOr<uint64_t> Count(const Range& range, const TreeAt& at = {}) = 0;

  // Each returns the version that made the write visible (the next
  // version, whichever branch options.branch names).
  virtual absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value,
                                       const WriteOptions& options = {}) = 0;
  virtual absl::StatusOr<uint64_t> Delete(std::string_view key,
                                          const WriteOptions& options = {}) = 0;
  virtual absl::StatusOr<TxnResult> Txn(const TxnRequest& request) = 0;

  virtual absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options = {}) = 0;

  virtual absl::StatusOr<std::vector<VersionInfo>> ListVersions() = 0;
  virtual absl::Status Tag(std::string_view name, uint64_t version) = 0;
  virtual absl::Status Untag(std::string_view name) = 0;
  virtual absl::StatusOr<std::map<std::string, uint64_t>> ListTags() = 0;
  // The changes from tree `from` to tree `to` in `range`, in key order,
  // until `visit` returns false: of one branch at two versions (Diff(3, 7,
  // ...) is main's), or of two branches. An unset version is the latest
  // (one version for both sides, read when the call starts). NotFound for
  // an unknown branch.
  virtual absl::Status Diff(const TreeAt& from, const TreeAt& to, const Range& range,
                            const std::function<bool(const Change&)>& visit) = 0;
  // Every change to from.branch's tree after version from.version (unset:
  // the latest, so only commits from now on) in `range`, in version order,
  // as it commits; blocks until `visit` returns false or an error ends the
  // watch. A watch of a branch that is deleted ends with NotFound once it
  // reaches the deletion.
  virtual absl::Status Watch(const TreeAt& from, const Range& range,
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
  // As Export, an incremental export: the changes from version `from` to
  // `to` (unset: the latest); Import applies it (cowdb::DB::ExportChanges).
  virtual absl::Status ExportChanges(
      uint64_t from, std::optional<uint64_t> to, const std::string& path,
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;
  // Writes the keys of the export file `path` into the database (an
  // incremental export's deletes applied), in commits of up to 10,000,
  // after verifying the whole file's checksum (cowdb::DB::Import). Returns
  // the number of records. Errors:
  // DataLoss for a damaged file (nothing written); I/O errors.
  virtual absl::StatusOr<uint64_t> Import(
      const std::string& path,
      const std::function<void(uint64_t done, uint64_t total)>& progress = {}) = 0;

  // ---- Verified reads (engine/proof.h). Use VerifiedReader, which checks
  // what these return. Errors: FailedPrecondition if the database does not
  // hash its trees (created with Options::verifiable = false, or before
  // database format 4).

  // The value of `key` (nullopt: absent) at `at` (unset: the latest), with
  // the proof of that answer, unchecked. PermissionDenied (with auth) unless
  // the caller may read every key of the proof's leaf.
  virtual absl::StatusOr<ProvedValue> ProveGet(
      std::string_view key, std::optional<uint64_t> at = std::nullopt) = 0;
  // A scan's keys and values with the proof of them, unchecked: in key
  // order, with values (not reverse or keys_only). A remote server answers
  // at most 1,000 keys per call; proved_end says how far the answer (and
  // its proof) reached. VerifiedReader::Scan goes on from there.
  virtual absl::StatusOr<ProvedRange> ProveScan(const ScanOptions& options) = 0;
  // The digest of `version` (unset: the latest), as the server states it.
  virtual absl::StatusOr<VersionDigest> Digest(
      std::optional<uint64_t> version = std::nullopt) = 0;
  // The links of the versions (from, to], for VerifyChain. OutOfRange if
  // one of them is released.
  virtual absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from,
                                                              uint64_t to) = 0;

  // ---- Branches. A branch is a named, writable line of versions that
  // shares its pages with the tree it was forked from until either is
  // written; "main" always exists. A name is 1 to 100 of [A-Za-z0-9._/-],
  // not "main" (else InvalidArgument). Versions stay global (see TreeAt).
  // Fork, DeleteBranch and Merge each commit a version and return it.
  // With auth, Fork and DeleteBranch need WRITE on every key, Merge READ
  // and WRITE on every key; ListBranches a valid token.

  // Creates branch `name` as the tree `from` (default: main's latest; any
  // retained version, also of a branch deleted since). Forking a branch's
  // latest tree is O(1); an older tree also writes a checkpoint with the
  // fork. Errors: AlreadyExists; NotFound for a source that does not exist
  // at from.version, or a version after the latest; OutOfRange for a
  // released version.
  virtual absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from = {}) = 0;
  // Deletes branch `name`; its earlier versions stay readable while
  // retained. Errors: NotFound; InvalidArgument for main.
  virtual absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) = 0;
  // The branches at the latest version, main first.
  virtual absl::StatusOr<std::vector<BranchInfo>> ListBranches() = 0;
  // Three-way merge of branch `from` into branch `into`: the changes `from`
  // made since their common ancestor (the fork between them, the last
  // merge between them, or for two forks of one branch the earlier fork's
  // first tree) are applied to `into` in one commit; a key both changed
  // differently is a conflict, settled by `policy`. With kFail and
  // conflicts, nothing is written and the result (OK) has merged = false
  // and the conflicts. Errors: NotFound for an unknown branch;
  // InvalidArgument if from == into; FailedPrecondition without a known,
  // readable common ancestor; Aborted if a key the merge writes changed in
  // `into` meanwhile (retry).
  virtual absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                            MergePolicy policy = MergePolicy::kFail) = 0;

  // The server's users and roles; nullptr for a local client (a database
  // opened in-process has no users).
  virtual AuthAdmin* Auth() { return nullptr; }

  // Collects a scan (convenience over Scan).
  absl::StatusOr<std::vector<KeyValue>> ScanAll(const ScanOptions& options,
                                                uint64_t* read_version = nullptr);
};

// Reads whose answers are checked: each Get's proof is recomputed into its
// version's digest (VerifyRead), and that digest must be the trusted one or
// extend it through the chain of versions between them (VerifyChain).
//
// Trust: give a digest obtained where you trust it (`cowdb digest` on the
// server's machine, a published value, or one a VerifiedReader returned
// earlier). Without one, the first answer's digest is trusted (trust on
// first use) and later answers must extend it. After each check the reader
// trusts the newest digest it has verified, so a server cannot later answer
// from an older version while claiming the latest.
//
// Errors: DataLoss ("verification failed: ...") when an answer does not
// verify, naming the first mismatch; else the client's errors.
// Thread safety: safe to use from many threads.
class VerifiedReader {
 public:
  explicit VerifiedReader(Client* client,
                          std::optional<TrustedDigest> trusted = std::nullopt);

  // The value of `key` at `at` (unset: the latest), checked.
  absl::StatusOr<VerifiedValue> Get(std::string_view key,
                                    std::optional<uint64_t> at = std::nullopt);
  // A scan (in key order, with values), each part checked before `visit`
  // sees it; all parts read one version. Returns that version.
  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit);
  // The newest digest verified so far (or given).
  std::optional<TrustedDigest> trusted() const;

 private:
  // Checks that `later` (of a version after `earlier`'s) extends it.
  absl::Status CheckExtends(const TrustedDigest& earlier, const TrustedDigest& later);
  // Checks a verified answer's digest against the trusted one (`at`: the
  // version asked for, if any), and trusts it if it is newer.
  absl::Status Accept(const TrustedDigest& answer, std::optional<uint64_t> at);

  Client* const client_;
  mutable std::mutex mu_;
  std::optional<TrustedDigest> trusted_;  // guarded by mu_
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
