// Users, roles and permissions end to end: a real cowdb_server process,
// driven through the generated stubs (server/auth.h has the model).

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/util/grpc_methods.h"
#include "tests/util/server_process.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using grpc::StatusCode;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Start()); }
  void TearDown() override {
    if (server_.running()) EXPECT_TRUE(server_.Stop());
  }

  bool Start(std::vector<std::string> flags = {}) {
    flags.push_back("--shutdown_grace=300ms");
    if (!server_.Start(dir_.Sub("db"), flags)) return false;
    channel_ = grpc::CreateChannel(server_.addr(), grpc::InsecureChannelCredentials());
    kv_ = v1::KV::NewStub(channel_);
    versions_ = v1::Versions::NewStub(channel_);
    auth_ = v1::Auth::NewStub(channel_);
    return true;
  }

  // Calls Auth.`method` with `req` as the holder of `token`.
  using AuthMethod = grpc::Status (v1::Auth::Stub::*)(grpc::ClientContext*,
                                                       const v1::AuthRequest&,
                                                       v1::AuthResponse*);
  grpc::Status CallAuth(AuthMethod method, const v1::AuthRequest& req,
                        const std::string& token = "", v1::AuthResponse* resp = nullptr) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::AuthResponse ignored;
    return (auth_.get()->*method)(&ctx, req, resp != nullptr ? resp : &ignored);
  }

  static v1::AuthRequest UserReq(const std::string& user, const std::string& password = "",
                                 const std::string& role = "") {
    v1::AuthRequest r;
    r.set_user(user);
    r.set_password(password);
    r.set_role(role);
    return r;
  }
  static v1::AuthRequest Grant(const std::string& role, v1::Permission::Type type,
                               const std::string& key, const std::string& range_end) {
    v1::AuthRequest r;
    r.set_role(role);
    r.mutable_permission()->set_type(type);
    r.mutable_permission()->set_key(key);
    r.mutable_permission()->set_range_end(range_end);
    return r;
  }

  // A token for `user`, or "" (and a failure) if Authenticate refuses.
  std::string Login(const std::string& user, const std::string& password) {
    v1::AuthResponse resp;
    grpc::Status s = CallAuth(&v1::Auth::Stub::Authenticate, UserReq(user, password), "", &resp);
    EXPECT_TRUE(s.ok()) << user << ": " << s.error_message();
    return resp.token();
  }

  StatusCode Put(const std::string& token, const std::string& key) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PutRequest req;
    req.set_key(key);
    req.set_value("v");
    v1::PutResponse resp;
    return kv_->Put(&ctx, req, &resp).error_code();
  }
  StatusCode Get(const std::string& token, const std::string& key, bool proof = false) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::GetRequest req;
    req.set_key(key);
    req.set_proof(proof);
    v1::GetResponse resp;
    return kv_->Get(&ctx, req, &resp).error_code();
  }
  grpc::Status Scan(const std::string& token, const std::string& prefix, bool proof = false) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ScanRequest req;
    req.mutable_range()->set_prefix(prefix);
    req.set_proof(proof);
    auto reader = kv_->Scan(&ctx, req);
    v1::ScanResponse page;
    while (reader->Read(&page)) {
    }
    return reader->Finish();
  }

  // root (role root), alice (READWRITE on the prefix app/), bob (READ on
  // every key); auth enabled. Returns root's token.
  std::string SetUpUsers() {
    using S = v1::Auth::Stub;
    EXPECT_TRUE(CallAuth(&S::UserAdd, UserReq("root", "root-pw")).ok());
    EXPECT_TRUE(CallAuth(&S::UserGrant, UserReq("root", "", "root")).ok());
    EXPECT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "app-rw")).ok());
    EXPECT_TRUE(CallAuth(&S::RoleGrant, Grant("app-rw", v1::Permission::READWRITE, "app/", "app0"))
                    .ok());
    EXPECT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "reader")).ok());
    EXPECT_TRUE(
        CallAuth(&S::RoleGrant, Grant("reader", v1::Permission::READ, "", std::string(1, '\0')))
            .ok());
    EXPECT_TRUE(CallAuth(&S::UserAdd, UserReq("alice", "alice-pw")).ok());
    EXPECT_TRUE(CallAuth(&S::UserGrant, UserReq("alice", "", "app-rw")).ok());
    EXPECT_TRUE(CallAuth(&S::UserAdd, UserReq("bob", "bob-pw")).ok());
    EXPECT_TRUE(CallAuth(&S::UserGrant, UserReq("bob", "", "reader")).ok());
    v1::AuthRequest on;
    on.set_enabled(true);
    EXPECT_TRUE(CallAuth(&S::AuthEnable, on).ok());
    return Login("root", "root-pw");
  }

  testing::TempDir dir_;
  testing::ServerProcess server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KV::Stub> kv_;
  std::unique_ptr<v1::Versions::Stub> versions_;
  std::unique_ptr<v1::Auth::Stub> auth_;
};

TEST_F(AuthTest, EnablingNeedsARootUser) {
  using S = v1::Auth::Stub;
  v1::AuthRequest on;
  on.set_enabled(true);
  grpc::Status s = CallAuth(&S::AuthEnable, on);
  EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("role root"));
  // While auth is off, Authenticate says so and every call passes.
  ASSERT_TRUE(CallAuth(&S::UserAdd, UserReq("root", "pw")).ok());
  EXPECT_EQ(CallAuth(&S::Authenticate, UserReq("root", "pw")).error_code(),
            StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Put("", "k"), StatusCode::OK);
  // Bad input is refused clearly.
  EXPECT_EQ(CallAuth(&S::UserAdd, UserReq("root", "pw")).error_code(),
            StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(CallAuth(&S::UserAdd, UserReq("", "pw")).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CallAuth(&S::UserAdd, UserReq("carol", "")).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CallAuth(&S::UserGrant, UserReq("root", "", "no-such-role")).error_code(),
            StatusCode::NOT_FOUND);
  EXPECT_EQ(CallAuth(&S::RoleDelete, UserReq("", "", "root")).error_code(),
            StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "r")).ok());
  EXPECT_EQ(CallAuth(&S::RoleGrant, Grant("r", v1::Permission::READ, "b", "a")).error_code(),
            StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CallAuth(&S::RoleGrant, Grant("r", v1::Permission::READ, "", "")).error_code(),
            StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(CallAuth(&S::UserGrant, UserReq("root", "", "root")).ok());
  ASSERT_TRUE(CallAuth(&S::AuthEnable, on).ok());
  v1::AuthResponse status;
  ASSERT_TRUE(CallAuth(&S::AuthStatus, v1::AuthRequest(), "", &status).ok());
  EXPECT_TRUE(status.enabled());
}

TEST_F(AuthTest, PermissionsDecideEveryReadAndWrite) {
  const std::string root = SetUpUsers();
  using S = v1::Auth::Stub;
  EXPECT_EQ(CallAuth(&S::Authenticate, UserReq("alice", "wrong")).error_code(),
            StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallAuth(&S::Authenticate, UserReq("nobody", "x")).error_code(),
            StatusCode::UNAUTHENTICATED);
  const std::string alice = Login("alice", "alice-pw");
  const std::string bob = Login("bob", "bob-pw");
  EXPECT_EQ(Put("", "app/x"), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Put("forged-token", "app/x"), StatusCode::UNAUTHENTICATED);

  // alice reads and writes app/ and nothing else.
  EXPECT_EQ(Put(alice, "app/x"), StatusCode::OK);
  EXPECT_EQ(Put(alice, "other/x"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Put(root, "other/x"), StatusCode::OK);
  EXPECT_EQ(Get(alice, "app/x"), StatusCode::OK);
  EXPECT_EQ(Get(alice, "other/x"), StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Scan(alice, "app/").ok());
  grpc::Status wide = Scan(alice, "");
  EXPECT_EQ(wide.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(wide.error_message(), ::testing::HasSubstr("may not read the range"));
  EXPECT_EQ(Scan(alice, "ap").error_code(), StatusCode::PERMISSION_DENIED);
  {
    // A Txn needs READ on its compares and gets and WRITE on its mutations.
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice);
    v1::TxnRequest req;
    req.add_compares()->set_key("other/x");
    req.add_success()->set_get_key("app/x");
    v1::TxnResponse resp;
    EXPECT_EQ(kv_->Txn(&ctx, req, &resp).error_code(), StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice);
    v1::DiffRequest req;
    req.set_from_version(1);
    req.set_to_version(2);
    auto reader = versions_->Diff(&ctx, req);  // every key: refused
    v1::DiffResponse page;
    while (reader->Read(&page)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + alice);
    v1::TagRequest req;
    req.set_name("t");
    req.set_version(1);
    v1::TagResponse resp;
    EXPECT_EQ(versions_->Tag(&ctx, req, &resp).error_code(), StatusCode::PERMISSION_DENIED);
  }
  EXPECT_EQ(CallAuth(&S::UserList, v1::AuthRequest(), alice).error_code(),
            StatusCode::PERMISSION_DENIED);

  // bob reads everything and writes nothing.
  EXPECT_EQ(Get(bob, "other/x"), StatusCode::OK);
  EXPECT_TRUE(Scan(bob, "").ok());
  EXPECT_EQ(Put(bob, "app/y"), StatusCode::PERMISSION_DENIED);

  // A revoked permission stops at once; a user changes its own password.
  ASSERT_TRUE(CallAuth(&S::RoleRevoke, Grant("app-rw", v1::Permission::READ, "app/", "app0"), root)
                  .ok());
  EXPECT_EQ(Put(alice, "app/x"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallAuth(&S::UserPassword, UserReq("bob", "x"), alice).error_code(),
            StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(CallAuth(&S::UserPassword, UserReq("alice", "new-pw"), alice).ok());
  // A new password ends the tokens taken with the old one.
  EXPECT_EQ(Get(alice, "app/x"), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallAuth(&S::Authenticate, UserReq("alice", "alice-pw")).error_code(),
            StatusCode::UNAUTHENTICATED);
  // (The new token works: the read is refused for the revoked permission.)
  EXPECT_EQ(Get(Login("alice", "new-pw"), "app/x"), StatusCode::PERMISSION_DENIED);

  // The last root user cannot go while auth is on; a deleted user's token dies.
  EXPECT_EQ(CallAuth(&S::UserDelete, UserReq("root"), root).error_code(),
            StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(CallAuth(&S::UserDelete, UserReq("bob"), root).ok());
  EXPECT_EQ(Get(bob, "other/x"), StatusCode::UNAUTHENTICATED);
  v1::AuthResponse users;
  ASSERT_TRUE(CallAuth(&S::UserList, v1::AuthRequest(), root, &users).ok());
  std::set<std::string> names;
  for (const v1::User& u : users.users()) names.insert(u.name());
  EXPECT_EQ(names, (std::set<std::string>{"alice", "root"}));
}

TEST_F(AuthTest, UsersAndRolesSurviveARestartAndTokensDoNot) {
  const std::string root = SetUpUsers();
  const std::string alice = Login("alice", "alice-pw");
  ASSERT_EQ(Put(alice, "app/x"), StatusCode::OK);
  ASSERT_TRUE(server_.Stop());
  { std::ofstream(dir_.Sub("tokens")) << "ops-secret\n"; }
  ASSERT_TRUE(Start({"--auth_token_file=" + dir_.Sub("tokens")}));
  EXPECT_EQ(Put(alice, "app/x"), StatusCode::UNAUTHENTICATED);
  const std::string again = Login("alice", "alice-pw");
  EXPECT_EQ(Put(again, "app/x"), StatusCode::OK);
  EXPECT_EQ(Put(again, "other/x"), StatusCode::PERMISSION_DENIED);
  // A token of the token file acts as root.
  EXPECT_EQ(Put("ops-secret", "other/x"), StatusCode::OK);
  EXPECT_TRUE(CallAuth(&v1::Auth::Stub::UserList, v1::AuthRequest(), "ops-secret").ok());
  // Users and roles are not keys: no scan shows them.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer ops-secret");
  v1::ScanRequest req;
  auto reader = kv_->Scan(&ctx, req);
  v1::ScanResponse page;
  std::set<std::string> keys;
  while (reader->Read(&page)) {
    for (const v1::KeyValue& kv : page.kvs()) keys.insert(kv.key());
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(keys, (std::set<std::string>{"app/x", "other/x"}));
}

TEST_F(AuthTest, TheClientLibraryLogsInAgainAfterItsTokenExpired) {
  SetUpUsers();
  ASSERT_TRUE(server_.Stop());
  ASSERT_TRUE(Start({"--auth_token_ttl=2s"}));
  client::ConnectOptions o;
  o.target = server_.addr();
  o.user = "alice";
  o.password = "alice-pw";
  absl::StatusOr<std::unique_ptr<client::Client>> c = client::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE((*c)->Put("app/k", "1").ok());
  absl::SleepFor(absl::Seconds(3));  // the token expired on the server
  absl::StatusOr<uint64_t> v = (*c)->Put("app/k", "2");
  EXPECT_TRUE(v.ok()) << v.status();
  o.password = "wrong";
  EXPECT_EQ(client::Connect(o).status().code(), absl::StatusCode::kUnauthenticated);
  o.token = "x";
  EXPECT_EQ(client::Connect(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuthTest, ATransactionBelongsToTheUserWhoBeganIt) {
  SetUpUsers();
  const std::string alice = Login("alice", "alice-pw");
  const std::string bob = Login("bob", "bob-pw");  // reads every key
  auto ctx_for = [](const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  };
  v1::BeginResponse begun;
  ASSERT_TRUE(kv_->Begin(ctx_for(alice).get(), v1::BeginRequest(), &begun).ok());
  const std::string id = begun.transaction_id();
  EXPECT_EQ(id.size(), 32u);
  {
    v1::GetRequest req;
    req.set_key("app/x");
    req.mutable_read()->set_transaction_id(id);
    v1::GetResponse resp;
    EXPECT_EQ(kv_->Get(ctx_for(bob).get(), req, &resp).error_code(), StatusCode::NOT_FOUND);
  }
  {
    v1::CommitRequest req;
    req.set_transaction_id(id);
    v1::CommitResponse resp;
    EXPECT_EQ(kv_->Commit(ctx_for(bob).get(), req, &resp).error_code(), StatusCode::NOT_FOUND);
    v1::RollbackRequest rb;
    rb.set_transaction_id(id);
    v1::RollbackResponse rb_resp;
    EXPECT_EQ(kv_->Rollback(ctx_for(bob).get(), rb, &rb_resp).error_code(),
              StatusCode::NOT_FOUND);
    // Still alice's, still open.
    auto* put = req.add_mutations()->mutable_put();
    put->set_key("app/t");
    put->set_value("mine");
    EXPECT_TRUE(kv_->Commit(ctx_for(alice).get(), req, &resp).ok());
  }
  EXPECT_EQ(Get(bob, "app/t"), StatusCode::OK);
}

TEST_F(AuthTest, EtcdsGrantOfEveryKeyCoversAWholeRange) {
  const std::string root = SetUpUsers();
  using S = v1::Auth::Stub;
  // etcdctl role grant-permission --prefix r read "" stores ("\0", "\0").
  ASSERT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "all"), root).ok());
  ASSERT_TRUE(CallAuth(&S::RoleGrant,
                       Grant("all", v1::Permission::READ, std::string(1, '\0'),
                             std::string(1, '\0')),
                       root)
                  .ok());
  ASSERT_TRUE(CallAuth(&S::UserAdd, UserReq("dave", "dave-pw"), root).ok());
  ASSERT_TRUE(CallAuth(&S::UserGrant, UserReq("dave", "", "all"), root).ok());
  EXPECT_TRUE(Scan(Login("dave", "dave-pw"), "").ok());
}

// Every method of every service, found from the descriptors (so that a new
// RPC cannot be forgotten), called with an empty request by a user whose
// only right is READ on "allowed/": PERMISSION_DENIED, except the methods
// any authenticated user may call (they must not answer UNAUTHENTICATED or
// PERMISSION_DENIED either).
TEST_F(AuthTest, EveryMethodRefusesAUserWithoutTheRights) {
  SetUpUsers();
  const std::string root = Login("root", "root-pw");
  using S = v1::Auth::Stub;
  ASSERT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "narrow"), root).ok());
  ASSERT_TRUE(
      CallAuth(&S::RoleGrant, Grant("narrow", v1::Permission::READ, "allowed/", "allowed0"), root)
          .ok());
  ASSERT_TRUE(CallAuth(&S::UserAdd, UserReq("carol", "carol-pw"), root).ok());
  ASSERT_TRUE(CallAuth(&S::UserGrant, UserReq("carol", "", "narrow"), root).ok());
  const std::string carol = Login("carol", "carol-pw");
  const std::set<std::string> open_to_any_user = {
      "/cowdb.v1.KV/Begin",  // an empty Txn, Write or Commit names no key
      "/cowdb.v1.KV/Txn",
      "/cowdb.v1.KV/Write",
      "/cowdb.v1.KV/Commit",
      "/cowdb.v1.KV/Rollback",
      "/cowdb.v1.Versions/ListVersions",
      "/cowdb.v1.Versions/ListTags",
      "/cowdb.v1.Versions/ListBranches",
      "/cowdb.v1.Versions/Status",
      "/cowdb.v1.Versions/VersionAt",
      "/cowdb.v1.Versions/Digest",     // names no key
      "/cowdb.v1.Versions/Retention",  // showing it; setting it needs root
      "/cowdb.v1.Auth/Authenticate",
      "/cowdb.v1.Auth/AuthStatus",
  };
  const std::vector<std::string> methods =
      testing::MethodsOf({"cowdb.v1.KV", "cowdb.v1.Versions", "cowdb.v1.Auth"});
  for (const std::string& method : methods) {
    grpc::Status s = testing::CallWithEmptyRequest(channel_, method, carol);
    if (open_to_any_user.count(method) != 0) {
      EXPECT_NE(s.error_code(), StatusCode::PERMISSION_DENIED) << method;
      // (Authenticate with no name and password is UNAUTHENTICATED.)
      if (method != "/cowdb.v1.Auth/Authenticate") {
        EXPECT_NE(s.error_code(), StatusCode::UNAUTHENTICATED)
            << method << ": " << s.error_message();
      }
    } else {
      EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED)
          << method << ": " << s.error_message();
    }
  }
  EXPECT_GE(methods.size(), 42u);  // 9 + 19 + 14
  // And what the narrow role allows, it allows.
  EXPECT_EQ(Get(carol, "allowed/k"), StatusCode::NOT_FOUND);
  EXPECT_TRUE(Scan(carol, "allowed/").ok());
}

// Permissions are of keys, on every branch alike: a read or write on a
// branch needs what it needs on main. Fork and DeleteBranch need WRITE on
// every key, Merge READ and WRITE on every key.
TEST_F(AuthTest, BranchesNeedWhatTheirKeysNeed) {
  const std::string root = SetUpUsers();
  using S = v1::Auth::Stub;
  ASSERT_TRUE(CallAuth(&S::RoleAdd, UserReq("", "", "all-rw"), root).ok());
  ASSERT_TRUE(CallAuth(&S::RoleGrant,
                       Grant("all-rw", v1::Permission::READWRITE, "", std::string(1, '\0')), root)
                  .ok());
  ASSERT_TRUE(CallAuth(&S::UserAdd, UserReq("dave", "dave-pw"), root).ok());
  ASSERT_TRUE(CallAuth(&S::UserGrant, UserReq("dave", "", "all-rw"), root).ok());
  const std::string alice = Login("alice", "alice-pw");  // READWRITE on app/
  const std::string bob = Login("bob", "bob-pw");        // READ on every key
  const std::string dave = Login("dave", "dave-pw");     // READWRITE on every key
  auto ctx = [](const std::string& token) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer " + token);
    return c;
  };
  auto fork = [&](const std::string& token, const std::string& name) {
    v1::ForkRequest req;
    req.set_name(name);
    v1::ForkResponse resp;
    return versions_->Fork(ctx(token).get(), req, &resp).error_code();
  };
  auto drop = [&](const std::string& token, const std::string& name) {
    v1::DeleteBranchRequest req;
    req.set_name(name);
    v1::DeleteBranchResponse resp;
    return versions_->DeleteBranch(ctx(token).get(), req, &resp).error_code();
  };
  auto merge = [&](const std::string& token) {
    v1::MergeRequest req;
    req.set_from("dev");
    v1::MergeResponse resp;
    return versions_->Merge(ctx(token).get(), req, &resp).error_code();
  };
  auto list = [&](const std::string& token) {
    v1::ListBranchesResponse resp;
    return versions_->ListBranches(ctx(token).get(), v1::ListBranchesRequest(), &resp)
        .error_code();
  };
  auto put = [&](const std::string& token, const std::string& key) {
    v1::PutRequest req;
    req.set_key(key);
    req.set_value("v");
    req.set_branch("dev");
    v1::PutResponse resp;
    return kv_->Put(ctx(token).get(), req, &resp).error_code();
  };
  auto get = [&](const std::string& token, const std::string& key) {
    v1::GetRequest req;
    req.set_key(key);
    req.set_branch("dev");
    v1::GetResponse resp;
    return kv_->Get(ctx(token).get(), req, &resp).error_code();
  };

  EXPECT_EQ(fork(alice, "dev"), StatusCode::PERMISSION_DENIED);  // WRITE on app/ only
  EXPECT_EQ(fork(bob, "dev"), StatusCode::PERMISSION_DENIED);    // READ only
  EXPECT_EQ(fork(dave, "dev"), StatusCode::OK);
  EXPECT_EQ(fork(root, "dev2"), StatusCode::OK);
  for (const std::string* token : {&alice, &bob, &dave}) {
    EXPECT_EQ(list(*token), StatusCode::OK);
  }
  // On the branch, alice writes and reads app/ and nothing else; bob
  // reads everything and writes nothing.
  EXPECT_EQ(put(alice, "app/x"), StatusCode::OK);
  EXPECT_EQ(get(alice, "app/x"), StatusCode::OK);
  EXPECT_EQ(put(alice, "other"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(get(alice, "other"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(get(bob, "app/x"), StatusCode::OK);
  EXPECT_EQ(put(bob, "app/y"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Get(alice, "app/x"), StatusCode::NOT_FOUND);  // on main: not there
  // Merging writes a tree and answers with values: READ and WRITE on all.
  EXPECT_EQ(merge(alice), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(merge(bob), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(merge(dave), StatusCode::OK);
  EXPECT_EQ(Get(alice, "app/x"), StatusCode::OK);  // merged into main
  EXPECT_EQ(drop(alice, "dev"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(drop(bob, "dev"), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(drop(dave, "dev"), StatusCode::OK);
  EXPECT_EQ(drop(root, "dev2"), StatusCode::OK);
}

// A proof shows the whole leaf of its key: it is answered only to a user
// who may read every key there.
TEST_F(AuthTest, AProofNeedsReadOnItsWholeLeaf) {
  const std::string root = SetUpUsers();
  ASSERT_EQ(Put(root, "app/a"), StatusCode::OK);
  // alice may read app/ only.
  const std::string alice = Login("alice", "alice-pw");
  EXPECT_EQ(Get(alice, "app/a", /*proof=*/true), StatusCode::OK);
  EXPECT_EQ(Get(alice, "app/zz", /*proof=*/true), StatusCode::OK);  // absent
  EXPECT_TRUE(Scan(alice, "app/", /*proof=*/true).ok());
  // Now the leaf also holds a key outside app/.
  ASSERT_EQ(Put(root, "secret"), StatusCode::OK);
  EXPECT_EQ(Get(alice, "app/a"), StatusCode::OK);
  EXPECT_EQ(Get(alice, "app/a", /*proof=*/true), StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Scan(alice, "app/").ok());
  EXPECT_EQ(Scan(alice, "app/", /*proof=*/true).error_code(), StatusCode::PERMISSION_DENIED);
  // bob reads every key.
  EXPECT_EQ(Get(Login("bob", "bob-pw"), "app/a", /*proof=*/true), StatusCode::OK);
}

}  // namespace
}  // namespace cowdb
