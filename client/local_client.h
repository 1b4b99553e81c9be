// The client API over a database opened in this process: no server, the
// way the sqlite3 shell opens a file. Requests run through the same code
// as cowdb_server's handlers (proto/wire/engine_ops.h).

#ifndef COWDB_CLIENT_LOCAL_CLIENT_H_
#define COWDB_CLIENT_LOCAL_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "engine/db.h"
#include "engine/options.h"

namespace cowdb::client {

// Opens (or creates, per options.create_if_missing) the database in `dir`.
// Fails if a cowdb_server (or anything else) has it open.
absl::StatusOr<std::unique_ptr<Client>> OpenLocal(const std::string& dir,
                                                  const Options& options = Options());

// A client over an open database. `db` is not owned and must outlive the
// client and its transactions.
std::unique_ptr<Client> WrapLocal(DB* db);

}  // namespace cowdb::client

#endif  // COWDB_CLIENT_LOCAL_CLIENT_H_
