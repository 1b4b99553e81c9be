#include "server/status.h"

#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/wire/wire.h"

namespace cowdb::server {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
      Log("error", "request failed",
          absl::StrCat("code=", absl::StatusCodeToString(s.code()), " error=\"",
                       absl::CEscape(s.message()), "\""));
      break;
    default:
      break;
  }
  return wire::ToGrpc(s);
}

void Log(const std::string& level, const std::string& msg, const std::string& fields) {
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()),
      " level=", level, " msg=\"", msg, "\"", fields.empty() ? "" : " ", fields, "\n");
  std::cerr << line << std::flush;  // one write per line: lines do not interleave
}


std::string QuoteInput(std::string_view input) {
  if (input.size() > 64) return absl::StrCat("of ", input.size(), " bytes");
  return absl::StrCat("\"", absl::CHexEscape(absl::string_view(input.data(), input.size())), "\"");
}

}  // namespace cowdb::server
