// How cowdb_server reports: statuses to gRPC codes, and its log lines.
#ifndef COWDB_SERVER_STATUS_H_
#define COWDB_SERVER_STATUS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cowdb::server {

// The one mapping from engine status to gRPC status. Statuses that mean
// the server or its storage is in trouble (UNKNOWN outcome, DATA_LOSS,
// INTERNAL) are also logged.
grpc::Status ToGrpcStatus(const absl::Status& s);

// One log line on stderr: ts=... level=... msg="..." [fields].
void Log(const std::string& level, const std::string& msg, const std::string& fields = "");


// A client's input in an error message: quoted (escaped) when short, else
// only its size, so that an error never echoes a huge input back.
std::string QuoteInput(std::string_view input);

}  // namespace cowdb::server

#endif  // COWDB_SERVER_STATUS_H_
