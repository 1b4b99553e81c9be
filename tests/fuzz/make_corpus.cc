// Writes the page fuzzer's seed corpus (valid pages), the corpus of
// corrupted pages that must decode to DataLoss, and the seed scripts of the
// operation fuzzer (db_ops/) and the handler fuzzer (service/).
//
// The page seeds are format 2 (what EncodePage writes); the format-1 seeds
// (page/format1_*) were written by the build before it and are kept as
// they are.
//
//   bazel run //tests/fuzz:make_corpus -- $PWD/tests/fuzz/corpus

#include <fstream>
#include <iostream>
#include <random>

#include "cowdb/v1/cowdb.pb.h"
#include "engine/format/page.h"
#include "engine/util/coding.h"
#include "tests/fuzz/db_ops_input.h"
#include "tests/fuzz/page_input.h"
#include "tests/util/kept_bytes.h"
#include "tests/fuzz/service_input.h"

namespace cowdb::internal {
namespace {

Node Leaf(int n, bool blobs) {
  Node node;
  node.birth = 42;
  for (int i = 0; i < n; ++i) {
    LeafEntry e;
    e.key = testing::Keep("key" + std::to_string(1000 + i));
    e.mod_version = 40 + i % 3;
    e.create_version = 30 + i % 10;
    e.writes = 1 + i % 4;
    e.lease = i % 2 == 0 ? 0 : 70000 + i;
    if (blobs && i % 3 == 0) {
      e.value.blob_id = 900 + i;
      e.value.blob_size = 4096 + i;
    } else {
      e.value.data = testing::Keep(std::string(i % 17, 'a' + i % 26));
    }
    node.entries.push_back(e);
  }
  return node;
}

Node Internal(int n) {
  Node node;
  node.level = 1;
  node.birth = 43;
  for (int i = 0; i < n; ++i) {
    ChildRef c;
    c.page_id = 500 + i;
    c.count = 30 + i;
    c.max_mod = 41;
    node.children.push_back(c);
    if (i > 0) node.keys.push_back(testing::Keep("sep" + std::to_string(100 + i)));
  }
  return node;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace
}  // namespace cowdb::internal

namespace cowdb::fuzz {
namespace {

// A script of operations, each an opcode and its argument bytes.
using Script = std::vector<std::vector<uint8_t>>;

std::string Bytes(const Script& script) {
  std::string out;
  for (const auto& op : script) out.append(op.begin(), op.end());
  return out;
}

// Seed scripts for db_ops_fuzzer, by name. Key bytes 0..39 are k00..k39;
// version byte 0 is the latest, 2 + n is n versions back.
std::vector<std::pair<std::string, std::string>> DbOpsSeeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  // Writes, then every read path.
  seeds.push_back({"writes_and_reads", Bytes({
      {kPut, 1, 5}, {kPut, 2, 7}, {kPut, 3, 15}, {kDelete, 2},
      {kBatch, 4, 1, 10, 3, 0, 11, 4, 0, 1, 0, 2, 12, 0},
      {kGet, 0, 1}, {kGet, 3, 2}, {kScan, 0, 0}, {kScan, 0, 1}, {kScan, 4, 0},
      {kSeek, 0, 2, 0x5a}, {kCount, 0, 1, 11}, {kCount, 2, 0, 255}, {kCheck}})});
  // Enough keys for several pages, blobs included, then a reopen.
  Script many;
  for (uint8_t k = 0; k < 40; ++k) many.push_back({kPut, k, static_cast<uint8_t>(k * 5 + 7)});
  many.push_back({kBatch, 8, 0, 3, 0, 1, 4, 7, 0, 5, 0, 1, 6, 15, 0, 7, 0, 1, 8, 23, 0, 9, 0,
                  1, 10, 31});
  many.push_back({kReopen});
  many.push_back({kScan, 0, 1});
  many.push_back({kCheck});
  seeds.push_back({"many_keys_reopen", Bytes(many)});
  // Transactions: read-your-writes, a conflict between the two slots, a
  // read-only one at an old version, a rollback.
  seeds.push_back({"transactions", Bytes({
      {kPut, 1, 1}, {kPut, 2, 2},
      {kBegin, 0, 0, 0}, {kBegin, 1, 1, 0},
      {kTxnGet, 0, 1}, {kTxnPut, 0, 3, 9}, {kTxnScan, 0, 1}, {kTxnCount, 0, 0, 255},
      {kTxnPut, 1, 1, 4}, {kCommit, 1}, {kTxnPut, 0, 1, 6}, {kCommit, 0},
      {kBegin, 0, 3, 3}, {kTxnGet, 0, 1}, {kTxnPut, 0, 1, 1}, {kCommit, 0},
      {kBegin, 1, 0, 0}, {kTxnDelete, 1, 2}, {kRollback, 1}, {kBegin, 0, 4, 2},
      {kScan, 0, 0}})});
  // Conflicts without ranges: a serializable read of a key changed since
  // (aborts), a blind serializable write of it (commits), a snapshot
  // write of it (aborts).
  seeds.push_back({"txn_key_conflicts", Bytes({
      {kPut, 1, 1}, {kBegin, 0, 0, 0}, {kTxnGet, 0, 1}, {kPut, 1, 2},
      {kTxnPut, 0, 2, 3}, {kCommit, 0},
      {kBegin, 0, 0, 0}, {kPut, 1, 4}, {kTxnPut, 0, 1, 5}, {kCommit, 0},
      {kBegin, 1, 1, 0}, {kTxnGet, 1, 2}, {kPut, 1, 6}, {kTxnPut, 1, 1, 7}, {kCommit, 1},
      {kGet, 0, 1}})});
  // Per-key metadata: leases (value bytes 3 and 4 attach 1 and 2, see
  // LeaseOf), overwrites, a delete and recreate, repeats in a batch, a
  // transaction's own leased write; then ReleaseBefore below, at and after
  // the latest, and reads of released versions.
  seeds.push_back({"key_meta", Bytes({
      {kPut, 1, 3}, {kPut, 1, 4}, {kPut, 1, 5}, {kDelete, 1}, {kPut, 1, 8},
      {kBatch, 3, 1, 2, 3, 1, 2, 9, 1, 3, 0},
      {kBegin, 0, 0, 0}, {kTxnPut, 0, 3, 13}, {kTxnGet, 0, 3}, {kTxnScan, 0, 0},
      {kCommit, 0}, {kGet, 0, 1}, {kGet, 4, 1}, {kScan, 0, 0}, {kDiff, 6, 0, 255, 255},
      {kTag, 0, 5}, {kReleaseBefore, 3}, {kGet, 5, 1}, {kGet, 6, 1},
      {kReleaseBefore, 1}, {kReleaseBefore, 0}, {kWatch, 7, 255, 255},
      {kReopen}, {kGet, 5, 1}, {kReclaim}, {kCheck}})});
  // Retention: snapshots, tags, reclamation, reads of released versions.
  seeds.push_back({"retention", Bytes({
      {kPut, 1, 1}, {kSnapshot}, {kPut, 1, 2}, {kPut, 2, 3}, {kTag, 0, 3},
      {kPut, 3, 4}, {kPut, 4, 5}, {kPut, 5, 6}, {kPut, 6, 7}, {kReclaim},
      {kGet, 7, 1}, {kGet, 6, 1}, {kScan, 0, 2}, {kRelease, 0}, {kReclaim},
      {kGet, 8, 1}, {kUntag, 0}, {kReclaim}, {kTag, 1, 9}, {kCheck}})});
  // Diffs and change feeds across released versions.
  seeds.push_back({"diff_watch", Bytes({
      {kPut, 1, 1}, {kPut, 2, 2}, {kDelete, 1}, {kPut, 3, 3}, {kPut, 4, 4},
      {kDiff, 5, 0, 0, 255}, {kWatch, 4, 0, 255}, {kPut, 5, 5}, {kPut, 6, 6},
      {kReclaim}, {kWatch, 8, 1, 5}, {kDiff, 3, 0, 2, 4}, {kWatch, 1, 0, 255}})});
  // Bounded transaction scans: a write just outside the bounds commits, a
  // phantom inside aborts; bad bounds.
  seeds.push_back({"txn_bounded_scans", Bytes({
      {kPut, 1, 1}, {kPut, 3, 2}, {kPut, 5, 3},
      {kBegin, 0, 0, 0}, {kTxnBoundedScan, 0, 1, 3, 0}, {kTxnPut, 0, 9, 4},
      {kPut, 3, 5}, {kCommit, 0},
      {kBegin, 1, 0, 0}, {kTxnBoundedScan, 1, 1, 4, 1}, {kTxnPut, 1, 9, 6},
      {kPut, 2, 7}, {kCommit, 1},
      {kBegin, 0, 0, 0}, {kTxnBoundedScan, 0, 4, 2, 0}, {kTxnBoundedScan, 0, 255, 255, 1},
      {kTxnPut, 0, 9, 8}, {kPut, 0, 9}, {kCommit, 0}})});
  // Key history: writes, deletes and recreations of one key among its
  // neighbours' writes, the tree emptied and refilled, histories with
  // limits and bounds, across a reopen and released versions.
  seeds.push_back({"history", Bytes({
      {kPut, 1, 1}, {kPut, 2, 2}, {kPut, 1, 3}, {kDelete, 1}, {kPut, 0, 4},
      {kPut, 1, 5}, {kDelete, 1}, {kDelete, 0}, {kDelete, 2}, {kPut, 3, 6},
      {kPut, 1, 7}, {kHistory, 1, 0, 0, 0}, {kHistory, 1, 0, 0, 2},
      {kHistory, 1, 6, 3, 0}, {kHistory, 2, 0, 0, 0}, {kHistory, 255, 0, 0, 0},
      {kHistory, 1, 0, 1, 0}, {kReopen}, {kHistory, 1, 0, 0, 0},
      {kReleaseBefore, 4}, {kHistory, 1, 0, 0, 0}, {kHistory, 1, 9, 0, 1}})});
  // Bad input: empty and over-long keys, an over-long value, empty tags.
  seeds.push_back({"bad_input", Bytes({
      {kPut, 255, 1}, {kPut, 254, 1}, {kPut, 1, 255}, {kDelete, 255},
      {kBatch, 2, 1, 1, 1, 1, 255, 1}, {kTag, 3, 0}, {kUntag, 1}, {kGet, 1, 1},
      {kBegin, 0, 2, 0}, {kTxnPut, 0, 1, 1}, {kCommit, 0}})});
  // Branches (branch bytes: 0 main, 1 "" (main), 2 b0, 3 b1, 4 b2, 5 b3/x,
  // 6 bad:name; see BranchOf): forks of the latest and an older tree,
  // writes and reads on a branch, a branch snapshot read by kScan, bad
  // forks and deletions, reads of a deleted branch at versions with and
  // without it.
  seeds.push_back({"branches", Bytes({
      {kPut, 1, 1}, {kPut, 2, 7}, {kFork, 2, 0, 0}, {kBranchPut, 2, 1, 3},
      {kBranchDelete, 2, 2}, {kPut, 3, 4}, {kBranchRead, 2, 0, 1, 0},
      {kBranchRead, 1, 0, 1, 1}, {kBranchRead, 2, 4, 1, 0}, {kFork, 3, 2, 5},
      {kFork, 3, 0, 0}, {kFork, 6, 0, 0}, {kFork, 0, 0, 0}, {kFork, 4, 4, 0},
      {kFork, 4, 0, 1}, {kBranchSnapshot, 2}, {kBranchPut, 2, 5, 12}, {kScan, 0, 2},
      {kBranchPut, 3, 1, 4}, {kDeleteBranch, 2}, {kDeleteBranch, 0}, {kDeleteBranch, 4},
      {kBranchRead, 2, 0, 1, 0}, {kBranchRead, 2, 3, 1, 0}, {kBranchPut, 2, 1, 1},
      {kReopen}, {kBranchRead, 3, 0, 2, 1}, {kReclaim}, {kFork, 4, 3, 9}, {kCheck}})});
  // Merges: a conflict under each policy, a merge back, two forks of one
  // branch, branches with no known ancestor, bad merges.
  seeds.push_back({"branch_merges", Bytes({
      {kPut, 1, 1}, {kPut, 2, 2}, {kPut, 3, 3}, {kFork, 2, 0, 0}, {kBranchPut, 2, 1, 4},
      {kPut, 1, 5}, {kBranchDelete, 2, 3}, {kPut, 4, 6}, {kMerge, 2, 0, 0},
      {kMerge, 2, 0, 1}, {kBranchPut, 2, 1, 15}, {kMerge, 2, 0, 2}, {kMerge, 0, 2, 2},
      {kMerge, 0, 2, 0}, {kFork, 3, 0, 0}, {kPut, 5, 7}, {kFork, 4, 0, 0},
      {kBranchPut, 3, 6, 8}, {kMerge, 3, 4, 0}, {kFork, 5, 4, 0}, {kMerge, 5, 2, 0},
      {kMerge, 2, 2, 0}, {kMerge, 6, 0, 0}, {kDeleteBranch, 2}, {kMerge, 0, 2, 0},
      {kBranchRead, 4, 0, 6, 0}, {kCheck}})});
  // Transactions on branches (a commit on main conflicts only with main's),
  // a read-only one on a branch at a version, diffs between trees, a
  // watcher on a branch that reaches its deletion.
  seeds.push_back({"branch_txn_diff_watch", Bytes({
      {kPut, 1, 1}, {kFork, 2, 0, 0}, {kBranchBegin, 0, 2, 0, 0}, {kBranchBegin, 1, 0, 1, 0},
      {kTxnGet, 0, 1}, {kTxnPut, 0, 1, 2}, {kTxnPut, 1, 1, 3}, {kPut, 1, 4}, {kCommit, 0},
      {kCommit, 1}, {kBranchBegin, 0, 2, 3, 2}, {kTxnScan, 0, 0}, {kCommit, 0},
      {kBranchBegin, 1, 6, 0, 0}, {kBranchPut, 2, 2, 5}, {kWatchBranch, 2, 5, 255, 255},
      {kDiffTrees, 0, 0, 2, 0, 255, 255}, {kDiffTrees, 2, 3, 0, 0, 1, 5},
      {kDiffTrees, 2, 5, 2, 0, 255, 255}, {kDiffTrees, 4, 0, 0, 0, 255, 255},
      {kDeleteBranch, 2}, {kWatchBranch, 2, 4, 255, 255}, {kPut, 2, 6},
      {kWatch, 4, 255, 255}, {kReopen}, {kCheck}})});
  // A long random script.
  std::mt19937 rng(7);
  std::string random;
  for (int i = 0; i < 1500; ++i) random.push_back(static_cast<char>(rng() % 256));
  seeds.push_back({"random", random});
  return seeds;
}

std::string Serialized(const google::protobuf::Message& m) { return m.SerializeAsString(); }

// Seed call sequences for service_fuzzer.
std::vector<std::pair<std::string, std::string>> ServiceSeeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  v1::PutRequest put;
  v1::GetRequest get;
  v1::ScanRequest scan;
  v1::DeleteRequest del;
  {
    std::string in;
    for (int i = 0; i < 8; ++i) {
      put.set_key("key" + std::to_string(i));
      put.set_value(std::string(i * 10, 'v'));
      AppendCall(&in, kRpcPut, Serialized(put));
    }
    get.set_key("key3");
    AppendCall(&in, kRpcGet, Serialized(get));
    get.mutable_read()->set_at_version(2);
    AppendCall(&in, kRpcGet, Serialized(get));
    scan.mutable_range()->set_prefix("key");
    AppendCall(&in, kRpcScan, Serialized(scan));
    scan.set_reverse(true);
    scan.set_limit(5);
    AppendCall(&in, kRpcScan, Serialized(scan));
    scan.set_count_only(true);
    AppendCall(&in, kRpcScan, Serialized(scan));
    // Verified reads: a proved get (present, absent, at a version) and
    // proved scans (whole, limited).
    v1::GetRequest proved;
    proved.set_key("key5");
    proved.set_proof(true);
    AppendCall(&in, kRpcGet, Serialized(proved));
    proved.set_key("nokey");
    AppendCall(&in, kRpcGet, Serialized(proved));
    proved.mutable_read()->set_at_version(3);
    AppendCall(&in, kRpcGet, Serialized(proved));
    v1::ScanRequest proved_scan;
    proved_scan.mutable_range()->set_prefix("key");
    proved_scan.set_proof(true);
    AppendCall(&in, kRpcScan, Serialized(proved_scan));
    proved_scan.set_limit(3);
    AppendCall(&in, kRpcScan, Serialized(proved_scan));
    del.set_key("key1");
    AppendCall(&in, kRpcDelete, Serialized(del));
    AppendCall(&in, kRpcReclaim, "");
    AppendCall(&in, kRpcListVersions, "");
    AppendCall(&in, kRpcStatus, "");
    seeds.push_back({"reads_writes", in});
  }
  {
    std::string in;
    put.set_key("a");
    put.set_value("1");
    AppendCall(&in, kRpcPut, Serialized(put));
    v1::BeginRequest begin;
    AppendCall(&in, kRpcBegin, Serialized(begin));
    begin.set_isolation(v1::BeginRequest::SNAPSHOT);
    AppendCall(&in, kRpcBegin, Serialized(begin));
    v1::WriteRequest write;
    write.set_transaction_id(std::string(1, '\0'));
    auto* m = write.add_mutations()->mutable_put();
    m->set_key("b");
    m->set_value("2");
    write.add_mutations()->set_delete_key("a");
    AppendCall(&in, kRpcWrite, Serialized(write));
    get.Clear();
    get.set_key("b");
    get.mutable_read()->set_transaction_id(std::string(1, '\0'));
    AppendCall(&in, kRpcGet, Serialized(get));
    scan.Clear();
    scan.mutable_read()->set_transaction_id(std::string(1, '\0'));
    AppendCall(&in, kRpcScan, Serialized(scan));
    v1::CommitRequest commit;
    commit.set_transaction_id(std::string(1, '\0'));
    AppendCall(&in, kRpcCommit, Serialized(commit));
    commit.set_transaction_id(std::string(1, '\1'));
    commit.add_mutations()->set_delete_key("a");
    AppendCall(&in, kRpcCommit, Serialized(commit));
    v1::RollbackRequest rollback;
    rollback.set_transaction_id(std::string(1, '\1'));
    AppendCall(&in, kRpcRollback, Serialized(rollback));
    for (int i = 0; i < 4; ++i) AppendCall(&in, kRpcBegin, "");  // over the cap
    AppendCall(&in, kRpcStatus, "");
    seeds.push_back({"transactions", in});
  }
  {
    std::string in;
    v1::TxnRequest txn;
    auto* cmp = txn.add_compares();
    cmp->set_key("lock");
    txn.add_success()->mutable_mutation()->mutable_put()->set_key("lock");
    txn.add_success()->set_get_key("lock");
    txn.add_failure()->set_get_key("lock");
    AppendCall(&in, kRpcTxn, Serialized(txn));
    AppendCall(&in, kRpcTxn, Serialized(txn));
    v1::TagRequest tag;
    tag.set_name("release");
    tag.set_version(1);
    AppendCall(&in, kRpcTag, Serialized(tag));
    AppendCall(&in, kRpcListTags, "");
    v1::DiffRequest diff;
    diff.set_from_version(0);
    diff.set_to_version(2);
    AppendCall(&in, kRpcDiff, Serialized(diff));
    diff.mutable_range()->set_start("z");
    diff.mutable_range()->set_end("a");  // bad range
    AppendCall(&in, kRpcDiff, Serialized(diff));
    v1::UntagRequest untag;
    untag.set_name("release");
    AppendCall(&in, kRpcUntag, Serialized(untag));
    AppendCall(&in, kRpcUntag, Serialized(untag));
    seeds.push_back({"txn_tags_diff", in});
  }
  {
    // Key history (whole, limited, bounded, bad) and VersionAt.
    std::string in;
    put.set_key("h");
    for (int i = 0; i < 5; ++i) {
      put.set_value(std::to_string(i));
      AppendCall(&in, kRpcPut, Serialized(put));
    }
    del.set_key("h");
    AppendCall(&in, kRpcDelete, Serialized(del));
    AppendCall(&in, kRpcPut, Serialized(put));
    v1::HistoryRequest history;
    history.set_key("h");
    AppendCall(&in, kRpcHistory, Serialized(history));
    history.set_limit(2);
    AppendCall(&in, kRpcHistory, Serialized(history));
    history.set_from_version(2);
    history.set_to_version(5);
    AppendCall(&in, kRpcHistory, Serialized(history));
    history.set_from_version(6);  // after to
    AppendCall(&in, kRpcHistory, Serialized(history));
    history.set_key("");
    AppendCall(&in, kRpcHistory, Serialized(history));
    v1::VersionAtRequest at;
    at.set_unix_micros(1);
    AppendCall(&in, kRpcVersionAt, Serialized(at));
    at.set_unix_micros(INT64_MAX);
    AppendCall(&in, kRpcVersionAt, Serialized(at));
    AppendCall(&in, kRpcCheck, "");
    seeds.push_back({"history_version_at", in});
  }
  {
    // Branches: a fork (of the latest tree and of an older one), writes
    // and reads on it and on main, a diff across them, merges under each
    // policy (with a conflict), bad names and an unknown branch, a
    // deletion, then a check.
    std::string in;
    put.Clear();
    put.set_key("k");
    put.set_value("base");
    AppendCall(&in, kRpcPut, Serialized(put));
    v1::ForkRequest fork;
    fork.set_name("dev");
    AppendCall(&in, kRpcFork, Serialized(fork));
    AppendCall(&in, kRpcFork, Serialized(fork));  // exists
    fork.set_name("bad name");
    AppendCall(&in, kRpcFork, Serialized(fork));
    fork.set_name("old");
    fork.set_from_version(0);  // an older tree: forked with a checkpoint
    AppendCall(&in, kRpcFork, Serialized(fork));
    put.set_branch("dev");
    put.set_value("theirs");
    AppendCall(&in, kRpcPut, Serialized(put));
    put.set_key("only-dev");
    AppendCall(&in, kRpcPut, Serialized(put));
    put.set_branch("");
    put.set_key("k");
    put.set_value("ours");
    AppendCall(&in, kRpcPut, Serialized(put));
    get.Clear();
    get.set_key("k");
    get.set_branch("dev");
    AppendCall(&in, kRpcGet, Serialized(get));
    get.set_branch("nope");
    AppendCall(&in, kRpcGet, Serialized(get));
    scan.Clear();
    scan.set_branch("dev");
    AppendCall(&in, kRpcScan, Serialized(scan));
    scan.set_count_only(true);
    AppendCall(&in, kRpcScan, Serialized(scan));
    v1::DiffRequest diff;
    diff.set_from_version(6);  // main and dev at the latest version
    diff.set_to_version(6);
    diff.set_to_branch("dev");
    AppendCall(&in, kRpcDiff, Serialized(diff));
    AppendCall(&in, kRpcListBranches, "");
    v1::MergeRequest merge;
    merge.set_from("dev");
    AppendCall(&in, kRpcMerge, Serialized(merge));  // a conflict: nothing merged
    merge.set_policy(v1::MergeRequest::OURS);
    AppendCall(&in, kRpcMerge, Serialized(merge));
    merge.set_from("");
    merge.set_into("dev");
    merge.set_policy(v1::MergeRequest::THEIRS);
    AppendCall(&in, kRpcMerge, Serialized(merge));
    merge.set_policy(static_cast<v1::MergeRequest::Policy>(9));
    AppendCall(&in, kRpcMerge, Serialized(merge));
    v1::BeginRequest begin;
    begin.set_branch("dev");
    AppendCall(&in, kRpcBegin, Serialized(begin));
    v1::TxnRequest txn;
    txn.set_branch("dev");
    txn.add_success()->mutable_mutation()->set_delete_key("only-dev");
    AppendCall(&in, kRpcTxn, Serialized(txn));
    v1::DeleteBranchRequest drop;
    drop.set_name("dev");
    AppendCall(&in, kRpcDeleteBranch, Serialized(drop));
    AppendCall(&in, kRpcDeleteBranch, Serialized(drop));  // gone
    AppendCall(&in, kRpcListVersions, "");
    AppendCall(&in, kRpcCheck, "");
    seeds.push_back({"branches", in});
  }
  return seeds;
}

}  // namespace
}  // namespace cowdb::fuzz

int main(int argc, char** argv) {
  using namespace cowdb::internal;
  if (argc != 2) {
    std::cerr << "usage: make_corpus <corpus dir>\n";
    return 2;
  }
  std::string dir = argv[1];
  std::vector<std::pair<std::string, Node>> seeds = {
      {"leaf_empty", Leaf(0, false)},    {"leaf_small", Leaf(3, false)},
      {"leaf_blobs", Leaf(20, true)},    {"internal_2", Internal(2)},
      {"internal_20", Internal(20)},
  };
  std::mt19937 rng(1);
  int corrupt = 0;
  auto add_corrupt = [&](const std::string& name, uint64_t id, uint8_t mode,
                         const std::string& bytes) {
    Write(dir + "/corrupt/" + name, MakePageInput(id, mode, bytes));
    ++corrupt;
  };
  for (const auto& [name, node] : seeds) {
    const uint64_t id = 7;
    std::string page = EncodePage(node, id);
    std::string body = page.substr(0, page.size() - 8);
    Write(dir + "/page/" + name, MakePageInput(id, 0, page));
    Write(dir + "/page/" + name + "_body", MakePageInput(id, 1, body));
    // Checksum failures: flipped bits, truncation, the wrong page id.
    for (int i = 0; i < 3; ++i) {
      std::string bad = page;
      bad[rng() % bad.size()] ^= static_cast<char>(1 << (rng() % 8));
      add_corrupt(name + "_flip" + std::to_string(i), id, 0, bad);
    }
    add_corrupt(name + "_truncated", id, 0, page.substr(0, page.size() / 2));
    add_corrupt(name + "_wrong_id", id + 1, 0, page);
    // Structural damage behind a valid checksum: the bounds checks.
    add_corrupt(name + "_cut_body", id, 1, body.substr(0, body.size() - 1));
    add_corrupt(name + "_trailing", id, 1, body + "x");
    std::string huge_count = body;
    huge_count[7] = static_cast<char>(0xff);  // count varint now continues
    add_corrupt(name + "_bad_count", id, 1, huge_count);
    std::string bad_kind = body;
    bad_kind[5] = 9;
    add_corrupt(name + "_bad_kind", id, 1, bad_kind);
    std::string bad_magic = body;
    bad_magic[0] ^= 1;
    add_corrupt(name + "_bad_magic", id, 1, bad_magic);
    std::string bad_format = body;
    bad_format[4] = kPageFormatVersion + 1;  // no such format
    add_corrupt(name + "_bad_format", id, 1, bad_format);
  }
  // Specific structural faults.
  {
    Node n = Leaf(3, false);
    std::swap(n.entries[0], n.entries[2]);  // out of order
    std::string p = EncodePage(n, 7);
    add_corrupt("leaf_unsorted", 7, 1, p.substr(0, p.size() - 8));
    Node i = Internal(3);
    i.children[1].page_id = 0;
    p = EncodePage(i, 7);
    add_corrupt("internal_null_child", 7, 1, p.substr(0, p.size() - 8));
    p = EncodePage(Internal(3), 7);
    std::string level_zero = p.substr(0, p.size() - 8);
    level_zero[6] = 0;  // an internal node claiming to be at leaf level
    add_corrupt("internal_level_zero", 7, 1, level_zero);
    std::string overlong_key = p.substr(0, 12);  // header only
    PutVarint64(&overlong_key, 1000000);
    add_corrupt("leaf_key_too_long", 7, 1, overlong_key);
    // Metadata no write produces: created after its last write (the
    // encoder's mod_version - create_version wraps), no writes.
    Node late = Leaf(3, false);
    late.entries[1].create_version = late.entries[1].mod_version + 1;
    p = EncodePage(late, 7);
    add_corrupt("leaf_created_after_write", 7, 1, p.substr(0, p.size() - 8));
    Node unwritten = Leaf(3, false);
    unwritten.entries[2].writes = 0;
    p = EncodePage(unwritten, 7);
    add_corrupt("leaf_no_writes", 7, 1, p.substr(0, p.size() - 8));
  }
  for (const auto& [name, bytes] : cowdb::fuzz::DbOpsSeeds()) {
    Write(dir + "/db_ops/" + name, bytes);
  }
  for (const auto& [name, bytes] : cowdb::fuzz::ServiceSeeds()) {
    Write(dir + "/service/" + name, bytes);
  }
  std::cout << "wrote " << seeds.size() * 2 << " page seeds, " << corrupt
            << " corrupt pages and the db_ops and service scripts under " << dir << "\n";
  return 0;
}
