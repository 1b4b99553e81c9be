#include "engine/format/page.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/util/kept_bytes.h"
#include "tests/util/status_matchers.h"

namespace cowdb::internal {
namespace {

using ::cowdb::testing::StatusIs;

Node MakeLeaf() {
  Node n;
  n.birth = 7;
  for (int i = 0; i < 20; ++i) {
    LeafEntry e;
    e.key = testing::Keep("key" + std::to_string(100 + i));
    e.mod_version = i % 5;
    if (i % 4 == 0) {
      e.value.blob_id = 1000 + i;
      e.value.blob_size = 5000 + i;
    } else {
      e.value.data = testing::Keep(std::string(i, 'v'));
    }
    n.entries.push_back(e);
  }
  return n;
}

Node MakeInternal() {
  Node n;
  n.level = 2;
  n.birth = 9;
  for (int i = 0; i < 5; ++i) {
    ChildRef c;
    c.page_id = 40 + i;
    c.count = 1000 * i + 1;
    c.max_mod = i + 1;
    n.children.push_back(c);
    if (i > 0) n.keys.push_back(testing::Keep("sep" + std::to_string(i)));
  }
  return n;
}

TEST(PageTest, LeafRoundTrip) {
  Node leaf = MakeLeaf();
  std::string bytes = EncodePage(leaf, 5);
  ASSERT_OK_AND_ASSIGN(NodeRef back, DecodePage(bytes, 5));
  EXPECT_TRUE(back->is_leaf());
  EXPECT_EQ(back->birth, 7u);
  ASSERT_EQ(back->entries.size(), leaf.entries.size());
  for (size_t i = 0; i < leaf.entries.size(); ++i) {
    EXPECT_EQ(back->entries[i].key, leaf.entries[i].key);
    EXPECT_EQ(back->entries[i].mod_version, leaf.entries[i].mod_version);
    EXPECT_EQ(back->entries[i].value.blob_id, leaf.entries[i].value.blob_id);
    EXPECT_EQ(back->entries[i].value.blob_size,
              leaf.entries[i].value.blob_size);
    EXPECT_EQ(back->entries[i].value.data, leaf.entries[i].value.data);
  }
  // ByteSize is what splitting relies on: it must track the real size.
  EXPECT_LE(bytes.size(), leaf.ByteSize() + 8);
  EXPECT_GE(bytes.size() + 32, leaf.ByteSize());
}

TEST(PageTest, InternalRoundTrip) {
  Node n = MakeInternal();
  std::string bytes = EncodePage(n, 77);
  ASSERT_OK_AND_ASSIGN(NodeRef back, DecodePage(bytes, 77));
  EXPECT_FALSE(back->is_leaf());
  EXPECT_EQ(back->level, 2);
  EXPECT_EQ(back->keys, n.keys);
  ASSERT_EQ(back->children.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(back->children[i].page_id, n.children[i].page_id);
    EXPECT_EQ(back->children[i].count, n.children[i].count);
    EXPECT_EQ(back->children[i].max_mod, n.children[i].max_mod);
  }
  EXPECT_EQ(back->count(), n.count());
}

TEST(PageTest, WrongPageIdIsDataLoss) {
  std::string bytes = EncodePage(MakeLeaf(), 5);
  EXPECT_THAT(DecodePage(bytes, 6),
              StatusIs(absl::StatusCode::kDataLoss, "page 6"));
}

TEST(PageTest, EveryFlippedBitIsDataLoss) {
  for (const Node& n : {MakeLeaf(), MakeInternal()}) {
    std::string bytes = EncodePage(n, 12);
    for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
      std::string bad = bytes;
      bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
      EXPECT_THAT(DecodePage(bad, 12),
                  StatusIs(absl::StatusCode::kDataLoss, "corrupt page 12"))
          << "bit " << bit;
    }
  }
}

TEST(PageTest, EveryTruncationIsDataLoss) {
  std::string bytes = EncodePage(MakeLeaf(), 3);
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_THAT(DecodePage(bytes.substr(0, len), 3),
                StatusIs(absl::StatusCode::kDataLoss))
        << "length " << len;
  }
}

TEST(PageTest, BlobRoundTripAndCorruption) {
  std::string value(10000, 'x');
  std::string blob = EncodeBlob(value, 99);
  ASSERT_OK_AND_ASSIGN(std::string back, DecodeBlob(blob, 99));
  EXPECT_EQ(back, value);
  blob[17] ^= 1;
  EXPECT_THAT(DecodeBlob(blob, 99),
              StatusIs(absl::StatusCode::kDataLoss, "blob 99"));
  EXPECT_THAT(DecodeBlob("", 99), StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace cowdb::internal
