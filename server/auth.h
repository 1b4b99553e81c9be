// Authentication and authorization of cowdb_server's calls: users, roles
// and permissions after etcd's model, stored in the database's system
// records (outside its versions), and the one check every handler of the
// cowdb and etcd services passes through.
//
// Who may call what is decided in one place: NeedOf() says what each
// request needs (below, one overload per request type, so a new request
// type without a policy does not compile) and AccessControl::Admit()
// decides. gRPC 1.51's server interceptors cannot fail a call, so each
// handler calls Admit() first; tests/server_abuse_test walks the service
// descriptors and calls every method without a token and with too few
// rights, so a handler that skips it fails the suite.
#ifndef COWDB_SERVER_AUTH_H_
#define COWDB_SERVER_AUTH_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cowdb/v1/cowdb.pb.h"
#include "engine/db.h"
#include "grpcpp/grpcpp.h"
#include "server/auth_state.pb.h"

namespace cowdb::server {

// The keys [begin, end); an empty `end` has no bound (as the engine's
// ranges).
struct KeySpan {
  std::string begin;
  std::string end;
};
// [key, key + "\0"): the key alone.
KeySpan SpanOfKey(std::string_view key);
// etcd's (key, range_end): "" is the key alone, "\0" every key from `key`.
KeySpan SpanOfEtcdRange(std::string_view key, std::string_view range_end);

// What a call needs of its caller.
struct Need {
  enum class Level {
    kNone,           // nothing (Authenticate, AuthStatus)
    kAuthenticated,  // a valid token
    kKeys,           // a valid token whose roles cover `read` and `write`
    kAdmin,          // a valid token of a user with the root role
  };
  Level level = Level::kAuthenticated;
  std::vector<KeySpan> read;
  std::vector<KeySpan> write;

  static Need None() { return Need{Level::kNone, {}, {}}; }
  static Need Authenticated() { return Need{Level::kAuthenticated, {}, {}}; }
  static Need Admin() { return Need{Level::kAdmin, {}, {}}; }
  static Need Keys() { return Need{Level::kKeys, {}, {}}; }
};

// The policy: what each request of the cowdb service needs. Errors:
// InvalidArgument for a malformed range (the handler would refuse it too).
absl::StatusOr<Need> NeedOf(const v1::GetRequest& r);
absl::StatusOr<Need> NeedOf(const v1::ScanRequest& r);
absl::StatusOr<Need> NeedOf(const v1::PutRequest& r);
absl::StatusOr<Need> NeedOf(const v1::DeleteRequest& r);
absl::StatusOr<Need> NeedOf(const v1::TxnRequest& r);
absl::StatusOr<Need> NeedOf(const v1::BeginRequest& r);
absl::StatusOr<Need> NeedOf(const v1::WriteRequest& r);
absl::StatusOr<Need> NeedOf(const v1::CommitRequest& r);
absl::StatusOr<Need> NeedOf(const v1::RollbackRequest& r);
absl::StatusOr<Need> NeedOf(const v1::ListVersionsRequest& r);
absl::StatusOr<Need> NeedOf(const v1::TagRequest& r);
absl::StatusOr<Need> NeedOf(const v1::UntagRequest& r);
absl::StatusOr<Need> NeedOf(const v1::ListTagsRequest& r);
absl::StatusOr<Need> NeedOf(const v1::DiffRequest& r);
absl::StatusOr<Need> NeedOf(const v1::WatchRequest& r);
absl::StatusOr<Need> NeedOf(const v1::StatusRequest& r);
absl::StatusOr<Need> NeedOf(const v1::HistoryRequest& r);
absl::StatusOr<Need> NeedOf(const v1::VersionAtRequest& r);
absl::StatusOr<Need> NeedOf(const v1::DigestRequest& r);
// Branches: Fork and DeleteBranch need WRITE on every key (they change a
// whole tree, as deleting every key would); Merge READ and WRITE on every
// key (it writes into a tree and answers with conflicting values);
// ListBranches a valid token. Reads and writes on a branch need what they
// need on main (permissions are of keys, on every branch alike).
absl::StatusOr<Need> NeedOf(const v1::ForkRequest& r);
absl::StatusOr<Need> NeedOf(const v1::DeleteBranchRequest& r);
absl::StatusOr<Need> NeedOf(const v1::ListBranchesRequest& r);
absl::StatusOr<Need> NeedOf(const v1::MergeRequest& r);
// What a Get's proof reveals besides the key: every key and value of the
// key's leaf. A proof is answered only to a caller who may read them all
// (checked after the proof is built, since only then is the leaf known).
Need NeedOfProof(const ReadProof& proof);
// The same for a scan's proof: every key of the leaves it expands.
Need NeedOfProof(const RangeProof& proof);
absl::StatusOr<Need> NeedOf(const v1::CheckRequest& r);
absl::StatusOr<Need> NeedOf(const v1::BackupRequest& r);
absl::StatusOr<Need> NeedOf(const v1::ExportRequest& r);
absl::StatusOr<Need> NeedOf(const v1::RetentionRequest& r);

struct AccessOptions {
  // Tokens that act as root whether or not auth is enabled; with any,
  // every call needs a token even while auth is disabled
  // (--auth_token_file).
  std::vector<std::string> root_tokens;
  // PBKDF2-HMAC-SHA256 iterations for new passwords (each user's record
  // keeps its own count).
  uint32_t kdf_iterations = 200000;
  // A token unused this long expires.
  absl::Duration token_ttl = absl::Minutes(5);
  // Tokens held at most; Authenticate beyond it is RESOURCE_EXHAUSTED.
  size_t max_tokens = 100000;
};

class AccessControl {
 public:
  // Everyone may do everything (no users, auth disabled, no root token).
  AccessControl();
  ~AccessControl();
  // Loads users and roles from `db` (which must outlive the result).
  static absl::StatusOr<std::unique_ptr<AccessControl>> Open(DB* db, AccessOptions options);

  // OK, or UNAUTHENTICATED (no token, an unknown or expired one) or
  // PERMISSION_DENIED. The token comes from "authorization: Bearer <t>" or
  // etcd's "token" metadata.
  grpc::Status Admit(const grpc::ServerContextBase* ctx, const Need& need) const;
  // Admit for a call that carried `token` ("" for none).
  grpc::Status AdmitToken(std::string_view token, const Need& need) const;
  // Admit for a request of the cowdb service.
  template <typename Request>
  grpc::Status Admit(const grpc::ServerContextBase* ctx, const Request& req) const {
    absl::StatusOr<Need> need = NeedOf(req);
    if (!need.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string(need.status().message()));
    }
    return Admit(ctx, *need);
  }
  // The user behind the call's token ("" for a root token or none).
  std::string UserOf(const grpc::ServerContextBase* ctx) const;

  // A new token for `user`. Errors: FailedPrecondition while auth is
  // disabled; Unauthenticated for a wrong name or password (one message
  // for both); ResourceExhausted past max_tokens.
  absl::StatusOr<std::string> Authenticate(std::string_view user, std::string_view password);
  absl::Duration token_ttl() const { return options_.token_ttl; }

  bool enabled() const;
  // Enabling needs a user with the root role (FailedPrecondition).
  absl::Status SetEnabled(bool enabled);

  // Changes; each is durable when it returns. Deleting a user or changing
  // its password ends its tokens. Errors: InvalidArgument for
  // a bad name or permission, NotFound / AlreadyExists, FailedPrecondition
  // for a change that would leave no user with the root role while auth is
  // enabled, or touch the built-in role root; I/O errors of the database.
  absl::Status AddUser(std::string_view user, std::string_view password);
  absl::Status DeleteUser(std::string_view user);
  absl::Status SetPassword(std::string_view user, std::string_view password);
  absl::Status GrantRole(std::string_view user, std::string_view role);
  absl::Status RevokeRole(std::string_view user, std::string_view role);
  absl::Status AddRole(std::string_view role);
  absl::Status DeleteRole(std::string_view role);
  absl::Status GrantPermission(std::string_view role, const v1::Permission& permission);
  absl::Status RevokePermission(std::string_view role, std::string_view key,
                                std::string_view range_end);

  std::vector<v1::User> Users() const;
  // The roles, root (built in) included.
  std::vector<v1::Role> Roles() const;

 private:
  struct Rights;
  struct TokenEntry {
    std::string user;
    mutable std::atomic<int64_t> expires_micros{0};
  };

  AccessControl(DB* db, AccessOptions options);
  // Applies `change` to a copy of the state, stores it, then publishes it.
  absl::Status Change(const std::function<absl::Status(AuthState&)>& change);
  void Publish(AuthState state);
  std::shared_ptr<const Rights> RightsOf(const std::string& user) const;
  bool IsRootToken(std::string_view token) const;
  // Forgets every token of `user`.
  void DropTokens(std::string_view user);

  DB* const db_;
  const AccessOptions options_;
  std::mutex change_mu_;  // one change at a time (held across the store)
  mutable std::shared_mutex mu_;
  AuthState state_;  // guarded by mu_
  std::unordered_map<std::string, std::shared_ptr<const Rights>> rights_;  // guarded by mu_
  mutable std::shared_mutex tokens_mu_;
  std::unordered_map<std::string, TokenEntry> tokens_;  // guarded by tokens_mu_
};

// Reads --auth_token_file: one token per line; blank lines and lines
// starting with '#' are skipped. Errors: unreadable, or no token.
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path);

}  // namespace cowdb::server

#endif  // COWDB_SERVER_AUTH_H_
