// The etcd face's gRPC services: thin handlers over kv.cc, watch.cc and
// lease.cc, plus Maintenance, Cluster and Auth.

#include "server/admission.h"
#include "server/etcd/etcd.h"

#include <fcntl.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "server/etcd/auth_policy.h"
#include "server/etcd/internal.h"

namespace cowdb::server::etcd {
namespace {

// Every handler starts here: the policy (auth_policy.h) says what the
// request needs, AccessControl decides.
#define COWDB_ETCD_AUTH(s, ctx, need)                                 \
  do {                                                                \
    grpc::Status auth_status = AdmitEtcd(*(s).auth, ctx, need);       \
    if (!auth_status.ok()) return auth_status;                        \
  } while (0)
#define COWDB_ETCD_ADMIN_AUTH(s, ctx, need)                                             \
  do {                                                                                  \
    grpc::Status auth_status = AdmitEtcd(*(s).auth, ctx, need, Refusal::kMaintenance);  \
    if (!auth_status.ok()) return auth_status;                                          \
  } while (0)

// The keys attached to a lease, for the policy; none while auth is off
// (Admit then asks nothing, and listing them reads every key).
LeaseKeys LeaseKeysOf(const Shared& s) {
  if (!s.auth->enabled()) return nullptr;
  return [&s](int64_t id) {
    absl::StatusOr<Lessor::Info> info = s.lessor->TimeToLive(id, true);
    return info.ok() ? info->keys : std::vector<std::string>();
  };
}

grpc::Status FromLease(const absl::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  if (absl::IsNotFound(st)) return errors::LeaseNotFound();
  if (absl::IsAlreadyExists(st)) return errors::LeaseExist();
  if (absl::IsOutOfRange(st)) return errors::LeaseTTLTooLarge();
  return ToGrpcStatus(st);
}

// KV on gRPC's callback API: a write waits for its commit without holding
// a thread (reads never wait).
class KvService final : public pb::KV::CallbackService {
 public:
  explicit KvService(const Shared& s)
      : s_(s),
        admission_(s.options->max_inflight_writes, s.options->max_inflight_write_bytes) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const pb::RangeRequest* r,
                                  pb::RangeResponse* resp) override {
    return Answer(ctx, CheckRange(*r), NeedOf(*r),
                  [&](Finish finish) { finish(RunRange(s_, *r, resp)); });
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const pb::PutRequest* r,
                                pb::PutResponse* resp) override {
    return Answer(ctx, CheckPut(*r), NeedOf(*r, LeaseKeysOf(s_)), [&](Finish finish) {
      if (Admit(ctx, r->ByteSizeLong(), &finish)) StartPut(s_, r, resp, std::move(finish));
    });
  }
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const pb::DeleteRangeRequest* r,
                                        pb::DeleteRangeResponse* resp) override {
    return Answer(ctx, CheckDelete(*r), NeedOf(*r), [&](Finish finish) {
      if (Admit(ctx, r->ByteSizeLong(), &finish)) StartDelete(s_, r, resp, std::move(finish));
    });
  }
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const pb::TxnRequest* r,
                                pb::TxnResponse* resp) override {
    return Answer(ctx, CheckTxn(*r, s_.options->max_txn_ops), NeedOf(*r, LeaseKeysOf(s_)),
                  [&](Finish finish) {
      if (Admit(ctx, r->ByteSizeLong(), &finish)) StartTxn(s_, r, resp, std::move(finish));
    });
  }
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const pb::CompactionRequest* r,
                                    pb::CompactionResponse* resp) override {
    return Answer(ctx, grpc::Status::OK, NeedOf(*r),
                  [&](Finish finish) { finish(DoCompact(r, resp)); });
  }

 private:
  // Answers `valid` if it is an error (etcd checks a request's form
  // before its permissions), then checks that the caller has `need`, then
  // runs `start(finish)`; the call ends when `finish` is called.
  template <typename Start>
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, grpc::Status valid,
                                   const Need& need, Start start) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Finish finish = [reactor](grpc::Status st) { reactor->Finish(st); };
    grpc::Status auth = valid.ok() ? AdmitEtcd(*s_.auth, ctx, need) : valid;
    if (!auth.ok()) {
      finish(auth);
    } else {
      start(std::move(finish));
    }
    return reactor;
  }

  // Admits a write of `bytes` (see EtcdOptions::max_inflight_writes), or
  // finishes the call as etcd does when overloaded (false). Admitted,
  // `*finish` releases its place when the call is answered.
  bool Admit(grpc::CallbackServerContext* ctx, uint64_t bytes, Finish* finish) {
    auto ticket = std::make_shared<WriteAdmission::Ticket>();
    if (!admission_.Admit(ctx->peer(), bytes, ticket.get()).ok()) {
      (*finish)(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             "etcdserver: too many requests"));
      return false;
    }
    *finish = [ticket, inner = std::move(*finish)](grpc::Status st) {
      ticket->Release();
      inner(std::move(st));
    };
    return true;
  }

  // Releases the versions below the revision, except tagged ones.
  grpc::Status DoCompact(const pb::CompactionRequest* r, pb::CompactionResponse* resp) {
    uint64_t latest = s_.db->LatestVersion();
    uint64_t compacted = s_.CompactRevision();
    if (r->revision() < 0 ||
        (compacted > 0 && static_cast<uint64_t>(r->revision()) <= compacted)) {
      return errors::Compacted();
    }
    if (static_cast<uint64_t>(r->revision()) > latest) return errors::FutureRev();
    if (r->revision() > 1) {
      absl::Status st = s_.db->ReleaseBefore(static_cast<uint64_t>(r->revision()) - 1);
      if (!st.ok()) return FromEngine(st);
    }
    if (r->physical()) {
      absl::StatusOr<ReclaimStats> rs = s_.db->Reclaim();
      if (!rs.ok()) return FromEngine(rs.status());
    }
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;
  }

 private:
  const Shared& s_;
  WriteAdmission admission_;
};

class WatchService final : public pb::Watch::Service {
 public:
  explicit WatchService(const Shared& s) : s_(s) {}
  grpc::Status Watch(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* rw) override {
    // Each watch a stream creates is checked as it is created (watch.cc).
    return ServeWatch(s_, ctx, rw);
  }

 private:
  const Shared& s_;
};

class LeaseService final : public pb::Lease::Service {
 public:
  explicit LeaseService(const Shared& s) : s_(s) {}

  grpc::Status LeaseGrant(grpc::ServerContext* ctx, const pb::LeaseGrantRequest* r,
                          pb::LeaseGrantResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    absl::StatusOr<Lessor::Granted> g = s_.lessor->Grant(r->id(), r->ttl());
    if (!g.ok()) return FromLease(g.status());
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    resp->set_id(g->id);
    resp->set_ttl(g->ttl);
    return grpc::Status::OK;
  }
  grpc::Status LeaseRevoke(grpc::ServerContext* ctx, const pb::LeaseRevokeRequest* r,
                           pb::LeaseRevokeResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r, LeaseKeysOf(s_)));
    absl::Status st = s_.lessor->Revoke(r->id());
    if (!st.ok()) return FromLease(st);
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;
  }
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<pb::LeaseKeepAliveResponse, pb::LeaseKeepAliveRequest>* rw)
      override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(pb::LeaseKeepAliveRequest()));
    pb::LeaseKeepAliveRequest req;
    while (rw->Read(&req)) {
      pb::LeaseKeepAliveResponse resp;
      absl::StatusOr<int64_t> ttl = s_.lessor->Renew(req.id());
      if (!ttl.ok() && !absl::IsNotFound(ttl.status())) return ToGrpcStatus(ttl.status());
      s_.FillHeader(s_.db->LatestVersion(), resp.mutable_header());
      resp.set_id(req.id());
      resp.set_ttl(ttl.ok() ? *ttl : 0);  // etcd: TTL 0 for an unknown lease
      if (!rw->Write(resp)) break;
    }
    return grpc::Status::OK;
  }
  grpc::Status LeaseTimeToLive(grpc::ServerContext* ctx,
                               const pb::LeaseTimeToLiveRequest* r,
                               pb::LeaseTimeToLiveResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r, LeaseKeysOf(s_)));
    absl::StatusOr<Lessor::Info> info = s_.lessor->TimeToLive(r->id(), r->keys());
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    resp->set_id(r->id());
    if (absl::IsNotFound(info.status())) {
      resp->set_ttl(-1);  // as etcd
      return grpc::Status::OK;
    }
    if (!info.ok()) return ToGrpcStatus(info.status());
    resp->set_ttl(info->remaining);
    resp->set_grantedttl(info->granted);
    for (const std::string& k : info->keys) resp->add_keys(k);
    return grpc::Status::OK;
  }
  grpc::Status LeaseLeases(grpc::ServerContext* ctx, const pb::LeaseLeasesRequest* r,
                           pb::LeaseLeasesResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    for (int64_t id : s_.lessor->List()) resp->add_leases()->set_id(id);
    return grpc::Status::OK;
  }

 private:
  const Shared& s_;
};

class ClusterService final : public pb::Cluster::Service {
 public:
  explicit ClusterService(const Shared& s) : s_(s) {}
  grpc::Status MemberList(grpc::ServerContext* ctx, const pb::MemberListRequest* r,
                          pb::MemberListResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    s_.FillHeader(0, resp->mutable_header());  // etcd's has no revision
    pb::Member* m = resp->add_members();
    m->set_id(s_.options->member_id);
    m->set_name(s_.options->member_name);
    for (const std::string& u : s_.options->client_urls) m->add_clienturls(u);
    return grpc::Status::OK;
  }
#define COWDB_ETCD_NO_MEMBERSHIP(Method)                                          \
  grpc::Status Method(grpc::ServerContext* ctx, const pb::Method##Request* r,     \
                      pb::Method##Response*) override {                           \
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));                                                     \
    return grpc::Status(grpc::UNIMPLEMENTED,                                      \
                        "cowdb: a single-member cluster; membership cannot change"); \
  }
  COWDB_ETCD_NO_MEMBERSHIP(MemberAdd)
  COWDB_ETCD_NO_MEMBERSHIP(MemberRemove)
  COWDB_ETCD_NO_MEMBERSHIP(MemberUpdate)
  COWDB_ETCD_NO_MEMBERSHIP(MemberPromote)
#undef COWDB_ETCD_NO_MEMBERSHIP

 private:
  const Shared& s_;
};

// The hash of the keys, values and revisions of one version.
absl::StatusOr<uint32_t> HashAt(const Shared& s, const Snapshot& snap) {
  ReadOptions ro;
  ro.snapshot = &snap;
  absl::StatusOr<std::unique_ptr<Iterator>> it = s.db->NewIterator(ro);
  if (!it.ok()) return it.status();
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next()) {
    std::string_view k = (*it)->key(), v = (*it)->value();
    KeyMeta m = (*it)->meta();
    uint64_t fields[6] = {k.size(), v.size(), m.mod_version, m.create_version, m.writes,
                          m.lease};
    XXH3_64bits_update(state, fields, sizeof(fields));
    XXH3_64bits_update(state, k.data(), k.size());
    XXH3_64bits_update(state, v.data(), v.size());
  }
  uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  if (!(*it)->status().ok()) return (*it)->status();
  return static_cast<uint32_t>(h ^ (h >> 32));
}

class MaintenanceService final : public pb::Maintenance::Service {
 public:
  explicit MaintenanceService(const Shared& s) : s_(s) {}

  grpc::Status Alarm(grpc::ServerContext* ctx, const pb::AlarmRequest* r,
                     pb::AlarmResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;  // cowdb raises no alarms
  }
  grpc::Status Status(grpc::ServerContext* ctx, const pb::StatusRequest* r,
                      pb::StatusResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    DBStats st = s_.db->GetStats();
    s_.FillHeader(st.latest_version, resp->mutable_header());
    resp->set_version("3.4.0-cowdb");
    resp->set_dbsize(static_cast<int64_t>(st.disk_bytes));
    resp->set_dbsizeinuse(static_cast<int64_t>(st.disk_bytes));
    resp->set_leader(s_.options->member_id);
    resp->set_raftindex(st.latest_version);
    resp->set_raftterm(1);
    resp->set_raftappliedindex(st.latest_version);
    return grpc::Status::OK;
  }
  grpc::Status Defragment(grpc::ServerContext* ctx, const pb::DefragmentRequest* r,
                          pb::DefragmentResponse* resp) override {
    COWDB_ETCD_ADMIN_AUTH(s_, ctx, NeedOf(*r));
    // Space is reclaimed continuously; nothing to do.
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;
  }
  grpc::Status Hash(grpc::ServerContext* ctx, const pb::HashRequest* r,
                    pb::HashResponse* resp) override {
    COWDB_ETCD_ADMIN_AUTH(s_, ctx, NeedOf(*r));
    cowdb::Snapshot snap = s_.db->GetSnapshot();
    absl::StatusOr<uint32_t> h = HashAt(s_, snap);
    if (!h.ok()) return FromEngine(h.status());
    s_.FillHeader(snap.version(), resp->mutable_header());
    resp->set_hash(*h);
    return grpc::Status::OK;
  }
  grpc::Status HashKV(grpc::ServerContext* ctx, const pb::HashKVRequest* r,
                      pb::HashKVResponse* resp) override {
    COWDB_ETCD_ADMIN_AUTH(s_, ctx, NeedOf(*r));
    cowdb::Snapshot latest = s_.db->GetSnapshot();
    cowdb::Snapshot snap = latest;
    if (r->revision() > 0) {
      if (static_cast<uint64_t>(r->revision()) > latest.version()) return errors::FutureRev();
      if (s_.IsCompacted(static_cast<uint64_t>(r->revision()))) return errors::Compacted();
      absl::StatusOr<cowdb::Snapshot> at = s_.db->SnapshotAt(static_cast<uint64_t>(r->revision()));
      if (!at.ok()) return FromEngine(at.status());
      snap = *std::move(at);
    }
    absl::StatusOr<uint32_t> h = HashAt(s_, snap);
    if (!h.ok()) return FromEngine(h.status());
    s_.FillHeader(latest.version(), resp->mutable_header());
    resp->set_hash(*h);
    uint64_t compacted = s_.CompactRevision();
    resp->set_compact_revision(compacted == 0 ? -1 : static_cast<int64_t>(compacted));
    return grpc::Status::OK;
  }
  // Streams an export of the latest version (engine/format/export_file.h)
  // in etcd's snapshot frame: zero padding, the export's length and a
  // SHA-256 of everything before it, which `etcdctl snapshot save` checks
  // for. `cowdb import` reads the file; `etcdctl snapshot restore` cannot
  // (it expects etcd's bbolt file).
  grpc::Status Snapshot(grpc::ServerContext* ctx, const pb::SnapshotRequest* r,
                        grpc::ServerWriter<pb::SnapshotResponse>* w) override {
    COWDB_ETCD_ADMIN_AUTH(s_, ctx, NeedOf(*r));
    const char* tmpdir = std::getenv("TMPDIR");
    std::string path = absl::StrCat(tmpdir != nullptr ? tmpdir : "/tmp",
                                    "/cowdb-etcd-snapshot-XXXXXX");
    int fd = ::mkstemp(path.data());
    if (fd < 0) return grpc::Status(grpc::INTERNAL, "cannot create a snapshot file");
    ::close(fd);
    ::unlink(path.c_str());  // Export creates it
    absl::Status st = s_.db->Export(s_.db->LatestVersion(), path);
    if (!st.ok()) return FromEngine(st);
    std::ifstream in(path, std::ios::binary);
    ::unlink(path.c_str());  // the open stream keeps it readable
    in.seekg(0, std::ios::end);
    const uint64_t length = static_cast<uint64_t>(in.tellg());
    in.seekg(0);
    const uint64_t padding = (512 - (length + 8) % 512) % 512;
    const uint64_t total = length + padding + 8 + 32;
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
    uint64_t sent = 0;
    auto send = [&](std::string_view bytes, bool hash) {
      if (hash) EVP_DigestUpdate(sha.get(), bytes.data(), bytes.size());
      sent += bytes.size();
      pb::SnapshotResponse resp;
      s_.FillHeader(s_.db->LatestVersion(), resp.mutable_header());
      resp.set_remaining_bytes(total - sent);
      resp.set_blob(bytes.data(), bytes.size());
      return w->Write(resp);
    };
    std::string chunk(32 * 1024, '\0');
    for (uint64_t left = length; left > 0;) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::CANCELLED, "snapshot cancelled");
      auto n = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
      if (!in.read(chunk.data(), static_cast<std::streamsize>(n))) {
        return grpc::Status(grpc::INTERNAL, "snapshot read failed");
      }
      left -= n;
      if (!send(std::string_view(chunk.data(), n), true)) return grpc::Status::OK;
    }
    std::string tail(padding, '\0');
    for (int i = 0; i < 8; ++i) tail.push_back(static_cast<char>(length >> (8 * i)));
    if (!send(tail, true)) return grpc::Status::OK;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_DigestFinal_ex(sha.get(), digest, &digest_len);
    send(std::string_view(reinterpret_cast<const char*>(digest), digest_len), false);
    return grpc::Status::OK;
  }
  grpc::Status MoveLeader(grpc::ServerContext* ctx, const pb::MoveLeaderRequest* r,
                          pb::MoveLeaderResponse* resp) override {
    COWDB_ETCD_ADMIN_AUTH(s_, ctx, NeedOf(*r));
    if (r->targetid() != s_.options->member_id) {
      return grpc::Status(grpc::FAILED_PRECONDITION, "etcdserver: bad leader transferee");
    }
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;
  }

 private:
  const Shared& s_;
};

// etcd's Auth service: thin handlers over AccessControl, with etcd's
// errors. etcd's own rules that AccessControl does not have (enabling
// needs the user "root" with the role root, which cannot lose either
// while auth is on) are checked here.
class AuthService final : public pb::Auth::Service {
 public:
  explicit AuthService(const Shared& s) : s_(s) {}

  grpc::Status AuthEnable(grpc::ServerContext* ctx, const pb::AuthEnableRequest* r,
                          pb::AuthEnableResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    std::optional<v1::User> root = FindUser(kRoot);
    if (!root.has_value()) return errors::RootUserNotExist();
    if (!HasRole(*root, kRoot)) return errors::RootRoleNotExist();
    return Done(ac().SetEnabled(true), resp);
  }
  grpc::Status AuthDisable(grpc::ServerContext* ctx, const pb::AuthDisableRequest* r,
                           pb::AuthDisableResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    return Done(ac().SetEnabled(false), resp);
  }
  grpc::Status Authenticate(grpc::ServerContext* ctx, const pb::AuthenticateRequest* r,
                            pb::AuthenticateResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    absl::StatusOr<std::string> token = ac().Authenticate(r->name(), r->password());
    if (absl::IsFailedPrecondition(token.status())) return errors::AuthNotEnabled();
    if (absl::IsUnauthenticated(token.status())) return errors::AuthFailed();
    if (!token.ok()) return ToGrpcStatus(token.status());
    resp->set_token(*std::move(token));
    return Done(absl::OkStatus(), resp);
  }

  grpc::Status UserAdd(grpc::ServerContext* ctx, const pb::AuthUserAddRequest* r,
                       pb::AuthUserAddResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (r->name().empty()) return errors::UserEmpty();
    if (r->options().no_password()) {
      return grpc::Status(grpc::INVALID_ARGUMENT,
                          "cowdb: every user needs a password (no_password is not supported)");
    }
    absl::Status st = ac().AddUser(r->name(), r->password());
    if (absl::IsAlreadyExists(st)) return errors::UserAlreadyExist();
    return Done(st, resp);
  }
  grpc::Status UserGet(grpc::ServerContext* ctx, const pb::AuthUserGetRequest* r,
                       pb::AuthUserGetResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r, ac().UserOf(ctx)));
    std::optional<v1::User> u = FindUser(r->name());
    if (!u.has_value()) return errors::UserNotFound();
    std::vector<std::string> roles(u->roles().begin(), u->roles().end());
    std::sort(roles.begin(), roles.end());  // etcd keeps them sorted
    for (std::string& role : roles) resp->add_roles(std::move(role));
    return Done(absl::OkStatus(), resp);
  }
  grpc::Status UserList(grpc::ServerContext* ctx, const pb::AuthUserListRequest* r,
                        pb::AuthUserListResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    for (const v1::User& u : ac().Users()) resp->add_users(u.name());
    return Done(absl::OkStatus(), resp);
  }
  grpc::Status UserDelete(grpc::ServerContext* ctx, const pb::AuthUserDeleteRequest* r,
                          pb::AuthUserDeleteResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (ac().enabled() && r->name() == kRoot) return errors::InvalidAuthMgmt();
    absl::Status st = ac().DeleteUser(r->name());
    if (absl::IsNotFound(st)) return errors::UserNotFound();
    if (absl::IsFailedPrecondition(st)) return errors::InvalidAuthMgmt();
    return Done(st, resp);
  }
  grpc::Status UserChangePassword(grpc::ServerContext* ctx,
                                  const pb::AuthUserChangePasswordRequest* r,
                                  pb::AuthUserChangePasswordResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (!FindUser(r->name()).has_value()) return errors::UserNotFound();
    absl::Status st = ac().SetPassword(r->name(), r->password());
    if (absl::IsNotFound(st)) return errors::UserNotFound();
    return Done(st, resp);
  }
  grpc::Status UserGrantRole(grpc::ServerContext* ctx, const pb::AuthUserGrantRoleRequest* r,
                             pb::AuthUserGrantRoleResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (!FindUser(r->user()).has_value()) return errors::UserNotFound();
    if (!RoleExists(r->role())) return errors::RoleNotFound();
    absl::Status st = ac().GrantRole(r->user(), r->role());
    if (absl::IsAlreadyExists(st)) st = absl::OkStatus();  // etcd ignores a repeated grant
    if (absl::IsNotFound(st)) return errors::UserNotFound();  // deleted meanwhile
    return Done(st, resp);
  }
  grpc::Status UserRevokeRole(grpc::ServerContext* ctx, const pb::AuthUserRevokeRoleRequest* r,
                              pb::AuthUserRevokeRoleResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (ac().enabled() && r->name() == kRoot && r->role() == kRoot) {
      return errors::InvalidAuthMgmt();
    }
    if (!FindUser(r->name()).has_value()) return errors::UserNotFound();
    absl::Status st = ac().RevokeRole(r->name(), r->role());
    if (absl::IsNotFound(st)) return errors::RoleNotGranted();
    if (absl::IsFailedPrecondition(st)) return errors::InvalidAuthMgmt();
    return Done(st, resp);
  }

  grpc::Status RoleAdd(grpc::ServerContext* ctx, const pb::AuthRoleAddRequest* r,
                       pb::AuthRoleAddResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (r->name().empty()) return errors::RoleEmpty();
    // cowdb's role root is built in: adding it (as etcdctl does before it
    // enables auth) succeeds.
    if (r->name() == kRoot) return Done(absl::OkStatus(), resp);
    absl::Status st = ac().AddRole(r->name());
    if (absl::IsAlreadyExists(st)) return errors::RoleAlreadyExist();
    return Done(st, resp);
  }
  grpc::Status RoleGet(grpc::ServerContext* ctx, const pb::AuthRoleGetRequest* r,
                       pb::AuthRoleGetResponse* resp) override {
    std::vector<std::string> caller_roles;
    if (std::optional<v1::User> u = FindUser(ac().UserOf(ctx)); u.has_value()) {
      caller_roles.assign(u->roles().begin(), u->roles().end());
    }
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r, caller_roles));
    for (const v1::Role& role : ac().Roles()) {
      if (role.name() != r->role()) continue;
      std::vector<v1::Permission> perms(role.permissions().begin(), role.permissions().end());
      std::sort(perms.begin(), perms.end(), [](const v1::Permission& a, const v1::Permission& b) {
        return std::tie(a.key(), a.range_end()) < std::tie(b.key(), b.range_end());
      });  // etcd keeps them sorted by key
      for (const v1::Permission& p : perms) {
        authpb::Permission* out = resp->add_perm();
        out->set_permtype(static_cast<authpb::Permission::Type>(p.type()));
        out->set_key(p.key());
        out->set_range_end(p.range_end());
      }
      return Done(absl::OkStatus(), resp);
    }
    return errors::RoleNotFound();
  }
  grpc::Status RoleList(grpc::ServerContext* ctx, const pb::AuthRoleListRequest* r,
                        pb::AuthRoleListResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    for (const v1::Role& role : ac().Roles()) resp->add_roles(role.name());
    return Done(absl::OkStatus(), resp);
  }
  grpc::Status RoleDelete(grpc::ServerContext* ctx, const pb::AuthRoleDeleteRequest* r,
                          pb::AuthRoleDeleteResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (r->role() == kRoot && ac().enabled()) return errors::InvalidAuthMgmt();
    absl::Status st = ac().DeleteRole(r->role());
    if (absl::IsNotFound(st)) return errors::RoleNotFound();
    return Done(st, resp);
  }
  grpc::Status RoleGrantPermission(grpc::ServerContext* ctx,
                                   const pb::AuthRoleGrantPermissionRequest* r,
                                   pb::AuthRoleGrantPermissionResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (!RoleExists(r->name())) return errors::RoleNotFound();
    v1::Permission p;
    p.set_type(static_cast<v1::Permission::Type>(r->perm().permtype()));
    p.set_key(r->perm().key());
    p.set_range_end(r->perm().range_end());
    absl::Status st = ac().GrantPermission(r->name(), p);
    if (absl::IsNotFound(st)) return errors::RoleNotFound();
    return Done(st, resp);
  }
  grpc::Status RoleRevokePermission(grpc::ServerContext* ctx,
                                    const pb::AuthRoleRevokePermissionRequest* r,
                                    pb::AuthRoleRevokePermissionResponse* resp) override {
    COWDB_ETCD_AUTH(s_, ctx, NeedOf(*r));
    if (!RoleExists(r->role())) return errors::RoleNotFound();
    absl::Status st = ac().RevokePermission(r->role(), r->key(), r->range_end());
    if (absl::IsNotFound(st)) return errors::PermissionNotGranted();
    return Done(st, resp);
  }

 private:
  static constexpr char kRoot[] = "root";

  AccessControl& ac() const { return *s_.auth; }
  std::optional<v1::User> FindUser(std::string_view name) const {
    for (v1::User& u : ac().Users()) {
      if (u.name() == name) return std::move(u);
    }
    return std::nullopt;
  }
  static bool HasRole(const v1::User& u, std::string_view role) {
    return std::find(u.roles().begin(), u.roles().end(), role) != u.roles().end();
  }
  // The role root (built in) included.
  bool RoleExists(std::string_view name) const {
    for (const v1::Role& r : ac().Roles()) {
      if (r.name() == name) return true;
    }
    return false;
  }
  // `st` as etcd's answer; OK with a response header.
  template <typename Resp>
  grpc::Status Done(const absl::Status& st, Resp* resp) const {
    if (!st.ok()) return ToGrpcStatus(st);
    s_.FillHeader(s_.db->LatestVersion(), resp->mutable_header());
    return grpc::Status::OK;
  }

  const Shared& s_;
};

}  // namespace

struct EtcdFace::Services {
  EtcdOptions options;
  Shared shared;
  std::unique_ptr<KvService> kv;
  std::unique_ptr<WatchService> watch;
  std::unique_ptr<LeaseService> lease;
  std::unique_ptr<ClusterService> cluster;
  std::unique_ptr<MaintenanceService> maintenance;
  std::unique_ptr<AuthService> auth;
  std::unique_ptr<WatchHub> hub;
};

absl::StatusOr<std::unique_ptr<EtcdFace>> EtcdFace::Create(
    DB* db, EtcdOptions options, AccessControl* auth) {
  std::unique_ptr<EtcdFace> face(new EtcdFace());
  face->services_ = std::make_unique<Services>();
  Services& sv = *face->services_;
  sv.options = std::move(options);
  absl::StatusOr<std::unique_ptr<Lessor>> lessor = Lessor::Create(db, sv.options);
  if (!lessor.ok()) return lessor.status();
  face->lessor_ = *std::move(lessor);
  sv.hub = std::make_unique<WatchHub>(db, sv.options.max_queued_watch_events);
  sv.shared = Shared{db, &sv.options, auth, face->lessor_.get(), sv.hub.get()};
  sv.kv = std::make_unique<KvService>(sv.shared);
  sv.watch = std::make_unique<WatchService>(sv.shared);
  sv.lease = std::make_unique<LeaseService>(sv.shared);
  sv.cluster = std::make_unique<ClusterService>(sv.shared);
  sv.maintenance = std::make_unique<MaintenanceService>(sv.shared);
  sv.auth = std::make_unique<AuthService>(sv.shared);
  return face;
}

EtcdFace::~EtcdFace() { Stop(); }

void EtcdFace::Register(grpc::ServerBuilder* builder) {
  Services& sv = *services_;
  builder->RegisterService(sv.kv.get());
  builder->RegisterService(sv.watch.get());
  builder->RegisterService(sv.lease.get());
  builder->RegisterService(sv.cluster.get());
  builder->RegisterService(sv.maintenance.get());
  builder->RegisterService(sv.auth.get());
}

void EtcdFace::Stop() {
  if (lessor_ != nullptr) lessor_->Stop();
  if (services_ != nullptr) services_->hub->Stop();
}

}  // namespace cowdb::server::etcd
