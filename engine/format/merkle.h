// The Merkle hashes of tree nodes (proof.h explains what they are for).
//
// Encodings, SHA-256 over (varints and fixed64 as in util/coding.h):
//
//   leaf     := 0x00 count:varint (key:bytes value mod_version:varint){count}
//     value  := 0x00 data:bytes          stored inline
//             | 0x01 digest:32           a blob: BlobDigest(value)
//   internal := 0x01 level:u8 count:varint child:32 (separator:bytes child:32){count-1}
//   blob     := 0x03 value               (BlobDigest)
//   chain    := 0x02 previous:32 version:fixed64 root:32 commit_micros:fixed64
//   bytes    := length:varint byte{length}
//
// The empty tree hashes as a leaf of no entries. Readers and clients
// recompute these: DO NOT CHANGE them.

#ifndef COWDB_ENGINE_FORMAT_MERKLE_H_
#define COWDB_ENGINE_FORMAT_MERKLE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/proof.h"

namespace cowdb::internal {

inline constexpr size_t kHashBytes = 32;

// Hashes one node's encoding as it is added: small pieces gather in a
// buffer, long ones go to SHA-256 directly; no copy of the node is made.
// One per node (hashers may nest: a verifier hashes children inside their
// parent); not shared between threads.
class NodeHasher {
 public:
  // A leaf of `count` entries; add each with AddEntry, in key order.
  static NodeHasher Leaf(size_t count);
  // An internal node; add each child with AddChild (the first with no
  // separator).
  static NodeHasher Internal(uint32_t level, size_t count);

  NodeHasher(NodeHasher&& other) noexcept;
  NodeHasher& operator=(NodeHasher&&) = delete;
  ~NodeHasher();

  // `value` is the inline bytes, or the 32-byte digest of a blob.
  void AddEntry(std::string_view key, bool blob, std::string_view value,
                uint64_t mod_version);
  void AddChild(std::string_view separator, const Hash& child, bool first);
  // The hash. Call once.
  Hash Finish();

  struct Context;  // a SHA-256 context, pooled per thread

 private:
  NodeHasher();
  void Put(char c);
  void PutVarint(uint64_t v);
  void PutBytes(std::string_view bytes);  // raw
  void Flush();

  Context* ctx_;
  size_t used_ = 0;
  char buf_[512];
};

Hash EmptyTreeHash();

inline std::string_view HashView(const Hash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_MERKLE_H_
