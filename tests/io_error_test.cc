// I/O errors and corrupted reads, SQLite style.
//
// A small deterministic workload (open, commits, reads, close, reopen,
// cold reads, more commits, a reclamation pass, close) runs on a
// FaultFileSystem (tests/util/fault_fs.h). A dry run counts its file
// operations N. Then for each i in 1..N (with a stride by default), the
// workload runs again with (a) operation i failing once and (b) every
// operation from i on failing. Every API call must return OK with the
// right data or a clean error -- never crash, hang or return wrong data.
// Afterwards the database is reopened without faults: it must open,
// DB::Check must pass without leaks, every acknowledged commit must be
// there, a failed commit all or nothing, and every retained version must
// equal its model.
//
// Then bit flips: in the n-th read of an SST file (RocksDB's block
// checksums must catch it), and in the n-th page or blob read from the
// PageStore (cowdb's page checksums must catch it). Each must surface as
// DataLoss (or a clean error), never as wrong data.
//
// COWDB_SEED fixes the seed; COWDB_IO_ERROR_STRIDE=1 tries every
// injection point (default: about 60 points per mode).

#include <cstdlib>
#include <functional>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/store/page_store.h"
#include "engine/store/rocksdb_page_store.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "tests/util/fault_fs.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"
#include "tests/util/workload.h"

namespace cowdb {
namespace {

using testing::FaultFileSystem;
using testing::Model;
using testing::ModelHistory;

constexpr int kBatchOps = 30;

uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("COWDB_SEED");
    return env ? std::strtoull(env, nullptr, 10) : std::random_device()();
  }();
  return seed;
}

Options WorkloadOptions() {
  Options o;
  o.retain_versions = 2;           // the reclamation pass has work
  o.background_reclaim = false;    // deterministic file operations
  o.page_size = 1024;
  o.inline_value_limit = 256;
  return o;
}

// What one run of the workload saw.
struct RunResult {
  uint64_t acked = 0;      // the last acknowledged version
  uint64_t attempted = 0;  // the last version whose commit failed
  int errors = 0;          // API calls that returned an error
  std::vector<std::string> wrong;  // results that were OK but wrong
};

// Checks a read that returned OK against the model; records clean errors.
void CheckIterate(DB* db, uint64_t version, ModelHistory& history,
                  RunResult* r) {
  std::string diff = testing::DiffWithModel(db, version, history.At(version));
  if (diff.empty()) return;
  if (diff.rfind("read error", 0) == 0 || diff.rfind("cannot iterate", 0) == 0) {
    ++r->errors;
  } else {
    r->wrong.push_back("version " + std::to_string(version) + ": " + diff);
  }
}

void CheckGet(DB* db, const std::string& key, ModelHistory& history,
              RunResult* r) {
  const uint64_t v = db->LatestVersion();
  ReadOptions ro;
  ro.version = v;
  absl::StatusOr<std::string> got = db->Get(ro, key);
  Model m = history.At(v);
  auto it = m.find(key);
  if (got.ok()) {
    if (it == m.end() || *got != it->second) r->wrong.push_back("Get " + key);
  } else if (absl::IsNotFound(got.status())) {
    if (it != m.end()) r->wrong.push_back("Get " + key + ": NotFound");
  } else {
    ++r->errors;
  }
}

// Commits `n` batches; stops at the first failure.
void Commit(DB* db, int n, uint64_t seed, RunResult* r) {
  for (int i = 0; i < n; ++i) {
    const uint64_t v = db->LatestVersion() + 1;
    absl::StatusOr<uint64_t> got = db->Write(testing::BatchFor(seed, v, kBatchOps));
    if (!got.ok()) {
      r->attempted = std::max(r->attempted, v);
      ++r->errors;
      return;
    }
    if (*got != v) r->wrong.push_back("commit returned " + std::to_string(*got));
    r->acked = v;
  }
}

absl::StatusOr<std::unique_ptr<internal::DBImpl>> OpenOn(rocksdb::Env* env,
                                                         const std::string& path) {
  internal::RocksDBStoreOptions store;
  store.env = env;
  return internal::DBImpl::OpenAt(WorkloadOptions(), path, store);
}

// The workload. Goes as far as it can; every result is checked.
RunResult RunWorkload(rocksdb::Env* env, const std::string& path, uint64_t seed,
                      ModelHistory& history) {
  RunResult r;
  {
    absl::StatusOr<std::unique_ptr<internal::DBImpl>> db = OpenOn(env, path);
    if (!db.ok()) {
      ++r.errors;
      return r;
    }
    Commit(db->get(), 4, seed, &r);
    CheckGet(db->get(), "last_batch", history, &r);
  }
  // Reopen: recovery flushes the WAL into an SST, so reads hit files.
  absl::StatusOr<std::unique_ptr<internal::DBImpl>> db = OpenOn(env, path);
  if (!db.ok()) {
    ++r.errors;
    return r;
  }
  r.acked = std::max(r.acked, (*db)->LatestVersion());
  CheckIterate(db->get(), (*db)->LatestVersion(), history, &r);
  CheckGet(db->get(), "k17", history, &r);
  Commit(db->get(), 3, seed, &r);
  absl::StatusOr<ReclaimStats> reclaimed = (*db)->Reclaim();
  if (!reclaimed.ok()) ++r.errors;
  const uint64_t latest = (*db)->LatestVersion();
  if (latest > 0) CheckIterate(db->get(), latest - 1, history, &r);
  CheckIterate(db->get(), latest, history, &r);
  return r;  // closes the database
}

// Reopens without faults and checks what the run left. Returns problems.
std::vector<std::string> VerifyAfter(const std::string& path, const RunResult& r,
                                     ModelHistory& history) {
  std::vector<std::string> problems = r.wrong;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(WorkloadOptions(), path);
  if (!db.ok()) {
    problems.push_back("reopen: " + db.status().ToString());
    return problems;
  }
  const uint64_t latest = (*db)->LatestVersion();
  if (latest < r.acked) {
    problems.push_back("lost acknowledged version " + std::to_string(r.acked) +
                       " (latest " + std::to_string(latest) + ")");
  }
  if (latest > std::max(r.acked, r.attempted)) {
    problems.push_back("version " + std::to_string(latest) + " never committed");
  }
  absl::StatusOr<std::vector<VersionInfo>> versions = (*db)->ListVersions();
  if (!versions.ok()) {
    problems.push_back("list versions: " + versions.status().ToString());
  } else {
    for (const VersionInfo& info : *versions) {
      std::string diff = testing::DiffWithModel(db->get(), info.version,
                                                history.At(info.version));
      if (!diff.empty()) {
        problems.push_back("version " + std::to_string(info.version) + ": " + diff);
      }
    }
  }
  absl::StatusOr<CheckReport> check = (*db)->Check();
  if (!check.ok()) {
    problems.push_back("check: " + check.status().ToString());
  } else if (check->pages_leaked != 0 || check->blobs_leaked != 0) {
    problems.push_back("check: leaked " + std::to_string(check->pages_leaked) +
                       " pages, " + std::to_string(check->blobs_leaked) + " blobs");
  }
  return problems;
}

// Runs the workload once with a fault set up by `arm`, then verifies.
struct Injection {
  uint64_t op = 0;
  bool once = true;
};

struct LoopStats {
  uint64_t n = 0;           // file operations of the workload
  uint64_t runs = 0;
  uint64_t faults_hit = 0;  // runs in which the fault was injected
  uint64_t api_errors = 0;  // error statuses returned to the caller
  std::vector<std::string> problems;
};

TEST(IoErrorTest, EveryFailedFileOperationIsACleanError) {
  const uint64_t seed = Seed();
  std::cout << "COWDB_SEED=" << seed << std::endl;
  testing::TempDir dir = testing::TempDir::InMemory();
  // Dry run: count the operations.
  uint64_t n = 0;
  {
    auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                                dir.Sub("stash"));
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    ModelHistory history(seed, kBatchOps);
    RunResult r = RunWorkload(env.get(), dir.Sub("dry"), seed, history);
    ASSERT_EQ(r.errors, 0);
    ASSERT_TRUE(r.wrong.empty());
    ASSERT_EQ(r.acked, 7u);
    n = fs->ops();
  }
  const char* stride_env = std::getenv("COWDB_IO_ERROR_STRIDE");
  const uint64_t stride =
      stride_env ? std::max<uint64_t>(1, std::strtoull(stride_env, nullptr, 10))
                 : std::max<uint64_t>(1, n / 60);
  LoopStats stats;
  stats.n = n;
  for (uint64_t i = 1; i <= n + 1; i += stride) {
    for (bool once : {true, false}) {
      const std::string path =
          dir.Sub("run" + std::to_string(i) + (once ? "a" : "b"));
      auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                                  dir.Sub("stash"));
      std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
      if (once) {
        fs->FailOnce(i);
      } else {
        fs->FailFrom(i);
      }
      ModelHistory history(seed, kBatchOps);
      RunResult r = RunWorkload(env.get(), path, seed, history);
      ++stats.runs;
      stats.faults_hit += fs->injected() > 0;
      stats.api_errors += r.errors;
      const std::string what = std::string(once ? "fail once at " : "fail from ") +
                               fs->DescribeOp(i) + ": ";
      for (const std::string& p : VerifyAfter(path, r, history)) {
        if (stats.problems.size() < 20) stats.problems.push_back(what + p);
      }
      env.reset();
      fs.reset();
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  }
  std::cout << "operations N=" << stats.n << " stride=" << stride
            << " runs=" << stats.runs << " faults_hit=" << stats.faults_hit
            << " api_errors=" << stats.api_errors
            << " problems=" << stats.problems.size() << std::endl;
  for (const std::string& p : stats.problems) ADD_FAILURE() << p;
  EXPECT_GT(stats.faults_hit, stats.runs / 2);
}

// ---------------------------------------------------------------- bit flips

// What a read pass saw under one bit flip.
struct ReadOutcome {
  int data_loss = 0;     // DataLoss statuses
  int other_errors = 0;  // other clean errors
  std::vector<std::string> wrong;
};

void Classify(const absl::Status& s, ReadOutcome* out) {
  if (s.ok()) return;
  if (absl::IsDataLoss(s)) {
    ++out->data_loss;
  } else {
    ++out->other_errors;
  }
}

// Reads the latest two versions fully, a few keys, and runs Check.
void ReadPass(DB* db, ModelHistory& history, ReadOutcome* out) {
  const uint64_t latest = db->LatestVersion();
  for (uint64_t v : {latest, latest - 1}) {
    ReadOptions ro;
    ro.version = v;
    absl::StatusOr<std::unique_ptr<Iterator>> it = db->NewIterator(ro);
    if (!it.ok()) {
      Classify(it.status(), out);
      continue;
    }
    Model m = history.At(v);
    auto mit = m.begin();
    for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next(), ++mit) {
      std::string value((*it)->value());
      if (!(*it)->status().ok()) break;
      if (mit == m.end() || (*it)->key() != mit->first || value != mit->second) {
        out->wrong.push_back("version " + std::to_string(v) + " at key " +
                             std::string((*it)->key()));
        break;
      }
    }
    Classify((*it)->status(), out);
  }
  for (const char* key : {"last_batch", "k17", "k2999"}) {
    absl::StatusOr<std::string> got = db->Get(ReadOptions(), key);
    Model m = history.At(latest);
    auto mit = m.find(key);
    if (got.ok() && (mit == m.end() || *got != mit->second)) {
      out->wrong.push_back(std::string("Get ") + key);
    } else if (absl::IsNotFound(got.status()) && mit != m.end()) {
      out->wrong.push_back(std::string("Get ") + key + ": NotFound");
    } else if (!got.ok() && !absl::IsNotFound(got.status())) {
      Classify(got.status(), out);
    }
  }
  Classify(db->Check().status(), out);
}

// A database of 7 versions whose data sits in SST files.
void BuildReadOnlyDatabase(const std::string& path, uint64_t seed) {
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(WorkloadOptions(), path));
    for (uint64_t v = 1; v <= 7; ++v) {
      ASSERT_OK(db->Write(testing::BatchFor(seed, v, kBatchOps)).status());
    }
  }
  // Recovery flushes the WAL into an SST file.
  ASSERT_OK(DB::Open(WorkloadOptions(), path).status());
}

TEST(IoErrorTest, SstBitFlipsAreDataLossNeverWrongData) {
  const uint64_t seed = Seed();
  testing::TempDir dir = testing::TempDir::InMemory();
  const std::string path = dir.Sub("db");
  ASSERT_NO_FATAL_FAILURE(BuildReadOnlyDatabase(path, seed));
  ModelHistory history(seed, kBatchOps);
  uint64_t reads = 0;
  {
    auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                                dir.Sub("stash"));
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::DBImpl> db, OpenOn(env.get(), path));
    ReadOutcome clean;
    ReadPass(db.get(), history, &clean);
    ASSERT_EQ(clean.data_loss + clean.other_errors, 0);
    ASSERT_TRUE(clean.wrong.empty());
    reads = fs->sst_reads();
  }
  ASSERT_GT(reads, 0u);
  int flips = 0, detected = 0, harmless = 0;
  std::vector<std::string> wrong;
  for (uint64_t j = 1; j <= reads; ++j) {
    for (uint64_t variant = 0; variant < 2; ++variant) {
      auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                                  dir.Sub("stash"));
      std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
      fs->FlipBitInSstRead(j, seed * 31 + j * 2 + variant);
      ReadOutcome out;
      {
        absl::StatusOr<std::unique_ptr<internal::DBImpl>> db = OpenOn(env.get(), path);
        if (!db.ok()) {
          Classify(db.status(), &out);
        } else {
          ReadPass(db->get(), history, &out);
        }
      }
      if (fs->injected() == 0) continue;
      ++flips;
      if (out.data_loss + out.other_errors > 0) {
        ++detected;
      } else {
        ++harmless;  // the flipped bit was not used (e.g. footer padding)
      }
      for (const std::string& w : out.wrong) wrong.push_back("read " + std::to_string(j) + ": " + w);
    }
  }
  std::cout << "SST reads=" << reads << " flips=" << flips
            << " detected=" << detected << " harmless=" << harmless
            << " wrong=" << wrong.size() << std::endl;
  for (const std::string& w : wrong) ADD_FAILURE() << "wrong data: " << w;
  EXPECT_GT(detected, 0);
}

// A PageStore that flips one bit in the n-th page or blob it reads.
class FlippingStore final : public internal::PageStore {
 public:
  FlippingStore(std::shared_ptr<internal::PageStore> base, uint64_t n,
                uint64_t seed)
      : base_(std::move(base)), n_(n), seed_(seed) {}

  absl::StatusOr<std::optional<std::string>> Get(internal::Space space,
                                                 std::string_view key) override {
    absl::StatusOr<std::optional<std::string>> v = base_->Get(space, key);
    const bool page = space == internal::Space::kPages ||
                      space == internal::Space::kBlobs;
    if (v.ok() && v->has_value() && page && ++reads_ == n_ && !(*v)->empty()) {
      std::mt19937_64 rng(seed_);
      uint64_t bit = rng() % ((*v)->size() * 8);
      (**v)[bit / 8] ^= static_cast<char>(1u << (bit % 8));
      flipped_ = true;
    }
    return v;
  }
  absl::Status Scan(internal::Space space, std::string_view start,
                    const std::function<bool(std::string_view, std::string_view)>&
                        fn) override {
    return base_->Scan(space, start, fn);
  }
  absl::Status Commit(const internal::StoreBatch& batch, bool sync) override {
    return base_->Commit(batch, sync);
  }
  internal::StoreStats GetStats() override { return base_->GetStats(); }

  uint64_t reads() const { return reads_; }
  bool flipped() const { return flipped_; }

 private:
  const std::shared_ptr<internal::PageStore> base_;
  const uint64_t n_, seed_;
  uint64_t reads_ = 0;
  bool flipped_ = false;
};

TEST(IoErrorTest, PageBitFlipsAreDataLoss) {
  const uint64_t seed = Seed();
  testing::TempDir dir = testing::TempDir::InMemory();
  const std::string path = dir.Sub("db");
  ASSERT_NO_FATAL_FAILURE(BuildReadOnlyDatabase(path, seed));
  ModelHistory history(seed, kBatchOps);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::PageStore> opened,
                       internal::OpenRocksDBPageStore(path, {}));
  std::shared_ptr<internal::PageStore> base(std::move(opened));
  uint64_t reads = 0;
  {
    auto counting = std::make_shared<FlippingStore>(base, 0, 0);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::DBImpl> db,
                         internal::DBImpl::Open(WorkloadOptions(), counting));
    ReadOutcome clean;
    ReadPass(db.get(), history, &clean);
    ASSERT_EQ(clean.data_loss + clean.other_errors, 0);
    reads = counting->reads();
  }
  ASSERT_GT(reads, 0u);
  int flips = 0, data_loss = 0;
  for (uint64_t j = 1; j <= reads; ++j) {
    auto store = std::make_shared<FlippingStore>(base, j, seed + j);
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<internal::DBImpl> db,
                         internal::DBImpl::Open(WorkloadOptions(), store));
    ReadOutcome out;
    ReadPass(db.get(), history, &out);
    ASSERT_TRUE(store->flipped());
    ++flips;
    for (const std::string& w : out.wrong) ADD_FAILURE() << "read " << j << ": wrong " << w;
    // cowdb checksums every page and blob: the flip must show, as DataLoss.
    EXPECT_GT(out.data_loss, 0) << "flip in page read " << j << " went unnoticed";
    EXPECT_EQ(out.other_errors, 0);
    data_loss += out.data_loss > 0;
  }
  std::cout << "page reads=" << reads << " flips=" << flips
            << " reported as DataLoss=" << data_loss << std::endl;
}

// Regression: when creating a database failed between writing COWDB.tmp and
// renaming it to COWDB (an I/O error here; a crash does the same), the
// directory was refused forever after as "not a cowdb database".
TEST(IoErrorTest, InterruptedMarkerCreationCanBeRetried) {
  testing::TempDir dir = testing::TempDir::InMemory();
  auto fs = std::make_shared<FaultFileSystem>(rocksdb::FileSystem::Default(),
                                              dir.Sub("stash"));
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  // Find the rename of the temporary marker in a clean creation.
  ASSERT_OK(OpenOn(env.get(), dir.Sub("dry")).status());
  uint64_t rename_op = 0;
  for (uint64_t i = 1; i <= fs->ops() && rename_op == 0; ++i) {
    const std::string op = fs->DescribeOp(i);
    if (op.find("rename") != std::string::npos &&
        op.find("COWDB.tmp") != std::string::npos) {
      rename_op = i;
    }
  }
  ASSERT_NE(rename_op, 0u);
  fs->ResetCounters();
  fs->FailOnce(rename_op);
  const std::string path = dir.Sub("db");
  EXPECT_FALSE(OpenOn(env.get(), path).ok());
  ASSERT_TRUE(std::filesystem::exists(path + "/COWDB.tmp"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(WorkloadOptions(), path));
  ASSERT_OK(db->Put("k", "v").status());
}

}  // namespace
}  // namespace cowdb
