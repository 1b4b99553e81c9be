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
constexpr uint8_t kOpBranch = 3;
constexpr uint8_t kOpFork = 4;
constexpr uint8_t kOpDrop = 5;
// Freed record kinds beyond FreedItem::Kind: a blob with its entry's key.
constexpr uint8_t kFreedBlobWithKey = 3;

void PutRoot(std::string* out, const Root& root, bool hashed) {
  PutFixed64LE(out, root.page_id);
  PutVarint64(out, root.count);
  PutVarint64(out, root.max_mod);
  if (hashed) out->append(HashView(root.hash));
}

bool ReadHash(Reader& r, Hash* h) {
  std::string_view bytes;
  if (!r.ReadBytes(kHashBytes, &bytes)) return false;
  std::copy(bytes.begin(), bytes.end(), h->begin());
  return true;
}

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
  if (v.branch.empty() && v.table.empty()) return out;  // as format 4
  PutLengthPrefixed(&out, v.branch);
  if (v.hashed && !v.branch.empty()) out.append(HashView(v.branch_hash));
  PutVarint64(&out, v.table.size());
  for (const BranchRecord& b : v.table) {
    PutLengthPrefixed(&out, b.name);
    PutRoot(&out, b.root, v.hashed);
    PutVarint64(&out, b.created);
    PutVarint64(&out, b.source_version);
    PutLengthPrefixed(&out, b.source);
  }
  return out;
}

absl::StatusOr<VersionRecord> DecodeVersionRecord(std::string_view in,
                                                  uint64_t version,
                                                  bool hashed) {
  Reader r(in);
  VersionRecord v;
  v.hashed = hashed;
  auto corrupt = [&] {
    return absl::DataLossError(
        absl::StrCat("corrupt record of version ", version));
  };
  uint64_t micros;
  if (!r.ReadFixed64LE(&v.root.page_id) || !r.ReadVarint64(&v.root.count) ||
      !r.ReadVarint64(&v.root.max_mod) || !r.ReadVarint64(&micros)) {
    return corrupt();
  }
  v.commit_micros = static_cast<int64_t>(micros);
  if (hashed && (!ReadHash(r, &v.root.hash) || !ReadHash(r, &v.previous_digest))) {
    return corrupt();
  }
  if (r.empty()) return v;
  std::string_view branch;
  uint64_t count;
  if (!r.ReadLengthPrefixed(&branch)) return corrupt();
  v.branch.assign(branch);
  if (hashed && !v.branch.empty() && !ReadHash(r, &v.branch_hash)) return corrupt();
  if (!r.ReadVarint64(&count) || count > in.size()) return corrupt();
  for (uint64_t i = 0; i < count; ++i) {
    BranchRecord b;
    std::string_view name, source;
    if (!r.ReadLengthPrefixed(&name) || !r.ReadFixed64LE(&b.root.page_id) ||
        !r.ReadVarint64(&b.root.count) || !r.ReadVarint64(&b.root.max_mod) ||
        (hashed && !ReadHash(r, &b.root.hash)) || !r.ReadVarint64(&b.created) ||
        !r.ReadVarint64(&b.source_version) || !r.ReadLengthPrefixed(&source)) {
      return corrupt();
    }
    b.name.assign(name);
    b.source.assign(source);
    v.table.push_back(std::move(b));
  }
  if (!r.empty()) return corrupt();
  return v;
}

std::string EncodeLogRecord(uint64_t version, int64_t commit_micros,
                            const BranchOp& branch,
                            const std::vector<Mutation>& ops) {
  std::string out;
  size_t bytes = 24 + branch.branch.size() + branch.source.size() + 16;
  for (const Mutation& m : ops) bytes += m.key.size() + m.value.size() + 21;
  out.reserve(bytes);
  PutVarint64(&out, static_cast<uint64_t>(commit_micros));
  const bool header = branch.kind != BranchOp::kCommit || !branch.branch.empty();
  PutVarint64(&out, ops.size() + (header ? 1 : 0));
  if (header) {
    out.push_back(branch.kind == BranchOp::kFork   ? kOpFork
                  : branch.kind == BranchOp::kDrop ? kOpDrop
                                                   : kOpBranch);
    PutLengthPrefixed(&out, branch.branch);
    if (branch.kind == BranchOp::kFork) {
      PutLengthPrefixed(&out, branch.source);
      PutVarint64(&out, branch.source_version);
    }
  }
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
    if (!r.ReadByte(&kind) || kind > kOpDrop || !r.ReadLengthPrefixed(&m.key)) {
      return corrupt("bad mutation");
    }
    if (kind >= kOpBranch) {
      // The branch header: first, and for a fork or a drop the only op.
      if (i != 0 || m.key.empty()) return corrupt("bad branch op");
      rec.branch.branch = m.key;
      if (kind == kOpFork) {
        rec.branch.kind = BranchOp::kFork;
        if (!r.ReadLengthPrefixed(&rec.branch.source) ||
            !r.ReadVarint64(&rec.branch.source_version)) {
          return corrupt("bad branch op");
        }
      } else if (kind == kOpDrop) {
        rec.branch.kind = BranchOp::kDrop;
      }
      if (kind != kOpBranch && count != 1) return corrupt("bad branch op");
      continue;
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
    const bool keyed = item.kind == FreedItem::kBlob && !item.key.empty();
    out.push_back(static_cast<char>(keyed ? kFreedBlobWithKey : item.kind));
    PutFixed64LE(&out, item.id);
    PutVarint64(&out, item.birth);
    if (keyed) PutLengthPrefixed(&out, item.key);
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
    std::string_view key;
    if (!r.ReadByte(&kind) ||
        (kind != FreedItem::kPage && kind != FreedItem::kBlob &&
         kind != kFreedBlobWithKey) ||
        !r.ReadFixed64LE(&item.id) || !r.ReadVarint64(&item.birth) ||
        (kind == kFreedBlobWithKey && !r.ReadLengthPrefixed(&key))) {
      return absl::DataLossError(
          absl::StrCat("corrupt freed record of version ", version));
    }
    item.kind = kind == FreedItem::kPage ? FreedItem::kPage : FreedItem::kBlob;
    item.key.assign(key);
    items.push_back(item);
  }
  return items;
}

}  // namespace cowdb::internal
