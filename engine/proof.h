// Verified reads: what a reader needs to check an answer without trusting
// whoever gave it.
//
// Every node of a version's tree has a SHA-256 hash over its contents and
// its children's hashes (a Merkle B+tree), so each version has a root
// hash. Each version's digest chains its predecessor's:
//
//   digest(v) = SHA-256(0x02, digest(v - 1), v, root_hash(v), commit_micros(v))
//
// where version 0 (the empty database) takes 32 zero bytes for
// digest(-1). A digest therefore names one version's
// whole contents and every version before it.
//
// A ReadProof for key k at version v holds the path from the root to the
// leaf where k is or would be: each internal node's separators and child
// hashes, and the leaf's entries. VerifyRead recomputes the root hash from
// it, checks that k routes to that leaf and that the leaf holds (or lacks)
// k with the value claimed, and returns v's digest. A reader that trusts a
// digest (pinned earlier, or published) compares; DigestLinks take a
// trusted digest forward to a later one (VerifyChain).
//
// What a proof covers: each key's bytes, its value, and its mod_version.
// The other metadata (create_version, writes, lease) is not attested.
//
// Nothing here touches a database: a client verifies with this header
// alone (target //engine:proof).

#ifndef COWDB_ENGINE_PROOF_H_
#define COWDB_ENGINE_PROOF_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cowdb {

using Hash = std::array<unsigned char, 32>;

// Lower-case hex, 64 characters.
std::string HashToHex(const Hash& h);
// Errors: InvalidArgument unless `hex` is 64 hex digits.
absl::StatusOr<Hash> HashFromHex(std::string_view hex);

// One leaf entry as hashed: the value itself when it is stored inline, its
// SHA-256 (BlobDigest) when it is a blob.
struct ProofEntry {
  std::string key;
  bool blob = false;
  std::string value;  // inline bytes, or the 32-byte blob digest
  uint64_t mod_version = 0;
};

// An internal node on the path: its level (1 = parent of leaves), its
// separators and its children's hashes (one more than separators).
struct ProofNode {
  uint32_t level = 0;
  std::vector<std::string> separators;
  std::vector<Hash> children;
};

struct ReadProof {
  uint64_t version = 0;
  int64_t commit_micros = 0;
  Hash previous_digest{};  // digest(version - 1); zero for version 0
  std::vector<ProofNode> path;    // root first; empty when the root is a leaf
  std::vector<ProofEntry> leaf;   // empty for the empty tree
};

// A read with its proof (DB::ProveGet, client::Client::ProveGet).
struct ProvedValue {
  std::optional<std::string> value;  // nullopt: the key is absent
  ReadProof proof;
};

// A version's Merkle root hash and digest.
struct VersionDigest {
  uint64_t version = 0;
  Hash root_hash{};
  Hash digest{};
  int64_t commit_micros = 0;
};

// What a read answered: the key's value, or nullopt for absent.
// Returns digest(proof.version) if `proof` proves exactly that answer.
// Errors: DataLoss ("verification failed: ...") naming the first mismatch.
absl::StatusOr<Hash> VerifyRead(const ReadProof& proof, std::string_view key,
                                const std::optional<std::string>& value);

// VerifyRead, and that the digest it leads to is `trusted` (the digest of
// the version the proof claims, known from elsewhere). Errors: DataLoss
// ("verification failed: ...").
absl::Status VerifyReadAgainst(const ReadProof& proof, std::string_view key,
                               const std::optional<std::string>& value,
                               const Hash& trusted);

// A range proof: the part of a version's tree a scan of [begin, end) reads.
// Node 0 is the root (no nodes: the empty tree). An internal node gives
// every child's hash and expands (as a later node) each child whose keys
// may lie in the range; a leaf gives its entries.
struct RangeProofNode {
  uint32_t level = 0;                   // 0: a leaf
  std::vector<std::string> separators;  // internal
  std::vector<Hash> children;           // internal: every child's hash
  std::vector<uint32_t> expanded;       // internal: per child, its node's
                                        // index, or 0 if not expanded
  std::vector<ProofEntry> entries;      // leaf
};

struct RangeProof {
  uint64_t version = 0;
  int64_t commit_micros = 0;
  Hash previous_digest{};
  std::vector<RangeProofNode> nodes;
};

// Returns digest(proof.version) if `proof` proves that the keys of
// [begin, end) (empty `end`: no bound) at that version are exactly `kvs`
// (in order, with those values). Errors: DataLoss ("verification failed:
// ...").
absl::StatusOr<Hash> VerifyScan(
    const RangeProof& proof, std::string_view begin, std::string_view end,
    const std::vector<std::pair<std::string, std::string>>& kvs);

// One step of the chain: enough to compute digest(version) from
// digest(version - 1).
struct DigestLink {
  uint64_t version = 0;
  Hash root_hash{};
  int64_t commit_micros = 0;
};

// Extends `trusted`, the digest of version `from`, through `links` (the
// versions from + 1, from + 2, ... in order) and returns the digest of the
// last. Errors: DataLoss when the links skip or repeat a version.
absl::StatusOr<Hash> VerifyChain(uint64_t from, const Hash& trusted,
                                 const std::vector<DigestLink>& links);

// The chain's step and the hashes it is made of, for tools and tests.
Hash ChainDigest(const Hash& previous, uint64_t version, const Hash& root_hash,
                 int64_t commit_micros);
Hash BlobDigest(std::string_view value);

}  // namespace cowdb

#endif  // COWDB_ENGINE_PROOF_H_
