// Nodes hold keys and values as views; a test that builds a node by hand
// keeps the bytes alive with Keep() for the rest of the process.

#ifndef COWDB_TESTS_UTIL_KEPT_BYTES_H_
#define COWDB_TESTS_UTIL_KEPT_BYTES_H_

#include <deque>
#include <mutex>
#include <string>
#include <string_view>

namespace cowdb::testing {

inline std::string_view Keep(std::string bytes) {
  static std::mutex mu;
  static auto* kept = new std::deque<std::string>;  // never destroyed
  std::lock_guard<std::mutex> lock(mu);
  return kept->emplace_back(std::move(bytes));
}

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_KEPT_BYTES_H_
