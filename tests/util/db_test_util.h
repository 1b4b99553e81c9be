// Helpers for tests of the public DB API.

#ifndef COWDB_TESTS_UTIL_DB_TEST_UTIL_H_
#define COWDB_TESTS_UTIL_DB_TEST_UTIL_H_

#include <map>
#include <memory>
#include <string>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COWDB_TESTING_UNDER_TSAN 1
#endif
#endif

namespace cowdb::testing {

// Debian's RocksDB is not instrumented for TSan: tests that run on both
// stores skip the RocksDB variant under TSan.
#ifdef COWDB_TESTING_UNDER_TSAN
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif

// Options for tests of checkpoints and reclamation: small pages (deep
// trees, many pages) and blobs over 128 bytes, every version retained,
// and no background checkpoints or reclamation (tests run them).
inline Options ManualMaintenanceOptions() {
  Options o;
  o.page_size = 512;
  o.inline_value_limit = 128;
  o.retain_versions = Options::kRetainAll;
  o.background_reclaim = false;
  o.background_checkpoint = false;
  return o;
}

// Expects `db`'s Check to pass with nothing stored that nothing reaches.
inline void ExpectCheckedWithoutLeaks(DB& db) {
  absl::StatusOr<CheckReport> r = db.Check();
  ASSERT_OK(r.status());
  EXPECT_EQ(r->pages_leaked, 0u);
  EXPECT_EQ(r->blobs_leaked, 0u);
}

// A database at `path` on RocksDB, or in memory.
inline absl::StatusOr<std::unique_ptr<DB>> OpenTestDB(const Options& options,
                                                      bool on_rocksdb,
                                                      const std::string& path) {
  if (on_rocksdb) return DB::Open(options, path);
  absl::StatusOr<std::unique_ptr<internal::DBImpl>> db =
      internal::DBImpl::Open(options, internal::NewMemoryPageStore());
  if (!db.ok()) return db.status();
  return std::unique_ptr<DB>(*std::move(db));
}

// Iterates `it` from the first key and expects exactly the pairs of `m`.
// Use with ASSERT_NO_FATAL_FAILURE.
inline void ExpectIteratesAs(Iterator& it,
                             const std::map<std::string, std::string>& m) {
  auto mit = m.begin();
  for (it.SeekToFirst(); it.Valid(); it.Next(), ++mit) {
    ASSERT_NE(mit, m.end()) << "extra key " << it.key();
    ASSERT_EQ(it.key(), mit->first);
    ASSERT_EQ(it.value(), mit->second);
  }
  ASSERT_OK(it.status());
  ASSERT_EQ(mit, m.end()) << "missing key " << mit->first;
}

// Expects `a` and `b` to yield the same pairs from their first keys.
// Use with ASSERT_NO_FATAL_FAILURE.
inline void ExpectSameEntries(Iterator& a, Iterator& b) {
  for (a.SeekToFirst(), b.SeekToFirst(); a.Valid(); a.Next(), b.Next()) {
    ASSERT_TRUE(b.Valid()) << "missing key " << a.key();
    ASSERT_EQ(a.key(), b.key());
    ASSERT_EQ(a.value(), b.value());
  }
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_FALSE(b.Valid()) << "extra key " << b.key();
}

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_DB_TEST_UTIL_H_
