#include "engine/format/merkle.h"

#include <openssl/evp.h>

#include <cstring>

#include "engine/util/coding.h"

namespace cowdb::internal {
namespace {

constexpr char kLeafTag = 0x00;
constexpr char kInternalTag = 0x01;
constexpr char kChainTag = 0x02;
constexpr char kBlobTag = 0x03;

Hash Sha256(std::string_view a, std::string_view b = {}) {
  Hash out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  if (!b.empty()) EVP_DigestUpdate(ctx, b.data(), b.size());
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

}  // namespace

NodeHasher NodeHasher::Leaf(size_t count) {
  NodeHasher h;
  h.in_.reserve(4096 + 64);
  h.in_.push_back(kLeafTag);
  PutVarint64(&h.in_, count);
  return h;
}

NodeHasher NodeHasher::Internal(uint32_t level, size_t count) {
  NodeHasher h;
  h.in_.reserve(count * 48 + 16);
  h.in_.push_back(kInternalTag);
  h.in_.push_back(static_cast<char>(level));
  PutVarint64(&h.in_, count);
  return h;
}

void NodeHasher::AddEntry(std::string_view key, bool blob,
                          std::string_view value, uint64_t mod_version) {
  PutLengthPrefixed(&in_, key);
  if (blob) {
    in_.push_back(0x01);
    in_.append(value.data(), value.size());
  } else {
    in_.push_back(0x00);
    PutLengthPrefixed(&in_, value);
  }
  PutVarint64(&in_, mod_version);
}

void NodeHasher::AddChild(std::string_view separator, const Hash& child,
                          bool first) {
  if (!first) PutLengthPrefixed(&in_, separator);
  in_.append(HashView(child));
}

Hash NodeHasher::Finish() const { return Sha256(in_); }

Hash EmptyTreeHash() { return NodeHasher::Leaf(0).Finish(); }

}  // namespace cowdb::internal

namespace cowdb {

Hash BlobDigest(std::string_view value) {
  const char tag = internal::kBlobTag;
  return internal::Sha256(std::string_view(&tag, 1), value);
}

Hash ChainDigest(const Hash& previous, uint64_t version, const Hash& root_hash,
                 int64_t commit_micros) {
  std::string in;
  in.push_back(internal::kChainTag);
  in.append(internal::HashView(previous));
  internal::PutFixed64LE(&in, version);
  in.append(internal::HashView(root_hash));
  internal::PutFixed64LE(&in, static_cast<uint64_t>(commit_micros));
  return internal::Sha256(in);
}

}  // namespace cowdb
