// The embedded API: behaviour a user relies on, over the RocksDB store.

#include "engine/db.h"

#include <atomic>
#include <fstream>
#include <thread>

#include "engine/db_impl.h"
#include "engine/format/export_file.h"
#include "engine/store/page_store.h"
#include "engine/version/records.h"
#include "gtest/gtest.h"
#include "tests/util/db_test_util.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using ::cowdb::testing::IsOk;
using ::cowdb::testing::StatusIs;
using ::cowdb::testing::TempDir;

class DBTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(Options options = Options()) {
    db_.reset();
    options.cache_bytes = 4 << 20;
    auto db = DB::Open(options, dir_.Sub("db"));
    ASSERT_OK(db);
    db_ = *std::move(db);
  }

  std::string GetAt(std::optional<uint64_t> version, const std::string& key) {
    ReadOptions ro;
    ro.version = version;
    absl::StatusOr<std::string> v = db_->Get(ro, key);
    if (absl::IsNotFound(v.status())) return "NOT_FOUND";
    if (!v.ok()) return "ERROR: " + v.status().ToString();
    return *v;
  }
  std::string Get(const std::string& key) { return GetAt(std::nullopt, key); }

  TempDir dir_;
  std::unique_ptr<DB> db_;
};

TEST_F(DBTest, NewDatabaseIsVersionZeroAndEmpty) {
  EXPECT_EQ(db_->LatestVersion(), 0u);
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ReadOptions(), "", ""));
  EXPECT_EQ(n, 0u);
}

TEST_F(DBTest, PutGetDeleteCreateVersions) {
  ASSERT_OK_AND_ASSIGN(uint64_t v1, db_->Put("a", "1"));
  ASSERT_OK_AND_ASSIGN(uint64_t v2, db_->Put("a", "2"));
  ASSERT_OK_AND_ASSIGN(uint64_t v3, db_->Delete("a"));
  EXPECT_EQ(v1, 1u);
  EXPECT_EQ(v2, 2u);
  EXPECT_EQ(v3, 3u);
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  EXPECT_EQ(GetAt(0, "a"), "NOT_FOUND");
  EXPECT_EQ(GetAt(1, "a"), "1");
  EXPECT_EQ(GetAt(2, "a"), "2");
  EXPECT_EQ(GetAt(3, "a"), "NOT_FOUND");
}

TEST_F(DBTest, WriteBatchIsOneVersion) {
  ASSERT_OK(db_->Put("z", "old"));
  WriteBatch batch;
  batch.Put("a", "1");
  batch.Put("b", "2");
  batch.Delete("z");
  batch.Put("a", "3");  // last write wins
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
  EXPECT_EQ(v, 2u);
  EXPECT_EQ(Get("a"), "3");
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(Get("z"), "NOT_FOUND");
  EXPECT_EQ(GetAt(1, "z"), "old");
  EXPECT_EQ(GetAt(1, "a"), "NOT_FOUND");
}

TEST_F(DBTest, EmptyBatchCommitsNothing) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(WriteBatch()));
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(db_->LatestVersion(), 1u);
}

TEST_F(DBTest, SnapshotIsStable) {
  ASSERT_OK(db_->Put("a", "1"));
  Snapshot snap = db_->GetSnapshot();
  EXPECT_EQ(snap.version(), 1u);
  for (int i = 0; i < 100; ++i) ASSERT_OK(db_->Put("a", std::to_string(i)));
  ASSERT_OK(db_->Put("b", "new"));
  ReadOptions ro;
  ro.snapshot = &snap;
  EXPECT_THAT(db_->Get(ro, "a"), IsOk());
  EXPECT_EQ(*db_->Get(ro, "a"), "1");
  EXPECT_THAT(db_->Get(ro, "b"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ro, "", ""));
  EXPECT_EQ(n, 1u);
}

TEST_F(DBTest, SnapshotAtOldVersionAndUnknownVersions) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("a", "2"));
  ASSERT_OK_AND_ASSIGN(Snapshot s1, db_->SnapshotAt(1));
  EXPECT_EQ(s1.version(), 1u);
  ReadOptions ro;
  ro.snapshot = &s1;
  EXPECT_EQ(*db_->Get(ro, "a"), "1");
  EXPECT_THAT(db_->SnapshotAt(3),
              StatusIs(absl::StatusCode::kNotFound, "latest is 2"));
  ReadOptions future;
  future.version = 99;
  EXPECT_THAT(db_->Get(future, "a"),
              StatusIs(absl::StatusCode::kNotFound, "latest is 2"));
  EXPECT_THAT(db_->NewIterator(future), StatusIs(absl::StatusCode::kNotFound));
  ReadOptions both;
  both.snapshot = &s1;
  both.version = 1;
  EXPECT_THAT(db_->Get(both, "a"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DBTest, IteratorBothWaysAndSeek) {
  WriteBatch batch;
  for (int i = 0; i < 1000; ++i) {
    char k[8];
    snprintf(k, sizeof(k), "k%04d", i * 2);
    batch.Put(k, std::to_string(i));
  }
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Write(batch));
  ASSERT_OK(db_->Put("k0000", "changed"));
  ReadOptions ro;
  ro.version = v;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Iterator> it, db_->NewIterator(ro));
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->version(), v);
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    EXPECT_EQ(it->value(), std::to_string(n));
    EXPECT_EQ(it->mod_version(), v);
    ++n;
  }
  EXPECT_EQ(n, 1000);
  for (it->SeekToLast(); it->Valid(); it->Prev()) --n;
  EXPECT_EQ(n, 0);
  it->Seek("k0101");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "k0102");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "k0100");
  it->Seek("k9");
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
  ASSERT_OK_AND_ASSIGN(uint64_t c, db_->Count(ro, "k0100", "k0200"));
  EXPECT_EQ(c, 50u);
}

TEST_F(DBTest, LargeValuesRoundTripThroughBlobs) {
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = 'a' + i % 26;
  ASSERT_OK(db_->Put("big", big));
  ASSERT_OK(db_->Put("big", "small"));
  EXPECT_EQ(GetAt(1, "big"), big);
  EXPECT_EQ(Get("big"), "small");
  ReadOptions ro;
  ro.version = 1;
  ASSERT_OK_AND_ASSIGN(auto it, db_->NewIterator(ro));
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), big);
  EXPECT_EQ(db_->GetStats().blobs_written, 0u);  // held until a checkpoint
  ASSERT_OK(db_->Checkpoint());
  // The latest version no longer has it: it was never written.
  EXPECT_EQ(db_->GetStats().blobs_written, 0u);
  EXPECT_EQ(GetAt(1, "big"), big);  // rebuilt: checkpoint 0 + the log
  EXPECT_EQ(Get("big"), "small");
  ASSERT_OK(db_->Put("big2", big));
  ASSERT_OK(db_->Checkpoint());
  EXPECT_EQ(db_->GetStats().blobs_written, 1u);
  Reopen();
  EXPECT_EQ(GetAt(1, "big"), big);
  EXPECT_EQ(Get("big2"), big);
}

TEST_F(DBTest, GetIntoACallersStringReusesIt) {
  std::string big(5000, 'b');  // above the inline limit: a blob
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("big", big));
  std::string value;
  ASSERT_OK(db_->Get(ReadOptions(), "big", &value));
  EXPECT_EQ(value, big);
  const size_t capacity = value.capacity();
  ASSERT_OK(db_->Get(ReadOptions(), "a", &value));
  EXPECT_EQ(value, "1");  // replaced, not appended
  EXPECT_EQ(value.capacity(), capacity);
  EXPECT_THAT(db_->Get(ReadOptions(), "missing", &value),
              StatusIs(absl::StatusCode::kNotFound));
  ReadOptions at1;
  at1.version = 1;
  ASSERT_OK(db_->Get(at1, "a", &value));
  EXPECT_EQ(value, "1");
  EXPECT_THAT(db_->Get(at1, "big", &value),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(DBTest, LimitsAreInvalidArgument) {
  EXPECT_THAT(db_->Put("", "v"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          "empty key"));
  EXPECT_THAT(db_->Delete(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->Put(std::string(4097, 'k'), "v"),
              StatusIs(absl::StatusCode::kInvalidArgument, "max_key_size"));
  EXPECT_OK(db_->Put(std::string(4096, 'k'), "v"));
  EXPECT_THAT(db_->Put("k", std::string((16 << 20) + 1, 'v')),
              StatusIs(absl::StatusCode::kInvalidArgument, "max_value_size"));
  // A bad op anywhere in a batch rejects the whole batch.
  WriteBatch batch;
  batch.Put("fine", "v");
  batch.Put("", "v");
  EXPECT_THAT(db_->Write(batch), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(Get("fine"), "NOT_FOUND");
  EXPECT_EQ(db_->LatestVersion(), 1u);
}

TEST_F(DBTest, BadOptionsAreInvalidArgument) {
  Options o;
  o.page_size = 100;
  EXPECT_THAT(DB::Open(o, dir_.Sub("other")),
              StatusIs(absl::StatusCode::kInvalidArgument, "page_size"));
  o = Options();
  o.inline_value_limit = o.page_size;
  EXPECT_THAT(DB::Open(o, dir_.Sub("other")),
              StatusIs(absl::StatusCode::kInvalidArgument, "inline_value_limit"));
}

TEST_F(DBTest, DataSurvivesReopen) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK(db_->Put("b", std::string(5000, 'b')));
  ASSERT_OK(db_->Delete("a"));
  Reopen();
  EXPECT_EQ(db_->LatestVersion(), 3u);
  EXPECT_EQ(GetAt(1, "a"), "1");
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  EXPECT_EQ(Get("b"), std::string(5000, 'b'));
  ASSERT_OK_AND_ASSIGN(uint64_t v, db_->Put("c", "3"));
  EXPECT_EQ(v, 4u);
}

TEST_F(DBTest, SystemRecordsPersistOutsideTheVersions) {
  ASSERT_OK(db_->Put("a", "1"));
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> none, db_->GetSystemRecord("auth"));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK(db_->PutSystemRecord("auth", "state-1"));
  ASSERT_OK(db_->PutSystemRecord("auth", "state-2"));
  // No version is made and no read of one sees the record.
  EXPECT_EQ(db_->LatestVersion(), 1u);
  ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ReadOptions(), "", ""));
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(Get("auth"), "NOT_FOUND");
  Reopen();
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> got, db_->GetSystemRecord("auth"));
  EXPECT_EQ(got, "state-2");
  EXPECT_THAT(db_->PutSystemRecord("", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(db_->GetSystemRecord(std::string(257, 'n')).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A backup carries the records.
  ASSERT_OK(db_->Backup(dir_.Sub("backup")));
  ASSERT_OK_AND_ASSIGN(auto copy, DB::Open(Options(), dir_.Sub("backup")));
  ASSERT_OK_AND_ASSIGN(got, copy->GetSystemRecord("auth"));
  EXPECT_EQ(got, "state-2");
}

TEST_F(DBTest, PageSizeIsFixedAtCreation) {
  db_.reset();
  Options o;
  o.page_size = 1024;
  o.inline_value_limit = 256;
  std::string path = dir_.Sub("small_pages");
  {
    ASSERT_OK_AND_ASSIGN(auto db, DB::Open(o, path));
    WriteBatch batch;
    for (int i = 0; i < 2000; ++i) batch.Put("key" + std::to_string(i), "v");
    ASSERT_OK(db->Write(batch));
  }
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(Options(), path));
  auto* impl = static_cast<internal::DBImpl*>(db.get());
  EXPECT_EQ(impl->page_size(), 1024u);
  EXPECT_OK(impl->VerifyVersion(1, /*strict=*/true));
}

TEST_F(DBTest, NonCowdbDirectoryIsRefusedUntouched) {
  std::string path = dir_.Sub("not_a_db");
  std::filesystem::create_directory(path);
  { std::ofstream(path + "/important.txt") << "data"; }
  EXPECT_THAT(DB::Open(Options(), path),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "not a cowdb database"));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    EXPECT_EQ(e.path().filename(), "important.txt");
    ++files;
  }
  EXPECT_EQ(files, 1);
  // A regular file is refused too.
  EXPECT_THAT(DB::Open(Options(), path + "/important.txt"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(DBTest, MissingDatabaseWithoutCreateIsNotFound) {
  Options o;
  o.create_if_missing = false;
  EXPECT_THAT(DB::Open(o, dir_.Sub("nothing")),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("nothing")));
}

TEST_F(DBTest, NewerLayoutIsRefused) {
  db_.reset();
  { std::ofstream(dir_.Sub("db") + "/COWDB", std::ios::trunc) << "cowdb 99\n"; }
  EXPECT_THAT(DB::Open(Options(), dir_.Sub("db")),
              StatusIs(absl::StatusCode::kFailedPrecondition, "version 99"));
}

TEST_F(DBTest, NewerDatabaseFormatIsRefused) {
  auto store = internal::NewMemoryPageStore();
  internal::StoreBatch batch;
  batch.Put(internal::Space::kMeta, internal::kMetaKey, std::string("\x07", 1));
  ASSERT_OK(store->Commit(batch, false));
  EXPECT_THAT(internal::DBImpl::Open(Options(), store),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "format version 7"));
}

TEST_F(DBTest, SecondOpenOfSameDirectoryFails) {
  EXPECT_FALSE(DB::Open(Options(), dir_.Sub("db")).ok());
  EXPECT_OK(db_->Put("still", "works"));
}

TEST_F(DBTest, StatsCountCacheAndPages) {
  WriteBatch batch;
  for (int i = 0; i < 5000; ++i) batch.Put("key" + std::to_string(i), "value");
  ASSERT_OK(db_->Write(batch));
  Reopen();
  ASSERT_OK_AND_ASSIGN(uint64_t n, db_->Count(ReadOptions(), "", ""));
  EXPECT_EQ(n, 5000u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Get("key" + std::to_string(i)), "value");
  DBStats s = db_->GetStats();
  EXPECT_EQ(s.latest_version, 1u);
  EXPECT_EQ(s.entries, 5000u);
  EXPECT_GT(s.cache_misses, 0u);
  EXPECT_GT(s.cache_hits, 0u);
  EXPECT_GT(s.page_reads, 0u);
  EXPECT_GT(s.cache_bytes, 0u);
  EXPECT_LE(s.cache_bytes, s.cache_capacity);
  const uint64_t pages = db_->GetStats().pages_written;
  ASSERT_OK(db_->Put("x", "y"));
  EXPECT_EQ(db_->GetStats().pages_written, pages);  // a commit writes its log
  ASSERT_OK(db_->Checkpoint());
  EXPECT_GT(db_->GetStats().pages_written, pages);
  EXPECT_EQ(db_->GetStats().checkpoint_version, 2u);
}

// A store whose commits fail on demand, to check what the DB does then.
class FailingStore : public internal::PageStore {
 public:
  explicit FailingStore(std::shared_ptr<internal::PageStore> base)
      : base_(std::move(base)) {}
  absl::StatusOr<std::optional<std::string>> Get(internal::Space s,
                                                 std::string_view k) override {
    return base_->Get(s, k);
  }
  absl::Status Scan(internal::Space s, std::string_view start,
                    const std::function<bool(std::string_view,
                                             std::string_view)>& fn) override {
    return base_->Scan(s, start, fn);
  }
  absl::Status Commit(const internal::StoreBatch& b, bool sync) override {
    if (fail_) return absl::InternalError("injected I/O error");
    return base_->Commit(b, sync);
  }
  internal::StoreStats GetStats() override { return base_->GetStats(); }
  bool fail_ = false;

 private:
  std::shared_ptr<internal::PageStore> base_;
};

TEST(DBFailureTest, FailedCommitIsUnknownAndRefusesWritesUntilReopen) {
  auto base = internal::NewMemoryPageStore();
  auto failing = std::make_shared<FailingStore>(base);
  ASSERT_OK_AND_ASSIGN(auto db, internal::DBImpl::Open(Options(), failing));
  ASSERT_OK(db->Put("a", "1"));
  failing->fail_ = true;
  EXPECT_THAT(db->Put("a", "2"),
              StatusIs(absl::StatusCode::kUnknown, "unknown outcome"));
  failing->fail_ = false;
  EXPECT_THAT(db->Put("a", "3"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "reopen"));
  // Reads keep working and see the last acknowledged version.
  EXPECT_EQ(db->LatestVersion(), 1u);
  EXPECT_EQ(*db->Get(ReadOptions(), "a"), "1");
  db.reset();
  ASSERT_OK_AND_ASSIGN(db, internal::DBImpl::Open(Options(), failing));
  ASSERT_OK_AND_ASSIGN(uint64_t v, db->Put("a", "4"));
  EXPECT_EQ(v, 2u);

  // A transaction's commit reports the same distinct status.
  ASSERT_OK_AND_ASSIGN(auto txn, db->Begin(TransactionOptions()));
  ASSERT_OK(txn->Get("a"));
  ASSERT_OK(txn->Put("a", "5"));
  failing->fail_ = true;
  EXPECT_THAT(txn->Commit(), StatusIs(absl::StatusCode::kUnknown));
  failing->fail_ = false;
  ASSERT_OK_AND_ASSIGN(auto next, db->Begin(TransactionOptions()));
  ASSERT_OK(next->Put("b", "1"));
  EXPECT_THAT(next->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace cowdb

namespace cowdb {
namespace {

using ::cowdb::testing::StatusIs;

TEST(BackupTest, HotBackupOpensAsTheSameDatabase) {
  testing::TempDir dir;
  Options o;
  o.retain_versions = Options::kRetainAll;
  ASSERT_OK_AND_ASSIGN(auto db, DB::Open(o, dir.Sub("db")));
  std::atomic<bool> stop{false};
  // A writer keeps committing during the backup.
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      ASSERT_OK(db->Put("key" + std::to_string(i % 500), std::to_string(i)));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_OK(db->Tag("before-backup", 1));
  ASSERT_OK(db->Backup(dir.Sub("backup")));
  stop = true;
  writer.join();
  EXPECT_THAT(db->Backup(dir.Sub("backup")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(auto copy, DB::Open(o, dir.Sub("backup")));
  const uint64_t v = copy->LatestVersion();
  EXPECT_GT(v, 1u);
  EXPECT_LE(v, db->LatestVersion());
  EXPECT_EQ(copy->ListTags().count("before-backup"), 1u);
  // The copy's latest version equals the original's version of that number.
  ReadOptions at;
  at.version = v;
  ASSERT_OK_AND_ASSIGN(auto a, db->NewIterator(at));
  ASSERT_OK_AND_ASSIGN(auto b, copy->NewIterator(ReadOptions()));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectSameEntries(*a, *b));
  ASSERT_OK_AND_ASSIGN(CheckReport r, copy->Check());
  EXPECT_EQ(r.pages_leaked, 0u);
}

}  // namespace
}  // namespace cowdb

namespace cowdb {
namespace {

// Against the contract, but it must not corrupt memory: releasing a
// snapshot after its database is gone only drops the handle.
TEST(DBLifetimeTest, SnapshotReleasedAfterItsDatabaseIsHarmless) {
  Snapshot latest, old;
  {
    ASSERT_OK_AND_ASSIGN(auto db, internal::DBImpl::Open(
                                      Options(), internal::NewMemoryPageStore()));
    ASSERT_OK(db->Put("a", "1"));
    ASSERT_OK(db->Put("a", "2"));
    latest = db->GetSnapshot();
    ASSERT_OK_AND_ASSIGN(old, db->SnapshotAt(1));
  }
  EXPECT_EQ(latest.version(), 2u);
  EXPECT_EQ(old.version(), 1u);
}

}  // namespace
}  // namespace cowdb

namespace cowdb {
namespace {

using ::cowdb::testing::StatusIs;

TEST(ExportTest, ExportOfAVersionRestoresIntoAnEmptyDatabase) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, internal::DBImpl::Open(
                                    Options(), internal::NewMemoryPageStore()));
  WriteBatch batch;
  for (int i = 0; i < 25000; ++i) {
    batch.Put("key" + std::to_string(i), i % 1000 == 0 ? std::string(5000, 'b')
                                                      : std::to_string(i));
  }
  ASSERT_OK_AND_ASSIGN(uint64_t v, db->Write(batch));
  ASSERT_OK(db->Delete("key7"));  // after the exported version
  const std::string file = dir.Sub("v.cowdbexport");
  ASSERT_OK(db->Export(v, file));

  ASSERT_OK_AND_ASSIGN(auto copy, internal::DBImpl::Open(
                                      Options(), internal::NewMemoryPageStore()));
  ASSERT_OK_AND_ASSIGN(uint64_t n, copy->Import(file));
  EXPECT_EQ(n, 25000u);
  ReadOptions at;
  at.version = v;
  ASSERT_OK_AND_ASSIGN(auto a, db->NewIterator(at));
  ASSERT_OK_AND_ASSIGN(auto b, copy->NewIterator(ReadOptions()));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectSameEntries(*a, *b));

  // Any damage is DataLoss, and nothing is imported.
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 1;
  { std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes; }
  ASSERT_OK_AND_ASSIGN(auto empty, internal::DBImpl::Open(
                                       Options(), internal::NewMemoryPageStore()));
  EXPECT_THAT(empty->Import(file), StatusIs(absl::StatusCode::kDataLoss, "damaged"));
  EXPECT_EQ(empty->LatestVersion(), 0u);
  EXPECT_THAT(empty->Import(dir.Sub("missing")), StatusIs(absl::StatusCode::kInternal));
}

TEST(ExportTest, AnIncrementalExportBringsACopyFromOneVersionToAnother) {
  testing::TempDir dir;
  Options o;
  o.retain_versions = Options::kRetainAll;
  ASSERT_OK_AND_ASSIGN(auto db, internal::DBImpl::Open(o, internal::NewMemoryPageStore()));
  WriteBatch batch;
  for (int i = 0; i < 3000; ++i) batch.Put("key" + std::to_string(i), std::to_string(i));
  ASSERT_OK_AND_ASSIGN(uint64_t base, db->Write(batch));
  // Changes after the base: overwrites, deletes, a large value, a key
  // that comes and goes (no net change), a new key.
  ASSERT_OK(db->Put("key1", "changed"));
  ASSERT_OK(db->Delete("key2"));
  ASSERT_OK(db->Put("key3", std::string(100000, 'v')));
  ASSERT_OK(db->Put("transient", "x"));
  ASSERT_OK(db->Delete("transient"));
  ASSERT_OK(db->Put("new", "n"));
  ASSERT_OK_AND_ASSIGN(uint64_t to, db->Delete("key4"));
  ASSERT_OK(db->Put("key5", "after the export"));

  const std::string full = dir.Sub("base.cowdbexport");
  const std::string delta = dir.Sub("delta.cowdbexport");
  ASSERT_OK(db->Export(base, full));
  ASSERT_OK(db->ExportChanges(base, to, delta));
  ASSERT_OK_AND_ASSIGN(auto copy, internal::DBImpl::Open(o, internal::NewMemoryPageStore()));
  ASSERT_OK(copy->Import(full).status());
  ASSERT_OK_AND_ASSIGN(uint64_t records, copy->Import(delta));
  EXPECT_EQ(records, 5u);  // key1, key2, key3, key4, new
  ReadOptions at;
  at.version = to;
  ASSERT_OK_AND_ASSIGN(auto a, db->NewIterator(at));
  ASSERT_OK_AND_ASSIGN(auto b, copy->NewIterator(ReadOptions()));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectSameEntries(*a, *b));
  // Applying it again changes nothing.
  ASSERT_OK(copy->Import(delta).status());
  ASSERT_OK_AND_ASSIGN(auto c, copy->NewIterator(ReadOptions()));
  ASSERT_OK_AND_ASSIGN(auto d, db->NewIterator(at));
  ASSERT_NO_FATAL_FAILURE(testing::ExpectSameEntries(*d, *c));

  EXPECT_THAT(db->ExportChanges(to, base, delta), StatusIs(absl::StatusCode::kInvalidArgument));
  // A full export cannot hold a delete.
  ASSERT_OK_AND_ASSIGN(auto w, internal::ExportWriter::Create(dir.Sub("x"), 1));
  EXPECT_THAT(w->AddDelete("k"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace cowdb
