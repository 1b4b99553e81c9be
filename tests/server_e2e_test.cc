// End to end: a real cowdb_server process on a free loopback port, driven
// through the generated gRPC stubs.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cowdb/v1/cowdb.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/util/grpc_methods.h"
#include "tests/util/server_process.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start({}); }

  // Starts the server with `extra` flags; returns false if it did not come
  // up (its exit status is then in `exit_status_`).
  bool Start(std::vector<std::string> extra) {
    std::vector<std::string> flags = {"--scan_page_size=7", "--transaction_idle_timeout=2s",
                                      "--retain_versions=50", "--shutdown_grace=300ms"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    if (!server_.Start(dir_.Sub("db"), flags)) {
      exit_status_ = server_.exit_status();
      return false;
    }
    addr_ = server_.addr();
    auto channel = grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials());
    kv_ = v1::KV::NewStub(channel);
    versions_ = v1::Versions::NewStub(channel);
    return true;
  }

  void Stop() { TearDown(); }

  void TearDown() override {
    if (!server_.running()) return;
    EXPECT_TRUE(server_.Stop()) << "the server did not shut down cleanly";
  }

  uint64_t Put(const std::string& k, const std::string& v) {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::Status s = kv_->Put(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.version();
  }

  grpc::Status Get(const std::string& k, v1::GetResponse* resp,
                   uint64_t at_version = 0) {
    grpc::ClientContext ctx;
    v1::GetRequest req;
    req.set_key(k);
    if (at_version != 0) req.mutable_read()->set_at_version(at_version);
    return kv_->Get(&ctx, req, resp);
  }

  testing::TempDir dir_;
  testing::ServerProcess server_;
  int exit_status_ = 0;
  std::string addr_;
  std::unique_ptr<v1::KV::Stub> kv_;
  std::unique_ptr<v1::Versions::Stub> versions_;
};

TEST_F(ServerTest, PutGetAtVersionsAndErrorCodes) {
  uint64_t v1 = Put("greeting", "hello");
  uint64_t v2 = Put("greeting", "bye");
  EXPECT_EQ(v2, v1 + 1);
  v1::GetResponse resp;
  ASSERT_TRUE(Get("greeting", &resp).ok());
  EXPECT_EQ(resp.kv().value(), "bye");
  EXPECT_EQ(resp.kv().mod_version(), v2);
  EXPECT_EQ(resp.read_version(), v2);
  ASSERT_TRUE(Get("greeting", &resp, v1).ok());
  EXPECT_EQ(resp.kv().value(), "hello");
  EXPECT_EQ(Get("missing", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get("greeting", &resp, 999).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext ctx;
  v1::PutRequest bad;  // empty key
  v1::PutResponse out;
  EXPECT_EQ(kv_->Put(&ctx, bad, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext big_ctx;
  v1::PutRequest big;  // a value over the engine's 16 MiB limit, within the message limit
  big.set_key("big");
  big.set_value(std::string((16 << 20) + 1, 'v'));
  EXPECT_EQ(kv_->Put(&big_ctx, big, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, ScanStreamsPagesPrefixReverseAndCount) {
  for (int i = 0; i < 20; ++i) Put("user/" + std::to_string(100 + i), "u");
  Put("zoo", "z");
  grpc::ClientContext ctx;
  v1::ScanRequest req;
  req.mutable_range()->set_prefix("user/");
  req.set_reverse(true);
  auto reader = kv_->Scan(&ctx, req);
  v1::ScanResponse page;
  std::vector<std::string> keys;
  int pages = 0;
  bool done = false;
  while (reader->Read(&page)) {
    ++pages;
    for (const auto& kv : page.kvs()) keys.push_back(kv.key());
    done = page.done();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(done);
  ASSERT_EQ(keys.size(), 20u);
  EXPECT_EQ(keys.front(), "user/119");
  EXPECT_EQ(keys.back(), "user/100");
  EXPECT_GE(pages, 3) << "20 keys in pages of 7";

  grpc::ClientContext cctx;
  req.set_count_only(true);
  auto counter = kv_->Scan(&cctx, req);
  ASSERT_TRUE(counter->Read(&page));
  EXPECT_EQ(page.count(), 20u);
  ASSERT_TRUE(counter->Finish().ok());
}

TEST_F(ServerTest, CompareAndSwapTxn) {
  uint64_t v = Put("lock", "free");
  auto cas = [&](uint64_t expect_mod, const std::string& value) {
    grpc::ClientContext ctx;
    v1::TxnRequest req;
    auto* c = req.add_compares();
    c->set_key("lock");
    c->set_target(v1::Compare::MOD_VERSION);
    c->set_op(v1::Compare::EQUAL);
    c->set_mod_version(expect_mod);
    auto* put = req.add_success()->mutable_mutation()->mutable_put();
    put->set_key("lock");
    put->set_value(value);
    req.add_failure()->set_get_key("lock");
    v1::TxnResponse resp;
    EXPECT_TRUE(kv_->Txn(&ctx, req, &resp).ok());
    return resp;
  };
  v1::TxnResponse first = cas(v, "taken");
  EXPECT_TRUE(first.succeeded());
  v1::TxnResponse second = cas(v, "stolen");
  EXPECT_FALSE(second.succeeded());
  ASSERT_EQ(second.gets_size(), 1);
  EXPECT_EQ(second.gets(0).value(), "taken");
  EXPECT_EQ(second.gets(0).mod_version(), first.version());
}

TEST_F(ServerTest, InteractiveTransactionsConflictAndExpire) {
  Put("x", "1");
  auto begin = [&]() {
    grpc::ClientContext ctx;
    v1::BeginRequest req;
    v1::BeginResponse resp;
    EXPECT_TRUE(kv_->Begin(&ctx, req, &resp).ok());
    return resp.transaction_id();
  };
  std::string t1 = begin();
  v1::GetResponse got;
  {
    grpc::ClientContext ctx;
    v1::GetRequest req;
    req.set_key("x");
    req.mutable_read()->set_transaction_id(t1);
    ASSERT_TRUE(kv_->Get(&ctx, req, &got).ok());
  }
  Put("x", "changed by someone else");
  grpc::ClientContext ctx;
  v1::CommitRequest commit;
  commit.set_transaction_id(t1);
  auto* m = commit.add_mutations()->mutable_put();
  m->set_key("y");
  m->set_value("from t1");
  v1::CommitResponse out;
  EXPECT_EQ(kv_->Commit(&ctx, commit, &out).error_code(), grpc::StatusCode::ABORTED);
  // Finished: FAILED_PRECONDITION, saying how it ended.
  grpc::ClientContext again;
  grpc::Status finished = kv_->Commit(&again, commit, &out);
  EXPECT_EQ(finished.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(finished.error_message(), ::testing::HasSubstr("already ended by a failed commit"));
  // An idle transaction is rolled back after the idle timeout (2 s).
  std::string t2 = begin();
  sleep(4);
  grpc::ClientContext late;
  v1::CommitRequest c2;
  c2.set_transaction_id(t2);
  EXPECT_EQ(kv_->Commit(&late, c2, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerTest, VersionsTagsDiffAndStatus) {
  uint64_t a = Put("k1", "a");
  Put("k2", "b");
  uint64_t c = Put("k1", "c");
  {
    grpc::ClientContext ctx;
    v1::TagRequest req;
    req.set_name("first");
    req.set_version(a);
    v1::TagResponse resp;
    ASSERT_TRUE(versions_->Tag(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::DiffRequest req;
    req.set_from_version(a);
    req.set_to_version(c);
    auto reader = versions_->Diff(&ctx, req);
    v1::DiffResponse page;
    std::vector<std::string> keys;
    while (reader->Read(&page)) {
      for (const auto& ch : page.changes()) keys.push_back(ch.key() + ":" + ch.new_value());
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(keys, (std::vector<std::string>{"k1:c", "k2:b"}));
  }
  {
    grpc::ClientContext ctx;
    v1::StatusRequest req;
    v1::StatusResponse resp;
    ASSERT_TRUE(versions_->Status(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.latest_version(), c);
    EXPECT_EQ(resp.entries(), 2u);
  }
  {
    grpc::ClientContext ctx;
    v1::ListTagsRequest req;
    v1::ListTagsResponse resp;
    ASSERT_TRUE(versions_->ListTags(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.tags().at("first"), a);
  }
}

// Contract defects a black-box test found, each fixed: large diffs and
// Txn gets, bounded error messages, the documented codes.
TEST_F(ServerTest, ContractsTheBlackBoxTestChecked) {
  // A diff of values bigger than a message in total pages by bytes.
  const std::string big(15 << 20, 'v');
  uint64_t first = 0;
  for (int i = 0; i < 5; ++i) {
    uint64_t v = Put(absl::StrCat("huge/", i), big);
    if (i == 0) first = v;
  }
  {
    // A client that takes messages up to the server's limit (64 MiB).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    auto big_versions = v1::Versions::NewStub(
        grpc::CreateCustomChannel(addr_, grpc::InsecureChannelCredentials(), args));
    grpc::ClientContext ctx;
    v1::DiffRequest req;
    req.set_from_version(first - 1);
    req.set_to_version(first + 4);
    req.mutable_range()->set_prefix("huge/");
    auto reader = big_versions->Diff(&ctx, req);
    v1::DiffResponse page;
    int changes = 0, pages = 0;
    while (reader->Read(&page)) {
      changes += page.changes_size();
      ++pages;
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(changes, 5);
    EXPECT_EQ(pages, 5);  // 1 MiB pages: one such value each
  }
  // A Txn whose gets would overflow a message fails whole: nothing written.
  {
    grpc::ClientContext ctx;
    v1::TxnRequest req;
    auto* put = req.add_success()->mutable_mutation()->mutable_put();
    put->set_key("marker");
    put->set_value("x");
    for (int i = 0; i < 3; ++i) req.add_success()->set_get_key(absl::StrCat("huge/", i));
    v1::TxnResponse resp;
    grpc::Status s = kv_->Txn(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("nothing was written"));
    v1::GetResponse got;
    EXPECT_EQ(Get("marker", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Errors never echo a huge input.
  {
    grpc::ClientContext ctx;
    v1::CommitRequest req;
    req.set_transaction_id(std::string(9000, 'i'));
    v1::CommitResponse resp;
    grpc::Status s = kv_->Commit(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("of 9000 bytes"));
    EXPECT_LT(s.error_message().size(), 200u);
  }
  {
    grpc::ClientContext ctx;
    v1::UntagRequest req;
    req.set_name(std::string(1 << 20, 't'));
    v1::UntagResponse resp;
    grpc::Status s = versions_->Untag(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(s.error_message().size(), 200u);
  }
  // A finished transaction: FAILED_PRECONDITION (commit twice; write after
  // rollback).
  auto begin = [&] {
    grpc::ClientContext ctx;
    v1::BeginResponse resp;
    EXPECT_TRUE(kv_->Begin(&ctx, v1::BeginRequest(), &resp).ok());
    return resp.transaction_id();
  };
  {
    const std::string id = begin();
    v1::CommitRequest req;
    req.set_transaction_id(id);
    v1::CommitResponse resp;
    grpc::ClientContext c1, c2;
    EXPECT_TRUE(kv_->Commit(&c1, req, &resp).ok());
    grpc::Status s = kv_->Commit(&c2, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("already committed"));
  }
  {
    const std::string id = begin();
    grpc::ClientContext c1, c2;
    v1::RollbackRequest rb;
    rb.set_transaction_id(id);
    v1::RollbackResponse rb_resp;
    EXPECT_TRUE(kv_->Rollback(&c1, rb, &rb_resp).ok());
    v1::WriteRequest w;
    w.set_transaction_id(id);
    v1::WriteResponse w_resp;
    grpc::Status s = kv_->Write(&c2, w, &w_resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("already rolled back"));
  }
  // SERIALIZABLE: a scan of [b, c) and a put of c1 by someone else do not
  // conflict (the range is what the scan covered); forward, reverse and by
  // prefix. A put inside the range still aborts.
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE(variant);
    Put("b1", "v");
    const std::string id = begin();
    grpc::ClientContext sctx;
    v1::ScanRequest scan;
    scan.mutable_read()->set_transaction_id(id);
    if (variant == 2) {
      scan.mutable_range()->set_prefix("b");
    } else {
      scan.mutable_range()->set_start("b");
      scan.mutable_range()->set_end("c");
    }
    scan.set_reverse(variant == 1);
    auto reader = kv_->Scan(&sctx, scan);
    v1::ScanResponse page;
    int keys = 0;
    while (reader->Read(&page)) keys += page.kvs_size();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(keys, 1);
    Put(variant == 3 ? "b2" : "c1", "someone else");
    grpc::ClientContext cctx;
    v1::CommitRequest commit;
    commit.set_transaction_id(id);
    auto* m = commit.add_mutations()->mutable_put();
    m->set_key("z");
    m->set_value("w");
    v1::CommitResponse resp;
    grpc::Status s = kv_->Commit(&cctx, commit, &resp);
    EXPECT_EQ(s.error_code(), variant == 3 ? grpc::StatusCode::ABORTED : grpc::StatusCode::OK)
        << s.error_message();
    if (variant == 3) {
      grpc::ClientContext dctx;
      v1::DeleteRequest del;
      del.set_key("b2");
      v1::DeleteResponse del_resp;
      ASSERT_TRUE(kv_->Delete(&dctx, del, &del_resp).ok());
    }
  }
  // The empty key is bad input, not a missing key.
  v1::GetResponse got;
  EXPECT_EQ(Get("", &got).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // count_only counts the range; a limit does not cap it.
  {
    grpc::ClientContext ctx;
    v1::ScanRequest req;
    req.mutable_range()->set_prefix("huge/");
    req.set_count_only(true);
    req.set_limit(2);
    auto reader = kv_->Scan(&ctx, req);
    v1::ScanResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    EXPECT_EQ(resp.count(), 5u);
    EXPECT_TRUE(reader->Finish().ok());
  }
  // Diff from a later version to an earlier one is refused, not mirrored.
  {
    grpc::ClientContext ctx;
    v1::DiffRequest req;
    req.set_from_version(first + 1);
    req.set_to_version(first);
    auto reader = versions_->Diff(&ctx, req);
    v1::DiffResponse page;
    EXPECT_FALSE(reader->Read(&page));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // syncs counts group commits: never more than commits, tags aside.
  {
    grpc::ClientContext ctx;
    v1::TagRequest tag;
    tag.set_name("t");
    tag.set_version(first);
    v1::TagResponse tag_resp;
    EXPECT_TRUE(versions_->Tag(&ctx, tag, &tag_resp).ok());
    grpc::ClientContext sctx;
    v1::StatusResponse st;
    ASSERT_TRUE(versions_->Status(&sctx, v1::StatusRequest(), &st).ok());
    EXPECT_GT(st.syncs(), 0u);
    EXPECT_LE(st.syncs(), st.commits());
  }
}

TEST_F(ServerTest, LimitsAndBadRequestsGetTheirCodesAndTheServerKeepsServing) {
  Stop();
  ASSERT_TRUE(Start({"--max_message_bytes=100000", "--max_transaction_bytes=1000",
                     "--max_transaction_ops=5"}));
  // An oversized request is refused by gRPC itself.
  {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_key("big");
    req.set_value(std::string(200000, 'v'));
    v1::PutResponse resp;
    EXPECT_EQ(kv_->Put(&ctx, req, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Oversized keys.
  {
    grpc::ClientContext ctx;
    v1::PutRequest req;
    req.set_key(std::string(5000, 'k'));
    v1::PutResponse resp;
    EXPECT_EQ(kv_->Put(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  auto begin = [&] {
    grpc::ClientContext ctx;
    v1::BeginResponse resp;
    EXPECT_TRUE(kv_->Begin(&ctx, v1::BeginRequest(), &resp).ok());
    return resp.transaction_id();
  };
  auto write = [&](const std::string& id, const std::string& key, size_t value_bytes,
                   int count = 1) {
    grpc::ClientContext ctx;
    v1::WriteRequest req;
    req.set_transaction_id(id);
    for (int i = 0; i < count; ++i) {
      auto* put = req.add_mutations()->mutable_put();
      put->set_key(key + std::to_string(i));
      put->set_value(std::string(value_bytes, 'v'));
    }
    v1::WriteResponse resp;
    return kv_->Write(&ctx, req, &resp).error_code();
  };
  auto commit = [&](const std::string& id) {
    grpc::ClientContext ctx;
    v1::CommitRequest req;
    req.set_transaction_id(id);
    v1::CommitResponse resp;
    return kv_->Commit(&ctx, req, &resp).error_code();
  };
  // Transaction size: bytes and operations add up across requests; over a
  // limit nothing of the request is applied and the transaction stays open.
  std::string id = begin();
  EXPECT_EQ(write(id, "a", 600), grpc::StatusCode::OK);
  EXPECT_EQ(write(id, "b", 600), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(write(id, "c", 10, 5), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(write(id, "c", 10, 4), grpc::StatusCode::OK);
  EXPECT_EQ(commit(id), grpc::StatusCode::OK);
  v1::GetResponse got;
  EXPECT_TRUE(Get("a0", &got).ok());
  EXPECT_TRUE(Get("c3", &got).ok());
  EXPECT_EQ(Get("b0", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  // A bad mutation ends the transaction: no request is half applied.
  id = begin();
  EXPECT_EQ(write(id, "", 1), grpc::StatusCode::OK);  // key "0": fine
  {
    grpc::ClientContext ctx;
    v1::WriteRequest req;
    req.set_transaction_id(id);
    req.add_mutations()->mutable_put()->set_key("ok");
    req.add_mutations()->mutable_put()->set_key("");
    v1::WriteResponse resp;
    EXPECT_EQ(kv_->Write(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(commit(id), grpc::StatusCode::FAILED_PRECONDITION);  // finished
  EXPECT_EQ(Get("ok", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(commit("no-such-transaction"), grpc::StatusCode::NOT_FOUND);
  // And the server still serves.
  EXPECT_TRUE(Get("a0", &got).ok());
}

TEST_F(ServerTest, CallsWithoutDeadlineGetTheDefaultDeadline) {
  Stop();
  ASSERT_TRUE(Start({"--default_deadline=200ms", "--scan_page_size=1",
                     "--max_transaction_ops=1000000"}));
  // 100,000 keys streamed one per message take the server well over 200 ms.
  {
    grpc::ClientContext ctx;
    v1::TxnRequest req;
    for (int i = 0; i < 100000; ++i) {
      auto* put = req.add_success()->mutable_mutation()->mutable_put();
      put->set_key(absl::StrCat("scan/", 1000000 + i));
      put->set_value("v");
    }
    v1::TxnResponse resp;
    grpc::Status s = kv_->Txn(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // A slow reader of a long scan, without a deadline, is cut off with
  // DEADLINE_EXCEEDED once --default_deadline has passed.
  grpc::ClientContext ctx;
  v1::ScanRequest req;
  req.mutable_range()->set_prefix("scan/");
  auto reader = kv_->Scan(&ctx, req);
  v1::ScanResponse page;
  ASSERT_TRUE(reader->Read(&page));
  absl::SleepFor(absl::Milliseconds(300));
  size_t keys = 1;
  while (reader->Read(&page)) keys += page.kvs_size();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(keys, 100000u);
  // And the server still serves.
  v1::GetResponse got;
  EXPECT_TRUE(Get("scan/1000000", &got).ok());
}

TEST_F(ServerTest, ScanPagesOfLargeValuesStayUnderTheMessageLimit) {
  Stop();
  ASSERT_TRUE(Start({"--max_message_bytes=2000000", "--scan_page_size=1000"}));
  for (int i = 0; i < 10; ++i) Put(absl::StrCat("big/", i), std::string(300000, 'b'));
  auto channel = grpc::CreateCustomChannel(addr_, grpc::InsecureChannelCredentials(), [] {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(2000000);
    return args;
  }());
  auto kv = v1::KV::NewStub(channel);
  grpc::ClientContext ctx;
  v1::ScanRequest req;
  req.mutable_range()->set_prefix("big/");
  auto reader = kv->Scan(&ctx, req);
  v1::ScanResponse page;
  size_t keys = 0;
  while (reader->Read(&page)) keys += page.kvs_size();
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(keys, 10u);
}

// A transaction's scan takes each page from a new iterator bounded by what
// is left of the range; a page that ends exactly at the range's edge leaves
// nothing, and the scan ends there (the server's page size is 7).
// A merge lists its conflicts within half the message limit (16 MiB at
// most) and counts them all, so that a merge that committed always
// answers.
TEST_F(ServerTest, MergeListsConflictsWithinTheMessageLimit) {
  Stop();
  ASSERT_TRUE(Start({"--max_message_bytes=8388608"}));  // conflicts: 4 MiB
  {
    grpc::ClientContext ctx;
    v1::ForkRequest fork;
    fork.set_name("dev");
    v1::ForkResponse forked;
    ASSERT_TRUE(versions_->Fork(&ctx, fork, &forked).ok());
  }
  const std::string value(3 << 19, 'v');  // 1.5 MiB: a conflict is 3 MiB
  for (int i = 0; i < 3; ++i) {
    for (const char* branch : {"", "dev"}) {
      grpc::ClientContext ctx;
      v1::PutRequest put;
      put.set_key("k" + std::to_string(i));
      put.set_value(value + branch);
      put.set_branch(branch);
      v1::PutResponse resp;
      ASSERT_TRUE(kv_->Put(&ctx, put, &resp).ok());
    }
  }
  grpc::ClientContext ctx;
  v1::MergeRequest merge;
  merge.set_from("dev");
  merge.set_policy(v1::MergeRequest::THEIRS);
  v1::MergeResponse resp;
  grpc::Status s = versions_->Merge(&ctx, merge, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.merged());
  EXPECT_EQ(resp.changes(), 3u);
  EXPECT_EQ(resp.conflict_count(), 3u);
  ASSERT_EQ(resp.conflicts_size(), 1);
  EXPECT_EQ(resp.conflicts(0).key(), "k0");
  EXPECT_FALSE(resp.conflicts(0).has_base());  // absent at the fork
  EXPECT_EQ(resp.conflicts(0).ours(), value);
  EXPECT_EQ(resp.conflicts(0).theirs(), value + "dev");
  v1::GetResponse got;
  ASSERT_TRUE(Get("k2", &got).ok());
  EXPECT_EQ(got.kv().value(), value + "dev");
}

TEST_F(ServerTest, TransactionScanEndsCleanlyAtAPageBoundary) {
  for (int i = 0; i < 7; ++i) Put(absl::StrCat("k", i), "v");
  grpc::ClientContext begin_ctx;
  v1::BeginResponse begun;
  ASSERT_TRUE(kv_->Begin(&begin_ctx, v1::BeginRequest(), &begun).ok());
  for (bool reverse : {false, true}) {
    grpc::ClientContext ctx;
    v1::ScanRequest req;
    req.mutable_range()->set_start("k0");
    req.mutable_range()->set_end(std::string("k6") + '\0');
    req.set_reverse(reverse);
    req.mutable_read()->set_transaction_id(begun.transaction_id());
    auto reader = kv_->Scan(&ctx, req);
    v1::ScanResponse page;
    std::vector<std::string> keys;
    bool done = false;
    while (reader->Read(&page)) {
      for (const v1::KeyValue& kv : page.kvs()) keys.push_back(kv.key());
      done = page.done();
    }
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << (reverse ? "reverse: " : "forward: ") << s.error_message();
    EXPECT_TRUE(done);
    EXPECT_EQ(keys.size(), 7u);
  }
}

TEST_F(ServerTest, KilledDuringCommitsLosesNothingAcknowledged) {
  // Writers commit as fast as they can; the server is SIGKILLed under them.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, uint64_t> acked;  // key -> version that acknowledged it
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; !stop.load(); ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::PutRequest req;
        req.set_key(absl::StrCat("w", w, "/", i));
        req.set_value(absl::StrCat("value of ", i));
        v1::PutResponse resp;
        if (!kv_->Put(&ctx, req, &resp).ok()) return;  // the server is gone
        std::lock_guard<std::mutex> lock(mu);
        acked[req.key()] = resp.version();
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(700));
  server_.Kill();
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GT(acked.size(), 20u) << "too few commits before the kill to mean anything";
  ASSERT_TRUE(Start({}));
  for (const auto& [key, version] : acked) {
    v1::GetResponse resp;
    grpc::Status s = Get(key, &resp);
    ASSERT_TRUE(s.ok()) << key << " acknowledged at version " << version << " is gone";
    EXPECT_EQ(resp.kv().mod_version(), version);
  }
}

TEST_F(ServerTest, BearerTokensAreCheckedOnEveryCall) {
  Stop();
  { std::ofstream(dir_.Sub("tokens")) << "# ops team\nsecret-1\n\nsecret-2\n"; }
  ASSERT_TRUE(Start({"--auth_token_file=" + dir_.Sub("tokens")}));
  auto put = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::PutRequest req;
    req.set_key("k");
    req.set_value("v");
    v1::PutResponse resp;
    return kv_->Put(&ctx, req, &resp).error_code();
  };
  EXPECT_EQ(put(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(put("wrong"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(put("secret-2"), grpc::StatusCode::OK);
  // Get is served by the callback API, the rest by the sync API: both check.
  auto get = [&](const std::string& token) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::GetRequest req;
    req.set_key("k");
    v1::GetResponse resp;
    grpc::Status s = kv_->Get(&ctx, req, &resp);
    return s.ok() ? resp.kv().value() : "error " + std::to_string(s.error_code());
  };
  EXPECT_EQ(get(""), "error " + std::to_string(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(get("wrong"), "error " + std::to_string(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(get("secret-1"), "v");
  grpc::ClientContext ctx;
  v1::StatusRequest req;
  v1::StatusResponse resp;
  EXPECT_EQ(versions_->Status(&ctx, req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// Every method of every service, found from the service descriptors (so a
// new RPC cannot be forgotten), refuses a call without a token or with a
// wrong one. Sent as raw bytes through the generic stub: an empty request.
TEST_F(ServerTest, EveryMethodRefusesCallsWithoutAValidToken) {
  Stop();
  { std::ofstream(dir_.Sub("tokens")) << "secret\n"; }
  ASSERT_TRUE(Start({"--auth_token_file=" + dir_.Sub("tokens")}));
  auto channel = grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials());
  const std::vector<std::string> methods =
      testing::MethodsOf({"cowdb.v1.KV", "cowdb.v1.Versions", "cowdb.v1.Auth"});
  for (const std::string& method : methods) {
    // The two calls that need no token: logging in, and asking whether
    // one must.
    if (method == "/cowdb.v1.Auth/Authenticate" || method == "/cowdb.v1.Auth/AuthStatus") {
      continue;
    }
    for (const std::string token : {"", "wrong"}) {
      grpc::Status s = testing::CallWithEmptyRequest(channel, method, token);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method << " with token \"" << token << "\": " << s.error_message();
    }
  }
  EXPECT_GE(methods.size(), 42u);  // 9 + 19 + 14
}

// One client (connection) cannot take every transaction or watch slot:
// over its own cap it is refused while another client is served.
TEST_F(ServerTest, PerClientCapsOnTransactionsAndWatches) {
  Stop();
  ASSERT_TRUE(Start({"--max_open_transactions_per_client=2", "--max_watches_per_client=1"}));
  auto own_connection = [&] {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(addr_, grpc::InsecureChannelCredentials(), args);
  };
  auto a = own_connection(), b = own_connection();
  auto kv_a = v1::KV::NewStub(a), kv_b = v1::KV::NewStub(b);
  auto begin = [](v1::KV::Stub* kv, std::string* id) {
    grpc::ClientContext ctx;
    v1::BeginResponse resp;
    grpc::Status s = kv->Begin(&ctx, v1::BeginRequest(), &resp);
    if (id != nullptr) *id = resp.transaction_id();
    return s;
  };
  std::string first;
  ASSERT_TRUE(begin(kv_a.get(), &first).ok());
  ASSERT_TRUE(begin(kv_a.get(), nullptr).ok());
  grpc::Status over = begin(kv_a.get(), nullptr);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(over.error_message(), ::testing::HasSubstr("this client has 2 open transactions"));
  EXPECT_TRUE(begin(kv_b.get(), nullptr).ok());  // another client is served
  {
    grpc::ClientContext ctx;
    v1::RollbackRequest req;
    req.set_transaction_id(first);
    v1::RollbackResponse resp;
    ASSERT_TRUE(kv_a->Rollback(&ctx, req, &resp).ok());
  }
  EXPECT_TRUE(begin(kv_a.get(), nullptr).ok());  // a slot came back

  auto versions_a = v1::Versions::NewStub(a), versions_b = v1::Versions::NewStub(b);
  grpc::ClientContext watching;
  auto watch = versions_a->Watch(&watching, v1::WatchRequest());
  Put("w", "1");  // its event proves the watch is being served
  v1::WatchResponse event;
  ASSERT_TRUE(watch->Read(&event));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto second = versions_a->Watch(&ctx, v1::WatchRequest());
    v1::WatchResponse resp;
    EXPECT_FALSE(second->Read(&resp));
    grpc::Status refused = second->Finish();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << refused.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    auto other = versions_b->Watch(&ctx, v1::WatchRequest());
    v1::WatchResponse resp;
    other->Read(&resp);
    EXPECT_EQ(other->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);  // served
  }
  watching.TryCancel();
  watch->Finish().IgnoreError();
}

TEST_F(ServerTest, BadFlagsFailBeforeTouchingTheDataDirectory) {
  Stop();
  std::filesystem::remove_all(dir_.Sub("db"));
  EXPECT_FALSE(Start({"--auth_token_file=" + dir_.Sub("no-such-file")}));
  EXPECT_TRUE(WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 1);
  EXPECT_FALSE(Start({"--tls_cert=" + dir_.Sub("cert.pem")}));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("db")));
}

TEST_F(ServerTest, ServesTls) {
  Stop();
  std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
                    " -addext subjectAltName=IP:127.0.0.1 -keyout " + dir_.Sub("key.pem") +
                    " -out " + dir_.Sub("cert.pem") + " >/dev/null 2>&1";
  ASSERT_EQ(system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  ASSERT_TRUE(Start({"--tls_cert=" + dir_.Sub("cert.pem"),
                     "--tls_key=" + dir_.Sub("key.pem")}));
  std::ifstream in(dir_.Sub("cert.pem"));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), {});
  auto secure = v1::KV::NewStub(grpc::CreateChannel(addr_, grpc::SslCredentials(ssl)));
  grpc::ClientContext ctx;
  v1::PutRequest req;
  req.set_key("k");
  req.set_value("over tls");
  v1::PutResponse resp;
  grpc::Status s = secure->Put(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // A plaintext client cannot talk to it.
  grpc::ClientContext plain_ctx;
  plain_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(kv_->Put(&plain_ctx, req, &resp).ok());
}

TEST_F(ServerTest, MutualTlsRequiresAClientCertificate) {
  Stop();
  auto sh = [](const std::string& c) { return system((c + " >/dev/null 2>&1").c_str()); };
  const std::string d = dir_.path() + "/";
  // A CA, a server certificate for 127.0.0.1 and a client certificate.
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca"
               " -keyout " + d + "ca.key -out " + d + "ca.pem"), 0);
  for (const std::string name : {"server", "client"}) {
    ASSERT_EQ(sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " +
                 d + name + ".key -out " + d + name + ".csr"), 0);
    { std::ofstream(d + name + ".ext") << "subjectAltName=IP:127.0.0.1\n"; }
    ASSERT_EQ(sh("openssl x509 -req -days 1 -in " + d + name + ".csr -CA " + d +
                 "ca.pem -CAkey " + d + "ca.key -CAcreateserial -extfile " + d + name +
                 ".ext -out " + d + name + ".pem"), 0);
  }
  ASSERT_TRUE(Start({"--tls_cert=" + d + "server.pem", "--tls_key=" + d + "server.key",
                     "--tls_client_ca=" + d + "ca.pem"}));
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto put = [&](bool with_client_cert) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read(d + "ca.pem");
    if (with_client_cert) {
      ssl.pem_private_key = read(d + "client.key");
      ssl.pem_cert_chain = read(d + "client.pem");
    }
    auto stub = v1::KV::NewStub(grpc::CreateChannel(addr_, grpc::SslCredentials(ssl)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key("k");
    req.set_value("mtls");
    v1::PutResponse resp;
    return stub->Put(&ctx, req, &resp);
  };
  grpc::Status with = put(true);
  EXPECT_TRUE(with.ok()) << with.error_message();
  EXPECT_FALSE(put(false).ok());
}

}  // namespace
}  // namespace cowdb
