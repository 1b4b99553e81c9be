// libFuzzer target: page decoding must never crash, hang or read out of
// bounds, and whatever decodes must survive an encode/decode round trip.
//
//   bazel run //tests/fuzz:page_fuzzer -- -max_total_time=60 \
//       $PWD/tests/fuzz/corpus/page

#include <cstdlib>

#include "engine/format/page.h"
#include "tests/fuzz/page_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cowdb::internal;
  std::optional<PageInput> in =
      ParsePageInput(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!in) return 0;
  absl::StatusOr<NodeRef> node = DecodePage(in->page, in->page_id);
  if (!node.ok()) {
    if (node.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  std::string again = EncodePage(**node, in->page_id);
  absl::StatusOr<NodeRef> back = DecodePage(again, in->page_id);
  if (!back.ok() || EncodePage(**back, in->page_id) != again) std::abort();
  return 0;
}
