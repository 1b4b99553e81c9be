#include "server/etcd/auth_policy.h"

#include <algorithm>

#include "server/etcd/internal.h"

namespace cowdb::server::etcd {
namespace {

// server::KeySpan, not the face's own etcd::KeySpan (internal.h).
server::KeySpan Span(std::string_view key, std::string_view range_end) {
  return server::SpanOfEtcdRange(key, range_end);
}

void AddRead(std::string_view key, std::string_view range_end, Need* n) {
  n->read.push_back(Span(key, range_end));
}

void AddWrite(std::string_view key, std::string_view range_end, Need* n) {
  n->write.push_back(Span(key, range_end));
}

// etcd's checkLeasePuts: attaching a key to a lease needs write on the
// keys it already holds (whoever may revoke it deletes them all).
void AddLeaseKeys(int64_t lease, const LeaseKeys& lease_keys, Need* n) {
  if (lease == 0 || !lease_keys) return;
  for (const std::string& k : lease_keys(lease)) AddWrite(k, "", n);
}

void AddPut(const pb::PutRequest& r, const LeaseKeys& lease_keys, Need* n) {
  AddWrite(r.key(), "", n);
  if (r.prev_kv()) AddRead(r.key(), "", n);
  AddLeaseKeys(r.lease(), lease_keys, n);
}

void AddDelete(const pb::DeleteRangeRequest& r, Need* n) {
  AddWrite(r.key(), r.range_end(), n);
  if (r.prev_kv()) AddRead(r.key(), r.range_end(), n);
}

void AddTxn(const pb::TxnRequest& r, const LeaseKeys& lease_keys, Need* n) {
  for (const pb::Compare& c : r.compare()) AddRead(c.key(), c.range_end(), n);
  for (const auto* ops : {&r.success(), &r.failure()}) {
    for (const pb::RequestOp& op : *ops) {
      switch (op.request_case()) {
        case pb::RequestOp::kRequestRange:
          AddRead(op.request_range().key(), op.request_range().range_end(), n);
          break;
        case pb::RequestOp::kRequestPut:
          AddPut(op.request_put(), lease_keys, n);
          break;
        case pb::RequestOp::kRequestDeleteRange:
          AddDelete(op.request_delete_range(), n);
          break;
        case pb::RequestOp::kRequestTxn:
          AddTxn(op.request_txn(), lease_keys, n);
          break;
        case pb::RequestOp::REQUEST_NOT_SET:
          break;
      }
    }
  }
}

bool HasToken(const grpc::ServerContextBase* ctx) {
  const auto& md = ctx->client_metadata();
  return md.find("token") != md.end() || md.find("authorization") != md.end();
}

}  // namespace

Need NeedOf(const pb::RangeRequest& r) {
  Need n = Need::Keys();
  AddRead(r.key(), r.range_end(), &n);
  return n;
}

Need NeedOf(const pb::PutRequest& r, const LeaseKeys& lease_keys) {
  Need n = Need::Keys();
  AddPut(r, lease_keys, &n);
  return n;
}

Need NeedOf(const pb::DeleteRangeRequest& r) {
  Need n = Need::Keys();
  AddDelete(r, &n);
  return n;
}

Need NeedOf(const pb::TxnRequest& r, const LeaseKeys& lease_keys) {
  Need n = Need::Keys();
  AddTxn(r, lease_keys, &n);
  return n;
}

Need NeedOf(const pb::CompactionRequest&) { return Need::Authenticated(); }

Need NeedOf(const pb::WatchCreateRequest& r) {
  Need n = Need::Keys();
  // An empty key watches from "\0" (the handler rewrites it so, as etcd).
  AddRead(r.key().empty() ? std::string_view("\0", 1) : std::string_view(r.key()),
          r.range_end(), &n);
  return n;
}

Need NeedOf(const pb::LeaseGrantRequest&) { return Need::Authenticated(); }

Need NeedOf(const pb::LeaseRevokeRequest& r, const LeaseKeys& lease_keys) {
  Need n = Need::Keys();
  AddLeaseKeys(r.id(), lease_keys, &n);
  return n;
}

Need NeedOf(const pb::LeaseKeepAliveRequest&) { return Need::Authenticated(); }

Need NeedOf(const pb::LeaseTimeToLiveRequest& r, const LeaseKeys& lease_keys) {
  Need n = Need::Keys();
  if (r.keys() && lease_keys) {
    for (const std::string& k : lease_keys(r.id())) AddRead(k, "", &n);
  }
  return n;
}

Need NeedOf(const pb::LeaseLeasesRequest&) { return Need::Authenticated(); }

Need NeedOf(const pb::MemberListRequest&) { return Need::None(); }
Need NeedOf(const pb::MemberAddRequest&) { return Need::Admin(); }
Need NeedOf(const pb::MemberRemoveRequest&) { return Need::Admin(); }
Need NeedOf(const pb::MemberUpdateRequest&) { return Need::Admin(); }
Need NeedOf(const pb::MemberPromoteRequest&) { return Need::Admin(); }

Need NeedOf(const pb::AlarmRequest&) { return Need::Authenticated(); }
Need NeedOf(const pb::StatusRequest&) { return Need::None(); }
Need NeedOf(const pb::DefragmentRequest&) { return Need::Admin(); }
Need NeedOf(const pb::HashRequest&) { return Need::Admin(); }
Need NeedOf(const pb::HashKVRequest&) { return Need::Admin(); }
Need NeedOf(const pb::SnapshotRequest&) { return Need::Admin(); }
Need NeedOf(const pb::MoveLeaderRequest&) { return Need::Admin(); }

Need NeedOf(const pb::AuthEnableRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthDisableRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthenticateRequest&) { return Need::None(); }
Need NeedOf(const pb::AuthUserAddRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthUserGetRequest& r, std::string_view caller) {
  return !caller.empty() && r.name() == caller ? Need::Authenticated() : Need::Admin();
}
Need NeedOf(const pb::AuthUserListRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthUserDeleteRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthUserChangePasswordRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthUserGrantRoleRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthUserRevokeRoleRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthRoleAddRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthRoleGetRequest& r, const std::vector<std::string>& caller_roles) {
  const bool has = std::find(caller_roles.begin(), caller_roles.end(), r.role()) !=
                   caller_roles.end();
  return has ? Need::Authenticated() : Need::Admin();
}
Need NeedOf(const pb::AuthRoleListRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthRoleDeleteRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthRoleGrantPermissionRequest&) { return Need::Admin(); }
Need NeedOf(const pb::AuthRoleRevokePermissionRequest&) { return Need::Admin(); }

grpc::Status AdmitEtcd(const AccessControl& ac, const grpc::ServerContextBase* ctx,
                       const Need& need, Refusal refusal) {
  grpc::Status s = ac.Admit(ctx, need);
  if (s.ok()) return s;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      if (refusal == Refusal::kMaintenance) {
        return grpc::Status(grpc::StatusCode::UNKNOWN, HasToken(ctx)
                                                           ? "auth: invalid auth token"
                                                           : "auth: user name is empty");
      }
      return HasToken(ctx) ? errors::InvalidAuthToken() : errors::UserEmpty();
    case grpc::StatusCode::PERMISSION_DENIED:
      if (refusal == Refusal::kMaintenance) {
        return grpc::Status(grpc::StatusCode::UNKNOWN, "auth: permission denied");
      }
      return errors::PermissionDenied();
    default:
      return s;
  }
}

std::string AsGoError(const grpc::Status& s) {
  const char* code = "Unknown";
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: code = "InvalidArgument"; break;
    case grpc::StatusCode::PERMISSION_DENIED: code = "PermissionDenied"; break;
    case grpc::StatusCode::UNAUTHENTICATED: code = "Unauthenticated"; break;
    case grpc::StatusCode::FAILED_PRECONDITION: code = "FailedPrecondition"; break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: code = "ResourceExhausted"; break;
    default: break;
  }
  return std::string("rpc error: code = ") + code + " desc = " + s.error_message();
}

}  // namespace cowdb::server::etcd
