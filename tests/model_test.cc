// Randomized model test: the database against a std::map per version.
//
// Random puts, deletes and batches; snapshots kept at random versions and
// checked again after later commits (point gets, iteration both ways,
// random seeks, counts, tree structure); the database is closed and
// reopened midway and the retained versions are checked again.
//
// The seed is printed; rerun one with COWDB_SEED=<seed>.

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using Model = std::map<std::string, std::string>;

uint64_t Seed() {
  if (const char* s = std::getenv("COWDB_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device()();
}

class ModelTest : public ::testing::Test {
 protected:
  void Open() {
    db_.reset();
    Options o;
    o.sync = false;  // durability is the crash test's subject, not this one's
    o.retain_versions = Options::kRetainAll;
    o.page_size = 1024;
    o.inline_value_limit = 128;
    o.cache_bytes = 1 << 20;  // small: exercise eviction and page reads
    ASSERT_OK_AND_ASSIGN(db_, DB::Open(o, dir_.Sub("db")));
  }

  std::string RandomKey() {
    return "key" + std::to_string(rng_() % key_space_);
  }
  std::string RandomValue() {
    size_t len = rng_() % 10 == 0 ? 129 + rng_() % 3000 : rng_() % 100;
    std::string v(len, 'a' + rng_() % 26);
    if (len > 0) v[0] = 'A' + rng_() % 26;
    return v;
  }

  // Checks every read path of `ro` against `m`.
  void Check(const ReadOptions& ro, const Model& m) {
    SCOPED_TRACE("checking version " +
                 std::to_string(ro.snapshot ? ro.snapshot->version()
                                            : ro.version.value_or(~0ull)));
    // Point gets: present and absent keys.
    for (int i = 0; i < 20; ++i) {
      std::string k = RandomKey();
      absl::StatusOr<std::string> got = db_->Get(ro, k);
      auto it = m.find(k);
      if (it == m.end()) {
        ASSERT_THAT(got, testing::StatusIs(absl::StatusCode::kNotFound)) << k;
      } else {
        ASSERT_OK(got);
        ASSERT_EQ(*got, it->second) << k;
      }
    }
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, db_->NewIterator(ro));
    // Forward and backward iteration.
    ASSERT_NO_FATAL_FAILURE(testing::ExpectIteratesAs(*it, m));
    auto rit = m.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++rit) {
      ASSERT_NE(rit, m.rend());
      ASSERT_EQ(it->key(), rit->first);
    }
    ASSERT_EQ(rit, m.rend());
    // Random seeks with a few steps either way.
    for (int i = 0; i < 10; ++i) {
      std::string target = RandomKey();
      it->Seek(target);
      auto pos = m.lower_bound(target);
      for (int step = 0; step < 4; ++step) {
        ASSERT_EQ(it->Valid(), pos != m.end());
        if (!it->Valid()) break;
        ASSERT_EQ(it->key(), pos->first);
        if (rng_() % 2 == 0) {
          it->Next();
          ++pos;
        } else {
          if (pos == m.begin()) break;
          it->Prev();
          --pos;
        }
      }
    }
    // Counts over random ranges.
    for (int i = 0; i < 5; ++i) {
      std::string a = RandomKey(), b = i == 0 ? "" : RandomKey();
      uint64_t expected = 0;
      for (auto j = m.lower_bound(a); j != m.end() && (b.empty() || j->first < b);
           ++j) {
        ++expected;
      }
      if (!b.empty() && b <= a) expected = 0;
      ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ro, a, b));
      ASSERT_EQ(n, expected) << "[" << a << ", " << b << ")";
    }
  }

  void CheckVersion(uint64_t version, const Model& m) {
    ReadOptions ro;
    ro.version = version;
    Check(ro, m);
    auto* impl = static_cast<internal::DBImpl*>(db_.get());
    ASSERT_OK(impl->VerifyVersion(version, /*strict=*/true));
  }

  testing::TempDir dir_;
  std::unique_ptr<DB> db_;
  std::mt19937_64 rng_;
  int key_space_ = 1500;
};

TEST_F(ModelTest, RandomOperationsMatchModelAtEveryKeptVersion) {
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  rng_.seed(seed);
  Open();

  Model model;
  // Models of versions we keep checking, with a pinned snapshot each.
  std::map<uint64_t, Model> kept;
  std::map<uint64_t, Snapshot> pins;
  kept[0] = Model();
  const int kSteps = 2500;
  for (int step = 0; step < kSteps; ++step) {
    uint64_t r = rng_() % 100;
    uint64_t version;
    if (r < 55) {
      std::string k = RandomKey(), v = RandomValue();
      ASSERT_OK_AND_ASSIGN(version, db_->Put(k, v));
      model[k] = v;
    } else if (r < 75) {
      std::string k = RandomKey();
      ASSERT_OK_AND_ASSIGN(version, db_->Delete(k));
      model.erase(k);
    } else {
      WriteBatch batch;
      int n = rng_() % 10 == 0 ? 300 : 1 + rng_() % 20;
      bool deletes = rng_() % 3 == 0;
      for (int i = 0; i < n; ++i) {
        std::string k = RandomKey();
        if (deletes && rng_() % 2 == 0) {
          batch.Delete(k);
          model.erase(k);
        } else {
          std::string v = RandomValue();
          batch.Put(k, v);
          model[k] = v;
        }
      }
      ASSERT_OK_AND_ASSIGN(version, db_->Write(batch));
    }
    ASSERT_EQ(version, static_cast<uint64_t>(step + 1));
    if (rng_() % 50 == 0) {
      kept[version] = model;
      pins[version] = db_->GetSnapshot();
    }
    if (rng_() % 100 == 0) {
      ASSERT_NO_FATAL_FAILURE(Check(ReadOptions(), model));
      // Every kept snapshot still reads exactly its version.
      for (const auto& [v, pin] : pins) {
        ReadOptions ro;
        ro.snapshot = &pin;
        ASSERT_NO_FATAL_FAILURE(Check(ro, kept[v]));
      }
    }
    if (step == kSteps / 2) {
      pins.clear();
      Open();
      ASSERT_EQ(db_->LatestVersion(), version);
      for (const auto& [v, m] : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v, m));
    }
  }
  kept[db_->LatestVersion()] = model;
  for (const auto& [v, m] : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v, m));
  pins.clear();  // snapshots must not outlive their database
  Open();
  for (const auto& [v, m] : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v, m));
  std::cout << "checked " << kept.size() << " versions; final keys "
            << model.size() << std::endl;
}

}  // namespace
}  // namespace cowdb

namespace cowdb {
namespace {

// The model test with retention: random writes, snapshots taken and
// released, tags set and removed, reclamation passes and reopens. Every
// version that must be retained still equals its model; a released one
// gives OutOfRange.
TEST_F(ModelTest, RetainedVersionsMatchModelUnderReclamation) {
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  rng_.seed(seed);
  key_space_ = 400;
  Options o;
  o.sync = false;
  o.page_size = 1024;
  o.inline_value_limit = 128;
  o.cache_bytes = 1 << 20;
  o.retain_versions = 20;
  o.background_reclaim = false;
  auto open = [&] {
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, DB::Open(o, dir_.Sub("db")));
  };
  ASSERT_NO_FATAL_FAILURE(open());

  Model model;
  std::map<uint64_t, Model> history;  // models of versions still needed
  history[0] = Model();
  std::map<uint64_t, Snapshot> pins;
  std::map<std::string, uint64_t> tags;
  uint64_t floor = 0;  // from the last reclamation pass
  auto needed = [&](uint64_t v) {
    if (v + o.retain_versions > db_->LatestVersion() || v >= floor) return true;
    if (pins.count(v) != 0) return true;
    for (const auto& [name, tv] : tags) {
      if (tv == v) return true;
    }
    return false;
  };
  for (int step = 0; step < 1500; ++step) {
    uint64_t r = rng_() % 100;
    if (r < 60) {
      WriteBatch batch;
      for (int i = 0, n = 1 + rng_() % 8; i < n; ++i) {
        std::string k = RandomKey();
        if (rng_() % 4 == 0) {
          batch.Delete(k);
          model.erase(k);
        } else {
          std::string v = RandomValue();
          batch.Put(k, v);
          model[k] = v;
        }
      }
      ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
      history[v] = model;
    } else if (r < 70) {
      pins[db_->LatestVersion()] = db_->GetSnapshot();
    } else if (r < 78 && !pins.empty()) {
      pins.erase(std::next(pins.begin(), rng_() % pins.size()));
    } else if (r < 84) {
      // Tag a version that is still retained (latest or a pinned one).
      uint64_t v = db_->LatestVersion();
      if (!pins.empty() && rng_() % 2 == 0) v = pins.begin()->first;
      std::string name = "tag" + std::to_string(rng_() % 5);
      ASSERT_OK(db_->Tag(name, v));
      tags[name] = v;
    } else if (r < 88 && !tags.empty()) {
      auto it = std::next(tags.begin(), rng_() % tags.size());
      ASSERT_OK(db_->Untag(it->first));
      tags.erase(it);
    } else if (r < 97) {
      ASSERT_OK_AND_ASSIGN(ReclaimStats st, db_->Reclaim());
      floor = st.floor;
    } else {
      pins.clear();  // snapshots do not survive a reopen
      ASSERT_NO_FATAL_FAILURE(open());
    }
    if (step % 50 == 49) {
      // Check every needed version; forget and probe the released ones.
      for (auto it = history.begin(); it != history.end();) {
        if (needed(it->first)) {
          ASSERT_NO_FATAL_FAILURE(CheckVersion(it->first, it->second));
          ++it;
        } else {
          SCOPED_TRACE("released version " + std::to_string(it->first));
          ASSERT_THAT(db_->SnapshotAt(it->first),
                      testing::StatusIs(absl::StatusCode::kOutOfRange));
          it = history.erase(it);
        }
      }
      ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
      ASSERT_EQ(report.pages_leaked, 0u);
      ASSERT_EQ(report.blobs_leaked, 0u);
    }
  }
}

}  // namespace
}  // namespace cowdb
