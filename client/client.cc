// The parts of the client API common to every implementation.

#include <thread>

#include "client/client.h"

#include "absl/strings/str_cat.h"

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

VerifiedReader::VerifiedReader(Client* client, std::optional<TrustedDigest> trusted)
    : client_(client), trusted_(trusted) {}

std::optional<TrustedDigest> VerifiedReader::trusted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return trusted_;
}

absl::Status VerifiedReader::CheckExtends(const TrustedDigest& earlier,
                                          const TrustedDigest& later) {
  absl::StatusOr<std::vector<DigestLink>> links =
      client_->DigestLinks(earlier.version, later.version);
  if (!links.ok()) return links.status();
  absl::StatusOr<Hash> reached = VerifyChain(earlier.version, earlier.digest, *links);
  if (!reached.ok()) return reached.status();
  if (links->size() != later.version - earlier.version || *reached != later.digest) {
    return absl::DataLossError(absl::StrCat(
        "verification failed: the digest of version ", later.version,
        " does not extend the trusted digest of version ", earlier.version));
  }
  return absl::OkStatus();
}

absl::StatusOr<VerifiedValue> VerifiedReader::Get(std::string_view key,
                                                  std::optional<uint64_t> at) {
  absl::StatusOr<ProvedValue> p = client_->ProveGet(key, at);
  if (!p.ok()) return p.status();
  absl::StatusOr<Hash> digest = VerifyRead(p->proof, key, p->value);
  if (!digest.ok()) return digest.status();
  const TrustedDigest answer{p->proof.version, *digest};
  if (at && answer.version != *at) {
    return absl::DataLossError(absl::StrCat("verification failed: asked for version ", *at,
                                            ", the proof is of version ", answer.version));
  }
  std::optional<TrustedDigest> trusted = this->trusted();
  if (!trusted) {
    // Trust on first use.
  } else if (answer.version == trusted->version) {
    if (answer.digest != trusted->digest) {
      return absl::DataLossError(absl::StrCat(
          "verification failed: the proof leads to digest ", HashToHex(answer.digest),
          " for version ", answer.version, ", not the trusted ", HashToHex(trusted->digest)));
    }
  } else if (answer.version > trusted->version) {
    if (absl::Status s = CheckExtends(*trusted, answer); !s.ok()) return s;
  } else {
    if (!at) {
      return absl::DataLossError(absl::StrCat(
          "verification failed: asked for the latest version, the server answered from "
          "version ", answer.version, ", older than the trusted version ", trusted->version));
    }
    if (absl::Status s = CheckExtends(answer, *trusted); !s.ok()) return s;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!trusted_ || trusted_->version < answer.version) trusted_ = answer;
  }
  return VerifiedValue{std::move(p->value), answer.version, answer.digest};
}

}  // namespace cowdb::client
