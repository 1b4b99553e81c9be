#include "engine/format/export_file.h"

#include <algorithm>

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

constexpr char kMagic[] = "COWDBEX1";
constexpr char kIncrementalMagic[] = "COWDBIN1";
constexpr size_t kMagicLen = 8;

absl::Status IoError(std::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(std::string(what), " ", path, ": ",
                                          std::strerror(errno)));
}

absl::Status Damaged(const std::string& path, std::string_view why) {
  return absl::DataLossError(
      absl::StrCat("export file ", path, " is damaged: ", std::string(why)));
}

}  // namespace

struct ExportWriter::Hash {
  XXH3_state_t* state = XXH3_createState();
  ~Hash() { XXH3_freeState(state); }
};

ExportWriter::ExportWriter(std::string path, FILE* file)
    : path_(std::move(path)), file_(file), hash_(std::make_unique<Hash>()) {
  XXH3_64bits_reset(hash_->state);
}

ExportWriter::~ExportWriter() {
  if (file_ != nullptr) {
    fclose(file_);
    unlink((path_ + ".tmp").c_str());
  }
}

absl::StatusOr<std::unique_ptr<ExportWriter>> ExportWriter::Create(
    const std::string& path, uint64_t version, std::optional<uint64_t> from) {
  FILE* f = fopen((path + ".tmp").c_str(), "wb");
  if (f == nullptr) return IoError("cannot create", path + ".tmp");
  std::unique_ptr<ExportWriter> w(new ExportWriter(path, f));
  w->incremental_ = from.has_value();
  std::string header(from ? kIncrementalMagic : kMagic, kMagicLen);
  if (from) PutVarint64(&header, *from);
  PutVarint64(&header, version);
  RETURN_IF_ERROR(w->Write(header));
  return w;
}

absl::Status ExportWriter::Write(std::string_view bytes) {
  XXH3_64bits_update(hash_->state, bytes.data(), bytes.size());
  if (fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return IoError("cannot write", path_ + ".tmp");
  }
  return absl::OkStatus();
}

absl::Status ExportWriter::Add(std::string_view key, std::string_view value,
                               uint64_t mod_version) {
  std::string rec(1, '\1');
  PutLengthPrefixed(&rec, key);
  PutLengthPrefixed(&rec, value);
  PutVarint64(&rec, mod_version);
  ++count_;
  return Write(rec);
}

absl::Status ExportWriter::AddDelete(std::string_view key) {
  if (!incremental_) {
    return absl::FailedPreconditionError("a full export holds no deletes");
  }
  std::string rec(1, '\2');
  PutLengthPrefixed(&rec, key);
  ++count_;
  return Write(rec);
}

absl::Status ExportWriter::Finish() {
  std::string end(1, '\0');
  PutVarint64(&end, count_);
  RETURN_IF_ERROR(Write(end));
  std::string sum;
  PutFixed64LE(&sum, XXH3_64bits_digest(hash_->state));
  if (fwrite(sum.data(), 1, sum.size(), file_) != sum.size() ||
      fflush(file_) != 0 || fsync(fileno(file_)) != 0) {
    return IoError("cannot write", path_ + ".tmp");
  }
  fclose(file_);
  file_ = nullptr;
  if (rename((path_ + ".tmp").c_str(), path_.c_str()) != 0) {
    return IoError("cannot rename to", path_);
  }
  return absl::OkStatus();
}

absl::StatusOr<ExportHeader> ReadExport(
    const std::string& path, const std::function<absl::Status(const ExportRecord&)>& fn) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return IoError("cannot open", path);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) data.append(buf, n);
  bool failed = ferror(f) != 0;
  fclose(f);
  if (failed) return IoError("cannot read", path);
  const std::string_view magic = std::string_view(data).substr(0, kMagicLen);
  if (data.size() < kMagicLen + 8 || (magic != kMagic && magic != kIncrementalMagic)) {
    return Damaged(path, "not a cowdb export file");
  }
  const bool incremental = magic == kIncrementalMagic;
  std::string_view body(data.data(), data.size() - 8);
  auto verifies = [](std::string_view b) {
    return DecodeFixed64LE(b.data() + b.size() - 8) ==
           XXH3_64bits(b.data(), b.size() - 8);
  };
  if (!verifies(data)) {
    // In an etcd snapshot frame? Then the export is the first `length`
    // bytes (see the format above).
    constexpr size_t kTrailer = 8 + 32;
    uint64_t length = 0;
    if (data.size() % 512 == 32 && data.size() >= kTrailer) {
      length = DecodeFixed64LE(data.data() + data.size() - kTrailer);
    }
    bool framed = length >= kMagicLen + 8 && length <= data.size() - kTrailer &&
                  std::all_of(data.begin() + length, data.end() - kTrailer,
                              [](char c) { return c == 0; }) &&
                  verifies(std::string_view(data.data(), length));
    if (!framed) return Damaged(path, "bad checksum");
    body = std::string_view(data.data(), length - 8);
  }
  Reader in(body.substr(kMagicLen));
  ExportHeader header;
  if (incremental) {
    uint64_t from;
    if (!in.ReadVarint64(&from)) return Damaged(path, "bad header");
    header.from = from;
  }
  if (!in.ReadVarint64(&header.version)) return Damaged(path, "bad header");
  uint64_t count = 0;
  for (;;) {
    uint8_t tag;
    if (!in.ReadByte(&tag)) return Damaged(path, "truncated");
    if (tag == 0) break;
    ExportRecord r;
    bool ok = false;
    if (tag == 1) {
      ok = in.ReadLengthPrefixed(&r.key) && in.ReadLengthPrefixed(&r.value) &&
           in.ReadVarint64(&r.mod_version);
    } else if (tag == 2 && incremental) {
      r.deleted = true;
      ok = in.ReadLengthPrefixed(&r.key);
    }
    if (!ok) return Damaged(path, "bad record");
    RETURN_IF_ERROR(fn(r));
    ++count;
  }
  uint64_t expected;
  if (!in.ReadVarint64(&expected) || expected != count || !in.empty()) {
    return Damaged(path, "bad record count");
  }
  return header;
}

}  // namespace cowdb::internal
