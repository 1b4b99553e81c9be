// Client over gRPC to a cowdb_server.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "proto/wire/wire.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::client {
namespace {

using wire::FromGrpc;
using wire::FromProto;
using wire::ToProto;

class RemoteClient;

// An interactive transaction on the server. Puts and deletes are buffered
// here and sent with the next read (so reads see them) or with Commit.
class RemoteTransaction final : public Transaction {
 public:
  RemoteTransaction(RemoteClient* client, std::string id, uint64_t read_version,
                    bool read_only)
      : client_(client), id_(std::move(id)), read_version_(read_version),
        read_only_(read_only) {}
  ~RemoteTransaction() override {
    if (!finished_) Rollback().IgnoreError();
  }

  uint64_t read_version() const override { return read_version_; }
  absl::StatusOr<Entry> Get(std::string_view key) override;
  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit) override;
  absl::StatusOr<uint64_t> Count(const Range& range) override;
  absl::Status Put(std::string_view key, std::string_view value) override {
    if (absl::Status s = Writable(); !s.ok()) return s;
    v1::Mutation* m = pending_.add_mutations();
    m->mutable_put()->set_key(std::string(key));
    m->mutable_put()->set_value(std::string(value));
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view key) override {
    if (absl::Status s = Writable(); !s.ok()) return s;
    pending_.add_mutations()->set_delete_key(std::string(key));
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Commit() override;
  absl::Status Rollback() override;

 private:
  static absl::Status Finished() {
    return absl::FailedPreconditionError("the transaction has finished");
  }
  // Writes are buffered here, so check what the server would.
  absl::Status Writable() const {
    if (finished_) return Finished();
    if (read_only_) return absl::FailedPreconditionError("the transaction is read-only");
    return absl::OkStatus();
  }
  // Sends buffered writes so that the server's reads see them.
  absl::Status Flush();

  RemoteClient* const client_;
  const std::string id_;
  const uint64_t read_version_;
  const bool read_only_;
  v1::WriteRequest pending_;
  bool finished_ = false;
};

// The Auth service: every method takes and answers the same two messages.
class RemoteAuth final : public AuthAdmin {
 public:
  using ContextFn = std::function<std::unique_ptr<grpc::ClientContext>()>;
  RemoteAuth(std::shared_ptr<grpc::Channel> channel, ContextFn context)
      : stub_(v1::Auth::NewStub(channel)), context_(std::move(context)) {}

  absl::StatusOr<bool> Enabled() override {
    absl::StatusOr<v1::AuthResponse> r = Call(&Stub::AuthStatus, v1::AuthRequest());
    if (!r.ok()) return r.status();
    return r->enabled();
  }
  absl::Status SetEnabled(bool enabled) override {
    v1::AuthRequest req;
    req.set_enabled(enabled);
    return Call(&Stub::AuthEnable, req).status();
  }
  absl::Status AddUser(std::string_view user, std::string_view password) override {
    return Call(&Stub::UserAdd, Req(user, password, "")).status();
  }
  absl::Status DeleteUser(std::string_view user) override {
    return Call(&Stub::UserDelete, Req(user, "", "")).status();
  }
  absl::Status SetPassword(std::string_view user, std::string_view password) override {
    return Call(&Stub::UserPassword, Req(user, password, "")).status();
  }
  absl::Status GrantRole(std::string_view user, std::string_view role) override {
    return Call(&Stub::UserGrant, Req(user, "", role)).status();
  }
  absl::Status RevokeRole(std::string_view user, std::string_view role) override {
    return Call(&Stub::UserRevoke, Req(user, "", role)).status();
  }
  absl::StatusOr<std::vector<User>> ListUsers() override {
    absl::StatusOr<v1::AuthResponse> r = Call(&Stub::UserList, v1::AuthRequest());
    if (!r.ok()) return r.status();
    std::vector<User> out;
    for (const v1::User& u : r->users()) {
      out.push_back(User{u.name(), {u.roles().begin(), u.roles().end()}});
    }
    return out;
  }
  absl::Status AddRole(std::string_view role) override {
    return Call(&Stub::RoleAdd, Req("", "", role)).status();
  }
  absl::Status DeleteRole(std::string_view role) override {
    return Call(&Stub::RoleDelete, Req("", "", role)).status();
  }
  absl::Status GrantPermission(std::string_view role, const Permission& p) override {
    v1::AuthRequest req = Req("", "", role);
    req.mutable_permission()->set_type(static_cast<v1::Permission::Type>(p.type));
    req.mutable_permission()->set_key(p.key);
    req.mutable_permission()->set_range_end(p.range_end);
    return Call(&Stub::RoleGrant, req).status();
  }
  absl::Status RevokePermission(std::string_view role, std::string_view key,
                                std::string_view range_end) override {
    v1::AuthRequest req = Req("", "", role);
    req.mutable_permission()->set_key(std::string(key));
    req.mutable_permission()->set_range_end(std::string(range_end));
    return Call(&Stub::RoleRevoke, req).status();
  }
  absl::StatusOr<std::vector<Role>> ListRoles() override {
    absl::StatusOr<v1::AuthResponse> r = Call(&Stub::RoleList, v1::AuthRequest());
    if (!r.ok()) return r.status();
    std::vector<Role> out;
    for (const v1::Role& role : r->roles()) {
      Role& o = out.emplace_back();
      o.name = role.name();
      for (const v1::Permission& p : role.permissions()) {
        o.permissions.push_back(
            Permission{static_cast<Permission::Type>(p.type()), p.key(), p.range_end()});
      }
    }
    return out;
  }

  // Authenticate (with no token): the token and how long it lives unused.
  static absl::StatusOr<std::pair<std::string, absl::Duration>> Login(
      const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout,
      std::string_view user, std::string_view password) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    v1::AuthResponse resp;
    absl::Status s = FromGrpc(
        v1::Auth::NewStub(channel)->Authenticate(&ctx, Req(user, password, ""), &resp));
    if (!s.ok()) return s;
    return std::make_pair(resp.token(), absl::Seconds(resp.token_ttl_seconds()));
  }

 private:
  using Stub = v1::Auth::Stub;
  using Method = grpc::Status (Stub::*)(grpc::ClientContext*, const v1::AuthRequest&,
                                        v1::AuthResponse*);
  static v1::AuthRequest Req(std::string_view user, std::string_view password,
                             std::string_view role) {
    v1::AuthRequest req;
    req.set_user(std::string(user));
    req.set_password(std::string(password));
    req.set_role(std::string(role));
    return req;
  }
  absl::StatusOr<v1::AuthResponse> Call(Method method, const v1::AuthRequest& req) {
    v1::AuthResponse resp;
    absl::Status s = FromGrpc((stub_.get()->*method)(context_().get(), req, &resp));
    if (!s.ok()) return s;
    return resp;
  }

  std::unique_ptr<Stub> stub_;
  ContextFn context_;
};

class RemoteClient final : public Client {
 public:
  RemoteClient(std::shared_ptr<grpc::Channel> channel, const ConnectOptions& options)
      : channel_(std::move(channel)),
        kv_(v1::KV::NewStub(channel_)),
        versions_(v1::Versions::NewStub(channel_)),
        options_(options),
        auth_(channel_, [this] { return Context(); }) {}

  AuthAdmin* Auth() override { return &auth_; }

  // A context with the call deadline and the bearer token. A client that
  // logged in as a user logs in again before a call once it has been idle
  // for most of the token's lifetime (the server would have forgotten the
  // token); if that fails, the call goes out with the old token and gets
  // UNAUTHENTICATED.
  std::unique_ptr<grpc::ClientContext> Context(bool deadline = true) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (deadline) ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    std::string token;
    {
      std::lock_guard<std::mutex> lock(token_mu_);
      const absl::Time now = absl::Now();
      if (!options_.user.empty() && now - last_call_ > token_ttl_ * 3 / 4) {
        auto login = RemoteAuth::Login(channel_, options_.timeout, options_.user,
                                       options_.password);
        if (login.ok()) std::tie(token_, token_ttl_) = *std::move(login);
      }
      last_call_ = now;
      token = token_;
    }
    if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return ctx;
  }

  // The token of a client that logged in as a user at Connect.
  void SetLogin(std::string token, absl::Duration ttl) {
    std::lock_guard<std::mutex> lock(token_mu_);
    token_ = std::move(token);
    token_ttl_ = ttl;
    last_call_ = absl::Now();
  }

  v1::KV::Stub& kv() { return *kv_; }

  absl::StatusOr<Entry> Get(std::string_view key, const TreeAt& at) override {
    v1::GetRequest req;
    req.set_key(std::string(key));
    if (at.version) req.mutable_read()->set_at_version(*at.version);
    req.set_branch(at.branch);
    return GetImpl(req);
  }

  absl::StatusOr<Entry> GetImpl(const v1::GetRequest& req) {
    v1::GetResponse resp;
    if (absl::Status s = FromGrpc(kv_->Get(Context().get(), req, &resp)); !s.ok()) return s;
    return Entry{resp.kv().value(), resp.kv().mod_version(), resp.read_version()};
  }

  absl::StatusOr<uint64_t> Scan(const ScanOptions& options,
                                const std::function<bool(const KeyValue&)>& visit) override {
    if (options.at) return ScanImpl(options, visit, [&](v1::ReadSelector* r) {
      r->set_at_version(*options.at);
    });
    return ScanImpl(options, visit, [](v1::ReadSelector*) {});
  }

  // Streams a scan whose read selector `select` fills in.
  absl::StatusOr<uint64_t> ScanImpl(const ScanOptions& options,
                                    const std::function<bool(const KeyValue&)>& visit,
                                    const std::function<void(v1::ReadSelector*)>& select) {
    v1::ScanRequest req;
    *req.mutable_range() = ToProto(options.range);
    select(req.mutable_read());
    req.set_branch(options.branch);
    req.set_limit(options.limit);
    req.set_reverse(options.reverse);
    req.set_keys_only(options.keys_only);
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    std::unique_ptr<grpc::ClientReader<v1::ScanResponse>> reader = kv_->Scan(ctx.get(), req);
    v1::ScanResponse page;
    uint64_t version = 0;
    bool stopped = false;
    while (!stopped && reader->Read(&page)) {
      version = page.read_version();
      for (const v1::KeyValue& kv : page.kvs()) {
        if (!visit(FromProto(kv))) {
          stopped = true;
          break;
        }
      }
    }
    if (stopped) {
      ctx->TryCancel();  // the server stops at its next page
      reader->Finish().ok();
      return version;
    }
    if (absl::Status s = FromGrpc(reader->Finish()); !s.ok()) return s;
    return version;
  }

  absl::StatusOr<uint64_t> Count(const Range& range, const TreeAt& at) override {
    v1::ScanRequest req;
    *req.mutable_range() = ToProto(range);
    if (at.version) req.mutable_read()->set_at_version(*at.version);
    req.set_branch(at.branch);
    return CountImpl(req);
  }

  absl::StatusOr<uint64_t> CountImpl(v1::ScanRequest& req) {
    req.set_count_only(true);
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    auto reader = kv_->Scan(ctx.get(), req);
    v1::ScanResponse resp;
    uint64_t count = 0;
    while (reader->Read(&resp)) count = resp.count();
    if (absl::Status s = FromGrpc(reader->Finish()); !s.ok()) return s;
    return count;
  }

  absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value,
                               const WriteOptions& options) override {
    v1::PutRequest req;
    req.set_key(std::string(key));
    req.set_value(std::string(value));
    req.set_branch(options.branch);
    v1::PutResponse resp;
    if (absl::Status s = FromGrpc(kv_->Put(Context().get(), req, &resp)); !s.ok()) return s;
    return resp.version();
  }

  absl::StatusOr<uint64_t> Delete(std::string_view key, const WriteOptions& options) override {
    v1::DeleteRequest req;
    req.set_key(std::string(key));
    req.set_branch(options.branch);
    v1::DeleteResponse resp;
    if (absl::Status s = FromGrpc(kv_->Delete(Context().get(), req, &resp)); !s.ok()) return s;
    return resp.version();
  }

  absl::StatusOr<TxnResult> Txn(const TxnRequest& request) override {
    v1::TxnResponse resp;
    absl::Status s = FromGrpc(kv_->Txn(Context().get(), ToProto(request), &resp));
    if (!s.ok()) return s;
    return FromProto(resp);
  }

  absl::StatusOr<std::unique_ptr<Transaction>> Begin(
      const TransactionOptions& options) override {
    v1::BeginRequest req;
    req.set_read_only(options.read_only);
    if (options.read_version) {
      if (!options.read_only) {
        return absl::InvalidArgumentError("read_version is for read-only transactions");
      }
      req.set_read_version(*options.read_version);
    }
    req.set_isolation(options.snapshot_isolation ? v1::BeginRequest::SNAPSHOT
                                                 : v1::BeginRequest::SERIALIZABLE);
    req.set_branch(options.branch);
    v1::BeginResponse resp;
    if (absl::Status s = FromGrpc(kv_->Begin(Context().get(), req, &resp)); !s.ok()) return s;
    return std::unique_ptr<Transaction>(
        new RemoteTransaction(this, resp.transaction_id(), resp.read_version(), options.read_only));
  }

  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override {
    v1::ListVersionsResponse resp;
    absl::Status s =
        FromGrpc(versions_->ListVersions(Context().get(), v1::ListVersionsRequest(), &resp));
    if (!s.ok()) return s;
    std::vector<VersionInfo> out;
    for (const v1::VersionInfo& v : resp.versions()) out.push_back(FromProto(v));
    return out;
  }

  absl::Status Tag(std::string_view name, uint64_t version) override {
    v1::TagRequest req;
    req.set_name(std::string(name));
    req.set_version(version);
    v1::TagResponse resp;
    return FromGrpc(versions_->Tag(Context().get(), req, &resp));
  }

  absl::Status Untag(std::string_view name) override {
    v1::UntagRequest req;
    req.set_name(std::string(name));
    v1::UntagResponse resp;
    return FromGrpc(versions_->Untag(Context().get(), req, &resp));
  }

  absl::StatusOr<std::map<std::string, uint64_t>> ListTags() override {
    v1::ListTagsResponse resp;
    absl::Status s =
        FromGrpc(versions_->ListTags(Context().get(), v1::ListTagsRequest(), &resp));
    if (!s.ok()) return s;
    return std::map<std::string, uint64_t>(resp.tags().begin(), resp.tags().end());
  }

  // The latest version, for a TreeAt without one.
  absl::StatusOr<uint64_t> Latest() {
    absl::StatusOr<ServerStatus> st = Status();
    if (!st.ok()) return st.status();
    return st->latest_version;
  }

  absl::Status Diff(const TreeAt& from, const TreeAt& to, const Range& range,
                    const std::function<bool(const Change&)>& visit) override {
    v1::DiffRequest req;
    if (!from.version || !to.version) {  // the latest: one version for both sides
      absl::StatusOr<uint64_t> latest = Latest();
      if (!latest.ok()) return latest.status();
      req.set_from_version(from.version.value_or(*latest));
      req.set_to_version(to.version.value_or(*latest));
    } else {
      req.set_from_version(*from.version);
      req.set_to_version(*to.version);
    }
    req.set_from_branch(from.branch);
    req.set_to_branch(to.branch);
    *req.mutable_range() = ToProto(range);
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    auto reader = versions_->Diff(ctx.get(), req);
    v1::DiffResponse page;
    while (reader->Read(&page)) {
      for (const v1::Change& c : page.changes()) {
        if (!visit(FromProto(c))) {
          ctx->TryCancel();
          reader->Finish().ok();
          return absl::OkStatus();
        }
      }
    }
    return FromGrpc(reader->Finish());
  }

  absl::Status Watch(const TreeAt& from, const Range& range,
                     const std::function<bool(const WatchEvent&)>& visit) override {
    v1::WatchRequest req;
    if (from.version) {
      req.set_from_version(*from.version);
    } else {
      absl::StatusOr<uint64_t> latest = Latest();
      if (!latest.ok()) return latest.status();
      req.set_from_version(*latest);
    }
    req.set_branch(from.branch);
    *req.mutable_range() = ToProto(range);
    std::unique_ptr<grpc::ClientContext> ctx = Context(/*deadline=*/false);
    auto reader = versions_->Watch(ctx.get(), req);
    v1::WatchResponse resp;
    while (reader->Read(&resp)) {
      for (const v1::Change& c : resp.changes()) {
        if (!visit(WatchEvent{resp.version(), FromProto(c), resp.net()})) {
          ctx->TryCancel();
          reader->Finish().ok();
          return absl::OkStatus();
        }
      }
    }
    return FromGrpc(reader->Finish());
  }

  absl::StatusOr<KeyHistory> History(std::string_view key,
                                     const HistoryOptions& options) override {
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    auto reader = versions_->History(ctx.get(), wire::ToProto(key, options));
    KeyHistory h;
    v1::HistoryResponse page;
    while (reader->Read(&page)) wire::AppendFromProto(page, &h);
    absl::Status s = FromGrpc(reader->Finish());
    if (!s.ok()) return s;
    return h;
  }

  absl::StatusOr<CheckReport> Check(
      const std::function<void(uint64_t, uint64_t)>& progress) override {
    std::unique_ptr<grpc::ClientContext> ctx = Context(/*deadline=*/false);
    auto reader = versions_->Check(ctx.get(), v1::CheckRequest());
    v1::CheckResponse msg;
    CheckReport out;
    while (reader->Read(&msg)) {
      if (progress) progress(msg.versions_done(), msg.versions_total());
      if (msg.has_report()) {
        const v1::CheckReport& r = msg.report();
        out = CheckReport{r.versions_checked(), r.pages_reachable(), r.blobs_reachable(),
                          r.pages_stored(),     r.blobs_stored(),    r.pages_pending(),
                          r.blobs_pending(),    r.pages_leaked(),    r.blobs_leaked()};
      }
    }
    absl::Status s = FromGrpc(reader->Finish());
    if (!s.ok()) return s;
    return out;
  }

  absl::StatusOr<Retention> GetRetention() override {
    return RetentionCall(v1::RetentionRequest());
  }

  absl::StatusOr<Retention> SetRetention(uint64_t retain_versions,
                                         uint64_t retain_seconds) override {
    v1::RetentionRequest req;
    req.set_set(true);
    req.set_retain_versions(retain_versions);
    req.set_retain_seconds(retain_seconds);
    return RetentionCall(req);
  }

  absl::StatusOr<Retention> RetentionCall(const v1::RetentionRequest& req) {
    v1::RetentionResponse r;
    absl::Status s = FromGrpc(versions_->Retention(Context().get(), req, &r));
    if (!s.ok()) return s;
    return Retention{r.retain_versions(), r.retain_seconds(), r.oldest_version(),
                     r.release_floor(), r.latest_version()};
  }

  absl::Status Export(std::optional<uint64_t> version, const std::string& path,
                      const std::function<void(uint64_t, uint64_t)>& progress) override {
    v1::ExportRequest req;
    req.set_version(version.value_or(0));
    return ExportImpl(req, path, progress);
  }

  absl::Status ExportChanges(uint64_t from, std::optional<uint64_t> to, const std::string& path,
                             const std::function<void(uint64_t, uint64_t)>& progress) override {
    v1::ExportRequest req;
    req.set_version(to.value_or(0));
    req.set_from_version(from);
    return ExportImpl(req, path, progress);
  }

  // Streams the export `req` asks for into `path` (through `path`.partial).
  absl::Status ExportImpl(const v1::ExportRequest& req, const std::string& path,
                          const std::function<void(uint64_t, uint64_t)>& progress) {
    const std::string partial = path + ".partial";
    const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return absl::InternalError("cannot create " + partial);
    std::unique_ptr<grpc::ClientContext> ctx = Context(/*deadline=*/false);
    auto reader = versions_->Export(ctx.get(), req);
    v1::FileChunk chunk;
    uint64_t done = 0;
    absl::Status failed;
    while (reader->Read(&chunk)) {
      const std::string& d = chunk.data();
      if (write(fd, d.data(), d.size()) != static_cast<ssize_t>(d.size())) {
        failed = absl::InternalError("cannot write " + partial);
        ctx->TryCancel();
        break;
      }
      done += d.size();
      if (progress) progress(done, chunk.total_bytes());
    }
    absl::Status finished = FromGrpc(reader->Finish());
    if (failed.ok() && fsync(fd) != 0) failed = absl::InternalError("cannot sync " + partial);
    close(fd);
    if (failed.ok()) failed = finished;
    if (failed.ok() && rename(partial.c_str(), path.c_str()) != 0) {
      failed = absl::InternalError("cannot rename " + partial);
    }
    if (!failed.ok()) unlink(partial.c_str());
    return failed;
  }

  absl::StatusOr<uint64_t> Import(const std::string& path,
                                  const std::function<void(uint64_t, uint64_t)>& progress) override {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::NotFoundError("cannot open " + path);
    struct stat st;
    const uint64_t total = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    std::unique_ptr<grpc::ClientContext> ctx = Context(/*deadline=*/false);
    v1::ImportResponse resp;
    auto writer = versions_->Import(ctx.get(), &resp);
    std::string buffer(1 << 20, '\0');
    uint64_t done = 0;
    absl::Status failed;
    for (;;) {
      const ssize_t n = read(fd, buffer.data(), buffer.size());
      if (n < 0) {
        failed = absl::InternalError("cannot read " + path);
        break;
      }
      if (n == 0) break;
      v1::FileChunk chunk;
      chunk.set_data(buffer.data(), static_cast<size_t>(n));
      chunk.set_total_bytes(total);
      if (!writer->Write(chunk)) break;  // the server ended the call: Finish says why
      done += static_cast<uint64_t>(n);
      if (progress) progress(done, total);
    }
    close(fd);
    if (!failed.ok()) {
      ctx->TryCancel();
      writer->Finish().ok();
      return failed;
    }
    writer->WritesDone();
    absl::Status s = FromGrpc(writer->Finish());
    if (!s.ok()) return s;
    return resp.keys();
  }

  absl::Status Backup(const std::string& dir,
                      const std::function<void(uint64_t, uint64_t)>& progress) override {
    const std::string partial = dir + ".partial";
    for (const std::string& d : {dir, partial}) {
      if (std::filesystem::exists(d)) return absl::AlreadyExistsError(d + " already exists");
    }
    std::error_code ec;
    if (!std::filesystem::create_directories(partial, ec)) {
      return absl::InternalError(absl::StrCat("cannot create ", partial, ": ", ec.message()));
    }
    absl::Status s = ReceiveBackup(partial, progress);
    if (s.ok()) {
      std::filesystem::rename(partial, dir, ec);
      if (ec) s = absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", ec.message()));
    }
    if (!s.ok()) std::filesystem::remove_all(partial, ec);
    return s;
  }

  absl::StatusOr<ProvedValue> ProveGet(std::string_view key,
                                       std::optional<uint64_t> at) override {
    v1::GetRequest req;
    req.set_key(std::string(key));
    req.set_proof(true);
    if (at) req.mutable_read()->set_at_version(*at);
    v1::GetResponse resp;
    if (absl::Status s = FromGrpc(kv_->Get(Context().get(), req, &resp)); !s.ok()) return s;
    absl::StatusOr<ReadProof> proof = wire::FromProto(resp.proof());
    if (!proof.ok()) return proof.status();
    ProvedValue out;
    if (resp.has_kv()) out.value = resp.kv().value();
    out.proof = *std::move(proof);
    return out;
  }

  absl::StatusOr<ProvedRange> ProveScan(const ScanOptions& options) override {
    v1::ScanRequest req;
    *req.mutable_range() = wire::ToProto(options.range);
    if (options.at) req.mutable_read()->set_at_version(*options.at);
    req.set_branch(options.branch);
    req.set_limit(options.limit);
    req.set_reverse(options.reverse);
    req.set_keys_only(options.keys_only);
    req.set_proof(true);
    std::unique_ptr<grpc::ClientContext> ctx = Context();
    auto reader = kv_->Scan(ctx.get(), req);
    v1::ScanResponse page;
    ProvedRange out;
    bool got = false;
    while (reader->Read(&page)) {
      if (got) continue;  // one message; drain anything else
      got = true;
      for (const v1::KeyValue& kv : page.kvs()) out.kvs.push_back(wire::FromProto(kv));
      out.proved_end = page.proved_end();
      absl::StatusOr<RangeProof> proof = wire::FromProto(page.proof());
      if (!proof.ok()) return proof.status();
      out.proof = *std::move(proof);
    }
    if (absl::Status s = FromGrpc(reader->Finish()); !s.ok()) return s;
    if (!got) return absl::DataLossError("verification failed: the scan sent no proof");
    return out;
  }

  absl::StatusOr<VersionDigest> Digest(std::optional<uint64_t> version) override {
    v1::DigestRequest req;
    if (version) req.set_version(*version);
    v1::DigestResponse resp;
    if (absl::Status s = FromGrpc(versions_->Digest(Context().get(), req, &resp)); !s.ok()) {
      return s;
    }
    absl::StatusOr<Hash> root = wire::HashFromBytes(resp.root_hash(), "the root hash");
    if (!root.ok()) return root.status();
    absl::StatusOr<Hash> digest = wire::HashFromBytes(resp.digest(), "the digest");
    if (!digest.ok()) return digest.status();
    return VersionDigest{resp.version(), *root, *digest, resp.commit_unix_micros()};
  }

  // The server answers at most 100,000 links per call: asks in steps.
  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from, uint64_t to) override {
    constexpr uint64_t kStep = 100000;
    if (from > to) {
      return absl::InvalidArgumentError(absl::StrCat(
          "digest links from version ", from, " to ", to, ": from is after to"));
    }
    std::vector<DigestLink> links;
    uint64_t at = from;
    do {
      v1::DigestRequest req;
      req.set_links_from(at);
      req.set_version(to - at > kStep ? at + kStep : to);
      v1::DigestResponse resp;
      if (absl::Status s = FromGrpc(versions_->Digest(Context().get(), req, &resp)); !s.ok()) {
        return s;
      }
      for (const v1::DigestLink& l : resp.links()) {
        absl::StatusOr<Hash> root = wire::HashFromBytes(l.root_hash(), "a link's root hash");
        if (!root.ok()) return root.status();
        links.push_back({l.version(), *root, l.commit_unix_micros()});
      }
      at = req.version();
    } while (at < to);
    return links;
  }

  absl::StatusOr<uint64_t> VersionAt(absl::Time time) override {
    v1::VersionAtRequest req;
    req.set_unix_micros(absl::ToUnixMicros(time));
    v1::VersionAtResponse resp;
    absl::Status s = FromGrpc(versions_->VersionAt(Context().get(), req, &resp));
    if (!s.ok()) return s;
    return resp.version();
  }

  // Writes the stream of Backup into `dir`, each file synced when done.
  absl::Status ReceiveBackup(const std::string& dir,
                             const std::function<void(uint64_t, uint64_t)>& progress) {
    std::unique_ptr<grpc::ClientContext> ctx = Context(/*deadline=*/false);
    auto reader = versions_->Backup(ctx.get(), v1::BackupRequest());
    v1::BackupChunk chunk;
    std::string open_path;
    int fd = -1;
    uint64_t done = 0;
    absl::Status failed;
    auto close_file = [&]() -> absl::Status {
      if (fd < 0) return absl::OkStatus();
      const bool ok = fsync(fd) == 0;
      close(fd);
      fd = -1;
      return ok ? absl::OkStatus() : absl::InternalError("cannot sync " + open_path);
    };
    while (failed.ok() && reader->Read(&chunk)) {
      const std::filesystem::path rel(chunk.path());
      if (chunk.path().empty() || rel.is_absolute() ||
          std::find(rel.begin(), rel.end(), "..") != rel.end()) {
        failed = absl::DataLossError("the server sent a bad backup path: " + chunk.path());
        break;
      }
      if (chunk.path() != open_path) {
        failed = close_file();
        if (!failed.ok()) break;
        open_path = chunk.path();
        const std::filesystem::path full = std::filesystem::path(dir) / rel;
        std::error_code ec;
        std::filesystem::create_directories(full.parent_path(), ec);
        fd = open(full.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
          failed = absl::InternalError("cannot create " + full.string());
          break;
        }
      }
      const std::string& data = chunk.data();
      if (pwrite(fd, data.data(), data.size(), static_cast<off_t>(chunk.offset())) !=
          static_cast<ssize_t>(data.size())) {
        failed = absl::InternalError("cannot write " + open_path);
        break;
      }
      done += data.size();
      if (progress) progress(done, chunk.total_bytes());
    }
    if (!failed.ok()) ctx->TryCancel();
    absl::Status closed = close_file();
    absl::Status finished = FromGrpc(reader->Finish());
    if (!failed.ok()) return failed;
    if (!finished.ok()) return finished;
    if (!closed.ok()) return closed;
    const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ServerStatus> Status() override {
    v1::StatusResponse r;
    absl::Status s = FromGrpc(versions_->Status(Context().get(), v1::StatusRequest(), &r));
    if (!s.ok()) return s;
    return FromProto(r);
  }

  absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from) override {
    v1::ForkRequest req;
    req.set_name(std::string(name));
    req.set_from_branch(from.branch);
    if (from.version) req.set_from_version(*from.version);
    v1::ForkResponse resp;
    absl::Status s = FromGrpc(versions_->Fork(Context().get(), req, &resp));
    if (!s.ok()) return s;
    return resp.version();
  }

  absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) override {
    v1::DeleteBranchRequest req;
    req.set_name(std::string(name));
    v1::DeleteBranchResponse resp;
    absl::Status s = FromGrpc(versions_->DeleteBranch(Context().get(), req, &resp));
    if (!s.ok()) return s;
    return resp.version();
  }

  absl::StatusOr<std::vector<BranchInfo>> ListBranches() override {
    v1::ListBranchesResponse resp;
    absl::Status s = FromGrpc(
        versions_->ListBranches(Context().get(), v1::ListBranchesRequest(), &resp));
    if (!s.ok()) return s;
    std::vector<BranchInfo> out;
    for (const v1::BranchInfo& b : resp.branches()) out.push_back(FromProto(b));
    return out;
  }

  absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                    MergePolicy policy) override {
    v1::MergeRequest req;
    req.set_from(std::string(from));
    req.set_into(std::string(into));
    req.set_policy(ToProto(policy));
    v1::MergeResponse resp;
    absl::Status s = FromGrpc(versions_->Merge(Context().get(), req, &resp));
    if (!s.ok()) return s;
    return FromProto(resp);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KV::Stub> kv_;
  std::unique_ptr<v1::Versions::Stub> versions_;
  const ConnectOptions options_;
  RemoteAuth auth_;
  mutable std::mutex token_mu_;
  mutable std::string token_ = options_.token;                  // guarded by token_mu_
  mutable absl::Duration token_ttl_ = absl::InfiniteDuration();  // guarded by token_mu_
  mutable absl::Time last_call_ = absl::Now();                  // guarded by token_mu_
};

absl::Status RemoteTransaction::Flush() {
  if (finished_) return Finished();
  if (pending_.mutations_size() == 0) return absl::OkStatus();
  pending_.set_transaction_id(id_);
  v1::WriteResponse resp;
  absl::Status s = FromGrpc(client_->kv().Write(client_->Context().get(), pending_, &resp));
  pending_.clear_mutations();
  if (!s.ok() && !absl::IsResourceExhausted(s)) finished_ = true;  // the server ended it
  return s;
}

absl::StatusOr<Entry> RemoteTransaction::Get(std::string_view key) {
  if (absl::Status s = Flush(); !s.ok()) return s;
  v1::GetRequest req;
  req.set_key(std::string(key));
  req.mutable_read()->set_transaction_id(id_);
  return client_->GetImpl(req);
}

absl::StatusOr<uint64_t> RemoteTransaction::Scan(
    const ScanOptions& options, const std::function<bool(const KeyValue&)>& visit) {
  if (options.at) {
    return absl::InvalidArgumentError("a transaction reads at its own snapshot; no `at`");
  }
  if (!options.branch.empty()) {
    return absl::InvalidArgumentError("a transaction reads the branch it began on; no `branch`");
  }
  if (absl::Status s = Flush(); !s.ok()) return s;
  return client_->ScanImpl(options, visit,
                           [&](v1::ReadSelector* r) { r->set_transaction_id(id_); });
}

absl::StatusOr<uint64_t> RemoteTransaction::Count(const Range& range) {
  if (absl::Status s = Flush(); !s.ok()) return s;
  v1::ScanRequest req;
  *req.mutable_range() = ToProto(range);
  req.mutable_read()->set_transaction_id(id_);
  return client_->CountImpl(req);
}

absl::StatusOr<uint64_t> RemoteTransaction::Commit() {
  if (finished_) return Finished();
  v1::CommitRequest req;
  req.set_transaction_id(id_);
  *req.mutable_mutations() = std::move(*pending_.mutable_mutations());
  pending_.clear_mutations();
  v1::CommitResponse resp;
  absl::Status s = FromGrpc(client_->kv().Commit(client_->Context().get(), req, &resp));
  if (absl::IsResourceExhausted(s)) return s;  // still open: roll back or retry
  finished_ = true;
  if (!s.ok()) return s;
  return resp.version();
}

absl::Status RemoteTransaction::Rollback() {
  if (finished_) return Finished();
  finished_ = true;
  pending_.clear_mutations();
  v1::RollbackRequest req;
  req.set_transaction_id(id_);
  v1::RollbackResponse resp;
  return FromGrpc(client_->kv().Rollback(client_->Context().get(), req, &resp));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Connect(const ConnectOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_root_certs.empty()) {
    if (!options.tls_client_cert.empty() || !options.tls_client_key.empty()) {
      return absl::InvalidArgumentError("a client certificate needs TLS root certificates");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (options.tls_client_cert.empty() != options.tls_client_key.empty()) {
      return absl::InvalidArgumentError("a client certificate and key go together");
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_client_cert;
    ssl.pem_private_key = options.tls_client_key;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, creds, args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + options.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach a cowdb_server at ", options.target, " within ",
        absl::FormatDuration(options.connect_timeout)));
  }
  if (options.user.empty()) {
    return std::unique_ptr<Client>(new RemoteClient(std::move(channel), options));
  }
  if (!options.token.empty()) {
    return absl::InvalidArgumentError("give a token or a user, not both");
  }
  auto login = RemoteAuth::Login(channel, options.timeout, options.user, options.password);
  if (!login.ok()) return login.status();
  auto client = std::make_unique<RemoteClient>(std::move(channel), options);
  client->SetLogin(login->first, login->second);
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace cowdb::client
