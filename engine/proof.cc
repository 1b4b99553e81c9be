#include "engine/proof.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/merkle.h"

namespace cowdb {
namespace {

using internal::NodeHasher;

absl::Status Failed(std::string_view why) {
  return absl::DataLossError(absl::StrCat("verification failed: ", std::string(why)));
}

}  // namespace

std::string HashToHex(const Hash& h) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char c : h) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

absl::StatusOr<Hash> HashFromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Hash h{};
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a digest is 64 hex digits; got ", hex.size(), " characters"));
  }
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a hex digest: \"", std::string(hex), "\""));
    }
    h[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return h;
}

absl::StatusOr<Hash> VerifyRead(const ReadProof& proof, std::string_view key,
                                const std::optional<std::string>& value) {
  if (proof.path.empty() && proof.leaf.empty()) {
    if (value) return Failed("a value was returned from an empty tree");
    return ChainDigest(proof.previous_digest, proof.version,
                       internal::EmptyTreeHash(), proof.commit_micros);
  }
  // The leaf: well-formed, and saying what the answer says about `key`.
  NodeHasher leaf = NodeHasher::Leaf(proof.leaf.size());
  const ProofEntry* found = nullptr;
  for (size_t i = 0; i < proof.leaf.size(); ++i) {
    const ProofEntry& e = proof.leaf[i];
    if (i > 0 && !(proof.leaf[i - 1].key < e.key)) {
      return Failed("the leaf's keys are not in order");
    }
    if (e.blob && e.value.size() != internal::kHashBytes) {
      return Failed("a blob digest is not 32 bytes");
    }
    if (e.key == key) found = &e;
    leaf.AddEntry(e.key, e.blob, e.value, e.mod_version);
  }
  if (found == nullptr && value) {
    return Failed(absl::StrCat("the key is absent from the proof's leaf, but "
                               "a value was returned"));
  }
  if (found != nullptr) {
    if (!value) return Failed("the key is in the proof's leaf, but the read "
                              "said it is absent");
    const bool same =
        found->blob ? internal::HashView(BlobDigest(*value)) == found->value
                    : found->value == *value;
    if (!same) return Failed("the value returned is not the one proved");
  }
  // The path, bottom up: the key routes to the node below, whose hash the
  // node holds.
  Hash current = leaf.Finish();
  for (size_t d = proof.path.size(); d-- > 0;) {
    const ProofNode& n = proof.path[d];
    const uint32_t level = static_cast<uint32_t>(proof.path.size() - d);
    if (n.level != level) return Failed("the path's levels are inconsistent");
    if (n.children.size() != n.separators.size() + 1) {
      return Failed("an internal node's children and separators disagree");
    }
    for (size_t i = 1; i < n.separators.size(); ++i) {
      if (!(n.separators[i - 1] < n.separators[i])) {
        return Failed("an internal node's separators are not in order");
      }
    }
    const size_t child =
        std::upper_bound(n.separators.begin(), n.separators.end(), key) -
        n.separators.begin();
    if (n.children[child] != current) {
      return Failed(absl::StrCat("the hash of the node at level ", level - 1,
                                 " is not the one its parent holds"));
    }
    NodeHasher h = NodeHasher::Internal(level, n.children.size());
    for (size_t i = 0; i < n.children.size(); ++i) {
      h.AddChild(i == 0 ? std::string_view() : n.separators[i - 1],
                 n.children[i], i == 0);
    }
    current = h.Finish();
  }
  return ChainDigest(proof.previous_digest, proof.version, current,
                     proof.commit_micros);
}

namespace {

// Recomputes a range proof's hashes from its root down, and collects the
// entries in [begin, end) of the leaves it expands, in key order.
class RangeVerifier {
 public:
  RangeVerifier(const RangeProof& proof, std::string_view begin, std::string_view end)
      : proof_(proof), begin_(begin), end_(end), used_(proof.nodes.size(), false) {}

  // The hash of node `index`, whose keys lie in [lo, hi) (nullopt: no
  // bound) and whose level is `level` (nullopt for the root: any).
  absl::StatusOr<Hash> Visit(size_t index, std::optional<uint32_t> level,
                             std::optional<std::string_view> lo,
                             std::optional<std::string_view> hi) {
    if (index >= proof_.nodes.size() || used_[index]) {
      return Failed("a range proof's node is missing or used twice");
    }
    used_[index] = true;
    const RangeProofNode& n = proof_.nodes[index];
    if (level && n.level != *level) return Failed("the proof's levels are inconsistent");
    if (n.level == 0) {
      NodeHasher h = NodeHasher::Leaf(n.entries.size());
      for (size_t i = 0; i < n.entries.size(); ++i) {
        const ProofEntry& e = n.entries[i];
        if (i > 0 && !(n.entries[i - 1].key < e.key)) {
          return Failed("a leaf's keys are not in order");
        }
        if (e.blob && e.value.size() != internal::kHashBytes) {
          return Failed("a blob digest is not 32 bytes");
        }
        h.AddEntry(e.key, e.blob, e.value, e.mod_version);
        if (e.key >= begin_ && (end_.empty() || e.key < end_)) entries_.push_back(&e);
      }
      return h.Finish();
    }
    const size_t count = n.children.size();
    if (count == 0 || n.separators.size() + 1 != count || n.expanded.size() != count) {
      return Failed("an internal node's children and separators disagree");
    }
    NodeHasher h = NodeHasher::Internal(n.level, count);
    for (size_t i = 0; i < count; ++i) {
      if (i > 1 && !(n.separators[i - 2] < n.separators[i - 1])) {
        return Failed("an internal node's separators are not in order");
      }
      std::optional<std::string_view> clo = i == 0 ? lo : n.separators[i - 1];
      std::optional<std::string_view> chi = i + 1 == count ? hi : n.separators[i];
      const bool needed = (!chi || begin_ < *chi) && (end_.empty() || !clo || *clo < end_);
      if (n.expanded[i] == 0) {
        if (needed) return Failed("a part of the range is missing from the proof");
      } else {
        absl::StatusOr<Hash> child = Visit(n.expanded[i], n.level - 1, clo, chi);
        if (!child.ok()) return child.status();
        if (*child != n.children[i]) {
          return Failed(absl::StrCat("the hash of a node at level ", n.level - 1,
                                     " is not the one its parent holds"));
        }
      }
      h.AddChild(i == 0 ? std::string_view() : n.separators[i - 1], n.children[i], i == 0);
    }
    return h.Finish();
  }

  bool AllUsed() const {
    return std::all_of(used_.begin(), used_.end(), [](bool u) { return u; });
  }
  const std::vector<const ProofEntry*>& entries() const { return entries_; }

 private:
  const RangeProof& proof_;
  const std::string_view begin_, end_;
  std::vector<bool> used_;
  std::vector<const ProofEntry*> entries_;
};

}  // namespace

absl::StatusOr<Hash> VerifyScan(const RangeProof& proof, std::string_view begin,
                                std::string_view end,
                                const std::vector<std::pair<std::string, std::string>>& kvs) {
  Hash root = internal::EmptyTreeHash();
  RangeVerifier v(proof, begin, end);
  if (!proof.nodes.empty()) {
    absl::StatusOr<Hash> h = v.Visit(0, std::nullopt, std::nullopt, std::nullopt);
    if (!h.ok()) return h.status();
    if (!v.AllUsed()) return Failed("a range proof has nodes no parent expands");
    root = *h;
  }
  const std::vector<const ProofEntry*>& proved = v.entries();
  if (proved.size() != kvs.size()) {
    return Failed(absl::StrCat("the scan returned ", kvs.size(), " keys, the proof has ",
                               proved.size(), " in the range"));
  }
  for (size_t i = 0; i < kvs.size(); ++i) {
    const ProofEntry& e = *proved[i];
    if (e.key != kvs[i].first) {
      return Failed(absl::StrCat("key ", i, " of the scan is not the one proved"));
    }
    const bool same = e.blob ? internal::HashView(BlobDigest(kvs[i].second)) == e.value
                             : e.value == kvs[i].second;
    if (!same) return Failed(absl::StrCat("the value of key ", i, " is not the one proved"));
  }
  return ChainDigest(proof.previous_digest, proof.version, root, proof.commit_micros);
}

absl::Status VerifyReadAgainst(const ReadProof& proof, std::string_view key,
                               const std::optional<std::string>& value,
                               const Hash& trusted) {
  absl::StatusOr<Hash> digest = VerifyRead(proof, key, value);
  if (!digest.ok()) return digest.status();
  if (*digest != trusted) {
    return Failed(absl::StrCat("the proof leads to digest ", HashToHex(*digest),
                               " for version ", proof.version,
                               ", not the trusted ", HashToHex(trusted)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Hash> VerifyChain(uint64_t from, const Hash& trusted,
                                 const std::vector<DigestLink>& links) {
  Hash digest = trusted;
  uint64_t expected = from + 1;
  for (const DigestLink& l : links) {
    if (l.version != expected) {
      return Failed(absl::StrCat("the chain skips from version ", expected - 1,
                                 " to ", l.version));
    }
    digest = ChainDigest(digest, l.version, l.root_hash, l.commit_micros);
    ++expected;
  }
  return digest;
}

}  // namespace cowdb
