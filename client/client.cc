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

absl::Status VerifiedReader::Accept(const TrustedDigest& answer, std::optional<uint64_t> at) {
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
  std::lock_guard<std::mutex> lock(mu_);
  if (!trusted_ || trusted_->version < answer.version) trusted_ = answer;
  return absl::OkStatus();
}

absl::StatusOr<VerifiedValue> VerifiedReader::Get(std::string_view key,
                                                  std::optional<uint64_t> at) {
  absl::StatusOr<ProvedValue> p = client_->ProveGet(key, at);
  if (!p.ok()) return p.status();
  absl::StatusOr<Hash> digest = VerifyRead(p->proof, key, p->value);
  if (!digest.ok()) return digest.status();
  const TrustedDigest answer{p->proof.version, *digest};
  if (absl::Status s = Accept(answer, at); !s.ok()) return s;
  return VerifiedValue{std::move(p->value), answer.version, answer.digest};
}

absl::StatusOr<uint64_t> VerifiedReader::Scan(
    const ScanOptions& options, const std::function<bool(const KeyValue&)>& visit) {
  if (options.reverse || options.keys_only) {
    return absl::InvalidArgumentError("a verified scan reads in key order, with values");
  }
  std::string start, end;
  if (!options.range.prefix.empty()) {
    if (!options.range.start.empty() || !options.range.end.empty()) {
      return absl::InvalidArgumentError("give a prefix or start/end, not both");
    }
    start = options.range.prefix;
    end = PrefixEnd(options.range.prefix);
  } else {
    start = options.range.start;
    end = options.range.end;
  }
  ScanOptions part;
  part.at = options.at;
  part.branch = options.branch;  // a branch's proof is refused, not main's read instead
  uint64_t left = options.limit;
  for (;;) {
    part.range = Range{start, end, ""};
    part.limit = left;
    absl::StatusOr<ProvedRange> r = client_->ProveScan(part);
    if (!r.ok()) return r.status();
    std::vector<std::pair<std::string, std::string>> kvs;
    kvs.reserve(r->kvs.size());
    for (const KeyValue& kv : r->kvs) kvs.emplace_back(kv.key, kv.value);
    absl::StatusOr<Hash> digest = VerifyScan(r->proof, start, r->proved_end, kvs);
    if (!digest.ok()) return digest.status();
    const TrustedDigest answer{r->proof.version, *digest};
    if (absl::Status s = Accept(answer, part.at); !s.ok()) return s;
    part.at = answer.version;  // the next parts read the same version
    const bool to_the_end = r->proved_end == end;
    if (!to_the_end && (r->kvs.empty() || (!end.empty() && r->proved_end > end) ||
                        r->proved_end <= start)) {
      return absl::DataLossError(absl::StrCat(
          "verification failed: a scan's part stopped at a key that is not after its ",
          "last key"));
    }
    for (const KeyValue& kv : r->kvs) {
      if (!visit(kv)) return answer.version;
    }
    if (left != 0) {
      left -= std::min<uint64_t>(left, r->kvs.size());
      if (left == 0) return answer.version;
    }
    if (to_the_end) return answer.version;
    start = r->proved_end;
  }
}

}  // namespace cowdb::client
