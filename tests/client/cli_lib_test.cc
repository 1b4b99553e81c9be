// The CLI's txn-script parser, byte printing, JSON and exit codes.

#include "client/cli/output.h"
#include "client/cli/txn_script.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace cowdb::cli {
namespace {

using ::cowdb::testing::StatusIs;
using ::testing::ElementsAre;

TEST(SplitWordsTest, QuotesAndEscapes) {
  ASSERT_OK_AND_ASSIGN(auto w, SplitWords("  put  \"a b\" \"x\\ty\\\"\\x00\\xfF\" plain "));
  EXPECT_THAT(w, ElementsAre("put", "a b", std::string("x\ty\"\0\xff", 6), "plain"));
  EXPECT_THAT(SplitWords("put \"open"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitWords("put \"\\q\""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitWords("put \"\\x4\""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SplitWords("put \"\\"), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto empty, SplitWords("\"\""));
  EXPECT_THAT(empty, ElementsAre(""));
}

TEST(ParseTxnScriptTest, ComparesBranchesAndErrors) {
  ASSERT_OK_AND_ASSIGN(client::TxnRequest r,
                       ParseTxnScript({"# comment", "if k value != \"a b\"", "if m mod > 41",
                                       "if e exists", "if g missing", "", "put k v", "get k",
                                       "else", "del k"}));
  ASSERT_EQ(r.compares.size(), 4u);
  EXPECT_EQ(r.compares[0].target, client::Compare::Target::kValue);
  EXPECT_EQ(r.compares[0].op, client::Compare::Op::kNotEqual);
  EXPECT_EQ(r.compares[0].value, "a b");
  EXPECT_EQ(r.compares[1].target, client::Compare::Target::kModVersion);
  EXPECT_EQ(r.compares[1].op, client::Compare::Op::kGreater);
  EXPECT_EQ(r.compares[1].mod_version, 41u);
  EXPECT_TRUE(r.compares[2].exists);
  EXPECT_FALSE(r.compares[3].exists);
  ASSERT_EQ(r.success.size(), 2u);
  EXPECT_EQ(r.success[0].kind, client::TxnOp::Kind::kPut);
  EXPECT_EQ(r.success[1].kind, client::TxnOp::Kind::kGet);
  ASSERT_EQ(r.failure.size(), 1u);
  EXPECT_EQ(r.failure[0].kind, client::TxnOp::Kind::kDelete);

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {},
           {"# only a comment"},
           {"put k"},
           {"frob k"},
           {"if k"},
           {"if k mod = x"},
           {"if k value ~ v"},
           {"if k exists now"},
           {"put k v", "if k exists"},
           {"else"},
           {"if k exists", "else", "else"},
       }) {
    EXPECT_THAT(ParseTxnScript(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << (bad.empty() ? "(empty)" : bad.back());
  }
  EXPECT_THAT(ParseTxnScript({"put a 1", "put b"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "line 2"));
}

TEST(OutputTest, PrintableAndJson) {
  EXPECT_EQ(Printable("plain text"), "plain text");
  EXPECT_EQ(Printable("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays text
  EXPECT_EQ(Printable(std::string("a\0b\\\xff", 5)), "a\\x00b\\\\\\xff");
  EXPECT_EQ(Printable("tab\there"), "tab\\x09here");
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x90\xae"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
  EXPECT_EQ(JsonString("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonBytesField("value", "ok"), "\"value\":\"ok\"");
  EXPECT_EQ(JsonBytesField("value", std::string("\x01\xff", 2)), "\"value_base64\":\"Af8=\"");
}

TEST(OutputTest, ExitCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kOk);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("")), kNotFound);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("")), kNotFound);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("")), kBadInput);
  EXPECT_EQ(ExitCodeFor(absl::AbortedError("")), kConflict);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("")), kUnreachable);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("")), kUnreachable);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("")), kUnauthorized);
  EXPECT_EQ(ExitCodeFor(absl::UnknownError("")), kFailed);
  EXPECT_EQ(ExitCodeFor(absl::DataLossError("")), kFailed);
}

}  // namespace
}  // namespace cowdb::cli
