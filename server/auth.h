// Authentication of cowdb_server's calls.
#ifndef COWDB_SERVER_AUTH_H_
#define COWDB_SERVER_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::server {

// Bearer tokens: every call must carry "authorization: Bearer <token>"
// with one of them. With no tokens configured, every call passes.
class Authenticator {
 public:
  Authenticator() = default;
  // Reads tokens from `path`, one per line; blank lines and lines starting
  // with '#' are skipped. Errors: the file cannot be read or has no token.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path);

  // UNAUTHENTICATED unless the call carries a valid token.
  grpc::Status Check(const grpc::ServerContextBase* ctx) const;

 private:
  std::vector<std::string> tokens_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_AUTH_H_
