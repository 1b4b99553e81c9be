#include "engine/format/page.h"

#include <xxhash.h>

#include <algorithm>
#include <random>

#include "engine/util/coding.h"
#include "gtest/gtest.h"
#include "tests/util/kept_bytes.h"
#include "tests/util/legacy_page.h"
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
    // Every shape of metadata: created by its last write or before it,
    // many writes, no lease or a lease of up to 10 varint bytes.
    e.create_version = e.mod_version - std::min<uint64_t>(e.mod_version, i % 3);
    e.writes = 1 + (i % 4) * 1000;
    e.lease = i % 3 == 0 ? 0 : i % 3 == 1 ? 7 : ~uint64_t{0} - i;
    if (i % 4 == 0) {
      e.value.blob_id = 1000 + i;
      e.value.blob_size = 5000 + i;
      e.value.digest = testing::Keep(std::string(32, static_cast<char>('a' + i)));
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
    c.hash.fill(static_cast<unsigned char>(0xf0 + i));
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
    EXPECT_EQ(back->entries[i].create_version, leaf.entries[i].create_version);
    EXPECT_EQ(back->entries[i].writes, leaf.entries[i].writes);
    EXPECT_EQ(back->entries[i].lease, leaf.entries[i].lease);
    EXPECT_EQ(back->entries[i].value.blob_id, leaf.entries[i].value.blob_id);
    EXPECT_EQ(back->entries[i].value.blob_size,
              leaf.entries[i].value.blob_size);
    EXPECT_EQ(back->entries[i].value.data, leaf.entries[i].value.data);
    EXPECT_EQ(back->entries[i].value.digest, leaf.entries[i].value.digest);
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
    EXPECT_EQ(back->children[i].hash, n.children[i].hash);
  }
  EXPECT_EQ(back->count(), n.count());
}

// A format-2 page (before hashes) decodes with everything but them; it
// re-encodes as format 3.
TEST(PageTest, Format2PagesDecodeWithoutHashes) {
  Node leaf = MakeLeaf();
  ASSERT_OK_AND_ASSIGN(NodeRef back,
                       DecodePage(testing::EncodeLegacyPage(leaf, 5, 2), 5));
  ASSERT_EQ(back->entries.size(), leaf.entries.size());
  for (size_t i = 0; i < leaf.entries.size(); ++i) {
    EXPECT_EQ(back->entries[i].key, leaf.entries[i].key);
    EXPECT_EQ(back->entries[i].value.blob_id, leaf.entries[i].value.blob_id);
    EXPECT_EQ(back->entries[i].value.data, leaf.entries[i].value.data);
    EXPECT_TRUE(back->entries[i].value.digest.empty());
    EXPECT_EQ(back->entries[i].writes, leaf.entries[i].writes);
    EXPECT_EQ(back->entries[i].lease, leaf.entries[i].lease);
  }
  Node n = MakeInternal();
  ASSERT_OK_AND_ASSIGN(NodeRef internal,
                       DecodePage(testing::EncodeLegacyPage(n, 77, 2), 77));
  ASSERT_EQ(internal->children.size(), n.children.size());
  for (size_t i = 0; i < n.children.size(); ++i) {
    EXPECT_EQ(internal->children[i].page_id, n.children[i].page_id);
    EXPECT_EQ(internal->children[i].hash, Hash{});
  }
  EXPECT_EQ(EncodePage(*back, 5)[4], 3);
}

TEST(PageTest, WritesFormat3) {
  std::string bytes = EncodePage(MakeLeaf(), 5);
  EXPECT_EQ(bytes[4], 3);  // the format byte, after the magic
  EXPECT_EQ(EncodePage(MakeInternal(), 5)[4], 3);
}

// A format-1 leaf (written before the metadata existed) decodes with the
// migration's defaults (page.h): created by its last write, one write, no
// lease.
TEST(PageTest, Format1LeafDecodesWithDefaults) {
  Node leaf = MakeLeaf();
  std::string bytes = testing::EncodeFormat1Page(leaf, 5);
  ASSERT_OK_AND_ASSIGN(NodeRef back, DecodePage(bytes, 5));
  EXPECT_EQ(back->birth, 7u);
  ASSERT_EQ(back->entries.size(), leaf.entries.size());
  for (size_t i = 0; i < leaf.entries.size(); ++i) {
    const LeafEntry& e = back->entries[i];
    EXPECT_EQ(e.key, leaf.entries[i].key);
    EXPECT_EQ(e.value.data, leaf.entries[i].value.data);
    EXPECT_EQ(e.value.blob_id, leaf.entries[i].value.blob_id);
    EXPECT_EQ(e.mod_version, leaf.entries[i].mod_version);
    EXPECT_EQ(e.create_version, e.mod_version);
    EXPECT_EQ(e.writes, 1u);
    EXPECT_EQ(e.lease, 0u);
  }
  // Re-encoding writes format 3 with those values.
  ASSERT_OK_AND_ASSIGN(NodeRef again, DecodePage(EncodePage(*back, 5), 5));
  EXPECT_EQ(again->entries[3].create_version, again->entries[3].mod_version);
  EXPECT_EQ(again->entries[3].writes, 1u);
  // Format-1 pages are checked as strictly as format 2.
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_THAT(DecodePage(bytes.substr(0, len), 5),
                StatusIs(absl::StatusCode::kDataLoss))
        << "length " << len;
  }
}

TEST(PageTest, Format1InternalDecodes) {
  Node n = MakeInternal();
  ASSERT_OK_AND_ASSIGN(NodeRef back,
                       DecodePage(testing::EncodeFormat1Page(n, 77), 77));
  EXPECT_EQ(back->level, 2);
  EXPECT_EQ(back->keys, n.keys);
  EXPECT_EQ(back->count(), n.count());
}

// Metadata no write can produce, behind a valid checksum: DataLoss.
TEST(PageTest, ImpossibleMetadataIsDataLoss) {
  {
    Node leaf = MakeLeaf();
    // Created after its last write: create_delta, mod_version -
    // create_version, wraps around to more than mod_version.
    leaf.entries[6].create_version = leaf.entries[6].mod_version + 1;
    EXPECT_THAT(DecodePage(EncodePage(leaf, 8), 8),
                StatusIs(absl::StatusCode::kDataLoss,
                         "corrupt page 8: created after its last write"));
  }
  {
    Node leaf = MakeLeaf();
    leaf.entries[4].mod_version = 3;
    leaf.entries[4].create_version = 0;  // delta 3 = mod_version: fine
    EXPECT_OK(DecodePage(EncodePage(leaf, 8), 8));
  }
  {
    Node leaf = MakeLeaf();
    leaf.entries[9].writes = 0;
    EXPECT_THAT(DecodePage(EncodePage(leaf, 8), 8),
                StatusIs(absl::StatusCode::kDataLoss,
                         "corrupt page 8: entry with no writes"));
  }
}

TEST(PageTest, UnknownFormatIsDataLoss) {
  for (char format : {0, 4, 9}) {
    std::string bytes = EncodePage(MakeLeaf(), 5);
    std::string body = bytes.substr(0, bytes.size() - 8);
    body[4] = format;
    PutFixed64LE(&body, XXH3_64bits_withSeed(body.data(), body.size(), 5));
    EXPECT_THAT(DecodePage(body, 5),
                StatusIs(absl::StatusCode::kDataLoss, "unknown page format"))
        << int{format};
  }
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
