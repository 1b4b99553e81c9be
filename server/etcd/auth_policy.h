// Who may call what through the etcd face: what each etcd 3.4 request
// needs of its caller (one NeedOf overload per request type), and the one
// check, AdmitEtcd(), that every handler of the face calls first. The
// decision itself is AccessControl::Admit() (server/auth.h), shared with
// the cowdb service; this file only maps etcd's requests onto Needs and
// Admit's refusals onto etcd's errors.
//
// The policy follows etcd 3.4 (etcdserver/apply_auth.go,
// etcdserver/api/v3rpc/maintenance.go, auth/store.go):
//   Range                  read on [key, range_end)
//   Put                    write on key; read too with prev_kv; write on
//                          every key already attached to its lease
//   DeleteRange            write on the range; read too with prev_kv
//   Txn                    read on every compare's range, and every op of
//                          both branches as above (nested txns included)
//   Watch (each create)    read on its range
//   LeaseRevoke            write on every key attached to the lease
//   LeaseTimeToLive        with keys: read on every attached key
//   Snapshot, Defragment, Hash, HashKV, MoveLeader, membership changes,
//   the Auth service's changes and lists: admin (the role root)
//   UserGet                admin, or the caller's own user
//   RoleGet                admin, or a role the caller has
//   Authenticate, Status, MemberList: nothing
//   the rest (LeaseGrant, LeaseKeepAlive, LeaseLeases, Compact, Alarm):
//   a valid token. etcd asks nothing of these; cowdb asks for a token so
//   that a server with --auth_token_file stays closed to callers without.
// Where cowdb is stricter than etcd 3.4 (docs/ETCD.md): a Txn's put with
// prev_kv needs read, a Txn's put checks its lease's keys as a Put does,
// nested txns are checked, and LeaseTimeToLive with keys needs read on
// them (later etcd releases check this too).

#ifndef COWDB_SERVER_ETCD_AUTH_POLICY_H_
#define COWDB_SERVER_ETCD_AUTH_POLICY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/auth.h"

namespace cowdb::server::etcd {

namespace pb = ::etcdserverpb;

// The keys attached to lease `id` now (none for an unknown lease).
using LeaseKeys = std::function<std::vector<std::string>(int64_t id)>;

Need NeedOf(const pb::RangeRequest& r);
Need NeedOf(const pb::PutRequest& r, const LeaseKeys& lease_keys);
Need NeedOf(const pb::DeleteRangeRequest& r);
Need NeedOf(const pb::TxnRequest& r, const LeaseKeys& lease_keys);
Need NeedOf(const pb::CompactionRequest& r);
Need NeedOf(const pb::WatchCreateRequest& r);
Need NeedOf(const pb::LeaseGrantRequest& r);
Need NeedOf(const pb::LeaseRevokeRequest& r, const LeaseKeys& lease_keys);
Need NeedOf(const pb::LeaseKeepAliveRequest& r);
Need NeedOf(const pb::LeaseTimeToLiveRequest& r, const LeaseKeys& lease_keys);
Need NeedOf(const pb::LeaseLeasesRequest& r);
Need NeedOf(const pb::MemberListRequest& r);
Need NeedOf(const pb::MemberAddRequest& r);
Need NeedOf(const pb::MemberRemoveRequest& r);
Need NeedOf(const pb::MemberUpdateRequest& r);
Need NeedOf(const pb::MemberPromoteRequest& r);
Need NeedOf(const pb::AlarmRequest& r);
Need NeedOf(const pb::StatusRequest& r);
Need NeedOf(const pb::DefragmentRequest& r);
Need NeedOf(const pb::HashRequest& r);
Need NeedOf(const pb::HashKVRequest& r);
Need NeedOf(const pb::SnapshotRequest& r);
Need NeedOf(const pb::MoveLeaderRequest& r);
Need NeedOf(const pb::AuthEnableRequest& r);
Need NeedOf(const pb::AuthDisableRequest& r);
Need NeedOf(const pb::AuthenticateRequest& r);
Need NeedOf(const pb::AuthUserAddRequest& r);
// `caller`: the user behind the call's token ("" if none).
Need NeedOf(const pb::AuthUserGetRequest& r, std::string_view caller);
Need NeedOf(const pb::AuthUserListRequest& r);
Need NeedOf(const pb::AuthUserDeleteRequest& r);
Need NeedOf(const pb::AuthUserChangePasswordRequest& r);
Need NeedOf(const pb::AuthUserGrantRoleRequest& r);
Need NeedOf(const pb::AuthUserRevokeRoleRequest& r);
Need NeedOf(const pb::AuthRoleAddRequest& r);
// `caller_roles`: the roles of the user behind the call's token.
Need NeedOf(const pb::AuthRoleGetRequest& r, const std::vector<std::string>& caller_roles);
Need NeedOf(const pb::AuthRoleListRequest& r);
Need NeedOf(const pb::AuthRoleDeleteRequest& r);
Need NeedOf(const pb::AuthRoleGrantPermissionRequest& r);
Need NeedOf(const pb::AuthRoleRevokePermissionRequest& r);

// How a refusal reads.
enum class Refusal {
  // PERMISSION_DENIED "etcdserver: permission denied": KV, Watch, Lease,
  // Cluster and Auth.
  kEtcdServer,
  // UNKNOWN "auth: permission denied" ("auth: user name is empty",
  // "auth: invalid auth token"): what etcd 3.4's Maintenance service
  // answers a caller without the role root (without a valid token).
  kMaintenance,
};

// AccessControl::Admit with etcd's errors: OK; "etcdserver: user name is
// empty" (INVALID_ARGUMENT) for a call without a token; "etcdserver:
// invalid auth token" (UNAUTHENTICATED) for an unknown or expired one, or
// one whose user was deleted; a permission error as `refusal` says.
grpc::Status AdmitEtcd(const AccessControl& ac, const grpc::ServerContextBase* ctx,
                       const Need& need, Refusal refusal = Refusal::kEtcdServer);

// How etcd's Go server prints a refusal where it sends it as text (a
// watch's cancel_reason): "rpc error: code = PermissionDenied desc =
// etcdserver: permission denied".
std::string AsGoError(const grpc::Status& s);

}  // namespace cowdb::server::etcd

#endif  // COWDB_SERVER_ETCD_AUTH_POLICY_H_
