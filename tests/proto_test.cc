// The generated wire API builds and links offline, and its messages keep
// their field numbers (a message encoded by hand decodes as expected).

#include "cowdb/v1/cowdb.grpc.pb.h"
#include "cowdb/v1/cowdb.pb.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace {

TEST(ProtoTest, TxnRequestRoundTrips) {
  cowdb::v1::TxnRequest req;
  auto* cmp = req.add_compares();
  cmp->set_key("k");
  cmp->set_target(cowdb::v1::Compare::MOD_VERSION);
  cmp->set_op(cowdb::v1::Compare::EQUAL);
  cmp->set_mod_version(7);
  req.add_success()->mutable_mutation()->mutable_put()->set_key("k");
  req.add_failure()->set_get_key("k");
  std::string wire;
  ASSERT_TRUE(req.SerializeToString(&wire));
  cowdb::v1::TxnRequest back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.compares(0).mod_version(), 7u);
  EXPECT_EQ(back.success(0).mutation().put().key(), "k");
  EXPECT_EQ(back.failure(0).get_key(), "k");
}

TEST(ProtoTest, FieldNumbersAreStable) {
  // GetRequest: key = 1 (bytes), read = 2 { at_version = 2 (varint) }.
  const std::string wire("\x0a\x01k\x12\x02\x10\x05", 7);
  cowdb::v1::GetRequest req;
  ASSERT_TRUE(req.ParseFromString(wire));
  EXPECT_EQ(req.key(), "k");
  EXPECT_EQ(req.read().at_version(), 5u);
}

TEST(ProtoTest, BranchFieldNumbersAreStable) {
  // PutRequest: key = 1, value = 2, branch = 3.
  const std::string put("\x0a\x01k\x12\x01v\x1a\x03\x64\x65v", 11);
  cowdb::v1::PutRequest p;
  ASSERT_TRUE(p.ParseFromString(put));
  EXPECT_EQ(p.branch(), "dev");
  // DiffRequest: from_branch = 4, to_branch = 5.
  const std::string diff("\x22\x01\x61\x2a\x01\x62", 6);
  cowdb::v1::DiffRequest d;
  ASSERT_TRUE(d.ParseFromString(diff));
  EXPECT_EQ(d.from_branch(), "a");
  EXPECT_EQ(d.to_branch(), "b");
  // ForkRequest: name = 1, from_branch = 2, from_version = 3 (explicit
  // presence: 0 is set, not absent).
  const std::string fork("\x0a\x01x\x12\x01m\x18\x00", 8);
  cowdb::v1::ForkRequest f;
  ASSERT_TRUE(f.ParseFromString(fork));
  EXPECT_EQ(f.name(), "x");
  EXPECT_EQ(f.from_branch(), "m");
  EXPECT_TRUE(f.has_from_version());
  EXPECT_EQ(f.from_version(), 0u);
  // MergeConflict: key = 1, base = 2 (absent), ours = 3 (empty, present).
  const std::string conflict("\x0a\x01k\x1a\x00", 5);
  cowdb::v1::MergeConflict c;
  ASSERT_TRUE(c.ParseFromString(conflict));
  EXPECT_FALSE(c.has_base());
  EXPECT_TRUE(c.has_ours());
  EXPECT_EQ(c.ours(), "");
  EXPECT_FALSE(c.has_theirs());
  // The numbers the others carry, from the descriptors.
  const auto number = [](const google::protobuf::Descriptor* d, const char* field) {
    const google::protobuf::FieldDescriptor* f = d->FindFieldByName(field);
    return f == nullptr ? -1 : f->number();
  };
  EXPECT_EQ(number(cowdb::v1::GetRequest::descriptor(), "branch"), 4);
  EXPECT_EQ(number(cowdb::v1::ScanRequest::descriptor(), "branch"), 8);
  EXPECT_EQ(number(cowdb::v1::DeleteRequest::descriptor(), "branch"), 2);
  EXPECT_EQ(number(cowdb::v1::TxnRequest::descriptor(), "branch"), 4);
  EXPECT_EQ(number(cowdb::v1::BeginRequest::descriptor(), "branch"), 4);
  EXPECT_EQ(number(cowdb::v1::WatchRequest::descriptor(), "branch"), 3);
  EXPECT_EQ(number(cowdb::v1::VersionInfo::descriptor(), "branch"), 4);
  EXPECT_EQ(number(cowdb::v1::MergeRequest::descriptor(), "policy"), 3);
  EXPECT_EQ(number(cowdb::v1::MergeResponse::descriptor(), "conflict_count"), 7);
  EXPECT_EQ(cowdb::v1::MergeRequest::FAIL, 0);
  EXPECT_EQ(cowdb::v1::MergeRequest::OURS, 1);
  EXPECT_EQ(cowdb::v1::MergeRequest::THEIRS, 2);
}

TEST(ProtoTest, StubsAreGenerated) {
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  auto kv = cowdb::v1::KV::NewStub(channel);
  auto versions = cowdb::v1::Versions::NewStub(channel);
  EXPECT_NE(kv, nullptr);
  EXPECT_NE(versions, nullptr);
}

}  // namespace
