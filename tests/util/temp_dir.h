// A temporary directory for one test, removed with its contents at the end.

#ifndef COWDB_TESTS_UTIL_TEMP_DIR_H_
#define COWDB_TESTS_UTIL_TEMP_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

namespace cowdb::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(base != nullptr ? base : "/tmp") + "/cowdb.XXXXXX";
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // A path inside the directory that does not exist yet.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_TEMP_DIR_H_
