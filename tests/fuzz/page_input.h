// The input format shared by the page fuzzer, its corpus generator and the
// corpus tests:
//
//   input := page_id:fixed64 mode:u8 bytes
//
// mode 0: `bytes` is a whole page, checksum included.
// mode 1: `bytes` is a page without its checksum; the correct checksum is
//         appended before decoding, so the fuzzer reaches the structural
//         checks behind the checksum.

#ifndef COWDB_TESTS_FUZZ_PAGE_INPUT_H_
#define COWDB_TESTS_FUZZ_PAGE_INPUT_H_

#include <xxhash.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/util/coding.h"

namespace cowdb::internal {

struct PageInput {
  uint64_t page_id;
  std::string page;  // ready to decode
};

inline std::optional<PageInput> ParsePageInput(std::string_view in) {
  if (in.size() < 9) return std::nullopt;
  PageInput p;
  p.page_id = DecodeFixed64LE(in.data());
  uint8_t mode = static_cast<uint8_t>(in[8]);
  p.page.assign(in.substr(9));
  if (mode & 1) {
    PutFixed64LE(&p.page,
                 XXH3_64bits_withSeed(p.page.data(), p.page.size(), p.page_id));
  }
  return p;
}

inline std::string MakePageInput(uint64_t page_id, uint8_t mode,
                                 std::string_view bytes) {
  std::string out;
  PutFixed64LE(&out, page_id);
  out.push_back(static_cast<char>(mode));
  out.append(bytes.data(), bytes.size());
  return out;
}

}  // namespace cowdb::internal

#endif  // COWDB_TESTS_FUZZ_PAGE_INPUT_H_
