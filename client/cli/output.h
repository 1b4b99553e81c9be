// How the cowdb CLI prints bytes, tables and JSON, and the exit code it
// gives for each error.

#ifndef COWDB_CLIENT_CLI_OUTPUT_H_
#define COWDB_CLIENT_CLI_OUTPUT_H_

#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace cowdb::cli {

// Exit codes of the CLI (documented in `cowdb --help` and the README).
enum ExitCode : int {
  kOk = 0,
  kNotFound = 1,      // no such key, tag, version or branch (or no longer retained)
  kBadInput = 2,      // bad usage or arguments
  kConflict = 3,      // a transaction conflict, txn compares that failed, or
                      // conflicts a merge under policy fail refused
  kUnreachable = 4,   // the server could not be reached in time
  kUnauthorized = 5,  // a missing or rejected token or certificate
  kFailed = 6,        // anything else the database reported
};

ExitCode ExitCodeFor(const absl::Status& s);

bool IsValidUtf8(std::string_view s);

// Bytes for a terminal: valid UTF-8 text without control characters
// as is; otherwise printable ASCII as is and every other byte as \xNN
// (and '\' as \\).
std::string Printable(std::string_view bytes);

// A value printed on its own (not in a table): valid UTF-8 whose only
// control characters are newlines and tabs as it is; otherwise Printable.
std::string PrintableValue(std::string_view bytes);

// A JSON string literal for text; callers use JsonBytesField for bytes.
std::string JsonString(std::string_view utf8);

// `"name":"text"` if `bytes` is valid UTF-8, else `"name_base64":"..."`.
std::string JsonBytesField(std::string_view name, std::string_view bytes);

// A table with a header row, columns padded to the widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace cowdb::cli

#endif  // COWDB_CLIENT_CLI_OUTPUT_H_
