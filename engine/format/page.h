// The page codec: Node <-> bytes.
//
// Page format (format version 3; formats 1 and 2 are still read). All varints are
// LEB128 (coding.h); fixed integers are little-endian.
//
//   page          := header body checksum
//   header        := magic:fixed32 ("CWP1" = 0x31505743)
//                    format:u8 (3; 1 or 2 in pages written before it)
//                    kind:u8 (1 = leaf, 2 = internal)
//                    level:u8 (0 for leaves, >= 1 for internal nodes)
//                    count:varint (leaf entries, or internal children >= 1)
//                    birth:varint (the version that created the page)
//   body (leaf)   := leaf_entry{count}          keys strictly ascending
//   leaf_entry    := key:bytes value mod_version:varint
//                    create_delta:varint writes:varint lease:varint
//                    (format 2; format 1 ends after mod_version)
//     create_delta = mod_version - create_version, so <= mod_version
//     writes       = puts since the key was created, >= 1
//     lease        = what the last put attached (0 = none)
//   value         := 0:u8 data:bytes            inline value
//                  | 1:u8 blob_id:fixed64 size:varint digest:32
//                                               (format 3; before it the
//                                               reference ends at size)
//     digest       = BlobDigest(value) (proof.h); zeros in a database
//                    that does not hash
//   body (internal) := child (separator:bytes child){count - 1}
//                    (the same in every format)
//   child         := page_id:fixed64 entries:varint max_mod:varint hash:32
//                    (format 3; before it the child ends at max_mod)
//     hash         = the child's Merkle hash (format/merkle.h); zeros in
//                    a database that does not hash
//   bytes         := length:varint byte{length}
//   checksum      := fixed64: XXH3_64bits_withSeed(page without checksum,
//                                                  seed = page id)
//
//   blob          := data checksum   checksum seeded with the blob id
//
// Migration from format 1 is lazy: each page says its format, and no page
// is rewritten. A format-1 leaf entry decodes as create_version =
// mod_version, writes = 1, lease = 0 (what was known of the key: its last
// write). A commit that copies such a leaf writes it in format 2 with those
// values carried on, so a key written before the upgrade reports its last
// pre-upgrade write as its creation. (A version rebuilt by replaying the
// log from an older checkpoint gets what the replay computes instead; see
// docs/ARCHITECTURE.md, "On disk".)
//
// Seeding with the id catches a page stored under the wrong id. Decoding
// checks every length against the remaining input; any inconsistency is
// DataLoss naming the page id. Values of this format are persisted:
// DO NOT CHANGE them; add a format version instead.

#ifndef COWDB_ENGINE_FORMAT_PAGE_H_
#define COWDB_ENGINE_FORMAT_PAGE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/format/node.h"

namespace cowdb::internal {

// The page format written; DecodePage reads it and format 1.
inline constexpr uint8_t kPageFormatVersion = 3;

// Encodes a node whose children (if any) all have page ids, in format
// kPageFormatVersion.
std::string EncodePage(const Node& node, uint64_t page_id);

// Decodes and validates a page. The node keeps `page` and its keys and
// values are views into it. Errors: DataLoss naming `page_id`.
absl::StatusOr<NodeRef> DecodePage(std::string page, uint64_t page_id);

std::string EncodeBlob(std::string_view value, uint64_t blob_id);

// Returns the value of an encoded blob. Errors: DataLoss naming the blob.
absl::StatusOr<std::string> DecodeBlob(std::string_view blob, uint64_t blob_id);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_PAGE_H_
