// A bump allocator for bytes that live as long as the arena: copies are
// never moved, so views of them stay valid until the arena is destroyed.
//
// Thread safety: none; one owner.

#ifndef COWDB_ENGINE_UTIL_ARENA_H_
#define COWDB_ENGINE_UTIL_ARENA_H_

#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace cowdb::internal {

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Returns a stable copy of `bytes`.
  std::string_view Copy(std::string_view bytes) {
    if (bytes.empty()) return {};
    char* p = Allocate(bytes.size());
    std::memcpy(p, bytes.data(), bytes.size());
    return {p, bytes.size()};
  }

 private:
  static constexpr size_t kBlockBytes = 32 << 10;

  char* Allocate(size_t n) {
    if (n > kBlockBytes / 4) {  // large: a block of its own
      blocks_.push_back(std::make_unique<char[]>(n));
      return blocks_.back().get();
    }
    if (n > left_) {
      blocks_.push_back(std::make_unique<char[]>(kBlockBytes));
      next_ = blocks_.back().get();
      left_ = kBlockBytes;
    }
    char* p = next_;
    next_ += n;
    left_ -= n;
    return p;
  }

  std::vector<std::unique_ptr<char[]>> blocks_;
  char* next_ = nullptr;
  size_t left_ = 0;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_UTIL_ARENA_H_
