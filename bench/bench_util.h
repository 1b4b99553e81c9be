// Helpers shared by the cowdb benchmarks.

#ifndef COWDB_BENCH_BENCH_UTIL_H_
#define COWDB_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/db.h"

namespace cowdb::bench {

// The i-th benchmark key: 16 bytes, spread so that load order is not key
// order.
inline std::string Key(uint64_t i) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx",
           static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull));
  return std::string(buf, 16);
}

// Benchmarks stop at the first error, saying where.
inline void Check(const absl::Status& s, const char* what = "error") {
  if (!s.ok()) {
    std::cerr << what << ": " << s << std::endl;
    std::exit(1);
  }
}

// Keeps a value the benchmark computed only to touch the data.
inline volatile uint64_t consumed = 0;
inline void Consume(uint64_t v) { consumed = consumed + v; }

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Writes keys [0, n) with `value_size`-byte values in batches of 1,000.
inline void Load(DB* db, uint64_t n, size_t value_size) {
  const std::string value(value_size, 'v');
  for (uint64_t i = 0; i < n; i += 1000) {
    WriteBatch batch;
    for (uint64_t j = i; j < std::min(n, i + 1000); ++j) batch.Put(Key(j), value);
    Check(db->Write(batch).status(), "load");
  }
}

}  // namespace cowdb::bench

#endif  // COWDB_BENCH_BENCH_UTIL_H_
