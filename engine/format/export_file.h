// The portable export format: the keys and values of one version.
//
//   file     := magic:"COWDBEX1" version:varint record* end checksum
//   record   := 1:u8 key:bytes value:bytes mod_version:varint
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
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cowdb::internal {

// Writes an export file: to `path`.tmp, synced, then renamed over `path`.
class ExportWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ExportWriter>> Create(
      const std::string& path, uint64_t version);
  ~ExportWriter();

  absl::Status Add(std::string_view key, std::string_view value,
                   uint64_t mod_version);
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
};

struct ExportHeader {
  uint64_t version = 0;
};

// Reads an export file, verifying the checksum before calling `fn` on any
// record, then calls `fn(key, value, mod_version)` for each record in
// order. Errors: DataLoss naming the file for any damage; I/O errors.
absl::StatusOr<ExportHeader> ReadExport(
    const std::string& path,
    const std::function<absl::Status(std::string_view key,
                                     std::string_view value,
                                     uint64_t mod_version)>& fn);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_EXPORT_FILE_H_
