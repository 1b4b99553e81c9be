// The input format of the gRPC handler fuzzer (service_fuzzer.cc), shared
// with its corpus generator:
//
//   input := call*
//   call  := rpc:u8 length:u8 request:bytes[length]
//
// `rpc` (modulo kNumRpcs) picks the handler; `request` is the serialized
// request message (a call whose bytes do not parse is skipped, as gRPC
// would refuse it). A transaction id of one byte n stands for the n-th
// transaction that Begin returned (modulo their number), so that scripts
// can reach the transaction handlers without guessing random ids.

#ifndef COWDB_TESTS_FUZZ_SERVICE_INPUT_H_
#define COWDB_TESTS_FUZZ_SERVICE_INPUT_H_

#include <cstdint>
#include <string>

namespace cowdb::fuzz {

// The handlers. Watch is left out: it returns only once its call is
// cancelled, which a call-less ServerContext cannot be. DO NOT REORDER:
// the corpus uses the numbers.
enum Rpc : uint8_t {
  kRpcGet = 0,
  kRpcScan,
  kRpcPut,
  kRpcDelete,
  kRpcTxn,
  kRpcBegin,
  kRpcWrite,
  kRpcCommit,
  kRpcRollback,
  kRpcListVersions,
  kRpcTag,
  kRpcUntag,
  kRpcListTags,
  kRpcDiff,
  kRpcStatus,
  kRpcReclaim,  // not an RPC: a reclamation pass, so that versions go
  kRpcHistory,
  kRpcVersionAt,
  kRpcCheck,
  kRpcFork,
  kRpcDeleteBranch,
  kRpcListBranches,
  kRpcMerge,
  kNumRpcs,
};

// Appends one call to `input`. REQUIRES: request.size() <= 255.
inline void AppendCall(std::string* input, Rpc rpc, const std::string& request) {
  input->push_back(static_cast<char>(rpc));
  input->push_back(static_cast<char>(request.size()));
  input->append(request);
}

}  // namespace cowdb::fuzz

#endif  // COWDB_TESTS_FUZZ_SERVICE_INPUT_H_
