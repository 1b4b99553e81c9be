#include "engine/format/page.h"

#include <xxhash.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/format/merkle.h"
#include "engine/util/coding.h"

namespace cowdb::internal {
namespace {

constexpr uint32_t kPageMagic = 0x31505743;  // "CWP1"
constexpr uint8_t kKindLeaf = 1;
constexpr uint8_t kKindInternal = 2;
constexpr uint8_t kValueInline = 0;
constexpr uint8_t kValueBlob = 1;
constexpr uint8_t kMaxLevel = 64;
constexpr uint8_t kFormatWithoutMeta = 1;  // leaf entries end at mod_version
constexpr uint8_t kFormatWithoutHashes = 2;  // no blob digests, child hashes
const char kZeroHash[kHashBytes] = {};

uint64_t Checksum(std::string_view data, uint64_t seed) {
  return XXH3_64bits_withSeed(data.data(), data.size(), seed);
}

void AppendChild(std::string* out, const ChildRef& c) {
  PutFixed64LE(out, c.page_id);
  PutVarint64(out, c.count);
  PutVarint64(out, c.max_mod);
  out->append(HashView(c.hash));
}

absl::Status Corrupt(uint64_t page_id, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("corrupt page ", page_id, ": ", why));
}

// Splits off and verifies the trailing checksum.
bool CheckAndStrip(std::string_view* data, uint64_t seed) {
  if (data->size() < 8) return false;
  std::string_view body = data->substr(0, data->size() - 8);
  uint64_t stored = DecodeFixed64LE(data->data() + body.size());
  if (stored != Checksum(body, seed)) return false;
  *data = body;
  return true;
}

}  // namespace

uint64_t Node::count() const {
  if (is_leaf()) return entries.size();
  uint64_t n = 0;
  for (const auto& c : children) n += c.count;
  return n;
}

size_t LeafEntryBytes(const LeafEntry& e) {
  size_t value = e.value.is_blob()
                     ? 1 + 8 + VarintLength(e.value.blob_size) + kHashBytes
                     : 1 + VarintLength(e.value.data.size()) +
                                         e.value.data.size();
  return VarintLength(e.key.size()) + e.key.size() + value +
         VarintLength(e.mod_version) +
         VarintLength(e.mod_version - e.create_version) +
         VarintLength(e.writes) + VarintLength(e.lease);
}

size_t ChildBytes(const ChildRef& c) {
  return 8 + VarintLength(c.count) + VarintLength(c.max_mod) + kHashBytes;
}

size_t ChildEntryBytes(std::string_view separator, const ChildRef& c) {
  return VarintLength(separator.size()) + separator.size() + ChildBytes(c);
}

size_t Node::ByteSize() const {
  size_t n = kNodeHeaderBytes;
  if (is_leaf()) {
    for (const auto& e : entries) n += LeafEntryBytes(e);
  } else {
    if (!children.empty()) n += ChildBytes(children[0]);  // no separator
    for (size_t i = 1; i < children.size(); ++i) {
      n += ChildEntryBytes(keys[i - 1], children[i]);
    }
  }
  return n;
}

std::string EncodePage(const Node& node, uint64_t page_id) {
  std::string out;
  out.reserve(node.ByteSize() + 16);
  PutFixed32LE(&out, kPageMagic);
  out.push_back(static_cast<char>(kPageFormatVersion));
  out.push_back(static_cast<char>(node.is_leaf() ? kKindLeaf : kKindInternal));
  out.push_back(static_cast<char>(node.level));
  PutVarint64(&out, node.size());
  PutVarint64(&out, node.birth);
  if (node.is_leaf()) {
    for (const auto& e : node.entries) {
      PutLengthPrefixed(&out, e.key);
      if (e.value.is_blob()) {
        out.push_back(static_cast<char>(kValueBlob));
        PutFixed64LE(&out, e.value.blob_id);
        PutVarint64(&out, e.value.blob_size);
        out.append(e.value.digest.size() == kHashBytes
                       ? e.value.digest
                       : std::string_view(kZeroHash, kHashBytes));
      } else {
        out.push_back(static_cast<char>(kValueInline));
        PutLengthPrefixed(&out, e.value.data);
      }
      PutVarint64(&out, e.mod_version);
      PutVarint64(&out, e.mod_version - e.create_version);
      PutVarint64(&out, e.writes);
      PutVarint64(&out, e.lease);
    }
  } else {
    AppendChild(&out, node.children[0]);
    for (size_t i = 1; i < node.children.size(); ++i) {
      PutLengthPrefixed(&out, node.keys[i - 1]);
      AppendChild(&out, node.children[i]);
    }
  }
  PutFixed64LE(&out, Checksum(out, page_id));
  return out;
}

absl::StatusOr<NodeRef> DecodePage(std::string bytes, uint64_t page_id) {
  auto node = std::make_shared<Node>();
  node->page = std::make_shared<const std::string>(std::move(bytes));
  std::string_view page = *node->page;
  if (!CheckAndStrip(&page, page_id)) return Corrupt(page_id, "bad checksum");
  Reader in(page);
  uint32_t magic;
  uint8_t format, kind, level;
  uint64_t count, birth;
  if (!in.ReadFixed32LE(&magic) || magic != kPageMagic) {
    return Corrupt(page_id, "bad magic");
  }
  if (!in.ReadByte(&format) ||
      format < kFormatWithoutMeta || format > kPageFormatVersion) {
    return Corrupt(page_id, "unknown page format");
  }
  if (!in.ReadByte(&kind) || !in.ReadByte(&level) || !in.ReadVarint64(&count) ||
      !in.ReadVarint64(&birth)) {
    return Corrupt(page_id, "truncated header");
  }
  node->level = level;
  node->birth = birth;
  // Every entry takes at least 3 bytes and every child 10: a count larger
  // than the input allows is rejected before anything is allocated.
  if (kind == kKindLeaf) {
    if (level != 0) return Corrupt(page_id, "leaf with nonzero level");
    if (count > in.remaining() / 3) return Corrupt(page_id, "bad entry count");
    node->entries.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      LeafEntry& e = node->entries[i];
      std::string_view key;
      uint8_t tag;
      if (!in.ReadLengthPrefixed(&key) || !in.ReadByte(&tag)) {
        return Corrupt(page_id, "truncated entry");
      }
      if (key.empty()) return Corrupt(page_id, "empty key");
      e.key = key;
      if (i > 0 && !(node->entries[i - 1].key < e.key)) {
        return Corrupt(page_id, "keys out of order");
      }
      if (tag == kValueInline) {
        std::string_view data;
        if (!in.ReadLengthPrefixed(&data)) {
          return Corrupt(page_id, "truncated value");
        }
        e.value.data = data;
      } else if (tag == kValueBlob) {
        if (!in.ReadFixed64LE(&e.value.blob_id) ||
            !in.ReadVarint64(&e.value.blob_size) || e.value.blob_id == 0 ||
            e.value.blob_size == 0) {
          return Corrupt(page_id, "bad blob reference");
        }
        if (format > kFormatWithoutHashes &&
            !in.ReadBytes(kHashBytes, &e.value.digest)) {
          return Corrupt(page_id, "truncated blob digest");
        }
      } else {
        return Corrupt(page_id, "unknown value tag");
      }
      if (!in.ReadVarint64(&e.mod_version)) {
        return Corrupt(page_id, "truncated entry");
      }
      if (format == kFormatWithoutMeta) {
        // The documented migration (page.h): the last write is all a
        // format-1 page knows of the key.
        e.create_version = e.mod_version;
        e.writes = 1;
        e.lease = 0;
        continue;
      }
      uint64_t create_delta;
      if (!in.ReadVarint64(&create_delta) || !in.ReadVarint64(&e.writes) ||
          !in.ReadVarint64(&e.lease)) {
        return Corrupt(page_id, "truncated entry");
      }
      if (create_delta > e.mod_version) {
        return Corrupt(page_id, "created after its last write");
      }
      if (e.writes == 0) return Corrupt(page_id, "entry with no writes");
      e.create_version = e.mod_version - create_delta;
    }
  } else if (kind == kKindInternal) {
    if (level == 0 || level > kMaxLevel) {
      return Corrupt(page_id, "bad internal level");
    }
    if (count == 0 || count > in.remaining() / 10) {
      return Corrupt(page_id, "bad child count");
    }
    node->children.resize(count);
    node->keys.resize(count - 1);
    for (uint64_t i = 0; i < count; ++i) {
      if (i > 0) {
        std::string_view key;
        if (!in.ReadLengthPrefixed(&key)) {
          return Corrupt(page_id, "truncated separator");
        }
        node->keys[i - 1] = key;
        if (i > 1 && !(node->keys[i - 2] < node->keys[i - 1])) {
          return Corrupt(page_id, "separators out of order");
        }
      }
      ChildRef& c = node->children[i];
      if (!in.ReadFixed64LE(&c.page_id) || !in.ReadVarint64(&c.count) ||
          !in.ReadVarint64(&c.max_mod)) {
        return Corrupt(page_id, "truncated child");
      }
      if (c.page_id == 0) return Corrupt(page_id, "null child page id");
      std::string_view hash;
      if (format > kFormatWithoutHashes) {
        if (!in.ReadBytes(kHashBytes, &hash)) {
          return Corrupt(page_id, "truncated child hash");
        }
        std::memcpy(c.hash.data(), hash.data(), kHashBytes);
      }
    }
  } else {
    return Corrupt(page_id, "unknown node kind");
  }
  if (!in.empty()) return Corrupt(page_id, "trailing bytes");
  node->BuildIndex();
  return NodeRef(std::move(node));
}

std::string EncodeBlob(std::string_view value, uint64_t blob_id) {
  std::string out;
  out.reserve(value.size() + 8);
  out.append(value.data(), value.size());
  PutFixed64LE(&out, Checksum(value, blob_id));
  return out;
}

absl::StatusOr<std::string> DecodeBlob(std::string_view blob, uint64_t blob_id) {
  if (!CheckAndStrip(&blob, blob_id)) {
    return absl::DataLossError(
        absl::StrCat("corrupt blob ", blob_id, ": bad checksum"));
  }
  return std::string(blob);
}

}  // namespace cowdb::internal
