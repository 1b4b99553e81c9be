// Pages as builds before page format 3 wrote them (engine/format/page.h):
// format 1, whose leaf entries end at mod_version, and format 2, whose
// blob references and child references have no hashes. The engine only
// writes format 3; tests use these to check that older pages still
// decode, with the documented defaults, alone and in a database.
//
// Written from the format grammar, not from the engine's encoder, so that
// a change to the encoder cannot change what "format 1" means here.

#ifndef COWDB_TESTS_UTIL_LEGACY_PAGE_H_
#define COWDB_TESTS_UTIL_LEGACY_PAGE_H_

#include <xxhash.h>

#include <cstdint>
#include <string>

#include "engine/format/node.h"
#include "engine/util/coding.h"

namespace cowdb::testing {

// `node` (whose children, if any, have page ids) as a page of `format`
// (1 or 2) with id `page_id`. Hashes are dropped; in format 1 leaf
// entries lose create_version, writes and lease too.
inline std::string EncodeLegacyPage(const internal::Node& node,
                                    uint64_t page_id, int format) {
  using namespace internal;
  std::string out;
  PutFixed32LE(&out, 0x31505743);  // "CWP1"
  out.push_back(static_cast<char>(format));
  out.push_back(node.is_leaf() ? 1 : 2);
  out.push_back(static_cast<char>(node.level));
  PutVarint64(&out, node.size());
  PutVarint64(&out, node.birth);
  auto child = [&out](const ChildRef& c) {
    PutFixed64LE(&out, c.page_id);
    PutVarint64(&out, c.count);
    PutVarint64(&out, c.max_mod);
  };
  if (node.is_leaf()) {
    for (const LeafEntry& e : node.entries) {
      PutLengthPrefixed(&out, e.key);
      if (e.value.is_blob()) {
        out.push_back(1);
        PutFixed64LE(&out, e.value.blob_id);
        PutVarint64(&out, e.value.blob_size);
      } else {
        out.push_back(0);
        PutLengthPrefixed(&out, e.value.data);
      }
      PutVarint64(&out, e.mod_version);
      if (format >= 2) {
        PutVarint64(&out, e.mod_version - e.create_version);
        PutVarint64(&out, e.writes);
        PutVarint64(&out, e.lease);
      }
    }
  } else {
    child(node.children[0]);
    for (size_t i = 1; i < node.children.size(); ++i) {
      PutLengthPrefixed(&out, node.keys[i - 1]);
      child(node.children[i]);
    }
  }
  PutFixed64LE(&out, XXH3_64bits_withSeed(out.data(), out.size(), page_id));
  return out;
}

inline std::string EncodeFormat1Page(const internal::Node& node,
                                     uint64_t page_id) {
  return EncodeLegacyPage(node, page_id, 1);
}

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_LEGACY_PAGE_H_
