// libFuzzer target: the gRPC handlers of cowdb_server, called directly
// (no network) with requests decoded from the input (see service_input.h)
// over an in-memory database. Each handler runs with a default-constructed
// grpc::ServerContext: no call behind it, no deadline, not cancellable;
// streaming handlers write into a StreamSink that records the messages.
//
// Invariants: every handler returns (no crash, no hang); every status is
// a canonical code, and never UNKNOWN, INTERNAL or DATA_LOSS (nothing here
// can lose data); answers agree with the database (versions not after the
// latest, scans in order, inside their range, paged, ending with `done`);
// open transactions never exceed the cap; a fork, a branch's deletion or
// a write on a branch makes the next version; a merge refused for
// conflicts writes nothing.
//
//   bazel run //tests/fuzz:service_fuzzer -- -max_total_time=600 \
//       $PWD/tests/fuzz/corpus/service

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "cowdb/v1/cowdb.pb.h"
#include "engine/db_impl.h"
#include "engine/proof.h"
#include "engine/store/page_store.h"
#include "grpcpp/grpcpp.h"
#include "proto/wire/wire.h"
#include "server/service.h"
#include "tests/fuzz/service_input.h"

namespace cowdb::fuzz {
namespace {

[[noreturn]] void Fail(const std::string& msg) {
  std::cerr << "service_fuzzer: " << msg << std::endl;
  std::abort();
}

#define FUZZ_EXPECT(cond, msg) \
  do {                         \
    if (!(cond)) Fail(msg);    \
  } while (0)

constexpr uint64_t kScanPageSize = 3;
constexpr uint64_t kMaxOpenTransactions = 3;

// Records the messages of a stream.
template <typename T>
class RecordingSink final : public server::StreamSink<T> {
 public:
  bool Write(const T& msg) override {
    messages.push_back(msg);
    return true;
  }
  std::vector<T> messages;
};

server::ServiceOptions Options() {
  server::ServiceOptions o;
  o.scan_page_size = kScanPageSize;
  o.max_open_transactions = kMaxOpenTransactions;
  o.max_transaction_ops = 8;
  o.max_transaction_bytes = 512;
  o.transaction_idle_timeout = absl::Hours(1);  // no reaping mid-input
  return o;
}

class Harness {
 public:
  Harness()
      : store_(internal::NewMemoryPageStore()),
        db_(OpenDB(store_)),
        options_(Options()),
        txns_(options_),
        kv_(server::ServiceContext{db_.get(), &txns_, options_, &auth_, nullptr}),
        versions_(server::ServiceContext{db_.get(), &txns_, options_, &auth_, nullptr}) {}

  // Decodes and runs every call of `data`.
  void Run(const uint8_t* data, size_t size) {
    size_t pos = 0;
    while (pos + 2 <= size) {
      const Rpc rpc = static_cast<Rpc>(data[pos] % kNumRpcs);
      const size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
      Call(rpc, reinterpret_cast<const char*>(data + pos + 2), len);
      pos += 2 + len;
    }
  }

 private:
  static std::unique_ptr<DB> OpenDB(std::shared_ptr<internal::PageStore> store) {
    cowdb::Options o;
    o.sync = false;
    o.page_size = 512;
    o.inline_value_limit = 64;
    o.max_key_size = 64;
    o.retain_versions = 3;
    o.background_reclaim = false;
    absl::StatusOr<std::unique_ptr<internal::DBImpl>> db =
        internal::DBImpl::Open(o, std::move(store));
    FUZZ_EXPECT(db.ok(), "open: " + db.status().ToString());
    return *std::move(db);
  }

  // Parses `bytes` as a `Req`; false if they do not parse.
  template <typename Req>
  static bool Parse(const char* bytes, size_t len, Req* req) {
    return req->ParseFromArray(bytes, static_cast<int>(len));
  }

  // A one-byte transaction id names a transaction Begin returned.
  void ResolveId(std::string* id) const {
    if (id->size() == 1 && !ids_.empty()) {
      *id = ids_[static_cast<uint8_t>((*id)[0]) % ids_.size()];
    }
  }
  void ResolveRead(v1::ReadSelector* read) const {
    if (read->selector_case() == v1::ReadSelector::kTransactionId) {
      ResolveId(read->mutable_transaction_id());
    }
  }

  // Runs a callback-style handler, `start(finish)`, and waits for its status.
  template <typename Start>
  static grpc::Status Await(Start start) {
    absl::Notification finished;
    grpc::Status status;
    start([&](const grpc::Status& s) {
      status = s;
      finished.Notify();
    });
    finished.WaitForNotification();
    return status;
  }

  void Call(Rpc rpc, const char* bytes, size_t len) {
    grpc::ServerContext ctx;
    grpc::Status s;
    const uint64_t latest_before = db_->LatestVersion();
    switch (rpc) {
      case kRpcGet: {
        v1::GetRequest req;
        if (!Parse(bytes, len, &req)) return;
        ResolveRead(req.mutable_read());
        v1::GetResponse resp;
        s = kv_.HandleGet(&ctx, &req, &resp);
        if (s.ok() && req.proof()) {
          // The answer, present or absent, must verify against the digest
          // of the version it says it read.
          std::optional<std::string> value;
          if (resp.has_kv()) value = resp.kv().value();
          absl::StatusOr<ReadProof> proof = wire::FromProto(resp.proof());
          absl::StatusOr<VersionDigest> digest = db_->GetDigest(resp.read_version());
          FUZZ_EXPECT(proof.ok() && digest.ok() &&
                          VerifyReadAgainst(*proof, req.key(), value, digest->digest).ok(),
                      "get: the proof does not verify " + resp.ShortDebugString());
        } else if (s.ok()) {
          FUZZ_EXPECT(resp.read_version() <= db_->LatestVersion() &&
                          resp.kv().mod_version() <= resp.read_version() &&
                          resp.kv().key() == req.key(),
                      "get: inconsistent answer " + resp.ShortDebugString());
        }
        break;
      }
      case kRpcScan: {
        v1::ScanRequest req;
        if (!Parse(bytes, len, &req)) return;
        ResolveRead(req.mutable_read());
        RecordingSink<v1::ScanResponse> sink;
        s = kv_.ScanTo(&ctx, &req, &sink);
        if (s.ok()) CheckScan(req, sink.messages);
        break;
      }
      case kRpcPut: {
        v1::PutRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::PutResponse resp;
        s = Await([&](auto finish) { kv_.StartPut(&ctx, &req, &resp, std::move(finish)); });
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() == latest_before + 1, "put: not the next version");
        }
        break;
      }
      case kRpcDelete: {
        v1::DeleteRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::DeleteResponse resp;
        s = Await([&](auto finish) { kv_.StartDelete(&ctx, &req, &resp, std::move(finish)); });
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() == latest_before + 1, "delete: not the next version");
        }
        break;
      }
      case kRpcTxn: {
        v1::TxnRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::TxnResponse resp;
        s = Await([&](auto finish) { kv_.StartTxn(&ctx, &req, &resp, std::move(finish)); });
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() <= db_->LatestVersion(), "txn: version after the latest");
        }
        break;
      }
      case kRpcBegin: {
        v1::BeginRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::BeginResponse resp;
        const uint64_t open = txns_.size();
        s = kv_.HandleBegin(&ctx, &req, &resp);
        if (s.ok()) {
          ids_.push_back(resp.transaction_id());
          FUZZ_EXPECT(resp.read_version() <= db_->LatestVersion(), "begin: version");
        } else if (open >= kMaxOpenTransactions) {
          FUZZ_EXPECT(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                          s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                          s.error_code() == grpc::StatusCode::NOT_FOUND ||
                          s.error_code() == grpc::StatusCode::OUT_OF_RANGE,
                      "begin over the cap: " + s.error_message());
        }
        break;
      }
      case kRpcWrite: {
        v1::WriteRequest req;
        if (!Parse(bytes, len, &req)) return;
        ResolveId(req.mutable_transaction_id());
        s = kv_.HandleWrite(&ctx, &req);
        break;
      }
      case kRpcCommit: {
        v1::CommitRequest req;
        if (!Parse(bytes, len, &req)) return;
        ResolveId(req.mutable_transaction_id());
        v1::CommitResponse resp;
        s = Await([&](auto finish) { kv_.StartCommit(&ctx, &req, &resp, std::move(finish)); });
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() <= db_->LatestVersion(), "commit: version after latest");
        }
        break;
      }
      case kRpcRollback: {
        v1::RollbackRequest req;
        if (!Parse(bytes, len, &req)) return;
        ResolveId(req.mutable_transaction_id());
        s = kv_.HandleRollback(&ctx, &req);
        break;
      }
      case kRpcListVersions: {
        v1::ListVersionsRequest req;
        v1::ListVersionsResponse resp;
        s = versions_.ListVersions(&ctx, &req, &resp);
        if (s.ok()) {
          for (int i = 1; i < resp.versions_size(); ++i) {
            FUZZ_EXPECT(resp.versions(i - 1).version() < resp.versions(i).version(),
                        "list versions: out of order");
          }
        }
        break;
      }
      case kRpcTag: {
        v1::TagRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::TagResponse resp;
        s = versions_.Tag(&ctx, &req, &resp);
        break;
      }
      case kRpcUntag: {
        v1::UntagRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::UntagResponse resp;
        s = versions_.Untag(&ctx, &req, &resp);
        break;
      }
      case kRpcListTags: {
        v1::ListTagsRequest req;
        v1::ListTagsResponse resp;
        s = versions_.ListTags(&ctx, &req, &resp);
        break;
      }
      case kRpcDiff: {
        v1::DiffRequest req;
        if (!Parse(bytes, len, &req)) return;
        RecordingSink<v1::DiffResponse> sink;
        s = versions_.DiffTo(&ctx, &req, &sink);
        if (s.ok()) CheckDiff(sink.messages);
        break;
      }
      case kRpcStatus: {
        v1::StatusRequest req;
        v1::StatusResponse resp;
        s = versions_.Status(&ctx, &req, &resp);
        FUZZ_EXPECT(s.ok() && resp.latest_version() == db_->LatestVersion() &&
                        resp.oldest_version() <= resp.latest_version() &&
                        resp.open_transactions() == txns_.size(),
                    "status: " + resp.ShortDebugString());
        break;
      }
      case kRpcHistory: {
        v1::HistoryRequest req;
        if (!Parse(bytes, len, &req)) return;
        RecordingSink<v1::HistoryResponse> sink;
        s = versions_.HistoryTo(&ctx, &req, &sink);
        if (s.ok()) CheckHistory(req, sink.messages);
        break;
      }
      case kRpcVersionAt: {
        v1::VersionAtRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::VersionAtResponse resp;
        s = versions_.VersionAt(&ctx, &req, &resp);
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() <= db_->LatestVersion(), "version at: after the latest");
        }
        break;
      }
      case kRpcCheck: {
        RecordingSink<v1::CheckResponse> sink;
        s = versions_.CheckTo(&ctx, &sink);
        // The database the handlers wrote must verify.
        FUZZ_EXPECT(s.ok(), "check: " + s.error_message());
        FUZZ_EXPECT(!sink.messages.empty() && sink.messages.back().has_report() &&
                        sink.messages.back().report().pages_leaked() == 0,
                    "check: no report, or leaked pages");
        break;
      }
      case kRpcFork: {
        v1::ForkRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::ForkResponse resp;
        s = versions_.Fork(&ctx, &req, &resp);
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() == latest_before + 1, "fork: not the next version");
        }
        break;
      }
      case kRpcDeleteBranch: {
        v1::DeleteBranchRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::DeleteBranchResponse resp;
        s = versions_.DeleteBranch(&ctx, &req, &resp);
        if (s.ok()) {
          FUZZ_EXPECT(resp.version() == latest_before + 1, "delete branch: not the next version");
        }
        break;
      }
      case kRpcListBranches: {
        v1::ListBranchesRequest req;
        v1::ListBranchesResponse resp;
        s = versions_.ListBranches(&ctx, &req, &resp);
        FUZZ_EXPECT(s.ok() && resp.branches_size() >= 1 && resp.branches(0).name() == "main",
                    "list branches: " + resp.ShortDebugString());
        for (int i = 2; i < resp.branches_size(); ++i) {
          FUZZ_EXPECT(resp.branches(i - 1).name() < resp.branches(i).name(),
                      "list branches: out of order or repeated");
        }
        break;
      }
      case kRpcMerge: {
        v1::MergeRequest req;
        if (!Parse(bytes, len, &req)) return;
        v1::MergeResponse resp;
        s = versions_.Merge(&ctx, &req, &resp);
        if (s.ok()) {
          FUZZ_EXPECT(resp.conflict_count() >= static_cast<uint64_t>(resp.conflicts_size()),
                      "merge: more conflicts than counted");
          if (resp.merged()) {
            FUZZ_EXPECT(resp.version() <= db_->LatestVersion(), "merge: version after latest");
          } else {
            FUZZ_EXPECT(req.policy() == v1::MergeRequest::FAIL && resp.conflict_count() > 0 &&
                            resp.changes() == 0 && db_->LatestVersion() == latest_before,
                        "merge: not merged, yet not refused for conflicts, or wrote: " +
                            resp.ShortDebugString());
          }
        }
        break;
      }
      case kRpcReclaim: {
        absl::StatusOr<ReclaimStats> r = db_->Reclaim();
        FUZZ_EXPECT(r.ok(), "reclaim: " + r.status().ToString());
        return;
      }
      case kNumRpcs:
        return;
    }
    CheckStatus(rpc, s);
    FUZZ_EXPECT(txns_.size() <= kMaxOpenTransactions,
                absl::StrCat(txns_.size(), " open transactions"));
  }

  // A status is a canonical code, and none that only a broken server or
  // a failing disk would return.
  static void CheckStatus(Rpc rpc, const grpc::Status& s) {
    const int code = s.error_code();
    FUZZ_EXPECT(code >= 0 && code <= grpc::StatusCode::UNAUTHENTICATED,
                absl::StrCat("rpc ", rpc, ": status code ", code));
    FUZZ_EXPECT(code != grpc::StatusCode::UNKNOWN && code != grpc::StatusCode::INTERNAL &&
                    code != grpc::StatusCode::DATA_LOSS,
                absl::StrCat("rpc ", rpc, ": ", code, " ", s.error_message()));
  }

  void CheckScan(const v1::ScanRequest& req, const std::vector<v1::ScanResponse>& pages) {
    FUZZ_EXPECT(!pages.empty() && pages.back().done(), "scan: no final page");
    if (req.count_only()) return;
    std::string start, end;
    if (!req.range().prefix().empty()) start = req.range().prefix();
    else start = req.range().start(), end = req.range().end();
    if (req.proof()) {
      // One message whose keys the proof covers exactly.
      FUZZ_EXPECT(pages.size() == 1, "scan: a proved scan of several messages");
      const v1::ScanResponse& page = pages.back();
      std::vector<std::pair<std::string, std::string>> kvs;
      for (const v1::KeyValue& kv : page.kvs()) kvs.emplace_back(kv.key(), kv.value());
      FUZZ_EXPECT(wire::ToBounds(req.range(), &start, &end).ok(), "scan: a bad range answered");
      absl::StatusOr<RangeProof> proof = wire::FromProto(page.proof());
      absl::StatusOr<VersionDigest> digest = db_->GetDigest(page.read_version());
      absl::StatusOr<Hash> got = proof.ok() ? VerifyScan(*proof, start, page.proved_end(), kvs)
                                            : absl::StatusOr<Hash>(proof.status());
      FUZZ_EXPECT(got.ok() && digest.ok() && *got == digest->digest,
                  "scan: the proof does not verify " +
                      (got.ok() ? std::string("(another digest)") : got.status().ToString()));
      FUZZ_EXPECT(page.proved_end().empty() || end.empty() || page.proved_end() <= end,
                  "scan: proved past the range's end");
      FUZZ_EXPECT(req.limit() == 0 || kvs.size() <= req.limit(), "scan: over the limit");
      return;
    }
    const std::string* prev = nullptr;
    uint64_t keys = 0;
    for (const v1::ScanResponse& page : pages) {
      FUZZ_EXPECT(static_cast<uint64_t>(page.kvs_size()) <= kScanPageSize,
                  absl::StrCat("scan: a page of ", page.kvs_size(), " keys"));
      for (const v1::KeyValue& kv : page.kvs()) {
        ++keys;
        FUZZ_EXPECT(kv.key() >= start && (end.empty() || kv.key() < end),
                    "scan: key outside the range");
        if (!req.range().prefix().empty()) {
          FUZZ_EXPECT(kv.key().compare(0, start.size(), start) == 0, "scan: not the prefix");
        }
        if (prev != nullptr) {
          FUZZ_EXPECT(req.reverse() ? kv.key() < *prev : kv.key() > *prev,
                      "scan: keys out of order");
        }
        FUZZ_EXPECT(!req.keys_only() || kv.value().empty(), "scan: a value in keys_only");
        prev = &kv.key();
      }
    }
    FUZZ_EXPECT(req.limit() == 0 || keys <= req.limit(), "scan: over the limit");
  }

  static void CheckDiff(const std::vector<v1::DiffResponse>& pages) {
    const std::string* prev = nullptr;
    for (const v1::DiffResponse& page : pages) {
      for (const v1::Change& c : page.changes()) {
        FUZZ_EXPECT(prev == nullptr || c.key() > *prev, "diff: keys out of order");
        FUZZ_EXPECT(c.old_exists() || c.new_exists(), "diff: a change of nothing");
        prev = &c.key();
      }
    }
  }

  // A history's pages: newest first, within the asked versions and the
  // limit; the summary (last message) agrees with the changes. Each change
  // is checked against a read of the key at its version, when retained.
  void CheckHistory(const v1::HistoryRequest& req, const std::vector<v1::HistoryResponse>& pages) {
    FUZZ_EXPECT(!pages.empty(), "history: no message");
    const v1::HistoryResponse& last = pages.back();
    uint64_t prev = last.to_version() + 1, n = 0;
    for (const v1::HistoryResponse& page : pages) {
      for (const v1::KeyChange& c : page.changes()) {
        FUZZ_EXPECT(c.version() < prev && c.version() >= req.from_version(),
                    "history: change out of order or range: " + page.ShortDebugString());
        FUZZ_EXPECT(c.version() >= last.complete_from(), "history: change before complete_from");
        prev = c.version();
        ++n;
        ReadOptions ro;
        ro.version = c.version();
        absl::StatusOr<Entry> e = db_->GetEntry(ro, req.key());
        if (absl::IsOutOfRange(e.status())) continue;  // released since
        FUZZ_EXPECT(c.deleted() ? absl::IsNotFound(e.status())
                                : e.ok() && e->value == c.value() && e->mod_version == c.version(),
                    "history: change at " + std::to_string(c.version()) +
                        " is not what a read finds there");
      }
    }
    FUZZ_EXPECT(req.limit() == 0 || n <= req.limit(), "history: over the limit");
    FUZZ_EXPECT(!last.more() || n == req.limit(), "history: more without reaching the limit");
    FUZZ_EXPECT(last.complete_from() <= last.to_version() + 1, "history: complete_from after to");
  }

  std::shared_ptr<internal::PageStore> store_;
  std::unique_ptr<DB> db_;
  const server::ServiceOptions options_;
  server::AccessControl auth_;
  server::TransactionRegistry txns_;
  server::KvService kv_;
  server::VersionsService versions_;
  std::vector<std::string> ids_;  // returned by Begin, in order
};

}  // namespace
}  // namespace cowdb::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cowdb::fuzz::Harness h;
  h.Run(data, size);
  return 0;
}
