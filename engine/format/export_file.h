// The portable export format: the keys and values of one version, or (an
// incremental export) the changes between two versions.
//
//   file     := full | incremental
//   full     := magic:"COWDBEX1" version:varint put* end checksum
//   incremental := magic:"COWDBIN1" from:varint version:varint
//                  (put | delete)* end checksum
//   put      := 1:u8 key:bytes value:bytes mod_version:varint
//   delete   := 2:u8 key:bytes
//   end      := 0:u8 count:varint
//   checksum := fixed64: XXH3-64 of everything before it
//   bytes    := length:varint byte{length}
//
// A file may also hold an export in an etcd snapshot frame (what the etcd
// face's Snapshot streams, so that `etcdctl snapshot save` accepts it):
//
//   framed   := file zero* length:fixed64 sha256:32 bytes
//
// with `length` the size of `file` and the whole a multiple of 512 bytes
// plus 32. The reader accepts both (the frame's SHA-256 is etcdctl's; the
// file's own checksum is what is verified).
//
// Records are in key order. The format does not depend on page layout, so
// any cowdb build can read it. DO NOT CHANGE; add a new magic instead.

#ifndef COWDB_ENGINE_FORMAT_EXPORT_FILE_H_
#define COWDB_ENGINE_FORMAT_EXPORT_FILE_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowdb::internal {

// Writes an export file: to `path`.tmp, synced, then renamed over `path`.
class ExportWriter {
 public:
  // A full export of `version`, or with `from`, an incremental one of the
  // changes from `from` to `version`.
  static absl::StatusOr<std::unique_ptr<ExportWriter>> Create(
      const std::string& path, uint64_t version, std::optional<uint64_t> from = std::nullopt);
  ~ExportWriter();

  absl::Status Add(std::string_view key, std::string_view value,
                   uint64_t mod_version);
  // Incremental exports only: `key` was deleted.
  absl::Status AddDelete(std::string_view key);
  // Writes the end and the checksum, syncs and renames.
  absl::Status Finish();

 private:
  ExportWriter(std::string path, FILE* file);
  absl::Status Write(std::string_view bytes);

  const std::string path_;
  FILE* file_;
  struct Hash;
  std::unique_ptr<Hash> hash_;
  uint64_t count_ = 0;
  bool incremental_ = false;
};

struct ExportHeader {
  uint64_t version = 0;
  std::optional<uint64_t> from;  // set for an incremental export
};

struct ExportRecord {
  std::string_view key;
  std::string_view value;    // empty for a delete
  uint64_t mod_version = 0;  // 0 for a delete
  bool deleted = false;
};

// Reads an export file, verifying the checksum before calling `fn` on any
// record, then calls `fn` for each record in order. Errors: DataLoss
// naming the file for any damage; I/O errors.
absl::StatusOr<ExportHeader> ReadExport(
    const std::string& path, const std::function<absl::Status(const ExportRecord&)>& fn);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_EXPORT_FILE_H_
