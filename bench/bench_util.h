// Helpers shared by the cowdb benchmarks.

#ifndef COWDB_BENCH_BENCH_UTIL_H_
#define COWDB_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// The value of `v`, or exit saying `what` failed.
template <typename T>
T Unwrap(absl::StatusOr<T> v, const char* what) {
  Check(v.status(), what);
  return *std::move(v);
}

// Fills `*s` with bytes from `rng` (incompressible values).
inline void RandomBytes(std::mt19937_64& rng, std::string* s) {
  for (size_t i = 0; i < s->size(); i += 8) {
    const uint64_t r = rng();
    for (size_t j = 0; j < 8 && i + j < s->size(); ++j) (*s)[i + j] = static_cast<char>(r >> (8 * j));
  }
}

// Wall seconds since `since`.
inline double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

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
