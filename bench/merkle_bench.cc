// The cost of hashing one node (engine/format/merkle.h), as a commit pays
// it for each node it changes: a leaf of a 1M-key tree (29 entries of a
// 16-byte key and a 100-byte value) and an internal node (85 children,
// 10-byte separators). Prints nanoseconds per node, the median of 7 runs.
//
//   bazel run --config=opt //bench:merkle_bench

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/format/merkle.h"

namespace {

using cowdb::Hash;
using cowdb::internal::NodeHasher;

struct Entry {
  std::string key, value;
};

template <typename Fn>
double MedianNanos(int iterations, Fn fn) {
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) fn(i);
    std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - start;
    runs.push_back(d.count() / iterations);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

}  // namespace

int main() {
  std::vector<Entry> leaf;
  for (int i = 0; i < 29; ++i) {
    char key[17];
    snprintf(key, sizeof(key), "key%013d", i * 34483);
    leaf.push_back({key, std::string(100, static_cast<char>('a' + i % 26))});
  }
  std::vector<std::string> separators;
  std::vector<Hash> children(85);
  for (int i = 0; i < 85; ++i) {
    char sep[11];
    snprintf(sep, sizeof(sep), "key%07d", i * 11765);
    separators.push_back(sep);
    children[i].fill(static_cast<unsigned char>(i));
  }
  size_t sink = 0;
  const double leaf_ns = MedianNanos(200000, [&](int i) {
    NodeHasher h = NodeHasher::Leaf(leaf.size());
    for (const Entry& e : leaf) h.AddEntry(e.key, false, e.value, 1000000 + i);
    sink += h.Finish()[0];
  });
  const double internal_ns = MedianNanos(200000, [&](int) {
    NodeHasher h = NodeHasher::Internal(1, children.size());
    for (size_t c = 0; c < children.size(); ++c) {
      h.AddChild(c == 0 ? std::string_view() : separators[c - 1], children[c], c == 0);
    }
    sink += h.Finish()[0];
  });
  std::printf("leaf (29 entries, %zu bytes hashed): %.0f ns\n",
              leaf.size() * (1 + 16 + 1 + 1 + 100 + 3) + 2, leaf_ns);
  std::printf("internal (85 children): %.0f ns\n", internal_ns);
  std::printf("(%zu)\n", sink % 2);
  return 0;
}
