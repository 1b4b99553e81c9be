// VerifiedReader against a lying server: a client that alters values,
// hides keys, answers from an older version while claiming the latest, or
// forges the chain. Every lie fails with DataLoss; honest answers pass.

#include <functional>
#include <memory>
#include <string>

#include "client/client.h"
#include "client/local_client.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace cowdb::client {
namespace {

using ::cowdb::testing::StatusIs;

// Forwards every call to `base`; a test double overrides what it changes.
class ForwardingClient : public Client {
 public:
  explicit ForwardingClient(Client* base) : base_(base) {}
  absl::StatusOr<Entry> Get(std::string_view key, const TreeAt& at) override {
    return base_->Get(key, at);
  }
  absl::StatusOr<uint64_t> Scan(const ScanOptions& o,
                                const std::function<bool(const KeyValue&)>& visit) override {
    return base_->Scan(o, visit);
  }
  absl::StatusOr<uint64_t> Count(const Range& r, const TreeAt& at) override {
    return base_->Count(r, at);
  }
  absl::StatusOr<uint64_t> Put(std::string_view k, std::string_view v,
                               const WriteOptions& o) override {
    return base_->Put(k, v, o);
  }
  absl::StatusOr<uint64_t> Delete(std::string_view k, const WriteOptions& o) override {
    return base_->Delete(k, o);
  }
  absl::StatusOr<TxnResult> Txn(const TxnRequest& r) override { return base_->Txn(r); }
  absl::StatusOr<std::unique_ptr<Transaction>> Begin(const TransactionOptions& o) override {
    return base_->Begin(o);
  }
  absl::StatusOr<std::vector<VersionInfo>> ListVersions() override {
    return base_->ListVersions();
  }
  absl::Status Tag(std::string_view n, uint64_t v) override { return base_->Tag(n, v); }
  absl::Status Untag(std::string_view n) override { return base_->Untag(n); }
  absl::StatusOr<std::map<std::string, uint64_t>> ListTags() override {
    return base_->ListTags();
  }
  absl::Status Diff(const TreeAt& from, const TreeAt& to, const Range& r,
                    const std::function<bool(const Change&)>& visit) override {
    return base_->Diff(from, to, r, visit);
  }
  absl::Status Watch(const TreeAt& from, const Range& r,
                     const std::function<bool(const WatchEvent&)>& visit) override {
    return base_->Watch(from, r, visit);
  }
  absl::StatusOr<ServerStatus> Status() override { return base_->Status(); }
  absl::StatusOr<KeyHistory> History(std::string_view k, const HistoryOptions& o) override {
    return base_->History(k, o);
  }
  absl::StatusOr<uint64_t> VersionAt(absl::Time t) override { return base_->VersionAt(t); }
  absl::StatusOr<CheckReport> Check(
      const std::function<void(uint64_t, uint64_t)>& progress) override {
    return base_->Check(progress);
  }
  absl::StatusOr<Retention> GetRetention() override { return base_->GetRetention(); }
  absl::StatusOr<Retention> SetRetention(uint64_t v, uint64_t s) override {
    return base_->SetRetention(v, s);
  }
  absl::Status Backup(const std::string& dir,
                      const std::function<void(uint64_t, uint64_t)>& p) override {
    return base_->Backup(dir, p);
  }
  absl::Status Export(std::optional<uint64_t> v, const std::string& path,
                      const std::function<void(uint64_t, uint64_t)>& p) override {
    return base_->Export(v, path, p);
  }
  absl::Status ExportChanges(uint64_t from, std::optional<uint64_t> to, const std::string& path,
                             const std::function<void(uint64_t, uint64_t)>& p) override {
    return base_->ExportChanges(from, to, path, p);
  }
  absl::StatusOr<uint64_t> Import(const std::string& path,
                                  const std::function<void(uint64_t, uint64_t)>& p) override {
    return base_->Import(path, p);
  }
  absl::StatusOr<ProvedValue> ProveGet(std::string_view key,
                                       std::optional<uint64_t> at) override {
    return base_->ProveGet(key, at);
  }
  absl::StatusOr<ProvedRange> ProveScan(const ScanOptions& o) override {
    return base_->ProveScan(o);
  }
  absl::StatusOr<VersionDigest> Digest(std::optional<uint64_t> version) override {
    return base_->Digest(version);
  }
  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from, uint64_t to) override {
    return base_->DigestLinks(from, to);
  }
  absl::StatusOr<uint64_t> Fork(std::string_view name, const TreeAt& from) override {
    return base_->Fork(name, from);
  }
  absl::StatusOr<uint64_t> DeleteBranch(std::string_view name) override {
    return base_->DeleteBranch(name);
  }
  absl::StatusOr<std::vector<BranchInfo>> ListBranches() override {
    return base_->ListBranches();
  }
  absl::StatusOr<MergeResult> Merge(std::string_view from, std::string_view into,
                                    MergePolicy policy) override {
    return base_->Merge(from, into, policy);
  }

 protected:
  Client* const base_;
};

// Tells the truth until told how to lie.
class LyingClient : public ForwardingClient {
 public:
  using ForwardingClient::ForwardingClient;
  std::function<void(std::string_view key, ProvedValue*)> alter_answer;
  // Answer from the version before the one asked for (or the latest).
  bool stale = false;
  std::function<void(std::vector<DigestLink>*)> alter_links;
  std::function<void(ProvedRange*)> alter_scan;

  absl::StatusOr<ProvedRange> ProveScan(const ScanOptions& o) override {
    absl::StatusOr<ProvedRange> r = base_->ProveScan(o);
    if (r.ok() && alter_scan) alter_scan(&*r);
    return r;
  }

  absl::StatusOr<ProvedValue> ProveGet(std::string_view key,
                                       std::optional<uint64_t> at) override {
    if (stale) {
      absl::StatusOr<VersionDigest> latest = base_->Digest(std::nullopt);
      if (!latest.ok()) return latest.status();
      at = (at ? *at : latest->version) - 1;
    }
    absl::StatusOr<ProvedValue> p = base_->ProveGet(key, at);
    if (p.ok() && alter_answer) alter_answer(key, &*p);
    return p;
  }
  absl::StatusOr<std::vector<DigestLink>> DigestLinks(uint64_t from, uint64_t to) override {
    absl::StatusOr<std::vector<DigestLink>> links = base_->DigestLinks(from, to);
    if (links.ok() && alter_links) alter_links(&*links);
    return links;
  }
};

ProofEntry* EntryOf(std::string_view key, ProvedValue* p) {
  for (ProofEntry& e : p->proof.leaf) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

class VerifiedReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = OpenLocal(dir_.Sub("db"), Options());
    ASSERT_TRUE(c.ok()) << c.status();
    db_ = *std::move(c);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(db_->Put("key" + std::to_string(i), "value" + std::to_string(i)).ok());
    }
    liar_ = std::make_unique<LyingClient>(db_.get());
    // A digest obtained where it is trusted: from the database itself.
    absl::StatusOr<VersionDigest> d = db_->Digest();
    ASSERT_TRUE(d.ok()) << d.status();
    trusted_ = TrustedDigest{d->version, d->digest};
  }

  absl::Status ReadThroughLiar(std::string_view key,
                               std::optional<uint64_t> at = std::nullopt) {
    VerifiedReader reader(liar_.get(), trusted_);
    return reader.Get(key, at).status();
  }

  testing::TempDir dir_;
  std::unique_ptr<Client> db_;
  std::unique_ptr<LyingClient> liar_;
  TrustedDigest trusted_;
};

TEST_F(VerifiedReaderTest, HonestAnswersPass) {
  EXPECT_OK(ReadThroughLiar("key7"));
  EXPECT_OK(ReadThroughLiar("absent"));
  EXPECT_OK(ReadThroughLiar("key7", trusted_.version - 10));
  ASSERT_TRUE(db_->Put("key7", "newer").ok());
  VerifiedReader reader(liar_.get(), trusted_);
  ASSERT_OK_AND_ASSIGN(VerifiedValue v, reader.Get("key7"));
  EXPECT_EQ(v.value, std::optional<std::string>("newer"));
  EXPECT_EQ(reader.trusted()->version, trusted_.version + 1);
}

TEST_F(VerifiedReaderTest, AnAlteredValueFails) {
  liar_->alter_answer = [](std::string_view, ProvedValue* p) { (*p->value)[0] ^= 1; };
  EXPECT_THAT(ReadThroughLiar("key7"), StatusIs(absl::StatusCode::kDataLoss,
                                                "the value returned is not the one proved"));
  // Altering the proof to match does not help.
  liar_->alter_answer = [](std::string_view key, ProvedValue* p) {
    (*p->value)[0] ^= 1;
    EntryOf(key, p)->value = *p->value;
  };
  EXPECT_THAT(ReadThroughLiar("key7"),
              StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
}

TEST_F(VerifiedReaderTest, AHiddenKeyFails) {
  liar_->alter_answer = [](std::string_view, ProvedValue* p) { p->value.reset(); };
  EXPECT_THAT(ReadThroughLiar("key7"),
              StatusIs(absl::StatusCode::kDataLoss, "said it is absent"));
  liar_->alter_answer = [](std::string_view key, ProvedValue* p) {
    p->value.reset();
    auto& leaf = p->proof.leaf;
    leaf.erase(leaf.begin() + (EntryOf(key, p) - leaf.data()));
  };
  EXPECT_THAT(ReadThroughLiar("key7"),
              StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  // And a value invented for an absent key.
  liar_->alter_answer = [](std::string_view, ProvedValue* p) { p->value = "invented"; };
  EXPECT_THAT(ReadThroughLiar("absent"),
              StatusIs(absl::StatusCode::kDataLoss, "absent from the proof"));
}

TEST_F(VerifiedReaderTest, AnOlderVersionClaimedAsTheLatestFails) {
  liar_->stale = true;
  EXPECT_THAT(ReadThroughLiar("key49"),
              StatusIs(absl::StatusCode::kDataLoss, "older than the trusted version"));
  // Relabelled as the latest: its digest is not the latest's.
  liar_->alter_answer = [this](std::string_view, ProvedValue* p) {
    p->proof.version = trusted_.version;
  };
  EXPECT_THAT(ReadThroughLiar("key49"),
              StatusIs(absl::StatusCode::kDataLoss, "not the trusted"));
  // Asked for a version, answered from another.
  liar_->alter_answer = nullptr;
  EXPECT_THAT(ReadThroughLiar("key49", trusted_.version - 3),
              StatusIs(absl::StatusCode::kDataLoss, "asked for version"));
}

TEST_F(VerifiedReaderTest, AForgedChainFails) {
  ASSERT_TRUE(db_->Put("key7", "newer").ok());
  liar_->alter_links = [](std::vector<DigestLink>* links) { links->back().root_hash[5] ^= 1; };
  EXPECT_THAT(ReadThroughLiar("key7"),
              StatusIs(absl::StatusCode::kDataLoss, "does not extend the trusted digest"));
  liar_->alter_links = [](std::vector<DigestLink>* links) { links->clear(); };
  EXPECT_THAT(ReadThroughLiar("key7"),
              StatusIs(absl::StatusCode::kDataLoss, "does not extend the trusted digest"));
}

TEST_F(VerifiedReaderTest, LyingScansFail) {
  auto scan = [&](uint64_t limit = 0) {
    VerifiedReader reader(liar_.get(), trusted_);
    ScanOptions o;
    o.range.prefix = "key";
    o.limit = limit;
    return reader.Scan(o, [](const KeyValue&) { return true; }).status();
  };
  EXPECT_OK(scan());
  EXPECT_OK(scan(7));
  liar_->alter_scan = [](ProvedRange* r) { r->kvs.erase(r->kvs.begin() + 3); };
  EXPECT_THAT(scan(), StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  liar_->alter_scan = [](ProvedRange* r) { r->kvs[3].value += "!"; };
  EXPECT_THAT(scan(), StatusIs(absl::StatusCode::kDataLoss, "is not the one proved"));
  // Claiming the whole range was proved when only a part was.
  liar_->alter_scan = [](ProvedRange* r) { r->proved_end = "kez"; };
  EXPECT_THAT(scan(7), StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  // Stalling: an empty part that moves nowhere.
  liar_->alter_scan = [](ProvedRange* r) {
    r->kvs.clear();
    r->proved_end = "key";
  };
  EXPECT_THAT(scan(), StatusIs(absl::StatusCode::kDataLoss, "not after its last key"));
}

}  // namespace
}  // namespace cowdb::client
