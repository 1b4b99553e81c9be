// A temporary directory for one test, removed with its contents at the end.

#ifndef COWDB_TESTS_UTIL_TEMP_DIR_H_
#define COWDB_TESTS_UTIL_TEMP_DIR_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

namespace cowdb::testing {

class TempDir {
 public:
  TempDir() : TempDir(DefaultBase()) {}
  // A directory under `base`.
  explicit TempDir(const std::string& base) {
    std::string pattern = base + "/cowdb.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }

  // In memory (/dev/shm) when possible, else as TempDir(). For tests whose
  // durability is simulated (tests/util/fault_fs.h), where real fsyncs only
  // cost time.
  static TempDir InMemory() {
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec) &&
        access("/dev/shm", W_OK) == 0) {
      return TempDir(std::string("/dev/shm"));
    }
    return TempDir();
  }
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside the directory that does not exist yet.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  static std::string DefaultBase() {
    const char* base = std::getenv("TEST_TMPDIR");
    return base != nullptr ? base : "/tmp";
  }

  std::string path_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_TEMP_DIR_H_
