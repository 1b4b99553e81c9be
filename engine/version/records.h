// The records kept next to the pages: the meta record, the commit log, one
// record per version and per checkpoint, and one freed record per
// checkpoint that made pages unreachable.
//
// Formats (varints and fixed64 as in engine/util/coding.h). Persisted:
// DO NOT CHANGE; bump kDatabaseFormatVersion instead.
//
//   meta (Space::kMeta, key "meta")
//     := format:varint checkpoint:varint next_id:varint page_size:varint
//        inline_limit:varint hashed:u8         (format 4; absent before)
//     inline_limit: Options::inline_value_limit when the database was
//     created (or upgraded to format 4); hashed: 1 if every tree has
//     Merkle hashes (created at format 4 with Options::verifiable)
//     checkpoint: the version of the last complete checkpoint (format 1:
//     the latest version, every version being stored whole)
//   release floor (Space::kMeta, key "floor") := version:varint
//     versions below it are released unless tagged
//   tag (Space::kTags, key = tag name) := version:varint
//   log (Space::kLog, key = version as 8-byte big-endian)
//     := commit_micros:varint count:varint op{count} checksum:fixed64
//     op := 0:u8 key:bytes value:bytes       put (lease 0)
//         | 1:u8 key:bytes                   delete
//         | 2:u8 key:bytes value:bytes lease:varint
//                                            put with a lease (format 3;
//                                            written only when lease != 0)
//     bytes := length:varint byte{length}
//     checksum := XXH3_64bits_withSeed(the record before it, seed = version)
//         | 3:u8 branch:bytes                first op only (format 5): the
//                                            ops after it change `branch`
//                                            (no such op: the main branch)
//         | 4:u8 branch:bytes source:bytes source_version:varint
//                                            the only op (format 5): creates
//                                            `branch` as `source`'s tree
//                                            at source_version (version - 1:
//                                            its head; older: the fork's
//                                            checkpoint stores the tree)
//         | 5:u8 branch:bytes                the only op (format 5): deletes
//                                            `branch`
//     The mutations of the commit, in the order they were applied.
//     Replaying them reproduces each key's create_version, writes and
//     lease: the tree derives them from the entry a put replaces
//     (TreeBuilder::Put), and replay applies the same puts to the same
//     tree.
//   version (Space::kVersions, key = version as 8-byte big-endian)
//     := root_page_id:fixed64 count:varint max_mod:varint commit_micros:varint
//        [root_hash:32 previous_digest:32]      in a hashed database
//        [branch:bytes [branch_hash:32] table]  format 5 (absent: main,
//                                               no other branch)
//     root_page_id is 0 (format 2: roots live in checkpoint records); the
//     root and its hash are the main branch's
//     branch: the branch the commit changed ("" = main); branch_hash: that
//     branch's root hash when it is not main and the database hashes
//     table := count:varint (name:bytes root_page_id:fixed64 count:varint
//              max_mod:varint [hash:32] created:varint source_version:varint
//              source:bytes){count}
//     the branches other than main: written whole in checkpoint records
//     (their stored roots), empty (count 0) in version records
//     digest(version) = ChainDigest(previous_digest, version, root_hash,
//     commit_micros) (proof.h); version 0's previous_digest is zero
//   checkpoint (Space::kCheckpoints, key = version as 8-byte big-endian)
//     := the version format, with the stored root of that version's tree
//   freed (Space::kFreed, key = death checkpoint as 8-byte big-endian)
//     := (kind:u8 id:fixed64 birth:varint [key:bytes])*
//     kind: 1 page, 2 blob, 3 blob with the key of its entry (format 5)
//
// A page or blob listed in the freed record of checkpoint d with birth b
// (the version that created it) is reachable from exactly the checkpoints
// in [b, d), and so needed by the versions whose base checkpoint (the last
// checkpoint at or before them) lies in [b, d).

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
// Format 1: every commit stored its pages. Format 2: commits are log
// records; checkpoints store pages. Format 3: leaf entries keep
// create_version, writes and lease (page format 2, engine/format/page.h),
// and log records may hold puts with a lease (op 2). Open upgrades older
// formats in place: format 1 as described in version_store.cc; format 2
// by rewriting the meta record only, since its pages (page format 1) and
// log records still decode, and are read as they are (lazily migrated).
// The format number keeps an older build, which would misread page
// format 2 and op 2, from opening the database (FailedPrecondition).
// Format 4: pages of format 3 (blob digests, child hashes); the meta
// record keeps the inline limit (the trees' shape depends on it, and
// their hashes on the shape) and whether the database hashes. A database
// upgraded from an older format does not hash: its older pages have no
// hashes to build on.
// Format 5: branches (log ops 3 to 5, the version and checkpoint records'
// branch and table, freed blobs with their keys). Format-4 records read as
// the main branch's.
inline constexpr uint64_t kDatabaseFormatVersion = 5;
inline constexpr uint64_t kFirstHashedFormat = 4;
inline constexpr char kMetaKey[] = "meta";
inline constexpr char kFloorKey[] = "floor";

struct MetaRecord {
  uint64_t format = kDatabaseFormatVersion;
  uint64_t checkpoint = 0;  // format 1: the latest version
  uint64_t next_id = 1;  // ids start at 1; 0 means "no page"
  uint64_t page_size = 0;
  uint64_t inline_limit = 0;  // format 4
  bool hashed = false;        // format 4
};

// A branch other than main, as a checkpoint record stores it.
struct BranchRecord {
  std::string name;
  Root root;                // its stored root (with its hash)
  uint64_t created = 0;     // the version that created it
  uint64_t source_version = 0;  // the version it was forked from
  std::string source;       // the branch it was forked from
};

struct VersionRecord {
  Root root;                  // main's; in a hashed database, with its hash
  int64_t commit_micros = 0;  // wall-clock time of the commit
  bool hashed = false;        // whether the hashes below are recorded
  Hash previous_digest{};
  std::string branch;         // the branch the commit changed; "" = main
  Hash branch_hash{};         // its root hash (hashed, branch not main)
  std::vector<BranchRecord> table;  // checkpoint records: every branch
};

// digest(version) from its record (zero when the record has no hashes).
Hash DigestOf(const VersionRecord& r, uint64_t version);

std::string EncodeMeta(const MetaRecord& m);
// Errors: DataLoss.
absl::StatusOr<MetaRecord> DecodeMeta(std::string_view in);

std::string EncodeVersionRecord(const VersionRecord& r);
// `hashed`: whether the database hashes (MetaRecord::hashed), so whether
// the record has hashes. Errors: DataLoss naming the version.
absl::StatusOr<VersionRecord> DecodeVersionRecord(std::string_view in,
                                                  uint64_t version,
                                                  bool hashed);

std::string EncodeVarint(uint64_t v);
// Errors: DataLoss naming `what`.
absl::StatusOr<uint64_t> DecodeVarint(std::string_view in, std::string_view what);

// One mutation of a commit; views into the record or the caller's data.
struct Mutation {
  bool is_delete = false;
  std::string_view key;
  std::string_view value;  // empty for deletes
  uint64_t lease = 0;      // for puts: KeyMeta::lease
};

// What a log record does besides its mutations (ops 3 to 5).
struct BranchOp {
  enum Kind : uint8_t { kCommit, kFork, kDrop };
  Kind kind = kCommit;
  std::string_view branch;  // kCommit: the branch changed ("" = main)
  std::string_view source;  // kFork: the branch forked from
  uint64_t source_version = 0;  // kFork
};

struct LogRecord {
  int64_t commit_micros = 0;
  BranchOp branch;
  std::vector<Mutation> ops;  // empty for kFork and kDrop
};

std::string EncodeLogRecord(uint64_t version, int64_t commit_micros,
                            const BranchOp& branch,
                            const std::vector<Mutation>& ops);
// The record's views point into `in`. Errors: DataLoss naming the version
// (torn, corrupt, or stored under another version).
absl::StatusOr<LogRecord> DecodeLogRecord(std::string_view in,
                                          uint64_t version);

std::string EncodeFreed(const std::vector<FreedItem>& items);
// Errors: DataLoss naming the version.
absl::StatusOr<std::vector<FreedItem>> DecodeFreed(std::string_view in,
                                                   uint64_t version);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_VERSION_RECORDS_H_
