#include "engine/version/records.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "xxhash.h"
#include "engine/format/merkle.h"
#include "engine/util/coding.h"

namespace cowdb::internal {
namespace {

// Log record op tags (records.h). Persisted: DO NOT CHANGE.
constexpr uint8_t kOpPut = 0;
constexpr uint8_t kOpDelete = 1;
constexpr uint8_t kOpPutWithLease = 2;

}  // namespace

std::string EncodeMeta(const MetaRecord& m) {
  std::string out;
  PutVarint64(&out, m.format);
  PutVarint64(&out, m.checkpoint);
  PutVarint64(&out, m.next_id);
  PutVarint64(&out, m.page_size);
  if (m.format >= kFirstHashedFormat) {
    PutVarint64(&out, m.inline_limit);
    out.push_back(m.hashed ? 1 : 0);
  }
  return out;
}

absl::StatusOr<MetaRecord> DecodeMeta(std::string_view in) {
  Reader r(in);
  MetaRecord m;
  if (!r.ReadVarint64(&m.format)) {
    return absl::DataLossError("corrupt meta record: no format version");
  }
  if (m.format > kDatabaseFormatVersion) {
    // Newer formats may lay out the rest differently: stop here.
    return m;
  }
  if (!r.ReadVarint64(&m.checkpoint) || !r.ReadVarint64(&m.next_id) ||
      !r.ReadVarint64(&m.page_size) || m.next_id == 0) {
    return absl::DataLossError("corrupt meta record");
  }
  if (m.format >= kFirstHashedFormat) {
    uint8_t hashed;
    if (!r.ReadVarint64(&m.inline_limit) || !r.ReadByte(&hashed) ||
        hashed > 1) {
      return absl::DataLossError("corrupt meta record");
    }
    m.hashed = hashed == 1;
  }
  if (!r.empty()) return absl::DataLossError("corrupt meta record");
  return m;
}

Hash DigestOf(const VersionRecord& r, uint64_t version) {
  if (!r.hashed) return Hash{};
  return ChainDigest(r.previous_digest, version, r.root.hash, r.commit_micros);
}

std::string EncodeVersionRecord(const VersionRecord& v) {
  std::string out;
  PutFixed64LE(&out, v.root.page_id);
  PutVarint64(&out, v.root.count);
  PutVarint64(&out, v.root.max_mod);
  PutVarint64(&out, static_cast<uint64_t>(v.commit_micros));
  if (v.hashed) {
    out.append(HashView(v.root.hash));
    out.append(HashView(v.previous_digest));
  }
  return out;
}

absl::StatusOr<VersionRecord> DecodeVersionRecord(std::string_view in,
                                                  uint64_t version) {
  Reader r(in);
  VersionRecord v;
  uint64_t micros;
  if (!r.ReadFixed64LE(&v.root.page_id) || !r.ReadVarint64(&v.root.count) ||
      !r.ReadVarint64(&v.root.max_mod) || !r.ReadVarint64(&micros)) {
    return absl::DataLossError(
        absl::StrCat("corrupt record of version ", version));
  }
  if (!r.empty()) {
    std::string_view root_hash, previous;
    if (!r.ReadBytes(kHashBytes, &root_hash) ||
        !r.ReadBytes(kHashBytes, &previous) || !r.empty()) {
      return absl::DataLossError(
          absl::StrCat("corrupt record of version ", version));
    }
    v.hashed = true;
    std::copy(root_hash.begin(), root_hash.end(), v.root.hash.begin());
    std::copy(previous.begin(), previous.end(), v.previous_digest.begin());
  }
  v.commit_micros = static_cast<int64_t>(micros);
  return v;
}

std::string EncodeLogRecord(uint64_t version, int64_t commit_micros,
                            const std::vector<Mutation>& ops) {
  std::string out;
  size_t bytes = 24;
  for (const Mutation& m : ops) bytes += m.key.size() + m.value.size() + 21;
  out.reserve(bytes);
  PutVarint64(&out, static_cast<uint64_t>(commit_micros));
  PutVarint64(&out, ops.size());
  for (const Mutation& m : ops) {
    const bool leased = !m.is_delete && m.lease != 0;
    out.push_back(m.is_delete ? kOpDelete : leased ? kOpPutWithLease : kOpPut);
    PutLengthPrefixed(&out, m.key);
    if (!m.is_delete) PutLengthPrefixed(&out, m.value);
    if (leased) PutVarint64(&out, m.lease);
  }
  PutFixed64LE(&out, XXH3_64bits_withSeed(out.data(), out.size(), version));
  return out;
}

absl::StatusOr<LogRecord> DecodeLogRecord(std::string_view in,
                                          uint64_t version) {
  auto corrupt = [&](std::string_view what) {
    return absl::DataLossError(absl::StrCat("corrupt log record of version ",
                                            version, ": ", std::string(what)));
  };
  if (in.size() < 8) return corrupt("truncated");
  std::string_view body = in.substr(0, in.size() - 8);
  if (DecodeFixed64LE(in.data() + body.size()) !=
      XXH3_64bits_withSeed(body.data(), body.size(), version)) {
    return corrupt("bad checksum");
  }
  Reader r(body);
  LogRecord rec;
  uint64_t micros, count;
  if (!r.ReadVarint64(&micros) || !r.ReadVarint64(&count)) {
    return corrupt("bad header");
  }
  rec.commit_micros = static_cast<int64_t>(micros);
  if (count > body.size()) return corrupt("bad count");
  rec.ops.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Mutation m;
    uint8_t kind;
    if (!r.ReadByte(&kind) || kind > kOpPutWithLease ||
        !r.ReadLengthPrefixed(&m.key)) {
      return corrupt("bad mutation");
    }
    m.is_delete = kind == kOpDelete;
    if (!m.is_delete && !r.ReadLengthPrefixed(&m.value)) {
      return corrupt("bad mutation");
    }
    if (kind == kOpPutWithLease && !r.ReadVarint64(&m.lease)) {
      return corrupt("bad mutation");
    }
    rec.ops.push_back(m);
  }
  if (!r.empty()) return corrupt("trailing bytes");
  return rec;
}

std::string EncodeVarint(uint64_t v) {
  std::string out;
  PutVarint64(&out, v);
  return out;
}

absl::StatusOr<uint64_t> DecodeVarint(std::string_view in,
                                      std::string_view what) {
  Reader r(in);
  uint64_t v;
  if (!r.ReadVarint64(&v) || !r.empty()) {
    return absl::DataLossError(absl::StrCat("corrupt ", std::string(what)));
  }
  return v;
}

std::string EncodeFreed(const std::vector<FreedItem>& items) {
  std::string out;
  for (const auto& item : items) {
    out.push_back(static_cast<char>(item.kind));
    PutFixed64LE(&out, item.id);
    PutVarint64(&out, item.birth);
  }
  return out;
}

absl::StatusOr<std::vector<FreedItem>> DecodeFreed(std::string_view in,
                                                   uint64_t version) {
  Reader r(in);
  std::vector<FreedItem> items;
  while (!r.empty()) {
    uint8_t kind;
    FreedItem item;
    if (!r.ReadByte(&kind) ||
        (kind != FreedItem::kPage && kind != FreedItem::kBlob) ||
        !r.ReadFixed64LE(&item.id) || !r.ReadVarint64(&item.birth)) {
      return absl::DataLossError(
          absl::StrCat("corrupt freed record of version ", version));
    }
    item.kind = static_cast<FreedItem::Kind>(kind);
    items.push_back(item);
  }
  return items;
}

}  // namespace cowdb::internal
