// Byte encodings shared by the on-disk formats: varints (LEB128, as in
// LevelDB), fixed-width integers, and a bounds-checked reader.
//
// Ids and versions used as RocksDB keys are 8-byte big-endian so that their
// byte order equals their numeric order.

#ifndef COWDB_ENGINE_UTIL_CODING_H_
#define COWDB_ENGINE_UTIL_CODING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cowdb::internal {

inline void PutVarint64(std::string* dst, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  dst->append(buf, n);
}

inline size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline void PutFixed64LE(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(v >> (8 * i));
  dst->append(buf, 8);
}

inline uint64_t DecodeFixed64LE(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// 8-byte big-endian key for ids and versions.
inline std::string BigEndianKey(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

// Returns false when `key` is not exactly 8 bytes.
inline bool ParseBigEndianKey(std::string_view key, uint64_t* v) {
  if (key.size() != 8) return false;
  uint64_t r = 0;
  for (char c : key) r = (r << 8) | static_cast<uint8_t>(c);
  *v = r;
  return true;
}

// Reads from a byte range, never past its end. Every method returns false
// (and consumes nothing further) when the input is too short or malformed.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool empty() const { return in_.empty(); }
  size_t remaining() const { return in_.size(); }

  bool ReadByte(uint8_t* v) {
    if (in_.empty()) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }

  bool ReadVarint64(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63 && !in_.empty(); shift += 7) {
      uint64_t byte = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      if (shift == 63 && byte > 1) return false;  // overflows 64 bits
      result |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;
  }

  bool ReadFixed64LE(uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = DecodeFixed64LE(in_.data());
    in_.remove_prefix(8);
    return true;
  }

  bool ReadFixed32LE(uint32_t* v) {
    if (in_.size() < 4) return false;
    uint32_t r = 0;
    for (int i = 3; i >= 0; --i) r = (r << 8) | static_cast<uint8_t>(in_[i]);
    *v = r;
    in_.remove_prefix(4);
    return true;
  }

  // Exactly `n` bytes.
  bool ReadBytes(size_t n, std::string_view* v) {
    if (in_.size() < n) return false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

  // A varint length followed by that many bytes.
  bool ReadLengthPrefixed(std::string_view* v) {
    uint64_t len;
    if (!ReadVarint64(&len) || len > in_.size()) return false;
    *v = in_.substr(0, len);
    in_.remove_prefix(len);
    return true;
  }

 private:
  std::string_view in_;
};

inline void PutFixed32LE(std::string* dst, uint32_t v) {
  char buf[4];
  for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>(v >> (8 * i));
  dst->append(buf, 4);
}

inline void PutLengthPrefixed(std::string* dst, std::string_view v) {
  PutVarint64(dst, v.size());
  dst->append(v.data(), v.size());
}

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_UTIL_CODING_H_
