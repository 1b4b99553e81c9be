// Pages as builds before page format 2 wrote them (engine/format/page.h):
// format 1, whose leaf entries end at mod_version. The engine only writes
// format 2; tests use this to check that format-1 pages still decode, with
// the documented defaults, alone and in a database.
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

// `node` (whose children, if any, have page ids) as a format-1 page with
// id `page_id`. Leaf entries lose create_version, writes and lease.
inline std::string EncodeFormat1Page(const internal::Node& node,
                                     uint64_t page_id) {
  using namespace internal;
  std::string out;
  PutFixed32LE(&out, 0x31505743);  // "CWP1"
  out.push_back(1);                // format
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

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_LEGACY_PAGE_H_
