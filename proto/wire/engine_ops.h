// Wire operations executed on an embedded cowdb::DB: the one
// implementation behind both cowdb_server's handlers and the local client,
// so a request means the same thing in-process and over the network.

#ifndef COWDB_PROTO_WIRE_ENGINE_OPS_H_
#define COWDB_PROTO_WIRE_ENGINE_OPS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "client/types.h"
#include "cowdb/v1/cowdb.pb.h"
#include "engine/db.h"

namespace cowdb::wire {

// Buffers one mutation in `txn`.
absl::Status ApplyMutation(cowdb::Transaction& txn, const v1::Mutation& m);

// Runs an etcd-style compare-and-swap as a serializable transaction,
// retrying internally while it conflicts (then Aborted).
absl::Status ExecuteTxn(DB& db, const v1::TxnRequest& req, v1::TxnResponse* resp);

// As ExecuteTxn, without waiting for the commit: `done` runs once with the
// outcome, on the engine's committing thread (or the caller's, when the
// Txn fails before its commit). `req` and `resp` must live until then.
void ExecuteTxnAsync(DB& db, const v1::TxnRequest& req, v1::TxnResponse* resp,
                     std::function<void(absl::Status)> done);

// Visits the keys of `it` in [start, end) (empty end: unbounded), forward
// or in reverse, at most `limit` (0: all), until `visit` returns false.
// It never steps past the last key it takes (a transaction's iterator
// records what it observes); give a transaction's iterator the range as
// its bounds.
// With keys_only, values are left empty and not read.
absl::Status ScanRange(Iterator& it, const std::string& start, const std::string& end,
                       bool reverse, uint64_t limit, bool keys_only,
                       const std::function<bool(const client::KeyValue&)>& visit);

// Runs a HistoryRequest in pages (bounded in changes and bytes), handing
// each response message to `send`, which returns an error to stop. The
// last message carries the summary fields.
absl::Status RunHistory(DB& db, const v1::HistoryRequest& req,
                        const std::function<absl::Status(const v1::HistoryResponse&)>& send);

// The status of `db` as the wire reports it.
v1::StatusResponse StatusOf(DB& db, uint64_t open_transactions);

void ToProto(const cowdb::Change& c, v1::Change* out);
client::Change FromEngine(const cowdb::Change& c);

// Branches. The engine's tree of a wire or client branch ("": main) at a
// version (unset: the latest).
cowdb::TreeAt TreeOf(std::string_view branch, std::optional<uint64_t> version);
// InvalidArgument for a policy this build does not know (proto3 enums
// carry any number).
absl::StatusOr<cowdb::MergePolicy> MergePolicyOf(v1::MergeRequest::Policy p);
cowdb::MergePolicy ToEngine(client::MergePolicy p);
void ToProto(const cowdb::BranchInfo& b, v1::BranchInfo* out);
client::BranchInfo FromEngine(const cowdb::BranchInfo& b);
// The conflicts go in key order while their keys and values stay within
// `conflict_bytes`; conflict_count counts them all.
void ToProto(const cowdb::MergeResult& r, uint64_t conflict_bytes, v1::MergeResponse* out);
client::MergeResult FromEngine(const cowdb::MergeResult& r);

}  // namespace cowdb::wire

#endif  // COWDB_PROTO_WIRE_ENGINE_OPS_H_
