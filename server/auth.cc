#include "server/auth.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace cowdb::server {

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  Authenticator a;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    a.tokens_.push_back(line);
  }
  if (a.tokens_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("no token in ", path));
  }
  return a;
}

grpc::Status Authenticator::Check(const grpc::ServerContextBase* ctx) const {
  if (tokens_.empty()) return grpc::Status::OK;
  auto it = ctx->client_metadata().find("authorization");
  if (it != ctx->client_metadata().end()) {
    std::string_view value(it->second.data(), it->second.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (value.substr(0, kBearer.size()) == kBearer) {
      value.remove_prefix(kBearer.size());
      for (const std::string& t : tokens_) {
        // Compare in constant time for equal lengths.
        if (t.size() != value.size()) continue;
        unsigned char diff = 0;
        for (size_t i = 0; i < t.size(); ++i) diff |= t[i] ^ value[i];
        if (diff == 0) return grpc::Status::OK;
      }
    }
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or invalid bearer token");
}

}  // namespace cowdb::server
