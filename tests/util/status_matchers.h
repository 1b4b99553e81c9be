// gtest matchers and macros for absl::Status / absl::StatusOr (this Abseil
// release ships none).
//
//   EXPECT_THAT(db->Get(ro, "k"), StatusIs(absl::StatusCode::kNotFound));
//   EXPECT_THAT(db->Put("k", "v"), IsOk());
//   ASSERT_OK_AND_ASSIGN(uint64_t v, db->Put("k", "v"));

#ifndef COWDB_TESTS_UTIL_STATUS_MATCHERS_H_
#define COWDB_TESTS_UTIL_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cowdb::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status: " << s.ToString();
  return s.ok();
}

MATCHER_P(StatusIs, code,
          "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.code() == code;
}

// Also requires the message to contain `substring`.
MATCHER_P2(StatusIs, code, substring,
           "has status code " + absl::StatusCodeToString(code) +
               " and a message containing \"" + std::string(substring) + "\"") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.code() == code &&
         std::string(s.message()).find(substring) != std::string::npos;
}

// An OK StatusOr whose value matches `matcher`.
MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status: " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

}  // namespace cowdb::testing

#define COWDB_TEST_CONCAT_INNER_(a, b) a##b
#define COWDB_TEST_CONCAT_(a, b) COWDB_TEST_CONCAT_INNER_(a, b)

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::cowdb::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::cowdb::testing::IsOk())

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                   \
  ASSERT_OK_AND_ASSIGN_IMPL_(COWDB_TEST_CONCAT_(statusor_, __LINE__), lhs, \
                             rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                               \
  ASSERT_OK(tmp.status());                          \
  lhs = std::move(tmp).value()

#endif  // COWDB_TESTS_UTIL_STATUS_MATCHERS_H_
