// The page codec: Node <-> bytes.
//
// Page format (format version 1). All varints are LEB128 (coding.h); fixed
// integers are little-endian.
//
//   page          := header body checksum
//   header        := magic:fixed32 ("CWP1" = 0x31505743)
//                    format:u8 (1)
//                    kind:u8 (1 = leaf, 2 = internal)
//                    level:u8 (0 for leaves, >= 1 for internal nodes)
//                    count:varint (leaf entries, or internal children >= 1)
//                    birth:varint (the version that created the page)
//   body (leaf)   := leaf_entry{count}          keys strictly ascending
//   leaf_entry    := key:bytes value mod_version:varint
//   value         := 0:u8 data:bytes            inline value
//                  | 1:u8 blob_id:fixed64 size:varint
//   body (internal) := child (separator:bytes child){count - 1}
//   child         := page_id:fixed64 entries:varint max_mod:varint
//   bytes         := length:varint byte{length}
//   checksum      := fixed64: XXH3_64bits_withSeed(page without checksum,
//                                                  seed = page id)
//
//   blob          := data checksum   checksum seeded with the blob id
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

inline constexpr uint8_t kPageFormatVersion = 1;

// Encodes a node whose children (if any) all have page ids.
std::string EncodePage(const Node& node, uint64_t page_id);

// Decodes and validates a page. The node keeps `page` and its keys and
// values are views into it. Errors: DataLoss naming `page_id`.
absl::StatusOr<NodeRef> DecodePage(std::string page, uint64_t page_id);

std::string EncodeBlob(std::string_view value, uint64_t blob_id);

// Returns the value of an encoded blob. Errors: DataLoss naming the blob.
absl::StatusOr<std::string> DecodeBlob(std::string_view blob, uint64_t blob_id);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_PAGE_H_
