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

// SHA-256 fetched once: EVP_sha256() makes every init look the algorithm
// up again, under a lock.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

Hash Sha256(std::string_view a, std::string_view b = {}) {
  Hash out{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, Sha256Md(), nullptr);
  EVP_DigestUpdate(ctx, a.data(), a.size());
  if (!b.empty()) EVP_DigestUpdate(ctx, b.data(), b.size());
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, out.data(), &len);
  EVP_MD_CTX_free(ctx);
  return out;
}

}  // namespace

// A few contexts per thread, reused: a context costs an allocation, and
// hashers nest only as deep as a tree.
struct NodeHasher::Context {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  Context* next = nullptr;
  ~Context() { EVP_MD_CTX_free(md); }
};

namespace {

struct ContextPool {
  NodeHasher::Context* free = nullptr;
  ~ContextPool() {
    while (free != nullptr) {
      NodeHasher::Context* c = free;
      free = c->next;
      delete c;
    }
  }
};
thread_local ContextPool pool;

}  // namespace

NodeHasher::NodeHasher() {
  if (pool.free != nullptr) {
    ctx_ = pool.free;
    pool.free = ctx_->next;
  } else {
    ctx_ = new Context;
  }
  EVP_DigestInit_ex(ctx_->md, Sha256Md(), nullptr);
}

NodeHasher::NodeHasher(NodeHasher&& other) noexcept
    : ctx_(other.ctx_), used_(other.used_) {
  std::memcpy(buf_, other.buf_, used_);
  other.ctx_ = nullptr;
}

NodeHasher::~NodeHasher() {
  if (ctx_ == nullptr) return;
  ctx_->next = pool.free;
  pool.free = ctx_;
}

void NodeHasher::Flush() {
  if (used_ == 0) return;
  EVP_DigestUpdate(ctx_->md, buf_, used_);
  used_ = 0;
}

void NodeHasher::Put(char c) {
  if (used_ == sizeof(buf_)) Flush();
  buf_[used_++] = c;
}

void NodeHasher::PutVarint(uint64_t v) {
  if (used_ + 10 > sizeof(buf_)) Flush();
  while (v >= 0x80) {
    buf_[used_++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf_[used_++] = static_cast<char>(v);
}

void NodeHasher::PutBytes(std::string_view bytes) {
  if (used_ + bytes.size() > sizeof(buf_)) {
    Flush();
    if (bytes.size() > sizeof(buf_) / 2) {
      EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size());
      return;
    }
  }
  std::memcpy(buf_ + used_, bytes.data(), bytes.size());
  used_ += bytes.size();
}

NodeHasher NodeHasher::Leaf(size_t count) {
  NodeHasher h;
  h.Put(kLeafTag);
  h.PutVarint(count);
  return h;
}

NodeHasher NodeHasher::Internal(uint32_t level, size_t count) {
  NodeHasher h;
  h.Put(kInternalTag);
  h.Put(static_cast<char>(level));
  h.PutVarint(count);
  return h;
}

void NodeHasher::AddEntry(std::string_view key, bool blob, std::string_view value,
                          uint64_t mod_version) {
  PutVarint(key.size());
  PutBytes(key);
  if (blob) {
    Put(0x01);
  } else {
    Put(0x00);
    PutVarint(value.size());
  }
  PutBytes(value);
  PutVarint(mod_version);
}

void NodeHasher::AddChild(std::string_view separator, const Hash& child, bool first) {
  if (!first) {
    PutVarint(separator.size());
    PutBytes(separator);
  }
  PutBytes(HashView(child));
}

Hash NodeHasher::Finish() {
  Flush();
  Hash out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, out.data(), &len);
  return out;
}

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
