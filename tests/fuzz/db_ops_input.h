// The input format of the operation-script fuzzer (db_ops_fuzzer.cc),
// shared with its corpus generator:
//
//   input := op*
//   op    := opcode:u8 arg:u8*
//
// The opcode (modulo kNumOps) picks one of the operations below; each
// takes a fixed number of argument bytes, read as 0 past the end of the
// input. Argument bytes become keys, values, versions and flags through
// the functions below, over small alphabets so that operations collide.

#ifndef COWDB_TESTS_FUZZ_DB_OPS_INPUT_H_
#define COWDB_TESTS_FUZZ_DB_OPS_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cowdb::fuzz {

// Operations and their argument bytes. DO NOT REORDER: the corpus uses
// the numbers.
enum Op : uint8_t {
  kPut = 0,       // key value
  kDelete,        // key
  kBatch,         // n, then n times (kind key value)
  kGet,           // version key
  kScan,          // version flags (bit 0: reverse; bit 1: via a snapshot)
  kSeek,          // version key steps (one bit per step: 1 = Next)
  kCount,         // version key key
  kBegin,         // slot mode version
  kTxnPut,        // slot key value
  kTxnDelete,     // slot key
  kTxnGet,        // slot key
  kTxnScan,       // slot flags
  kTxnCount,      // slot key key
  kCommit,        // slot
  kRollback,      // slot
  kSnapshot,      // (none): pins the latest version
  kRelease,       // pick
  kTag,           // name version
  kUntag,         // name
  kReclaim,       // (none)
  kDiff,          // version version key key
  kWatch,         // version key key
  kReopen,        // (none)
  kCheck,         // (none)
  kReleaseBefore, // version
  kHistory,       // key from to limit
  kTxnBoundedScan,  // slot lower upper flags (bit 0: reverse)
  // Branches (DB::Fork). Branch arguments go through BranchOf; a version
  // byte of a tree or read is 0 for the latest, else as the others (1 one
  // past the latest, 2 + n n back).
  kFork,            // name source version
  kDeleteBranch,    // name
  kBranchPut,       // branch key value
  kBranchDelete,    // branch key
  kBranchRead,      // branch version key flags (a get, a count from key
                    // on, a scan; bit 0: reverse)
  kBranchBegin,     // slot branch mode version: as kBegin, on a branch
                    // (then kTxnPut, kTxnGet ... on the slot)
  kBranchSnapshot,  // branch: pins its latest tree (kScan reads it)
  kMerge,           // from into policy
  kDiffTrees,       // branch version branch version key key
  kWatchBranch,     // branch version key key
  kNumOps,
};

// Options the fuzzer opens its database with; the limits below match.
inline constexpr size_t kMaxKeySize = 64;
inline constexpr size_t kMaxValueSize = 4096;
inline constexpr size_t kInlineValueLimit = 128;
inline constexpr uint64_t kRetainVersions = 4;

// 40 keys "k00".."k39"; 254 is an over-long key and 255 the empty key
// (both invalid; as a range bound, 255 means "unbounded").
inline std::string KeyOf(uint8_t b) {
  if (b == 255) return "";
  if (b == 254) return std::string(kMaxKeySize + 1, 'z');
  const int k = b % 40;
  return std::string{'k', static_cast<char>('0' + k / 10), static_cast<char>('0' + k % 10)};
}

// A value unique to operation `serial`: mostly short, one in eight longer
// than the inline limit (a blob), and 255 over the size limit.
inline std::string ValueOf(uint8_t b, uint64_t serial) {
  std::string v = std::to_string(serial) + ":";
  if (b == 255) return v + std::string(kMaxValueSize, 'x');
  const size_t len = b % 8 == 7 ? kInlineValueLimit + b : b % 24;
  return v + std::string(len, static_cast<char>('a' + b % 26));
}

// The lease a put attaches, from its value byte: none for most, else 1
// or 2 (so that puts of one key change and keep leases).
inline uint64_t LeaseOf(uint8_t value_byte) {
  return value_byte % 5 < 3 ? 0 : value_byte % 5 - 2;
}

// Tag names t0..t2; 3 is the (invalid) empty name.
inline std::string TagOf(uint8_t b) {
  return b % 4 == 3 ? "" : "t" + std::to_string(b % 4);
}

// Branch names: main (as "main" and as ""), four others, and one Fork
// refuses (it names no branch elsewhere).
inline std::string BranchOf(uint8_t b) {
  switch (b % 8) {
    case 0: return "main";
    case 1: return "";
    case 6: return "bad:name";
    case 7: return "b0";
    default: return b % 8 == 5 ? "b3/x" : "b" + std::to_string(b % 8 - 2);
  }
}

}  // namespace cowdb::fuzz

#endif  // COWDB_TESTS_FUZZ_DB_OPS_INPUT_H_
