// The parts of the client API common to every implementation.

#include <thread>

#include "client/client.h"

namespace cowdb::client {

absl::StatusOr<std::vector<KeyValue>> Client::ScanAll(const ScanOptions& options,
                                                      uint64_t* read_version) {
  std::vector<KeyValue> out;
  absl::StatusOr<uint64_t> v = Scan(options, [&](const KeyValue& kv) {
    out.push_back(kv);
    return true;
  });
  if (!v.ok()) return v.status();
  if (read_version != nullptr) *read_version = *v;
  return out;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

absl::StatusOr<uint64_t> RunTransaction(
    Client& client, const TransactionOptions& options,
    const std::function<absl::Status(Transaction&)>& body, int max_attempts) {
  absl::Status last = absl::InvalidArgumentError("max_attempts must be at least 1");
  absl::Duration backoff = absl::Milliseconds(1);
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Milliseconds(100));
    }
    absl::StatusOr<std::unique_ptr<Transaction>> txn = client.Begin(options);
    if (!txn.ok()) return txn.status();
    last = body(**txn);
    if (last.ok()) {
      absl::StatusOr<uint64_t> v = (*txn)->Commit();
      if (v.ok() || !absl::IsAborted(v.status())) return v;
      last = v.status();
    } else if (!absl::IsAborted(last)) {
      return last;  // the body failed: rolled back when `txn` goes
    }
  }
  return last;
}

}  // namespace cowdb::client
