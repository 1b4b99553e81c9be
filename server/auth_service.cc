// The Auth service: thin handlers over AccessControl (server/auth.h).
#include "absl/time/time.h"
#include "server/service.h"

namespace cowdb::server {

grpc::Status AuthService::AdminChange(grpc::ServerContext* ctx,
                                      const std::function<absl::Status()>& change) {
  if (grpc::Status a = access_->Admit(ctx, Need::Admin()); !a.ok()) return a;
  return ToGrpcStatus(change());
}

grpc::Status AuthService::Authenticate(grpc::ServerContext* ctx, const Req* req, Resp* resp) {
  if (grpc::Status a = access_->Admit(ctx, Need::None()); !a.ok()) return a;
  absl::StatusOr<std::string> token = access_->Authenticate(req->user(), req->password());
  if (!token.ok()) return ToGrpcStatus(token.status());
  resp->set_token(*std::move(token));
  resp->set_token_ttl_seconds(absl::ToInt64Seconds(access_->token_ttl()));
  return grpc::Status::OK;
}

grpc::Status AuthService::AuthStatus(grpc::ServerContext* ctx, const Req*, Resp* resp) {
  if (grpc::Status a = access_->Admit(ctx, Need::None()); !a.ok()) return a;
  resp->set_enabled(access_->enabled());
  return grpc::Status::OK;
}

grpc::Status AuthService::AuthEnable(grpc::ServerContext* ctx, const Req* req, Resp* resp) {
  grpc::Status s = AdminChange(ctx, [&] { return access_->SetEnabled(req->enabled()); });
  resp->set_enabled(access_->enabled());
  return s;
}

grpc::Status AuthService::UserAdd(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->AddUser(req->user(), req->password()); });
}

grpc::Status AuthService::UserDelete(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->DeleteUser(req->user()); });
}

grpc::Status AuthService::UserPassword(grpc::ServerContext* ctx, const Req* req, Resp*) {
  // A user may change its own password.
  if (access_->enabled() && !req->user().empty() && access_->UserOf(ctx) == req->user()) {
    if (grpc::Status a = access_->Admit(ctx, Need::Authenticated()); !a.ok()) return a;
    return ToGrpcStatus(access_->SetPassword(req->user(), req->password()));
  }
  return AdminChange(ctx, [&] { return access_->SetPassword(req->user(), req->password()); });
}

grpc::Status AuthService::UserGrant(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->GrantRole(req->user(), req->role()); });
}

grpc::Status AuthService::UserRevoke(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->RevokeRole(req->user(), req->role()); });
}

grpc::Status AuthService::UserList(grpc::ServerContext* ctx, const Req*, Resp* resp) {
  return AdminChange(ctx, [&] {
    for (v1::User& u : access_->Users()) *resp->add_users() = std::move(u);
    return absl::OkStatus();
  });
}

grpc::Status AuthService::RoleAdd(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->AddRole(req->role()); });
}

grpc::Status AuthService::RoleDelete(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->DeleteRole(req->role()); });
}

grpc::Status AuthService::RoleGrant(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] { return access_->GrantPermission(req->role(), req->permission()); });
}

grpc::Status AuthService::RoleRevoke(grpc::ServerContext* ctx, const Req* req, Resp*) {
  return AdminChange(ctx, [&] {
    return access_->RevokePermission(req->role(), req->permission().key(),
                                     req->permission().range_end());
  });
}

grpc::Status AuthService::RoleList(grpc::ServerContext* ctx, const Req*, Resp* resp) {
  return AdminChange(ctx, [&] {
    for (v1::Role& r : access_->Roles()) *resp->add_roles() = std::move(r);
    return absl::OkStatus();
  });
}

}  // namespace cowdb::server
