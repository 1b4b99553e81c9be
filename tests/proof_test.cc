// Verified reads (engine/proof.h): honest answers verify at every version,
// through checkpoints, crashes and rebuilds; lying answers, forged proofs
// and a page altered behind a valid checksum do not.

#include "engine/proof.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/format/merkle.h"
#include "engine/format/page.h"
#include "engine/store/page_store.h"
#include "engine/util/coding.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "tests/util/kept_bytes.h"
#include "tests/util/model_db.h"
#include "tests/util/status_matchers.h"

namespace cowdb {
namespace {

using ::cowdb::testing::ModelDB;
using ::cowdb::testing::IsOkAndHolds;
using ::cowdb::testing::StatusIs;

constexpr int kKeys = 400;

std::string KeyOf(int i) { return absl::StrCat("key", 1000 + i); }

class ProofTest : public ::testing::Test {
 protected:
  ProofTest() {
    options_.sync = false;
    options_.retain_versions = Options::kRetainAll;
    options_.page_size = 512;  // deep trees from few keys
    options_.inline_value_limit = 64;
    options_.background_reclaim = false;
    options_.background_checkpoint = false;
  }

  void SetUp() override { Open(); }

  void Open(bool crash = false) {
    if (db_ && crash) db_->set_checkpoint_on_close(false);
    db_.reset();
    ASSERT_OK_AND_ASSIGN(db_, internal::DBImpl::Open(options_, store_));
  }

  // Random batches of puts (some values blobs) and deletes, on the
  // database and the model.
  void Workload(int commits) {
    for (int i = 0; i < commits; ++i) {
      WriteBatch batch;
      for (int n = 1 + rng_() % 8; n > 0; --n) {
        std::string k = KeyOf(rng_() % kKeys);
        if (rng_() % 4 == 0) {
          batch.Delete(k);
          continue;
        }
        size_t len = rng_() % 5 == 0 ? 65 + rng_() % 300 : rng_() % 40;
        batch.Put(k, std::string(len, static_cast<char>('a' + rng_() % 26)));
      }
      ASSERT_OK_AND_ASSIGN(uint64_t got, db_->Write(batch));
      ASSERT_OK_AND_ASSIGN(uint64_t want, model_.Write(batch));
      ASSERT_EQ(got, want);
    }
  }

  ReadOptions At(uint64_t version) {
    ReadOptions ro;
    ro.version = version;
    return ro;
  }

  Hash DigestAt(uint64_t version) {
    absl::StatusOr<VersionDigest> d = db_->GetDigest(version);
    EXPECT_OK(d);
    return d.ok() ? d->digest : Hash{};
  }

  // Proves `key` at `version`, checks the answer against the model and
  // the proof against the version's digest; returns the proof.
  ProvedValue ProveAndCheck(uint64_t version, const std::string& key) {
    absl::StatusOr<ProvedValue> got = db_->ProveGet(At(version), key);
    EXPECT_OK(got) << key << " at " << version;
    if (!got.ok()) return {};
    absl::StatusOr<std::string> want = model_.Get(At(version), key);
    EXPECT_EQ(got->value.has_value(), want.ok()) << key << " at " << version;
    if (want.ok() && got->value) EXPECT_EQ(*got->value, *want) << key;
    EXPECT_EQ(got->proof.version, version);
    EXPECT_OK(VerifyReadAgainst(got->proof, key, got->value, DigestAt(version)))
        << key << " at " << version;
    return *std::move(got);
  }

  Options options_;
  std::shared_ptr<internal::PageStore> store_ = internal::NewMemoryPageStore();
  std::unique_ptr<internal::DBImpl> db_;
  ModelDB model_;
  std::mt19937_64 rng_{20261201};
};

// The hash encodings are what clients recompute (engine/format/merkle.h):
// they are checked here against SHA-256 of the documented bytes, built by
// hand, so that a change to the hasher cannot change them unnoticed.
Hash Sha256Of(const std::string& bytes) {
  Hash out{};
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

TEST(MerkleTest, EncodingsAreAsDocumented) {
  using internal::NodeHasher;
  const std::string big(700, 'v');  // longer than the hasher's buffer
  const Hash blob = BlobDigest("a blob's bytes");
  EXPECT_EQ(blob, Sha256Of(std::string("\x03") + "a blob's bytes"));
  NodeHasher leaf = NodeHasher::Leaf(3);
  leaf.AddEntry("a", false, "one", 5);
  leaf.AddEntry("bb", true, internal::HashView(blob), 300);
  leaf.AddEntry("c", false, big, 7);
  std::string want("\x00\x03", 2);
  want += std::string("\x01" "a" "\x00" "\x03" "one" "\x05", 8);
  want += std::string("\x02" "bb" "\x01", 4) + std::string(internal::HashView(blob)) +
          std::string("\xac\x02", 2);  // 300 as a varint
  want += std::string("\x01" "c" "\x00" "\xbc\x05", 5) + big + "\x07";  // 700
  EXPECT_EQ(leaf.Finish(), Sha256Of(want));
  // And by an independent implementation (Python's hashlib):
  EXPECT_EQ(HashToHex(Sha256Of(want)),
            "62c59fda051f76882f23775877f747458f10f0b78832c191c5cbeb26fc5b3fe5");
  EXPECT_EQ(internal::EmptyTreeHash(), Sha256Of(std::string("\x00\x00", 2)));

  NodeHasher node = NodeHasher::Internal(2, 2);
  node.AddChild("", blob, true);
  node.AddChild("sep", Sha256Of("x"), false);
  want = std::string("\x01\x02\x02", 3) + std::string(internal::HashView(blob)) + "\x03" "sep" +
         std::string(internal::HashView(Sha256Of("x")));
  EXPECT_EQ(node.Finish(), Sha256Of(want));

  std::string chain = "\x02" + std::string(internal::HashView(blob));
  for (uint64_t v : {uint64_t{9}}) {
    for (int i = 0; i < 8; ++i) chain.push_back(static_cast<char>(v >> (8 * i)));
  }
  chain += std::string(internal::HashView(Sha256Of("x")));
  for (int i = 0; i < 8; ++i) chain.push_back(static_cast<char>(uint64_t{1234} >> (8 * i)));
  EXPECT_EQ(ChainDigest(blob, 9, Sha256Of("x"), 1234), Sha256Of(chain));
}

// The property: over random trees, every honest answer verifies, present
// or absent, at every version (held in memory, stored by a checkpoint,
// replayed after a crash, rebuilt from an older checkpoint).
TEST_F(ProofTest, HonestAnswersVerifyAtEveryVersion) {
  for (int round = 0; round < 6; ++round) {
    ASSERT_NO_FATAL_FAILURE(Workload(40));
    if (round % 2 == 0) ASSERT_OK(db_->Checkpoint());
    if (round == 3) ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));
  }
  const uint64_t latest = db_->LatestVersion();
  ASSERT_EQ(latest, 240u);
  std::vector<std::string> probes = {"a", "key", "key1000", "key1399",
                                     "key1399x", "zzz", std::string(1, '\xff')};
  for (int i = 0; i < 40; ++i) probes.push_back(KeyOf(rng_() % kKeys));
  for (uint64_t v = 0; v <= latest; v += (v % 7 == 0 ? 3 : 11)) {
    SCOPED_TRACE(absl::StrCat("version ", v));
    for (const std::string& key : probes) ProveAndCheck(v, key);
    ASSERT_OK(db_->VerifyVersion(v, /*strict=*/false));  // with the hashes
  }
  for (const std::string& key : probes) ProveAndCheck(latest, key);
  // The tree is deep enough that proofs have paths.
  EXPECT_GE(ProveAndCheck(latest, KeyOf(7)).proof.path.size(), 2u);
  ASSERT_OK_AND_ASSIGN(CheckReport report, db_->Check());
  EXPECT_EQ(report.versions_checked, latest + 1);
}

// The model's keys and values of [begin, end) at `version`, at most
// `limit` (0: all).
std::vector<std::pair<std::string, std::string>> ModelScan(ModelDB& model, uint64_t version,
                                                           const std::string& begin,
                                                           const std::string& end,
                                                           uint64_t limit) {
  std::vector<std::pair<std::string, std::string>> out;
  ReadOptions ro;
  ro.version = version;
  auto it = model.NewIterator(ro);
  EXPECT_OK(it);
  if (!it.ok()) return out;
  for ((*it)->Seek(begin); (*it)->Valid(); (*it)->Next()) {
    if (!end.empty() && (*it)->key() >= end) break;
    if (limit != 0 && out.size() == limit) break;
    out.emplace_back(std::string((*it)->key()), std::string((*it)->value()));
  }
  return out;
}

// Scans: over random trees and ranges (bounded or not, empty, cut short by
// a limit), the proof recomputes the version's digest and proves exactly
// the keys returned.
TEST_F(ProofTest, HonestScansVerify) {
  for (int round = 0; round < 4; ++round) {
    ASSERT_NO_FATAL_FAILURE(Workload(40));
    if (round % 2 == 0) ASSERT_OK(db_->Checkpoint());
  }
  const uint64_t latest = db_->LatestVersion();
  for (int i = 0; i < 200; ++i) {
    const uint64_t v = i % 4 == 0 ? latest : rng_() % (latest + 1);
    std::string begin = i % 10 == 0 ? "" : KeyOf(rng_() % kKeys);
    std::string end = i % 7 == 0 ? "" : KeyOf(rng_() % kKeys);
    if (!end.empty() && end < begin) std::swap(begin, end);
    const uint64_t limit = i % 3 == 0 ? 1 + rng_() % 20 : 0;
    SCOPED_TRACE(absl::StrCat("[", begin, ", ", end, ") at ", v, " limit ", limit));
    ASSERT_OK_AND_ASSIGN(ProvedRange r, db_->ProveScan(At(v), begin, end, limit));
    EXPECT_EQ(r.kvs, ModelScan(model_, v, begin, end, limit));
    EXPECT_THAT(VerifyScan(r.proof, begin, r.proved_end, r.kvs), IsOkAndHolds(DigestAt(v)));
  }
  EXPECT_THAT(db_->ProveScan(ReadOptions(), "b", "a", 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ProofTest, LyingScansFail) {
  ASSERT_NO_FATAL_FAILURE(Workload(80));
  ASSERT_OK(db_->Checkpoint());
  const Hash trusted = DigestAt(db_->LatestVersion());
  const std::string begin = KeyOf(50), end = KeyOf(250);
  ASSERT_OK_AND_ASSIGN(ProvedRange r, db_->ProveScan(ReadOptions(), begin, end, 0));
  ASSERT_GT(r.kvs.size(), 20u);
  ASSERT_GT(r.proof.nodes.size(), 3u);
  auto check = [&](const ProvedRange& x, const std::string& claimed_end) -> absl::Status {
    absl::StatusOr<Hash> d = VerifyScan(x.proof, begin, claimed_end, x.kvs);
    if (!d.ok()) return d.status();
    if (*d != trusted) return absl::DataLossError("verification failed: another digest");
    return absl::OkStatus();
  };
  EXPECT_OK(check(r, r.proved_end));
  std::vector<std::pair<std::string, std::function<void(ProvedRange&)>>> lies = {
      {"hidden key", [](ProvedRange& x) { x.kvs.erase(x.kvs.begin() + 5); }},
      {"invented key", [](ProvedRange& x) { x.kvs.insert(x.kvs.begin() + 5, {x.kvs[5].first + "0", "v"}); }},
      {"altered value", [](ProvedRange& x) { x.kvs[7].second += "x"; }},
      {"hidden key, cut from its leaf too",
       [](ProvedRange& x) {
         const std::string key = x.kvs[5].first;
         x.kvs.erase(x.kvs.begin() + 5);
         for (RangeProofNode& n : x.proof.nodes) {
           for (size_t i = 0; i < n.entries.size(); ++i) {
             if (n.entries[i].key == key) n.entries.erase(n.entries.begin() + i);
           }
         }
       }},
      {"a needed subtree left out",
       [](ProvedRange& x) {
         for (RangeProofNode& n : x.proof.nodes) {
           if (n.level == 1) {
             for (uint32_t& e : n.expanded) {
               if (e != 0) {
                 e = 0;
                 return;
               }
             }
           }
         }
       }},
      {"a leaf left out, and its keys",
       [](ProvedRange& x) {
         for (RangeProofNode& n : x.proof.nodes) {
           for (uint32_t& e : n.expanded) {
             if (e == 0 || x.proof.nodes[e].level != 0) continue;
             for (const ProofEntry& gone : x.proof.nodes[e].entries) {
               for (size_t i = 0; i < x.kvs.size(); ++i) {
                 if (x.kvs[i].first == gone.key) x.kvs.erase(x.kvs.begin() + i);
               }
             }
             // Out of the proof, and the later nodes renumbered.
             const uint32_t gone_index = e;
             e = 0;
             x.proof.nodes.erase(x.proof.nodes.begin() + gone_index);
             for (RangeProofNode& m : x.proof.nodes) {
               for (uint32_t& f : m.expanded) {
                 if (f > gone_index) --f;
               }
             }
             return;
           }
         }
       }},
      {"a sibling hash", [](ProvedRange& x) { x.proof.nodes[0].children.back()[1] ^= 1; }},
  };
  for (auto& [what, lie] : lies) {
    ProvedRange forged = r;
    lie(forged);
    EXPECT_THAT(check(forged, r.proved_end),
                StatusIs(absl::StatusCode::kDataLoss, "verification failed"))
        << what;
  }
  // A scan cut short by a limit proves only up to its last key, not the
  // whole range.
  ASSERT_OK_AND_ASSIGN(ProvedRange cut, db_->ProveScan(ReadOptions(), begin, end, 3));
  ASSERT_EQ(cut.kvs.size(), 3u);
  EXPECT_OK(check(cut, cut.proved_end));
  EXPECT_THAT(check(cut, end), StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
}

TEST_F(ProofTest, EmptyAndEmptiedTreesVerify) {
  ProvedValue at0 = ProveAndCheck(0, "k");
  EXPECT_FALSE(at0.value);
  EXPECT_TRUE(at0.proof.path.empty() && at0.proof.leaf.empty());
  ASSERT_OK(db_->Put("k", "v"));
  ASSERT_OK(model_.Put("k", "v"));
  ASSERT_OK(db_->Delete("k"));
  ASSERT_OK(model_.Delete("k"));
  ProveAndCheck(1, "k");
  ProveAndCheck(2, "k");
  // The same contents at another version: another digest.
  EXPECT_NE(DigestAt(0), DigestAt(2));
}

TEST_F(ProofTest, ChainLinksTakeATrustedDigestForward) {
  ASSERT_NO_FATAL_FAILURE(Workload(30));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_NO_FATAL_FAILURE(Workload(30));
  const Hash trusted = DigestAt(10);
  ASSERT_OK_AND_ASSIGN(std::vector<DigestLink> links, db_->DigestLinks(10, 60));
  ASSERT_EQ(links.size(), 50u);
  EXPECT_THAT(VerifyChain(10, trusted, links), IsOkAndHolds(DigestAt(60)));
  ASSERT_OK_AND_ASSIGN(VersionDigest d33, db_->GetDigest(33));
  EXPECT_EQ(links[22].root_hash, d33.root_hash);
  EXPECT_EQ(ChainDigest(DigestAt(32), 33, d33.root_hash, d33.commit_micros),
            d33.digest);
  // Nothing to extend: the trusted digest itself.
  ASSERT_OK_AND_ASSIGN(std::vector<DigestLink> none, db_->DigestLinks(60, 60));
  EXPECT_TRUE(none.empty());

  // An altered link leads elsewhere; a skipped one is refused.
  std::vector<DigestLink> bad = links;
  bad[7].root_hash[3] ^= 1;
  ASSERT_OK_AND_ASSIGN(Hash elsewhere, VerifyChain(10, trusted, bad));
  EXPECT_NE(elsewhere, DigestAt(60));
  bad = links;
  bad.erase(bad.begin() + 7);
  EXPECT_THAT(VerifyChain(10, trusted, bad),
              StatusIs(absl::StatusCode::kDataLoss, "skips from version 17"));
}

// Digests are recorded at commit: reopening, replaying after a crash and
// rebuilding must reproduce them, whatever inline limit the reopen asks
// for (the recorded one applies).
TEST_F(ProofTest, DigestsSurviveReopenCrashAndOptionChanges) {
  ASSERT_NO_FATAL_FAILURE(Workload(50));
  ASSERT_OK(db_->Checkpoint());
  ASSERT_NO_FATAL_FAILURE(Workload(50));
  std::vector<Hash> digests;
  for (uint64_t v = 0; v <= 100; ++v) digests.push_back(DigestAt(v));
  options_.inline_value_limit = 128;
  ASSERT_NO_FATAL_FAILURE(Open(/*crash=*/true));  // replays 51..100
  EXPECT_EQ(db_->GetStats().replayed_commits, 50u);
  for (uint64_t v = 0; v <= 100; ++v) EXPECT_EQ(DigestAt(v), digests[v]) << v;
  ASSERT_NO_FATAL_FAILURE(Open());
  for (uint64_t v = 0; v <= 100; v += 9) ProveAndCheck(v, KeyOf(v));
  ASSERT_NO_FATAL_FAILURE(Workload(5));  // commits chain on the recorded one
  ASSERT_OK_AND_ASSIGN(std::vector<DigestLink> links, db_->DigestLinks(100, 105));
  EXPECT_THAT(VerifyChain(100, digests[100], links),
              IsOkAndHolds(DigestAt(105)));
}

class LyingProofTest : public ProofTest {
 protected:
  void SetUp() override {
    ProofTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(Workload(60));
    ASSERT_OK(db_->Checkpoint());
    ASSERT_NO_FATAL_FAILURE(Workload(20));
    latest_ = db_->LatestVersion();
    trusted_ = DigestAt(latest_);
    // A present inline value, a present blob, and an absent key.
    for (int i = 0; i < kKeys && (inline_key_.empty() || blob_key_.empty() ||
                                  absent_key_.empty());
         ++i) {
      absl::StatusOr<std::string> v = model_.Get(ReadOptions(), KeyOf(i));
      if (!v.ok()) {
        if (absent_key_.empty()) absent_key_ = KeyOf(i);
      } else if (v->size() > options_.inline_value_limit) {
        if (blob_key_.empty()) blob_key_ = KeyOf(i);
      } else if (inline_key_.empty() && !v->empty()) {
        inline_key_ = KeyOf(i);
      }
    }
    ASSERT_FALSE(inline_key_.empty() || blob_key_.empty() || absent_key_.empty());
  }

  // Whether (proof, value) verifies for `key` against the trusted digest.
  absl::Status Check(const ReadProof& proof, const std::string& key,
                     const std::optional<std::string>& value) {
    return VerifyReadAgainst(proof, key, value, trusted_);
  }

  uint64_t latest_ = 0;
  Hash trusted_{};
  std::string inline_key_, blob_key_, absent_key_;
};

TEST_F(LyingProofTest, AlteredValuesFail) {
  for (const std::string& key : {inline_key_, blob_key_}) {
    ProvedValue p = ProveAndCheck(latest_, key);
    ASSERT_TRUE(p.value);
    std::string altered = *p.value;
    altered[altered.size() / 2] ^= 1;
    EXPECT_THAT(Check(p.proof, key, altered),
                StatusIs(absl::StatusCode::kDataLoss,
                         "verification failed: the value returned is not"))
        << key;
    // Altering the proof's leaf to match: the leaf no longer hashes to
    // what its parent holds.
    for (ProofEntry& e : p.proof.leaf) {
      if (e.key == key && !e.blob) e.value = altered;
      if (e.key == key && e.blob) {
        const Hash d = BlobDigest(altered);
        e.value.assign(reinterpret_cast<const char*>(d.data()), d.size());
      }
    }
    EXPECT_THAT(Check(p.proof, key, altered),
                StatusIs(absl::StatusCode::kDataLoss, "verification failed"))
        << key;
  }
}

TEST_F(LyingProofTest, HiddenKeysFail) {
  ProvedValue p = ProveAndCheck(latest_, inline_key_);
  // Claiming absence with the honest proof.
  EXPECT_THAT(Check(p.proof, inline_key_, std::nullopt),
              StatusIs(absl::StatusCode::kDataLoss, "said it is absent"));
  // Claiming absence with the key cut out of the proof.
  ReadProof cut = p.proof;
  for (size_t i = 0; i < cut.leaf.size(); ++i) {
    if (cut.leaf[i].key == inline_key_) cut.leaf.erase(cut.leaf.begin() + i);
  }
  EXPECT_THAT(Check(cut, inline_key_, std::nullopt),
              StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  // Claiming absence with another leaf's honest proof (a key the server
  // routes elsewhere).
  ReadProof other = ProveAndCheck(latest_, "zzz").proof;
  ASSERT_NE(other.leaf.front().key, p.proof.leaf.front().key);
  EXPECT_THAT(Check(other, inline_key_, std::nullopt),
              StatusIs(absl::StatusCode::kDataLoss, "verification failed"));
  // And a value invented for an absent key.
  ProvedValue absent = ProveAndCheck(latest_, absent_key_);
  EXPECT_FALSE(absent.value);
  EXPECT_THAT(Check(absent.proof, absent_key_, std::string("invented")),
              StatusIs(absl::StatusCode::kDataLoss, "absent from the proof"));
}

TEST_F(LyingProofTest, AnswersFromAnOlderVersionFail) {
  // A key that changed in the latest version, answered from the one before
  // while claiming the latest.
  ASSERT_OK(db_->Put(inline_key_, "newest"));
  ASSERT_OK(model_.Put(inline_key_, "newest"));
  const uint64_t now = db_->LatestVersion();
  const Hash trusted_now = DigestAt(now);
  ProvedValue old = ProveAndCheck(now - 1, inline_key_);
  EXPECT_THAT(VerifyReadAgainst(old.proof, inline_key_, old.value, trusted_now),
              StatusIs(absl::StatusCode::kDataLoss, "not the trusted"));
  ReadProof relabelled = old.proof;
  relabelled.version = now;
  EXPECT_THAT(
      VerifyReadAgainst(relabelled, inline_key_, old.value, trusted_now),
      StatusIs(absl::StatusCode::kDataLoss, "not the trusted"));
}

TEST_F(LyingProofTest, ForgedProofsFail) {
  ProvedValue p = ProveAndCheck(latest_, inline_key_);
  ASSERT_GE(p.proof.path.size(), 2u);
  std::vector<std::pair<std::string, std::function<void(ReadProof&)>>> forgeries = {
      {"sibling hash", [](ReadProof& f) { f.path[0].children.back()[0] ^= 1; }},
      {"separator", [](ReadProof& f) { f.path[0].separators[0] += "x"; }},
      {"level", [](ReadProof& f) { f.path[0].level += 1; }},
      {"dropped level", [](ReadProof& f) { f.path.erase(f.path.begin()); }},
      {"mod_version", [](ReadProof& f) { f.leaf[0].mod_version += 1; }},
      {"extra entry",
       [](ReadProof& f) { f.leaf.push_back({"~~~", false, "x", 1}); }},
      {"blob flag", [](ReadProof& f) {
         for (ProofEntry& e : f.leaf) {
           if (!e.blob) { e.blob = true; e.value.resize(32); break; }
         }
       }},
      {"previous digest", [](ReadProof& f) { f.previous_digest[0] ^= 1; }},
      {"commit time", [](ReadProof& f) { f.commit_micros += 1; }},
  };
  for (auto& [what, forge] : forgeries) {
    ReadProof forged = p.proof;
    forge(forged);
    EXPECT_THAT(Check(forged, inline_key_, p.value),
                StatusIs(absl::StatusCode::kDataLoss, "verification failed"))
        << what;
  }
  EXPECT_OK(Check(p.proof, inline_key_, p.value));
}

// A page rewritten with a valid checksum (storage that lies, or a bug that
// writes the wrong bytes): the checksum cannot see it, the hashes can.
TEST_F(LyingProofTest, PageAlteredBehindAValidChecksumIsCaught) {
  ASSERT_OK(db_->Checkpoint());
  ASSERT_OK_AND_ASSIGN(Entry current, db_->GetEntry(ReadOptions(), inline_key_));
  uint64_t page_id = 0;
  std::string page;
  ASSERT_OK(store_->Scan(internal::Space::kPages, "",
                         [&](std::string_view k, std::string_view bytes) {
                           uint64_t id;
                           if (!internal::ParseBigEndianKey(k, &id)) return true;
                           auto node = internal::DecodePage(std::string(bytes), id);
                           if (!node.ok() || !(*node)->is_leaf()) return true;
                           // The latest version's leaf: the last page
                           // written with the key's current value.
                           for (const auto& e : (*node)->entries) {
                             if (e.key == inline_key_ &&
                                 e.mod_version == current.mod_version) {
                               page_id = id;
                               page = std::string(bytes);
                             }
                           }
                           return true;
                         }));
  ASSERT_NE(page_id, 0u) << "no stored leaf holds " << inline_key_;
  ASSERT_OK_AND_ASSIGN(internal::NodeRef node, internal::DecodePage(page, page_id));
  internal::Node altered = *node;
  for (auto& e : altered.entries) {
    if (e.key == inline_key_) e.value.data = testing::Keep("forged value");
  }
  internal::StoreBatch batch;
  batch.Put(internal::Space::kPages, internal::BigEndianKey(page_id),
            internal::EncodePage(altered, page_id));
  ASSERT_OK(store_->Commit(batch, /*sync=*/true));
  ASSERT_NO_FATAL_FAILURE(Open());  // nothing cached

  ASSERT_OK_AND_ASSIGN(ProvedValue p, db_->ProveGet(ReadOptions(), inline_key_));
  ASSERT_EQ(p.value, std::optional<std::string>("forged value"));
  EXPECT_THAT(Check(p.proof, inline_key_, p.value),
              StatusIs(absl::StatusCode::kDataLoss,
                       "is not the one its parent holds"));
  EXPECT_THAT(db_->Check(),
              StatusIs(absl::StatusCode::kInternal,
                       "hash differs from the one its parent holds"));
}

TEST_F(ProofTest, DatabasesThatDoNotHashSaySo) {
  options_.verifiable = false;
  store_ = internal::NewMemoryPageStore();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(db_->Put("k", "v"));
  EXPECT_THAT(db_->ProveGet(ReadOptions(), "k"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "no Merkle hashes"));
  EXPECT_THAT(db_->GetDigest(1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(db_->DigestLinks(0, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Fixed at creation.
  options_.verifiable = true;
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_THAT(db_->ProveGet(ReadOptions(), "k"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(db_->Get(ReadOptions(), "k"), IsOkAndHolds(std::string("v")));
}

TEST_F(ProofTest, BadRequestsGetClearErrors) {
  ASSERT_NO_FATAL_FAILURE(Workload(5));
  EXPECT_THAT(db_->ProveGet(ReadOptions(), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "empty key"));
  EXPECT_THAT(db_->ProveGet(At(99), "k"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->GetDigest(6), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(db_->DigestLinks(4, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, "from is after to"));
  EXPECT_THAT(db_->DigestLinks(2, 9), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(db_->ReleaseBefore(4));
  ASSERT_OK(db_->Reclaim());
  EXPECT_THAT(db_->GetDigest(2), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(db_->DigestLinks(1, 5),
              StatusIs(absl::StatusCode::kOutOfRange, "is released"));
  EXPECT_THAT(HashFromHex("abc"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HashFromHex(std::string(64, 'g')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const Hash h = DigestAt(5);
  EXPECT_THAT(HashFromHex(HashToHex(h)), IsOkAndHolds(h));
}

}  // namespace
}  // namespace cowdb
