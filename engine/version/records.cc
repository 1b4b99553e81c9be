#include "engine/version/records.h"

#include "absl/strings/str_cat.h"
#include "engine/util/coding.h"

namespace cowdb::internal {

std::string EncodeMeta(const MetaRecord& m) {
  std::string out;
  PutVarint64(&out, m.format);
  PutVarint64(&out, m.latest_version);
  PutVarint64(&out, m.next_id);
  PutVarint64(&out, m.page_size);
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
  if (!r.ReadVarint64(&m.latest_version) || !r.ReadVarint64(&m.next_id) ||
      !r.ReadVarint64(&m.page_size) || !r.empty() || m.next_id == 0) {
    return absl::DataLossError("corrupt meta record");
  }
  return m;
}

std::string EncodeVersionRecord(const VersionRecord& v) {
  std::string out;
  PutFixed64LE(&out, v.root.page_id);
  PutVarint64(&out, v.root.count);
  PutVarint64(&out, v.root.max_mod);
  PutVarint64(&out, static_cast<uint64_t>(v.commit_micros));
  return out;
}

absl::StatusOr<VersionRecord> DecodeVersionRecord(std::string_view in,
                                                  uint64_t version) {
  Reader r(in);
  VersionRecord v;
  uint64_t micros;
  if (!r.ReadFixed64LE(&v.root.page_id) || !r.ReadVarint64(&v.root.count) ||
      !r.ReadVarint64(&v.root.max_mod) || !r.ReadVarint64(&micros) ||
      !r.empty()) {
    return absl::DataLossError(
        absl::StrCat("corrupt record of version ", version));
  }
  v.commit_micros = static_cast<int64_t>(micros);
  return v;
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
