// The little language of `cowdb txn`: an etcd-style compare-and-swap, one
// statement per line.
//
//   if KEY value = VALUE       compare the value (= != < >)
//   if KEY mod > 41            compare the mod_version (= != < >)
//   if KEY exists              the key is present
//   if KEY missing             the key is absent
//   put KEY VALUE              \
//   del KEY                     } the success branch ...
//   get KEY                    /
//   else                       ... and after this line, the failure branch
//
// Words are separated by spaces; a word with spaces or special bytes is
// quoted "like this" with C escapes (\n \t \\ \" \xNN). Blank lines and
// lines starting with '#' are skipped. Without compares the success branch
// always runs: an atomic batch.

#ifndef COWDB_CLIENT_CLI_TXN_SCRIPT_H_
#define COWDB_CLIENT_CLI_TXN_SCRIPT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"

namespace cowdb::cli {

// Splits a line into words (quotes and escapes resolved). InvalidArgument
// for an unterminated quote or a bad escape.
absl::StatusOr<std::vector<std::string>> SplitWords(const std::string& line);

// Parses a script. InvalidArgument names the line and what is wrong.
absl::StatusOr<client::TxnRequest> ParseTxnScript(const std::vector<std::string>& lines);

}  // namespace cowdb::cli

#endif  // COWDB_CLIENT_CLI_TXN_SCRIPT_H_
