// The generated wire API builds and links offline, and its messages keep
// their field numbers (a message encoded by hand decodes as expected).

#include "cowdb/v1/cowdb.grpc.pb.h"
#include "cowdb/v1/cowdb.pb.h"
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

TEST(ProtoTest, StubsAreGenerated) {
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  auto kv = cowdb::v1::KV::NewStub(channel);
  auto versions = cowdb::v1::Versions::NewStub(channel);
  EXPECT_NE(kv, nullptr);
  EXPECT_NE(versions, nullptr);
}

}  // namespace
