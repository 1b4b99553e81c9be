// Conversions between the client API (client/client.h), the wire messages
// (proto/cowdb/v1/cowdb.proto) and the engine, shared by the remote
// client, the local client and cowdb_server so that all three read a
// request the same way.

#ifndef COWDB_PROTO_WIRE_WIRE_H_
#define COWDB_PROTO_WIRE_WIRE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/types.h"
#include "cowdb/v1/cowdb.pb.h"
#include "engine/proof.h"
#include "grpcpp/support/status.h"

namespace cowdb::wire {

// The bounds of a range as [start, end); an empty end is unbounded.
// InvalidArgument for a prefix together with start/end, or end < start.
absl::Status ToBounds(const v1::KeyRange& range, std::string* start, std::string* end);

// absl and gRPC share the canonical status codes.
inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}
inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

v1::KeyRange ToProto(const client::Range& r);
v1::TxnRequest ToProto(const client::TxnRequest& r);
client::TxnResult FromProto(const v1::TxnResponse& r);
client::Change FromProto(const v1::Change& c);
client::KeyValue FromProto(const v1::KeyValue& kv);
client::ServerStatus FromProto(const v1::StatusResponse& r);
client::VersionInfo FromProto(const v1::VersionInfo& v);
client::BranchInfo FromProto(const v1::BranchInfo& b);
v1::MergeRequest::Policy ToProto(client::MergePolicy p);
client::MergeResult FromProto(const v1::MergeResponse& r);
v1::HistoryRequest ToProto(std::string_view key, const client::HistoryOptions& o);
// Adds one message of a History stream to `*h` (the last one sets the
// summary fields).
void AppendFromProto(const v1::HistoryResponse& r, client::KeyHistory* h);

// Proofs of verified reads. FromProto checks the hashes' lengths: DataLoss
// ("verification failed: ...") for a malformed proof.
void ToProto(const ReadProof& p, v1::ReadProof* out);
absl::StatusOr<ReadProof> FromProto(const v1::ReadProof& p);
void ToProto(const RangeProof& p, v1::RangeProof* out);
absl::StatusOr<RangeProof> FromProto(const v1::RangeProof& p);
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes, std::string_view what);
inline std::string HashBytes(const Hash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace cowdb::wire

#endif  // COWDB_PROTO_WIRE_WIRE_H_
