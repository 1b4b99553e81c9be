// The small records kept next to the pages: the meta record, one record per
// version, and one freed record per version that made pages unreachable.
//
// Formats (varints and fixed64 as in engine/util/coding.h). Persisted:
// DO NOT CHANGE; bump kDatabaseFormatVersion instead.
//
//   meta (Space::kMeta, key "meta")
//     := format:varint latest_version:varint next_id:varint page_size:varint
//   release floor (Space::kMeta, key "floor") := version:varint
//     versions below it are released unless tagged
//   tag (Space::kTags, key = tag name) := version:varint
//   version (Space::kVersions, key = version as 8-byte big-endian)
//     := root_page_id:fixed64 count:varint max_mod:varint commit_micros:varint
//   freed (Space::kFreed, key = death version as 8-byte big-endian)
//     := (kind:u8 id:fixed64 birth:varint)*      kind: 1 page, 2 blob
//
// A page or blob listed in the freed record of version d with birth b is
// reachable from exactly the versions in [b, d).

#ifndef COWDB_ENGINE_VERSION_RECORDS_H_
#define COWDB_ENGINE_VERSION_RECORDS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tree/btree.h"

namespace cowdb::internal {

// The database format this build writes and the newest it reads.
inline constexpr uint64_t kDatabaseFormatVersion = 1;
inline constexpr char kMetaKey[] = "meta";
inline constexpr char kFloorKey[] = "floor";

struct MetaRecord {
  uint64_t format = kDatabaseFormatVersion;
  uint64_t latest_version = 0;
  uint64_t next_id = 1;  // ids start at 1; 0 means "no page"
  uint64_t page_size = 0;
};

struct VersionRecord {
  Root root;
  int64_t commit_micros = 0;  // wall-clock time of the commit
};

std::string EncodeMeta(const MetaRecord& m);
// Errors: DataLoss.
absl::StatusOr<MetaRecord> DecodeMeta(std::string_view in);

std::string EncodeVersionRecord(const VersionRecord& r);
// Errors: DataLoss naming the version.
absl::StatusOr<VersionRecord> DecodeVersionRecord(std::string_view in,
                                                  uint64_t version);

std::string EncodeVarint(uint64_t v);
// Errors: DataLoss naming `what`.
absl::StatusOr<uint64_t> DecodeVarint(std::string_view in, std::string_view what);

std::string EncodeFreed(const std::vector<FreedItem>& items);
// Errors: DataLoss naming the version.
absl::StatusOr<std::vector<FreedItem>> DecodeFreed(std::string_view in,
                                                   uint64_t version);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_RECORDS_H_
