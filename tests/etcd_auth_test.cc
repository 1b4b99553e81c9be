// etcd's auth through the etcd face: the Auth service over the server's
// AccessControl, and what each KV, Watch, Lease, Maintenance and Cluster
// request needs (server/etcd/auth_policy.h), with the errors etcd's
// clients match. etcdctl against a real etcd: tests/etcd/etcdctl_diff.py.

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/db.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/etcd/etcd.h"
#include "tests/util/etcd_face_server.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

namespace pb = ::etcdserverpb;

// etcd's prefix end: "app/" -> "app0".
std::string PrefixEnd(std::string p) {
  p.back()++;
  return p;
}

pb::PutRequest PutReq(const std::string& k, const std::string& v) {
  pb::PutRequest r;
  r.set_key(k);
  r.set_value(v);
  return r;
}

class EtcdAuthTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start() {
    auto db = DB::Open(Options(), tmp_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    server::etcd::EtcdOptions eo;
    eo.lease_file = tmp_.path() + "/leases";
    absl::Status started = face_.Start(db_.get(), eo);
    ASSERT_TRUE(started.ok()) << started;
    auto ch = face_.channel();
    kv_ = pb::KV::NewStub(ch);
    watch_ = pb::Watch::NewStub(ch);
    lease_ = pb::Lease::NewStub(ch);
    auth_ = pb::Auth::NewStub(ch);
    maintenance_ = pb::Maintenance::NewStub(ch);
    cluster_ = pb::Cluster::NewStub(ch);
  }
  void Stop() {
    face_.Stop();
    db_.reset();
  }

  // A context that sends `token` as etcd's clients do (none if empty).
  static std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("token", token);
    return ctx;
  }

  // Runs `call(stub, ctx, req, resp)` with `token` and returns its status.
  template <typename Req, typename Resp, typename Stub, typename Method>
  grpc::Status Call(Stub* stub, Method method, const std::string& token, const Req& req,
                    Resp* resp = nullptr) {
    Resp ignored;
    auto ctx = As(token);
    return (stub->*method)(ctx.get(), req, resp != nullptr ? resp : &ignored);
  }

  std::string Authenticate(const std::string& user, const std::string& password) {
    pb::AuthenticateRequest r;
    r.set_name(user);
    r.set_password(password);
    pb::AuthenticateResponse resp;
    grpc::Status st = Call(auth_.get(), &pb::Auth::Stub::Authenticate, "", r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(resp.token().empty());
    return resp.token();
  }

  grpc::Status AddUser(const std::string& token, const std::string& user,
                       const std::string& password) {
    pb::AuthUserAddRequest r;
    r.set_name(user);
    r.set_password(password);
    return Call<pb::AuthUserAddRequest, pb::AuthUserAddResponse>(
        auth_.get(), &pb::Auth::Stub::UserAdd, token, r);
  }
  grpc::Status AddRole(const std::string& token, const std::string& role) {
    pb::AuthRoleAddRequest r;
    r.set_name(role);
    return Call<pb::AuthRoleAddRequest, pb::AuthRoleAddResponse>(
        auth_.get(), &pb::Auth::Stub::RoleAdd, token, r);
  }
  grpc::Status GrantRole(const std::string& token, const std::string& user,
                         const std::string& role) {
    pb::AuthUserGrantRoleRequest r;
    r.set_user(user);
    r.set_role(role);
    return Call<pb::AuthUserGrantRoleRequest, pb::AuthUserGrantRoleResponse>(
        auth_.get(), &pb::Auth::Stub::UserGrantRole, token, r);
  }
  grpc::Status GrantPrefix(const std::string& token, const std::string& role,
                           authpb::Permission::Type type, const std::string& prefix) {
    pb::AuthRoleGrantPermissionRequest r;
    r.set_name(role);
    r.mutable_perm()->set_permtype(type);
    r.mutable_perm()->set_key(prefix);
    r.mutable_perm()->set_range_end(PrefixEnd(prefix));
    return Call<pb::AuthRoleGrantPermissionRequest, pb::AuthRoleGrantPermissionResponse>(
        auth_.get(), &pb::Auth::Stub::RoleGrantPermission, token, r);
  }
  grpc::Status Enable(const std::string& token) {
    return Call<pb::AuthEnableRequest, pb::AuthEnableResponse>(
        auth_.get(), &pb::Auth::Stub::AuthEnable, token, pb::AuthEnableRequest());
  }

  // As etcd's documentation: the user root with the role root; alice may
  // read and write app/, bob only read it, carol only write w/. Then auth
  // is enabled and each user authenticated.
  void SetUpUsers() {
    ASSERT_TRUE(AddUser("", "root", "rpw").ok());
    ASSERT_TRUE(AddRole("", "root").ok());  // built in: as etcdctl does
    ASSERT_TRUE(GrantRole("", "root", "root").ok());
    for (const auto& [user, role, type, prefix] :
         {std::tuple("alice", "app", authpb::Permission::READWRITE, "app/"),
          std::tuple("bob", "appreader", authpb::Permission::READ, "app/"),
          std::tuple("carol", "wonly", authpb::Permission::WRITE, "w/")}) {
      ASSERT_TRUE(AddUser("", user, std::string(user) + "pw").ok());
      ASSERT_TRUE(AddRole("", role).ok());
      ASSERT_TRUE(GrantPrefix("", role, type, prefix).ok());
      ASSERT_TRUE(GrantRole("", user, role).ok());
    }
    grpc::Status st = Enable("");
    ASSERT_TRUE(st.ok()) << st.error_message();
    root_ = Authenticate("root", "rpw");
    alice_ = Authenticate("alice", "alicepw");
    bob_ = Authenticate("bob", "bobpw");
    carol_ = Authenticate("carol", "carolpw");
  }

  grpc::Status Put(const std::string& token, const pb::PutRequest& r) {
    return Call<pb::PutRequest, pb::PutResponse>(kv_.get(), &pb::KV::Stub::Put, token, r);
  }
  grpc::Status Range(const std::string& token, const std::string& key,
                     const std::string& range_end = "", pb::RangeResponse* resp = nullptr) {
    pb::RangeRequest r;
    r.set_key(key);
    r.set_range_end(range_end);
    return Call(kv_.get(), &pb::KV::Stub::Range, token, r, resp);
  }
  grpc::Status Delete(const std::string& token, const std::string& key,
                      const std::string& range_end = "", bool prev_kv = false) {
    pb::DeleteRangeRequest r;
    r.set_key(key);
    r.set_range_end(range_end);
    r.set_prev_kv(prev_kv);
    return Call<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(
        kv_.get(), &pb::KV::Stub::DeleteRange, token, r);
  }
  grpc::Status Txn(const std::string& token, const pb::TxnRequest& r,
                   pb::TxnResponse* resp = nullptr) {
    return Call(kv_.get(), &pb::KV::Stub::Txn, token, r, resp);
  }
  // Whether `key` exists (read as root).
  bool Exists(const std::string& key) {
    pb::RangeResponse resp;
    grpc::Status st = Range(root_, key, "", &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.kvs_size() == 1;
  }

  // Creates a watch on [key, range_end) with `token` and returns the
  // server's first answer (created, or cancelled with a reason).
  pb::WatchResponse CreateWatch(
      const std::string& token, const std::string& key, const std::string& range_end,
      std::unique_ptr<grpc::ClientContext>* ctx,
      std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>>* stream) {
    *ctx = As(token);
    *stream = watch_->Watch(ctx->get());
    pb::WatchRequest req;
    req.mutable_create_request()->set_key(key);
    req.mutable_create_request()->set_range_end(range_end);
    EXPECT_TRUE((*stream)->Write(req));
    pb::WatchResponse resp;
    EXPECT_TRUE((*stream)->Read(&resp));
    return resp;
  }

  // Ends a stream CreateWatch opened.
  static void EndWatch(
      grpc::ClientContext* ctx,
      grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>* stream) {
    ctx->TryCancel();
    stream->Finish().ok();  // CANCELLED
  }

  static void ExpectDenied(const grpc::Status& st) {
    EXPECT_EQ(st.error_code(), grpc::PERMISSION_DENIED) << st.error_message();
    EXPECT_EQ(st.error_message(), "etcdserver: permission denied");
  }

  cowdb::testing::TempDir tmp_;
  std::unique_ptr<DB> db_;
  testing::EtcdFaceServer face_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Watch::Stub> watch_;
  std::unique_ptr<pb::Lease::Stub> lease_;
  std::unique_ptr<pb::Auth::Stub> auth_;
  std::unique_ptr<pb::Maintenance::Stub> maintenance_;
  std::unique_ptr<pb::Cluster::Stub> cluster_;
  std::string root_, alice_, bob_, carol_;
};

TEST_F(EtcdAuthTest, EnablingNeedsTheUserRootWithTheRoleRoot) {
  grpc::Status st = Enable("");
  EXPECT_EQ(st.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "etcdserver: root user does not exist");
  // Another user with the role root is not enough for etcd.
  ASSERT_TRUE(AddUser("", "admin", "apw").ok());
  ASSERT_TRUE(GrantRole("", "admin", "root").ok());
  st = Enable("");
  EXPECT_EQ(st.error_message(), "etcdserver: root user does not exist");
  ASSERT_TRUE(AddUser("", "root", "rpw").ok());
  st = Enable("");
  EXPECT_EQ(st.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(), "etcdserver: root user does not have root role");
  ASSERT_TRUE(GrantRole("", "root", "root").ok());
  st = Enable("");
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(face_.auth()->enabled());
  // Without a token, etcd's "user name is empty".
  st = Range("", "k");
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "etcdserver: user name is empty");
  // Root may do everything.
  const std::string root = Authenticate("root", "rpw");
  EXPECT_TRUE(Put(root, PutReq("k", "v")).ok());
  EXPECT_TRUE(Range(root, "k").ok());
}

TEST_F(EtcdAuthTest, KeyPermissionsAllowInsideAndDenyOutside) {
  SetUpUsers();
  // alice: READWRITE on app/.
  EXPECT_TRUE(Put(alice_, PutReq("app/1", "a")).ok());
  pb::RangeResponse got;
  ASSERT_TRUE(Range(alice_, "app/1", "", &got).ok());
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).value(), "a");
  EXPECT_TRUE(Range(alice_, "app/", PrefixEnd("app/")).ok());
  EXPECT_TRUE(Range(alice_, "app/a", "app/b").ok());  // inside the prefix
  ExpectDenied(Put(alice_, PutReq("other/1", "x")));
  EXPECT_FALSE(Exists("other/1"));
  ASSERT_TRUE(Put(root_, PutReq("other/1", "secret")).ok());
  ExpectDenied(Range(alice_, "other/1"));
  ExpectDenied(Range(alice_, "app/", std::string(1, '\0')));  // from app/ on: past the prefix
  ExpectDenied(Range(alice_, "ap", PrefixEnd("app/")));       // starts before it
  ExpectDenied(Delete(alice_, "other/", PrefixEnd("other/")));
  EXPECT_TRUE(Exists("other/1"));
  EXPECT_TRUE(Delete(alice_, "app/1", "", /*prev_kv=*/true).ok());
  EXPECT_FALSE(Exists("app/1"));

  // bob: READ on app/.
  ASSERT_TRUE(Put(root_, PutReq("app/r", "v")).ok());
  EXPECT_TRUE(Range(bob_, "app/r").ok());
  ExpectDenied(Put(bob_, PutReq("app/r", "w")));
  ExpectDenied(Delete(bob_, "app/r"));
  EXPECT_TRUE(Exists("app/r"));

  // carol: WRITE on w/; prev_kv reads, so it needs READ too.
  EXPECT_TRUE(Put(carol_, PutReq("w/1", "a")).ok());
  ExpectDenied(Range(carol_, "w/1"));
  pb::PutRequest with_prev = PutReq("w/1", "b");
  with_prev.set_prev_kv(true);
  ExpectDenied(Put(carol_, with_prev));
  ExpectDenied(Delete(carol_, "w/1", "", /*prev_kv=*/true));
  EXPECT_TRUE(Delete(carol_, "w/1").ok());
}

TEST_F(EtcdAuthTest, TxnNeedsEveryCompareAndEveryOpOfBothBranches) {
  SetUpUsers();
  ASSERT_TRUE(Put(root_, PutReq("other/k", "v")).ok());
  auto txn = [](const std::string& compare_key) {
    pb::TxnRequest t;
    pb::Compare* c = t.add_compare();
    c->set_key(compare_key);
    c->set_target(pb::Compare::VERSION);
    c->set_result(pb::Compare::EQUAL);
    c->set_version(0);
    *t.add_success()->mutable_request_put() = PutReq("app/t", "1");
    t.add_failure()->mutable_request_range()->set_key("app/t");
    return t;
  };
  pb::TxnResponse resp;
  ASSERT_TRUE(Txn(alice_, txn("app/t"), &resp).ok());
  EXPECT_TRUE(resp.succeeded());
  EXPECT_TRUE(Exists("app/t"));
  // A compare outside.
  ExpectDenied(Txn(alice_, txn("other/k")));
  // An op outside in the branch that would not run.
  pb::TxnRequest t = txn("app/none");  // succeeds: only the success branch runs
  *t.add_failure()->mutable_request_put() = PutReq("other/k", "overwritten");
  ExpectDenied(Txn(alice_, t));
  // A range, a delete with prev_kv, a nested txn outside.
  t = txn("app/none");
  t.add_success()->mutable_request_range()->set_key("other/k");
  ExpectDenied(Txn(alice_, t));
  t = txn("app/none");
  t.add_success()->mutable_request_delete_range()->set_key("other/k");
  ExpectDenied(Txn(alice_, t));
  t = txn("app/none");
  pb::TxnRequest* nested = t.add_success()->mutable_request_txn();
  nested->add_compare()->set_key("other/k");
  ExpectDenied(Txn(alice_, t));
  pb::RangeResponse got;
  ASSERT_TRUE(Range(root_, "other/k", "", &got).ok());
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).value(), "v");
  // carol may write w/ but not read it: a txn's compare reads.
  pb::TxnRequest blind;
  *blind.add_success()->mutable_request_put() = PutReq("w/t", "1");
  EXPECT_TRUE(Txn(carol_, blind).ok());
  blind.add_compare()->set_key("w/t");
  ExpectDenied(Txn(carol_, blind));
}

TEST_F(EtcdAuthTest, WatchNeedsReadOnItsRange) {
  SetUpUsers();
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream;
  pb::WatchResponse resp = CreateWatch(alice_, "app/", PrefixEnd("app/"), &ctx, &stream);
  ASSERT_TRUE(resp.created());
  ASSERT_FALSE(resp.canceled()) << resp.cancel_reason();
  ASSERT_TRUE(Put(root_, PutReq("other/x", "1")).ok());
  ASSERT_TRUE(Put(root_, PutReq("app/x", "2")).ok());
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).kv().key(), "app/x");  // not other/x
  // On the same stream, a watch outside is refused; the first one stays.
  pb::WatchRequest outside;
  outside.mutable_create_request()->set_key("other/");
  outside.mutable_create_request()->set_range_end(PrefixEnd("other/"));
  ASSERT_TRUE(stream->Write(outside));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_TRUE(resp.canceled());
  EXPECT_EQ(resp.cancel_reason(),
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied");
  EndWatch(ctx.get(), stream.get());

  // Every key (an empty key with range_end "\0") is outside too.
  resp = CreateWatch(alice_, "", std::string(1, '\0'), &ctx, &stream);
  EXPECT_TRUE(resp.canceled());
  EXPECT_EQ(resp.cancel_reason(),
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied");
  EndWatch(ctx.get(), stream.get());
  // Without a token.
  resp = CreateWatch("", "app/x", "", &ctx, &stream);
  EXPECT_TRUE(resp.canceled());
  EXPECT_EQ(resp.cancel_reason(),
            "rpc error: code = InvalidArgument desc = etcdserver: user name is empty");
  EndWatch(ctx.get(), stream.get());
}

TEST_F(EtcdAuthTest, WrongPasswordAndDeletedUsersToken) {
  SetUpUsers();
  for (const auto& [user, password] : {std::pair("alice", "wrong"), std::pair("nobody", "x"),
                                       std::pair("alice", "")}) {
    pb::AuthenticateRequest r;
    r.set_name(user);
    r.set_password(password);
    grpc::Status st = Call<pb::AuthenticateRequest, pb::AuthenticateResponse>(
        auth_.get(), &pb::Auth::Stub::Authenticate, "", r);
    EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT) << user;
    EXPECT_EQ(st.error_message(),
              "etcdserver: authentication failed, invalid user ID or password");
  }
  grpc::Status st = Range("not-a-token", "app/1");
  EXPECT_EQ(st.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(st.error_message(), "etcdserver: invalid auth token");

  ASSERT_TRUE(Range(alice_, "app/1").ok());
  pb::AuthUserDeleteRequest del;
  del.set_name("alice");
  ExpectDenied(Call<pb::AuthUserDeleteRequest, pb::AuthUserDeleteResponse>(
      auth_.get(), &pb::Auth::Stub::UserDelete, bob_, del));
  ASSERT_TRUE((Call<pb::AuthUserDeleteRequest, pb::AuthUserDeleteResponse>(
                   auth_.get(), &pb::Auth::Stub::UserDelete, root_, del))
                  .ok());
  st = Range(alice_, "app/1");
  EXPECT_EQ(st.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_EQ(st.error_message(), "etcdserver: invalid auth token");
  st = Put(alice_, PutReq("app/1", "x"));
  EXPECT_EQ(st.error_message(), "etcdserver: invalid auth token");
}

TEST_F(EtcdAuthTest, LeasesNeedWriteOnTheirKeys) {
  SetUpUsers();
  pb::LeaseGrantRequest g;
  g.set_ttl(300);
  pb::LeaseGrantResponse roots, alices;
  ASSERT_TRUE(Call(lease_.get(), &pb::Lease::Stub::LeaseGrant, root_, g, &roots).ok());
  ASSERT_TRUE(Call(lease_.get(), &pb::Lease::Stub::LeaseGrant, alice_, g, &alices).ok());
  pb::PutRequest p = PutReq("other/leased", "v");
  p.set_lease(roots.id());
  ASSERT_TRUE(Put(root_, p).ok());
  // alice may not attach her key to a lease holding a key she may not write,
  // nor revoke it, nor list its keys.
  p = PutReq("app/leased", "v");
  p.set_lease(roots.id());
  ExpectDenied(Put(alice_, p));
  pb::LeaseRevokeRequest revoke;
  revoke.set_id(roots.id());
  ExpectDenied((Call<pb::LeaseRevokeRequest, pb::LeaseRevokeResponse>(
      lease_.get(), &pb::Lease::Stub::LeaseRevoke, alice_, revoke)));
  EXPECT_TRUE(Exists("other/leased"));
  pb::LeaseTimeToLiveRequest ttl;
  ttl.set_id(roots.id());
  EXPECT_TRUE((Call<pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse>(
                   lease_.get(), &pb::Lease::Stub::LeaseTimeToLive, alice_, ttl))
                  .ok());
  ttl.set_keys(true);
  ExpectDenied((Call<pb::LeaseTimeToLiveRequest, pb::LeaseTimeToLiveResponse>(
      lease_.get(), &pb::Lease::Stub::LeaseTimeToLive, alice_, ttl)));
  // Her own lease, with her own key.
  p.set_lease(alices.id());
  ASSERT_TRUE(Put(alice_, p).ok());
  revoke.set_id(alices.id());
  ASSERT_TRUE((Call<pb::LeaseRevokeRequest, pb::LeaseRevokeResponse>(
                   lease_.get(), &pb::Lease::Stub::LeaseRevoke, alice_, revoke))
                  .ok());
  EXPECT_FALSE(Exists("app/leased"));
}

TEST_F(EtcdAuthTest, MaintenanceClusterAndAuthManagement) {
  SetUpUsers();
  // etcd answers a non-root caller of these with "auth: permission denied".
  grpc::Status st = Call<pb::HashRequest, pb::HashResponse>(
      maintenance_.get(), &pb::Maintenance::Stub::Hash, alice_, pb::HashRequest());
  EXPECT_EQ(st.error_code(), grpc::UNKNOWN);
  EXPECT_EQ(st.error_message(), "auth: permission denied");
  st = Call<pb::DefragmentRequest, pb::DefragmentResponse>(
      maintenance_.get(), &pb::Maintenance::Stub::Defragment, alice_, pb::DefragmentRequest());
  EXPECT_EQ(st.error_message(), "auth: permission denied");
  st = Call<pb::DefragmentRequest, pb::DefragmentResponse>(
      maintenance_.get(), &pb::Maintenance::Stub::Defragment, "", pb::DefragmentRequest());
  EXPECT_EQ(st.error_code(), grpc::UNKNOWN);
  EXPECT_EQ(st.error_message(), "auth: user name is empty");
  {
    auto ctx = As(alice_);
    auto reader = maintenance_->Snapshot(ctx.get(), pb::SnapshotRequest());
    pb::SnapshotResponse chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_message(), "auth: permission denied");
  }
  EXPECT_TRUE((Call<pb::HashRequest, pb::HashResponse>(
                   maintenance_.get(), &pb::Maintenance::Stub::Hash, root_, pb::HashRequest()))
                  .ok());
  // Status and MemberList: anyone, as etcd.
  EXPECT_TRUE((Call<pb::StatusRequest, pb::StatusResponse>(
                   maintenance_.get(), &pb::Maintenance::Stub::Status, "", pb::StatusRequest()))
                  .ok());
  EXPECT_TRUE((Call<pb::MemberListRequest, pb::MemberListResponse>(
                   cluster_.get(), &pb::Cluster::Stub::MemberList, "", pb::MemberListRequest()))
                  .ok());

  // A user may read its own user and roles, not others'.
  pb::AuthUserGetRequest ug;
  ug.set_name("alice");
  pb::AuthUserGetResponse user;
  ASSERT_TRUE(Call(auth_.get(), &pb::Auth::Stub::UserGet, alice_, ug, &user).ok());
  ASSERT_EQ(user.roles_size(), 1);
  EXPECT_EQ(user.roles(0), "app");
  ug.set_name("root");
  ExpectDenied(Call(auth_.get(), &pb::Auth::Stub::UserGet, alice_, ug, &user));
  pb::AuthRoleGetRequest rg;
  rg.set_role("app");
  pb::AuthRoleGetResponse role;
  ASSERT_TRUE(Call(auth_.get(), &pb::Auth::Stub::RoleGet, alice_, rg, &role).ok());
  ASSERT_EQ(role.perm_size(), 1);
  EXPECT_EQ(role.perm(0).permtype(), authpb::Permission::READWRITE);
  EXPECT_EQ(role.perm(0).key(), "app/");
  EXPECT_EQ(role.perm(0).range_end(), "app0");
  rg.set_role("wonly");
  ExpectDenied(Call(auth_.get(), &pb::Auth::Stub::RoleGet, alice_, rg, &role));
  ExpectDenied((Call<pb::AuthUserListRequest, pb::AuthUserListResponse>(
      auth_.get(), &pb::Auth::Stub::UserList, alice_, pb::AuthUserListRequest())));
  pb::AuthUserListResponse users;
  ASSERT_TRUE(Call(auth_.get(), &pb::Auth::Stub::UserList, root_, pb::AuthUserListRequest(),
                   &users)
                  .ok());
  EXPECT_EQ(std::vector<std::string>(users.users().begin(), users.users().end()),
            (std::vector<std::string>{"alice", "bob", "carol", "root"}));

  // etcd's errors for the Auth service's refusals.
  auto expect = [](const grpc::Status& s, grpc::StatusCode code, const std::string& msg) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_EQ(s.error_message(), msg);
  };
  expect(AddUser(root_, "alice", "x"), grpc::FAILED_PRECONDITION,
         "etcdserver: user name already exists");
  expect(AddUser(root_, "", "x"), grpc::INVALID_ARGUMENT, "etcdserver: user name is empty");
  expect(AddRole(root_, "app"), grpc::FAILED_PRECONDITION, "etcdserver: role name already exists");
  expect(GrantRole(root_, "nobody", "app"), grpc::FAILED_PRECONDITION,
         "etcdserver: user name not found");
  expect(GrantRole(root_, "alice", "nothing"), grpc::FAILED_PRECONDITION,
         "etcdserver: role name not found");
  EXPECT_TRUE(GrantRole(root_, "alice", "app").ok());  // again: ignored, as etcd
  pb::AuthUserRevokeRoleRequest rr;
  rr.set_name("alice");
  rr.set_role("wonly");
  expect(Call<pb::AuthUserRevokeRoleRequest, pb::AuthUserRevokeRoleResponse>(
             auth_.get(), &pb::Auth::Stub::UserRevokeRole, root_, rr),
         grpc::FAILED_PRECONDITION, "etcdserver: role is not granted to the user");
  rr.set_name("root");
  rr.set_role("root");
  expect(Call<pb::AuthUserRevokeRoleRequest, pb::AuthUserRevokeRoleResponse>(
             auth_.get(), &pb::Auth::Stub::UserRevokeRole, root_, rr),
         grpc::INVALID_ARGUMENT, "etcdserver: invalid auth management");
  pb::AuthUserDeleteRequest ud;
  ud.set_name("root");
  expect(Call<pb::AuthUserDeleteRequest, pb::AuthUserDeleteResponse>(
             auth_.get(), &pb::Auth::Stub::UserDelete, root_, ud),
         grpc::INVALID_ARGUMENT, "etcdserver: invalid auth management");
  pb::AuthRoleRevokePermissionRequest rp;
  rp.set_role("app");
  rp.set_key("nope/");
  expect(Call<pb::AuthRoleRevokePermissionRequest, pb::AuthRoleRevokePermissionResponse>(
             auth_.get(), &pb::Auth::Stub::RoleRevokePermission, root_, rp),
         grpc::FAILED_PRECONDITION, "etcdserver: permission is not granted to the role");
  rg.set_role("nothing");
  expect(Call(auth_.get(), &pb::Auth::Stub::RoleGet, root_, rg, &role),
         grpc::FAILED_PRECONDITION, "etcdserver: role name not found");
  // Revoking the permission takes it away at once.
  rp.set_key("app/");
  rp.set_range_end("app0");
  ASSERT_TRUE((Call<pb::AuthRoleRevokePermissionRequest, pb::AuthRoleRevokePermissionResponse>(
                   auth_.get(), &pb::Auth::Stub::RoleRevokePermission, root_, rp))
                  .ok());
  ExpectDenied(Range(alice_, "app/1"));

  // Only root disables auth; then no token is needed, and Authenticate says
  // that auth is off.
  ExpectDenied((Call<pb::AuthDisableRequest, pb::AuthDisableResponse>(
      auth_.get(), &pb::Auth::Stub::AuthDisable, alice_, pb::AuthDisableRequest())));
  ASSERT_TRUE((Call<pb::AuthDisableRequest, pb::AuthDisableResponse>(
                   auth_.get(), &pb::Auth::Stub::AuthDisable, root_, pb::AuthDisableRequest()))
                  .ok());
  EXPECT_TRUE(Range("", "app/1").ok());
  pb::AuthenticateRequest a;
  a.set_name("root");
  a.set_password("rpw");
  expect(Call<pb::AuthenticateRequest, pb::AuthenticateResponse>(
             auth_.get(), &pb::Auth::Stub::Authenticate, "", a),
         grpc::FAILED_PRECONDITION, "etcdserver: authentication is not enabled");
}

TEST_F(EtcdAuthTest, UsersAndRolesSurviveARestart) {
  SetUpUsers();
  Stop();
  Start();
  ASSERT_TRUE(face_.auth()->enabled());
  ExpectDenied(Range(Authenticate("alice", "alicepw"), "other/1"));
  EXPECT_TRUE(Range(Authenticate("alice", "alicepw"), "app/1").ok());
}

}  // namespace
}  // namespace cowdb
