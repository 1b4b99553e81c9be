// Writes the page fuzzer's seed corpus (valid pages) and the corpus of
// corrupted pages that must decode to DataLoss.
//
//   bazel run //tests/fuzz:make_corpus -- $PWD/tests/fuzz/corpus

#include <fstream>
#include <iostream>
#include <random>

#include "engine/format/page.h"
#include "engine/util/coding.h"
#include "tests/fuzz/page_input.h"

namespace cowdb::internal {
namespace {

Node Leaf(int n, bool blobs) {
  Node node;
  node.birth = 42;
  for (int i = 0; i < n; ++i) {
    LeafEntry e;
    e.key = "key" + std::to_string(1000 + i);
    e.mod_version = 40 + i % 3;
    if (blobs && i % 3 == 0) {
      e.value.blob_id = 900 + i;
      e.value.blob_size = 4096 + i;
    } else {
      e.value.data = std::string(i % 17, 'a' + i % 26);
    }
    node.entries.push_back(e);
  }
  return node;
}

Node Internal(int n) {
  Node node;
  node.level = 1;
  node.birth = 43;
  for (int i = 0; i < n; ++i) {
    ChildRef c;
    c.page_id = 500 + i;
    c.count = 30 + i;
    c.max_mod = 41;
    node.children.push_back(c);
    if (i > 0) node.keys.push_back("sep" + std::to_string(100 + i));
  }
  return node;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace
}  // namespace cowdb::internal

int main(int argc, char** argv) {
  using namespace cowdb::internal;
  if (argc != 2) {
    std::cerr << "usage: make_corpus <corpus dir>\n";
    return 2;
  }
  std::string dir = argv[1];
  std::vector<std::pair<std::string, Node>> seeds = {
      {"leaf_empty", Leaf(0, false)},    {"leaf_small", Leaf(3, false)},
      {"leaf_blobs", Leaf(20, true)},    {"internal_2", Internal(2)},
      {"internal_20", Internal(20)},
  };
  std::mt19937 rng(1);
  int corrupt = 0;
  auto add_corrupt = [&](const std::string& name, uint64_t id, uint8_t mode,
                         const std::string& bytes) {
    Write(dir + "/corrupt/" + name, MakePageInput(id, mode, bytes));
    ++corrupt;
  };
  for (const auto& [name, node] : seeds) {
    const uint64_t id = 7;
    std::string page = EncodePage(node, id);
    std::string body = page.substr(0, page.size() - 8);
    Write(dir + "/page/" + name, MakePageInput(id, 0, page));
    Write(dir + "/page/" + name + "_body", MakePageInput(id, 1, body));
    // Checksum failures: flipped bits, truncation, the wrong page id.
    for (int i = 0; i < 3; ++i) {
      std::string bad = page;
      bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
      add_corrupt(name + "_flip" + std::to_string(i), id, 0, bad);
    }
    add_corrupt(name + "_truncated", id, 0, page.substr(0, page.size() / 2));
    add_corrupt(name + "_wrong_id", id + 1, 0, page);
    // Structural damage behind a valid checksum: the bounds checks.
    add_corrupt(name + "_cut_body", id, 1, body.substr(0, body.size() - 1));
    add_corrupt(name + "_trailing", id, 1, body + "x");
    std::string huge_count = body;
    huge_count[7] = static_cast<char>(0xff);  // count varint now continues
    add_corrupt(name + "_bad_count", id, 1, huge_count);
    std::string bad_kind = body;
    bad_kind[5] = 9;
    add_corrupt(name + "_bad_kind", id, 1, bad_kind);
    std::string bad_magic = body;
    bad_magic[0] ^= 1;
    add_corrupt(name + "_bad_magic", id, 1, bad_magic);
    std::string bad_format = body;
    bad_format[4] = 2;
    add_corrupt(name + "_bad_format", id, 1, bad_format);
  }
  // Specific structural faults.
  {
    Node n = Leaf(3, false);
    std::swap(n.entries[0], n.entries[2]);  // out of order
    std::string p = EncodePage(n, 7);
    add_corrupt("leaf_unsorted", 7, 1, p.substr(0, p.size() - 8));
    Node i = Internal(3);
    i.children[1].page_id = 0;
    p = EncodePage(i, 7);
    add_corrupt("internal_null_child", 7, 1, p.substr(0, p.size() - 8));
    p = EncodePage(Internal(3), 7);
    std::string level_zero = p.substr(0, p.size() - 8);
    level_zero[6] = 0;  // an internal node claiming to be at leaf level
    add_corrupt("internal_level_zero", 7, 1, level_zero);
    std::string overlong_key = p.substr(0, 12);  // header only
    PutVarint64(&overlong_key, 1000000);
    add_corrupt("leaf_key_too_long", 7, 1, overlong_key);
  }
  std::cout << "wrote " << seeds.size() * 2 << " seeds and " << corrupt
            << " corrupt pages under " << dir << "\n";
  return 0;
}
