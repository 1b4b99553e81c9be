// Randomized model test: the database driven beside ModelDB
// (tests/util/model_db.h), the executable specification of the DB API.
//
// Random puts (some with leases), deletes and batches; snapshots kept at
// random versions and checked again after later commits (point reads and
// iterators with each key's metadata: mod_version, create_version, writes,
// lease; iteration both ways, random seeks, counts, tree structure); the
// database is closed and reopened midway and the kept versions are checked
// again. The second test adds retention: snapshots taken and released,
// tags, reclamation passes (the floor must be the model's), ReleaseBefore
// and reopens; every version reads as the model's or fails with the
// model's code.
//
// The seed is printed; rerun one with COWDB_SEED=<seed>.

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/model_db.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using testing::ModelDB;

// Use with ASSERT_NO_FATAL_FAILURE.
void ExpectSameMeta(const KeyMeta& got, const KeyMeta& want) {
  ASSERT_EQ(got.mod_version, want.mod_version);
  ASSERT_EQ(got.create_version, want.create_version);
  ASSERT_EQ(got.writes, want.writes);
  ASSERT_EQ(got.lease, want.lease);
}

uint64_t Seed() {
  if (const char* s = std::getenv("COWDB_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device()();
}

class ModelTest : public ::testing::Test {
 protected:
  ModelTest() {
    options_.sync = false;  // durability is the crash test's subject
    options_.retain_versions = Options::kRetainAll;
    options_.page_size = 1024;
    options_.inline_value_limit = 128;
    options_.cache_bytes = 1 << 20;  // small: exercise eviction and page reads
  }

  // Opens the database (again); the model is made on the first open.
  void Open() {
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, DB::Open(options_, dir_.Sub("db")));
    if (model_ == nullptr) model_ = std::make_unique<ModelDB>(options_);
    ASSERT_EQ(db_->LatestVersion(), model_->LatestVersion());
    ASSERT_EQ(db_->ListTags(), model_->ListTags());
  }

  std::string RandomKey() {
    return "key" + std::to_string(rng_() % key_space_);
  }
  // Mostly no lease, as most puts.
  uint64_t RandomLease() { return rng_() % 3 == 0 ? 1 + rng_() % 5 : 0; }
  std::string RandomValue() {
    size_t len = rng_() % 10 == 0 ? 129 + rng_() % 3000 : rng_() % 100;
    std::string v(len, 'a' + rng_() % 26);
    if (len > 0) v[0] = 'A' + rng_() % 26;
    return v;
  }

  // Checks every read path of `ro` on the database against the model.
  void Check(const ReadOptions& ro) {
    SCOPED_TRACE("checking version " +
                 std::to_string(ro.snapshot ? ro.snapshot->version()
                                            : ro.version.value_or(~0ull)));
    // Point reads: present and absent keys, with their mod_versions.
    for (int i = 0; i < 20; ++i) {
      std::string k = RandomKey();
      absl::StatusOr<Entry> want = model_->GetEntry(ro, k);
      absl::StatusOr<Entry> got = db_->GetEntry(ro, k);
      ASSERT_EQ(got.status().code(), want.status().code()) << k << ": " << got.status();
      if (!want.ok()) continue;
      ASSERT_EQ(got->value, want->value) << k;
      ASSERT_EQ(got->mod_version, want->mod_version) << k;
      ASSERT_EQ(got->version, want->version) << k;
      ASSERT_EQ(got->create_version, want->create_version) << k;
      ASSERT_EQ(got->writes, want->writes) << k;
      ASSERT_EQ(got->lease, want->lease) << k;
    }
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, db_->NewIterator(ro));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> mit, model_->NewIterator(ro));
    ASSERT_EQ(it->version(), mit->version());
    auto same = [&] {
      ASSERT_EQ(it->Valid(), mit->Valid());
      if (!mit->Valid()) return;
      ASSERT_EQ(it->key(), mit->key());
      ASSERT_EQ(it->value(), mit->value()) << mit->key();
      ASSERT_EQ(it->mod_version(), mit->mod_version()) << mit->key();
      ASSERT_NO_FATAL_FAILURE(ExpectSameMeta(it->meta(), mit->meta()))
          << mit->key();
    };
    // Forward and backward iteration.
    size_t n = 0;
    for (it->SeekToFirst(), mit->SeekToFirst(); mit->Valid();
         it->Next(), mit->Next(), ++n) {
      ASSERT_NO_FATAL_FAILURE(same());
    }
    ASSERT_NO_FATAL_FAILURE(same());
    for (it->SeekToLast(), mit->SeekToLast(); mit->Valid();
         it->Prev(), mit->Prev(), --n) {
      ASSERT_NO_FATAL_FAILURE(same());
    }
    ASSERT_NO_FATAL_FAILURE(same());
    ASSERT_EQ(n, 0u);
    // Random seeks with a few steps either way.
    for (int i = 0; i < 10; ++i) {
      std::string target = RandomKey();
      it->Seek(target);
      mit->Seek(target);
      for (int step = 0; step < 4 && mit->Valid(); ++step) {
        ASSERT_NO_FATAL_FAILURE(same());
        if (rng_() % 2 == 0) {
          it->Next();
          mit->Next();
        } else {
          it->Prev();
          mit->Prev();
        }
      }
      ASSERT_NO_FATAL_FAILURE(same());
    }
    ASSERT_OK(it->status());
    // Counts over random ranges (some reversed, one unbounded).
    for (int i = 0; i < 5; ++i) {
      std::string a = RandomKey(), b = i == 0 ? "" : RandomKey();
      ASSERT_OK_AND_ASSIGN(uint64_t want, model_->Count(ro, a, b));
      ASSERT_OK_AND_ASSIGN(uint64_t got, db_->Count(ro, a, b));
      ASSERT_EQ(got, want) << "[" << a << ", " << b << ")";
    }
  }

  // Version `version` reads as the model's, or fails with its code.
  void CheckVersion(uint64_t version) {
    SCOPED_TRACE("version " + std::to_string(version));
    absl::Status want = model_->CheckReadable(version);
    ASSERT_EQ(db_->SnapshotAt(version).status().code(), want.code()) << want;
    if (!want.ok()) return;
    ReadOptions ro;
    ro.version = version;
    ASSERT_NO_FATAL_FAILURE(Check(ro));
    if (version > 0 && model_->CheckReadable(version - 1).ok()) {
      // What its commit changed, with the metadata before and after.
      std::vector<Change> got, want;
      auto into = [](std::vector<Change>* out) {
        return [out](const Change& c) {
          out->push_back(c);
          return true;
        };
      };
      ASSERT_OK(model_->Diff(version - 1, version, "", "", into(&want)));
      ASSERT_OK(db_->Diff(version - 1, version, "", "", into(&got)));
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        SCOPED_TRACE("diff of " + want[i].key);
        ASSERT_EQ(got[i].key, want[i].key);
        ASSERT_EQ(got[i].old_value, want[i].old_value);
        ASSERT_EQ(got[i].new_value, want[i].new_value);
        ASSERT_NO_FATAL_FAILURE(
            ExpectSameMeta(got[i].old_meta, want[i].old_meta));
        ASSERT_NO_FATAL_FAILURE(
            ExpectSameMeta(got[i].new_meta, want[i].new_meta));
      }
    }
    auto* impl = static_cast<internal::DBImpl*>(db_.get());
    ASSERT_OK(impl->VerifyVersion(version, /*strict=*/true));
  }

  // Commits `batch` to both; the versions must agree.
  uint64_t Write(const WriteBatch& batch) {
    absl::StatusOr<uint64_t> want = model_->Write(batch);
    absl::StatusOr<uint64_t> got = db_->Write(batch);
    EXPECT_OK(want);
    EXPECT_OK(got);
    EXPECT_EQ(got.value_or(0), want.value_or(1));
    return want.value_or(0);
  }

  // A snapshot of the latest version and the model's pin of it.
  struct Pinned {
    Snapshot snapshot;
    ModelDB::PinHandle pin;
  };
  Pinned Pin() {
    Pinned p{db_->GetSnapshot(), model_->Pin(model_->LatestVersion()).value()};
    EXPECT_EQ(p.snapshot.version(), model_->LatestVersion());
    return p;
  }

  Options options_;
  testing::TempDir dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<ModelDB> model_;
  std::mt19937_64 rng_;
  int key_space_ = 1500;
};

TEST_F(ModelTest, RandomOperationsMatchModelAtEveryKeptVersion) {
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  rng_.seed(seed);
  ASSERT_NO_FATAL_FAILURE(Open());

  // Versions we keep checking, each with a snapshot (and the model's pin).
  std::set<uint64_t> kept = {0};
  std::map<uint64_t, Pinned> pins;
  const int kSteps = 2500;
  for (int step = 0; step < kSteps; ++step) {
    uint64_t r = rng_() % 100;
    WriteBatch batch;
    if (r < 55) {
      batch.Put(RandomKey(), RandomValue(), RandomLease());
    } else if (r < 75) {
      batch.Delete(RandomKey());
    } else {
      // (Keys may repeat within a batch: each put counts as a write.)
      int n = rng_() % 10 == 0 ? 300 : 1 + rng_() % 20;
      bool deletes = rng_() % 3 == 0;
      for (int i = 0; i < n; ++i) {
        if (deletes && rng_() % 2 == 0) {
          batch.Delete(RandomKey());
        } else {
          batch.Put(RandomKey(), RandomValue(), RandomLease());
        }
      }
    }
    uint64_t version;
    if (batch.Count() == 1 && !batch.ops()[0].is_delete &&
        batch.ops()[0].lease == 0) {
      ASSERT_OK_AND_ASSIGN(version, db_->Put(batch.ops()[0].key, batch.ops()[0].value));
      ASSERT_OK_AND_ASSIGN(uint64_t want,
                           model_->Put(batch.ops()[0].key, batch.ops()[0].value));
      ASSERT_EQ(version, want);
    } else if (batch.Count() == 1) {
      ASSERT_OK_AND_ASSIGN(version, db_->Delete(batch.ops()[0].key));
      ASSERT_OK_AND_ASSIGN(uint64_t want, model_->Delete(batch.ops()[0].key));
      ASSERT_EQ(version, want);
    } else {
      version = Write(batch);
      ASSERT_FALSE(HasFailure());
    }
    ASSERT_EQ(version, static_cast<uint64_t>(step + 1));
    if (rng_() % 50 == 0) {
      kept.insert(version);
      pins[version] = Pin();
    }
    if (rng_() % 100 == 0) {
      ASSERT_NO_FATAL_FAILURE(Check(ReadOptions()));
      // Every kept snapshot still reads exactly its version.
      for (const auto& [v, pin] : pins) {
        ReadOptions ro;
        ro.snapshot = &pin.snapshot;
        ASSERT_NO_FATAL_FAILURE(Check(ro));
      }
    }
    if (step == kSteps / 2) {
      pins.clear();
      ASSERT_NO_FATAL_FAILURE(Open());
      for (uint64_t v : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v));
    }
  }
  kept.insert(db_->LatestVersion());
  for (uint64_t v : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v));
  pins.clear();  // snapshots must not outlive their database
  ASSERT_NO_FATAL_FAILURE(Open());
  for (uint64_t v : kept) ASSERT_NO_FATAL_FAILURE(CheckVersion(v));
  std::cout << "checked " << kept.size() << " versions; final keys "
            << model_->GetStats().entries << std::endl;
}

// The model test with retention: random writes, snapshots taken and
// released, tags set and removed, reclamation passes and reopens. Every
// version the model retains equals its model state; every other one is
// OutOfRange in both.
TEST_F(ModelTest, RetainedVersionsMatchModelUnderReclamation) {
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << std::endl;
  RecordProperty("seed", std::to_string(seed));
  rng_.seed(seed);
  key_space_ = 400;
  options_.retain_versions = 20;
  options_.background_reclaim = false;
  ASSERT_NO_FATAL_FAILURE(Open());

  std::map<uint64_t, Pinned> pins;
  uint64_t released = 0;
  for (int step = 0; step < 1500; ++step) {
    uint64_t r = rng_() % 100;
    if (r < 60) {
      WriteBatch batch;
      for (int i = 0, n = 1 + rng_() % 8; i < n; ++i) {
        if (rng_() % 4 == 0) {
          batch.Delete(RandomKey());
        } else {
          batch.Put(RandomKey(), RandomValue(), RandomLease());
        }
      }
      Write(batch);
      ASSERT_FALSE(HasFailure());
    } else if (r < 70) {
      pins[db_->LatestVersion()] = Pin();
    } else if (r < 78 && !pins.empty()) {
      pins.erase(std::next(pins.begin(), rng_() % pins.size()));
    } else if (r < 84) {
      // Tag the latest, a pinned version, or any version (which may have
      // been released: then both must refuse with the same code).
      uint64_t v = db_->LatestVersion();
      if (!pins.empty() && rng_() % 2 == 0) v = pins.begin()->first;
      if (rng_() % 4 == 0) v = rng_() % (v + 1);
      std::string name = "tag" + std::to_string(rng_() % 5);
      absl::Status want = model_->Tag(name, v);
      ASSERT_EQ(db_->Tag(name, v).code(), want.code()) << name << " at " << v;
      ASSERT_EQ(db_->ListTags(), model_->ListTags());
    } else if (r < 88) {
      std::string name = "tag" + std::to_string(rng_() % 5);
      absl::Status want = model_->Untag(name);
      ASSERT_EQ(db_->Untag(name).code(), want.code()) << name;
    } else if (r < 95) {
      ASSERT_OK_AND_ASSIGN(ReclaimStats want, model_->Reclaim());
      ASSERT_OK_AND_ASSIGN(ReclaimStats got, db_->Reclaim());
      ASSERT_EQ(got.floor, want.floor);
    } else if (r < 97) {
      // Release up to a recent version (sometimes below the floor, a
      // no-op, or after the latest, NotFound).
      const uint64_t latest = model_->LatestVersion();
      const uint64_t back = std::min<uint64_t>(latest + 2, rng_() % 40);
      const uint64_t v = latest + 2 - back;
      absl::Status want = model_->ReleaseBefore(v);
      ASSERT_EQ(db_->ReleaseBefore(v).code(), want.code()) << v << ": " << want;
      ASSERT_EQ(db_->OldestVersion(), model_->OldestVersion()) << v;
    } else {
      pins.clear();  // snapshots do not survive a reopen
      ASSERT_NO_FATAL_FAILURE(Open());
    }
    ASSERT_EQ(db_->OldestVersion(), model_->OldestVersion());
    if (step % 50 == 49) {
      // Every version: retained ones read as the model's, released ones
      // are OutOfRange.
      for (uint64_t v = 0; v <= model_->LatestVersion(); ++v) {
        ASSERT_NO_FATAL_FAILURE(CheckVersion(v));
        released += !model_->Retained(v);
      }
      ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> got, db_->ListVersions());
      ASSERT_OK_AND_ASSIGN(std::vector<VersionInfo> want, model_->ListVersions());
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].version, want[i].version);
        ASSERT_EQ(got[i].entries, want[i].entries);
      }
      ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
      ASSERT_EQ(report.pages_leaked, 0u);
      ASSERT_EQ(report.blobs_leaked, 0u);
    }
  }
  // The test is only as good as the releases it saw.
  EXPECT_GT(released, 0u);
}

}  // namespace
}  // namespace cowdb
