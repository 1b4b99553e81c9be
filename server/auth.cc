#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/wire/wire.h"

namespace cowdb::server {

namespace {

constexpr char kRecord[] = "auth";
constexpr char kRoot[] = "root";
constexpr size_t kMaxName = 128;
constexpr size_t kMaxPassword = 1024;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr size_t kTokenBytes = 24;

grpc::Status Denied(grpc::StatusCode code, std::string message) {
  return grpc::Status(code, std::move(message));
}

// A name as an error message may quote it (bounded).
std::string Quote(std::string_view s) {
  std::string out = absl::CHexEscape(std::string(s.substr(0, 64)));
  if (s.size() > 64) absl::StrAppend(&out, "...");
  return absl::StrCat("\"", out, "\"");
}

absl::Status ValidateName(const char* what, std::string_view name) {
  if (name.empty() || name.size() > kMaxName) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", what, " name must have 1 to ", kMaxName, " bytes"));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("a ", what, " name may not hold control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePassword(std::string_view password) {
  if (password.empty() || password.size() > kMaxPassword) {
    return absl::InvalidArgumentError(
        absl::StrCat("a password must have 1 to ", kMaxPassword, " bytes"));
  }
  return absl::OkStatus();
}

std::string Kdf(std::string_view password, std::string_view salt, uint32_t iterations) {
  std::string out(kHashBytes, '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), static_cast<int>(iterations), EVP_sha256(),
                    static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("the system's random source failed");
  }
  return out;
}

bool SameBytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Does `span` lie inside one of `spans` (sorted by begin, merged)? No key
// is empty, so a span from "" starts, in effect, at "\0" (etcd's grant of
// every key is ["\0", no end)).
bool Covered(const std::vector<KeySpan>& spans, const KeySpan& span) {
  static const std::string kSmallestKey(1, '\0');
  const std::string& begin = span.begin.empty() ? kSmallestKey : span.begin;
  auto it = std::upper_bound(spans.begin(), spans.end(), begin,
                             [](const std::string& b, const KeySpan& s) { return b < s.begin; });
  if (it == spans.begin()) return false;
  const KeySpan& s = *std::prev(it);
  if (s.end.empty()) return true;
  if (span.end.empty()) return false;
  return span.end <= s.end && begin < s.end;
}

// Sorts `spans` and merges those that touch or overlap.
std::vector<KeySpan> Merged(std::vector<KeySpan> spans) {
  std::sort(spans.begin(), spans.end(),
            [](const KeySpan& a, const KeySpan& b) { return a.begin < b.begin; });
  std::vector<KeySpan> out;
  for (KeySpan& s : spans) {
    if (!out.empty() && (out.back().end.empty() || s.begin <= out.back().end)) {
      if (!out.back().end.empty() && (s.end.empty() || s.end > out.back().end)) {
        out.back().end = s.end;
      }
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

absl::Status ValidatePermission(const v1::Permission& p) {
  if (!v1::Permission::Type_IsValid(p.type())) {
    return absl::InvalidArgumentError("a permission's type must be READ, WRITE or READWRITE");
  }
  if (p.key().empty() && p.range_end() != std::string(1, '\0')) {
    return absl::InvalidArgumentError(
        "a permission's key is empty (for every key, give range_end \"\\0\")");
  }
  if (!p.range_end().empty() && p.range_end() != std::string(1, '\0') &&
      p.range_end() <= p.key()) {
    return absl::InvalidArgumentError("a permission's range_end is not after its key");
  }
  return absl::OkStatus();
}

StoredUser* FindUser(AuthState& s, std::string_view name) {
  for (StoredUser& u : *s.mutable_users()) {
    if (u.name() == name) return &u;
  }
  return nullptr;
}

StoredRole* FindRole(AuthState& s, std::string_view name) {
  for (StoredRole& r : *s.mutable_roles()) {
    if (r.name() == name) return &r;
  }
  return nullptr;
}

bool HasRootUser(const AuthState& s) {
  for (const StoredUser& u : s.users()) {
    if (std::find(u.roles().begin(), u.roles().end(), kRoot) != u.roles().end()) return true;
  }
  return false;
}

absl::Status KeepsARootUser(const AuthState& s) {
  if (s.enabled() && !HasRootUser(s)) {
    return absl::FailedPreconditionError(
        "auth is enabled: the change would leave no user with the role root");
  }
  return absl::OkStatus();
}

std::string_view TokenOf(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    std::string_view value(it->second.data(), it->second.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (value.substr(0, kBearer.size()) == kBearer) return value.substr(kBearer.size());
    return {};
  }
  if (auto it = md.find("token"); it != md.end()) {  // etcd's clients
    return std::string_view(it->second.data(), it->second.size());
  }
  return {};
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace

// What one user may do: its roles' permissions, merged.
struct AccessControl::Rights {
  bool admin = false;
  std::vector<KeySpan> read;
  std::vector<KeySpan> write;
};

KeySpan SpanOfKey(std::string_view key) {
  std::string end(key);
  end.push_back('\0');
  return KeySpan{std::string(key), std::move(end)};
}

KeySpan SpanOfEtcdRange(std::string_view key, std::string_view range_end) {
  if (range_end.empty()) return SpanOfKey(key);
  if (range_end == std::string_view("\0", 1)) return KeySpan{std::string(key), ""};
  return KeySpan{std::string(key), std::string(range_end)};
}

// ------------------------------------------------------------- the policy

namespace {

absl::StatusOr<KeySpan> SpanOf(const v1::KeyRange& range) {
  KeySpan span;
  absl::Status s = wire::ToBounds(range, &span.begin, &span.end);
  if (!s.ok()) return s;
  return span;
}

Need ReadKey(std::string_view key) {
  Need n = Need::Keys();
  n.read.push_back(SpanOfKey(key));
  return n;
}

Need ReadRange(KeySpan span) {
  Need n = Need::Keys();
  n.read.push_back(std::move(span));
  return n;
}

void AddMutation(const v1::Mutation& m, Need* n) {
  n->write.push_back(SpanOfKey(m.has_put() ? m.put().key() : m.delete_key()));
}

}  // namespace

absl::StatusOr<Need> NeedOf(const v1::GetRequest& r) { return ReadKey(r.key()); }
absl::StatusOr<Need> NeedOf(const v1::ScanRequest& r) {
  absl::StatusOr<KeySpan> span = SpanOf(r.range());
  if (!span.ok()) return span.status();
  return ReadRange(*std::move(span));
}
absl::StatusOr<Need> NeedOf(const v1::PutRequest& r) {
  Need n = Need::Keys();
  n.write.push_back(SpanOfKey(r.key()));
  return n;
}
absl::StatusOr<Need> NeedOf(const v1::DeleteRequest& r) {
  Need n = Need::Keys();
  n.write.push_back(SpanOfKey(r.key()));
  return n;
}
absl::StatusOr<Need> NeedOf(const v1::TxnRequest& r) {
  Need n = Need::Keys();
  for (const v1::Compare& c : r.compares()) n.read.push_back(SpanOfKey(c.key()));
  for (const auto* ops : {&r.success(), &r.failure()}) {
    for (const v1::TxnOp& op : *ops) {
      if (op.has_mutation()) {
        AddMutation(op.mutation(), &n);
      } else {
        n.read.push_back(SpanOfKey(op.get_key()));
      }
    }
  }
  return n;
}
absl::StatusOr<Need> NeedOf(const v1::BeginRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::WriteRequest& r) {
  Need n = Need::Keys();
  for (const v1::Mutation& m : r.mutations()) AddMutation(m, &n);
  return n;
}
absl::StatusOr<Need> NeedOf(const v1::CommitRequest& r) {
  Need n = Need::Keys();
  for (const v1::Mutation& m : r.mutations()) AddMutation(m, &n);
  return n;
}
absl::StatusOr<Need> NeedOf(const v1::RollbackRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::ListVersionsRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::TagRequest&) { return Need::Admin(); }
absl::StatusOr<Need> NeedOf(const v1::UntagRequest&) { return Need::Admin(); }
absl::StatusOr<Need> NeedOf(const v1::ListTagsRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::DiffRequest& r) {
  absl::StatusOr<KeySpan> span = SpanOf(r.range());
  if (!span.ok()) return span.status();
  return ReadRange(*std::move(span));
}
absl::StatusOr<Need> NeedOf(const v1::WatchRequest& r) {
  absl::StatusOr<KeySpan> span = SpanOf(r.range());
  if (!span.ok()) return span.status();
  return ReadRange(*std::move(span));
}
absl::StatusOr<Need> NeedOf(const v1::StatusRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::HistoryRequest& r) { return ReadKey(r.key()); }
absl::StatusOr<Need> NeedOf(const v1::VersionAtRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::DigestRequest&) { return Need::Authenticated(); }
namespace {

// READ and/or WRITE on every key.
Need EveryKey(bool read, bool write) {
  Need n = Need::Keys();
  if (read) n.read.push_back(KeySpan{"", ""});
  if (write) n.write.push_back(KeySpan{"", ""});
  return n;
}

}  // namespace
absl::StatusOr<Need> NeedOf(const v1::ForkRequest&) { return EveryKey(false, true); }
absl::StatusOr<Need> NeedOf(const v1::DeleteBranchRequest&) { return EveryKey(false, true); }
absl::StatusOr<Need> NeedOf(const v1::ListBranchesRequest&) { return Need::Authenticated(); }
absl::StatusOr<Need> NeedOf(const v1::MergeRequest&) { return EveryKey(true, true); }
namespace {

// READ on [first, last] of the keys a proof shows (in key order).
Need NeedOfShown(const std::string* first, const std::string* last) {
  if (first == nullptr) return Need::Authenticated();
  std::string end = *last;
  end.push_back('\0');
  return ReadRange(KeySpan{*first, std::move(end)});
}

}  // namespace

Need NeedOfProof(const ReadProof& proof) {
  if (proof.leaf.empty()) return Need::Authenticated();
  return NeedOfShown(&proof.leaf.front().key, &proof.leaf.back().key);
}

Need NeedOfProof(const RangeProof& proof) {
  const std::string* first = nullptr;
  const std::string* last = nullptr;
  for (const RangeProofNode& n : proof.nodes) {  // leaves in key order
    if (n.level != 0 || n.entries.empty()) continue;
    if (first == nullptr) first = &n.entries.front().key;
    last = &n.entries.back().key;
  }
  return NeedOfShown(first, last);
}
absl::StatusOr<Need> NeedOf(const v1::CheckRequest&) { return Need::Admin(); }
absl::StatusOr<Need> NeedOf(const v1::BackupRequest&) { return Need::Admin(); }
absl::StatusOr<Need> NeedOf(const v1::ExportRequest&) { return Need::Admin(); }
absl::StatusOr<Need> NeedOf(const v1::RetentionRequest& r) {
  return r.set() ? Need::Admin() : Need::Authenticated();
}

// --------------------------------------------------------- AccessControl

AccessControl::AccessControl() : AccessControl(nullptr, AccessOptions()) {}
AccessControl::AccessControl(DB* db, AccessOptions options)
    : db_(db), options_(std::move(options)) {}
AccessControl::~AccessControl() = default;

absl::StatusOr<std::unique_ptr<AccessControl>> AccessControl::Open(DB* db,
                                                                   AccessOptions options) {
  std::unique_ptr<AccessControl> ac(new AccessControl(db, std::move(options)));
  absl::StatusOr<std::optional<std::string>> record = db->GetSystemRecord(kRecord);
  if (!record.ok()) return record.status();
  AuthState state;
  if (record->has_value() && !state.ParseFromString(**record)) {
    return absl::DataLossError("the database's users and roles record does not parse");
  }
  ac->Publish(std::move(state));
  return ac;
}

void AccessControl::Publish(AuthState state) {
  std::unordered_map<std::string, std::shared_ptr<const Rights>> rights;
  for (const StoredUser& u : state.users()) {
    auto r = std::make_shared<Rights>();
    std::vector<KeySpan> read, write;
    for (const std::string& role : u.roles()) {
      if (role == kRoot) r->admin = true;
      const StoredRole* sr = FindRole(state, role);
      if (sr == nullptr) continue;
      for (const StoredPermission& p : sr->permissions()) {
        KeySpan span = SpanOfEtcdRange(p.key(), p.range_end());
        if (p.type() != v1::Permission::WRITE) read.push_back(span);
        if (p.type() != v1::Permission::READ) write.push_back(span);
      }
    }
    r->read = Merged(std::move(read));
    r->write = Merged(std::move(write));
    rights[u.name()] = std::move(r);
  }
  std::unique_lock lock(mu_);
  state_ = std::move(state);
  rights_ = std::move(rights);
}

absl::Status AccessControl::Change(const std::function<absl::Status(AuthState&)>& change) {
  if (db_ == nullptr) return absl::FailedPreconditionError("this server keeps no users");
  std::lock_guard one(change_mu_);
  AuthState next;
  {
    std::shared_lock lock(mu_);
    next = state_;
  }
  if (absl::Status s = change(next); !s.ok()) return s;
  if (absl::Status s = KeepsARootUser(next); !s.ok()) return s;
  if (absl::Status s = db_->PutSystemRecord(kRecord, next.SerializeAsString()); !s.ok()) {
    return s;
  }
  Publish(std::move(next));
  return absl::OkStatus();
}

std::shared_ptr<const AccessControl::Rights> AccessControl::RightsOf(
    const std::string& user) const {
  std::shared_lock lock(mu_);
  auto it = rights_.find(user);
  return it == rights_.end() ? nullptr : it->second;
}

bool AccessControl::IsRootToken(std::string_view token) const {
  bool found = false;
  for (const std::string& t : options_.root_tokens) found |= SameBytes(t, token);
  return found;
}

bool AccessControl::enabled() const {
  std::shared_lock lock(mu_);
  return state_.enabled();
}

grpc::Status AccessControl::Admit(const grpc::ServerContextBase* ctx, const Need& need) const {
  return AdmitToken(TokenOf(ctx), need);
}

grpc::Status AccessControl::AdmitToken(std::string_view token, const Need& need) const {
  if (need.level == Need::Level::kNone) return grpc::Status::OK;
  const bool on = enabled();
  if (!on && options_.root_tokens.empty()) return grpc::Status::OK;
  if (token.empty()) {
    return Denied(grpc::StatusCode::UNAUTHENTICATED,
                  on ? "auth is enabled: authenticate and send the token"
                     : "missing or invalid bearer token");
  }
  if (IsRootToken(token)) return grpc::Status::OK;
  if (!on) return Denied(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid bearer token");
  std::string user;
  {
    std::shared_lock lock(tokens_mu_);
    auto it = tokens_.find(std::string(token));
    const int64_t now = NowMicros();
    if (it == tokens_.end() || it->second.expires_micros.load() < now) {
      return Denied(grpc::StatusCode::UNAUTHENTICATED,
                    "invalid or expired token: authenticate again");
    }
    it->second.expires_micros.store(now + absl::ToInt64Microseconds(options_.token_ttl));
    user = it->second.user;
  }
  std::shared_ptr<const Rights> rights = RightsOf(user);
  if (rights == nullptr) {
    return Denied(grpc::StatusCode::UNAUTHENTICATED,
                  absl::StrCat("the token's user ", Quote(user), " no longer exists"));
  }
  if (rights->admin || need.level == Need::Level::kAuthenticated) return grpc::Status::OK;
  if (need.level == Need::Level::kAdmin) {
    return Denied(grpc::StatusCode::PERMISSION_DENIED,
                  absl::StrCat("user ", Quote(user), " needs the role root for this call"));
  }
  for (const auto& [spans, needed, verb] :
       {std::tuple(&rights->read, &need.read, "read"),
        std::tuple(&rights->write, &need.write, "write")}) {
    for (const KeySpan& span : *needed) {
      if (Covered(*spans, span)) continue;
      const bool one_key = span.end == span.begin + std::string(1, '\0');
      return Denied(grpc::StatusCode::PERMISSION_DENIED,
                    absl::StrCat("user ", Quote(user), " may not ", verb,
                                 one_key ? absl::StrCat(" the key ", Quote(span.begin))
                                         : absl::StrCat(" the range [", Quote(span.begin), ", ",
                                                        span.end.empty() ? "end" : Quote(span.end),
                                                        ")")));
    }
  }
  return grpc::Status::OK;
}

std::string AccessControl::UserOf(const grpc::ServerContextBase* ctx) const {
  const std::string_view token = TokenOf(ctx);
  std::shared_lock lock(tokens_mu_);
  auto it = tokens_.find(std::string(token));
  return it == tokens_.end() ? "" : it->second.user;
}

absl::StatusOr<std::string> AccessControl::Authenticate(std::string_view user,
                                                        std::string_view password) {
  StoredUser stored;
  {
    std::shared_lock lock(mu_);
    if (!state_.enabled()) {
      return absl::FailedPreconditionError("auth is not enabled");
    }
    for (const StoredUser& u : state_.users()) {
      if (u.name() == user) stored = u;
    }
  }
  // Hash even for an unknown user, so that the answer takes as long.
  const std::string salt = stored.salt().empty() ? std::string(kSaltBytes, 'x') : stored.salt();
  const uint32_t iterations =
      stored.iterations() == 0 ? options_.kdf_iterations : stored.iterations();
  const std::string hash = Kdf(password.substr(0, kMaxPassword), salt, iterations);
  if (stored.name().empty() || !SameBytes(hash, stored.hash())) {
    return absl::UnauthenticatedError("wrong user name or password");
  }
  absl::StatusOr<std::string> raw = RandomBytes(kTokenBytes);
  if (!raw.ok()) return raw.status();
  std::string token = absl::BytesToHexString(*raw);
  const int64_t now = NowMicros();
  std::unique_lock lock(tokens_mu_);
  // The user may have been deleted, or its password changed, while the
  // password was hashed: those changes drop the user's tokens under this
  // lock after they are published, so checking again here closes the gap.
  {
    std::shared_lock state(mu_);
    bool same = false;
    for (const StoredUser& u : state_.users()) {
      if (u.name() == user) same = u.hash() == stored.hash() && u.salt() == stored.salt();
    }
    if (!same) return absl::UnauthenticatedError("wrong user name or password");
  }
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    it = it->second.expires_micros.load() < now ? tokens_.erase(it) : std::next(it);
  }
  if (tokens_.size() >= options_.max_tokens) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server holds ", tokens_.size(), " tokens; retry later"));
  }
  TokenEntry& e = tokens_[token];
  e.user = std::string(user);
  e.expires_micros.store(now + absl::ToInt64Microseconds(options_.token_ttl));
  return token;
}

absl::Status AccessControl::SetEnabled(bool enabled) {
  return Change([&](AuthState& s) {
    if (enabled && !HasRootUser(s)) {
      return absl::FailedPreconditionError(
          "enabling auth needs a user with the role root (cowdb user add root; "
          "cowdb user grant root root)");
    }
    s.set_enabled(enabled);
    return absl::OkStatus();
  });
}

absl::Status AccessControl::AddUser(std::string_view user, std::string_view password) {
  if (absl::Status s = ValidateName("user", user); !s.ok()) return s;
  if (absl::Status s = ValidatePassword(password); !s.ok()) return s;
  absl::StatusOr<std::string> salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();
  const std::string hash = Kdf(password, *salt, options_.kdf_iterations);
  return Change([&](AuthState& s) {
    if (FindUser(s, user) != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat("user ", Quote(user), " already exists"));
    }
    StoredUser* u = s.add_users();
    u->set_name(std::string(user));
    u->set_salt(*salt);
    u->set_hash(hash);
    u->set_iterations(options_.kdf_iterations);
    return absl::OkStatus();
  });
}

absl::Status AccessControl::DeleteUser(std::string_view user) {
  absl::Status s = Change([&](AuthState& st) {
    auto* users = st.mutable_users();
    for (int i = 0; i < users->size(); ++i) {
      if (users->Get(i).name() == user) {
        users->erase(users->begin() + i);
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(absl::StrCat("no user ", Quote(user)));
  });
  if (!s.ok()) return s;
  DropTokens(user);
  return absl::OkStatus();
}

absl::Status AccessControl::SetPassword(std::string_view user, std::string_view password) {
  if (absl::Status s = ValidatePassword(password); !s.ok()) return s;
  absl::StatusOr<std::string> salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();
  const std::string hash = Kdf(password, *salt, options_.kdf_iterations);
  absl::Status s = Change([&](AuthState& st) {
    StoredUser* u = FindUser(st, user);
    if (u == nullptr) return absl::NotFoundError(absl::StrCat("no user ", Quote(user)));
    u->set_salt(*salt);
    u->set_hash(hash);
    u->set_iterations(options_.kdf_iterations);
    return absl::OkStatus();
  });
  if (s.ok()) DropTokens(user);  // a token taken with the old password dies
  return s;
}

void AccessControl::DropTokens(std::string_view user) {
  std::unique_lock lock(tokens_mu_);
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    it = it->second.user == user ? tokens_.erase(it) : std::next(it);
  }
}

absl::Status AccessControl::GrantRole(std::string_view user, std::string_view role) {
  return Change([&](AuthState& s) {
    StoredUser* u = FindUser(s, user);
    if (u == nullptr) return absl::NotFoundError(absl::StrCat("no user ", Quote(user)));
    if (role != kRoot && FindRole(s, role) == nullptr) {
      return absl::NotFoundError(absl::StrCat("no role ", Quote(role)));
    }
    if (std::find(u->roles().begin(), u->roles().end(), role) != u->roles().end()) {
      return absl::AlreadyExistsError(
          absl::StrCat("user ", Quote(user), " already has the role ", Quote(role)));
    }
    u->add_roles(std::string(role));
    return absl::OkStatus();
  });
}

absl::Status AccessControl::RevokeRole(std::string_view user, std::string_view role) {
  return Change([&](AuthState& s) {
    StoredUser* u = FindUser(s, user);
    if (u == nullptr) return absl::NotFoundError(absl::StrCat("no user ", Quote(user)));
    auto* roles = u->mutable_roles();
    auto it = std::find(roles->begin(), roles->end(), role);
    if (it == roles->end()) {
      return absl::NotFoundError(
          absl::StrCat("user ", Quote(user), " does not have the role ", Quote(role)));
    }
    roles->erase(it);
    return absl::OkStatus();
  });
}

absl::Status AccessControl::AddRole(std::string_view role) {
  if (absl::Status s = ValidateName("role", role); !s.ok()) return s;
  return Change([&](AuthState& s) {
    if (role == kRoot || FindRole(s, role) != nullptr) {
      return absl::AlreadyExistsError(absl::StrCat("role ", Quote(role), " already exists"));
    }
    s.add_roles()->set_name(std::string(role));
    return absl::OkStatus();
  });
}

absl::Status AccessControl::DeleteRole(std::string_view role) {
  if (role == kRoot) {
    return absl::FailedPreconditionError("the role root is built in and cannot be deleted");
  }
  return Change([&](AuthState& s) {
    auto* roles = s.mutable_roles();
    auto it = std::find_if(roles->begin(), roles->end(),
                           [&](const StoredRole& r) { return r.name() == role; });
    if (it == roles->end()) return absl::NotFoundError(absl::StrCat("no role ", Quote(role)));
    roles->erase(it);
    for (StoredUser& u : *s.mutable_users()) {  // users lose the role
      auto* ur = u.mutable_roles();
      ur->erase(std::remove(ur->begin(), ur->end(), role), ur->end());
    }
    return absl::OkStatus();
  });
}

absl::Status AccessControl::GrantPermission(std::string_view role, const v1::Permission& p) {
  if (role == kRoot) {
    return absl::FailedPreconditionError("the role root already allows everything");
  }
  if (absl::Status s = ValidatePermission(p); !s.ok()) return s;
  return Change([&](AuthState& s) {
    StoredRole* r = FindRole(s, role);
    if (r == nullptr) return absl::NotFoundError(absl::StrCat("no role ", Quote(role)));
    for (StoredPermission& sp : *r->mutable_permissions()) {
      if (sp.key() == p.key() && sp.range_end() == p.range_end()) {  // etcd: replace
        sp.set_type(p.type());
        return absl::OkStatus();
      }
    }
    StoredPermission* sp = r->add_permissions();
    sp->set_type(p.type());
    sp->set_key(p.key());
    sp->set_range_end(p.range_end());
    return absl::OkStatus();
  });
}

absl::Status AccessControl::RevokePermission(std::string_view role, std::string_view key,
                                             std::string_view range_end) {
  return Change([&](AuthState& s) {
    StoredRole* r = FindRole(s, role);
    if (r == nullptr) return absl::NotFoundError(absl::StrCat("no role ", Quote(role)));
    auto* perms = r->mutable_permissions();
    auto it = std::find_if(perms->begin(), perms->end(), [&](const StoredPermission& p) {
      return p.key() == key && p.range_end() == range_end;
    });
    if (it == perms->end()) {
      return absl::NotFoundError(absl::StrCat("role ", Quote(role), " has no permission on ",
                                              Quote(key), " to ", Quote(range_end)));
    }
    perms->erase(it);
    return absl::OkStatus();
  });
}

std::vector<v1::User> AccessControl::Users() const {
  std::shared_lock lock(mu_);
  std::vector<v1::User> out;
  for (const StoredUser& u : state_.users()) {
    v1::User& v = out.emplace_back();
    v.set_name(u.name());
    for (const std::string& r : u.roles()) v.add_roles(r);
  }
  std::sort(out.begin(), out.end(),
            [](const v1::User& a, const v1::User& b) { return a.name() < b.name(); });
  return out;
}

std::vector<v1::Role> AccessControl::Roles() const {
  std::shared_lock lock(mu_);
  std::vector<v1::Role> out;
  out.emplace_back().set_name(kRoot);
  for (const StoredRole& r : state_.roles()) {
    v1::Role& v = out.emplace_back();
    v.set_name(r.name());
    for (const StoredPermission& p : r.permissions()) {
      v1::Permission* vp = v.add_permissions();
      vp->set_type(static_cast<v1::Permission::Type>(p.type()));
      vp->set_key(p.key());
      vp->set_range_end(p.range_end());
    }
  }
  std::sort(out.begin(), out.end(),
            [](const v1::Role& a, const v1::Role& b) { return a.name() < b.name(); });
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    tokens.push_back(line);
  }
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat("no token in ", path));
  return tokens;
}

}  // namespace cowdb::server
