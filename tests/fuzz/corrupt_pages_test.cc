// Replays the fuzz corpora: valid seeds decode; every corrupted page gives
// DataLoss naming its page id (never a crash, never a node).

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/format/page.h"
#include "gtest/gtest.h"
#include "tests/fuzz/page_input.h"
#include "tests/util/status_matchers.h"

namespace cowdb::internal {
namespace {

std::vector<std::pair<std::string, std::string>> ReadDir(const std::string& d) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& e : std::filesystem::directory_iterator(d)) {
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    files.emplace_back(e.path().filename(), ss.str());
  }
  return files;
}

TEST(CorruptPagesTest, SeedsDecode) {
  auto files = ReadDir("tests/fuzz/corpus/page");
  ASSERT_GE(files.size(), 10u);
  for (const auto& [name, bytes] : files) {
    std::optional<PageInput> in = ParsePageInput(bytes);
    ASSERT_TRUE(in.has_value()) << name;
    EXPECT_OK(DecodePage(in->page, in->page_id)) << name;
  }
}

TEST(CorruptPagesTest, EveryCorruptPageIsDataLoss) {
  auto files = ReadDir("tests/fuzz/corpus/corrupt");
  ASSERT_GE(files.size(), 50u);
  for (const auto& [name, bytes] : files) {
    std::optional<PageInput> in = ParsePageInput(bytes);
    ASSERT_TRUE(in.has_value()) << name;
    EXPECT_THAT(DecodePage(in->page, in->page_id),
                testing::StatusIs(absl::StatusCode::kDataLoss,
                                  "page " + std::to_string(in->page_id)))
        << name;
  }
}

}  // namespace
}  // namespace cowdb::internal
