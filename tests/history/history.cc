#include "tests/history/history.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cowdb::history {
namespace {

std::string ReadText(const KeyRead& r) {
  if (!r.found) return absl::StrCat(r.key, "=<absent>");
  return absl::StrCat(r.key, "=", r.value, "@", r.mod_version);
}

std::string WriteText(const KeyWrite& w) {
  return w.value ? absl::StrCat(w.key, ":=", *w.value) : absl::StrCat("del ", w.key);
}

}  // namespace

const char* OpTypeName(OpType t) {
  switch (t) {
    case OpType::kGet: return "get";
    case OpType::kScan: return "scan";
    case OpType::kPut: return "put";
    case OpType::kDelete: return "delete";
    case OpType::kCas: return "cas";
    case OpType::kTxn: return "txn";
  }
  return "?";
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kFailed: return "failed";
    case Outcome::kUnknown: return "unknown";
  }
  return "?";
}

std::string Describe(const Op& op) {
  std::string s = absl::StrCat("op ", op.id, " (client ", op.client, ", ", OpTypeName(op.type),
                               op.serializable ? " serializable" : "", ", ",
                               OutcomeName(op.outcome));
  if (op.at_version) absl::StrAppend(&s, ", at version ", *op.at_version);
  if (op.read_version != 0) absl::StrAppend(&s, ", read version ", op.read_version);
  if (op.outcome == Outcome::kOk && op.commit_version != 0) {
    absl::StrAppend(&s, ", commit version ", op.commit_version);
  }
  if (op.type == OpType::kCas) {
    absl::StrAppend(&s, ", if mod(", op.cas_key, ")==", op.cas_expected_mod,
                    op.outcome == Outcome::kOk ? (op.cas_succeeded ? ": held" : ": failed") : "");
  }
  if (!op.reads.empty()) {
    absl::StrAppend(&s, ", read [",
                    absl::StrJoin(op.reads, " ", [](std::string* out, const KeyRead& r) {
                      out->append(ReadText(r));
                    }),
                    "]");
  }
  for (const RangeRead& r : op.ranges) {
    absl::StrAppend(&s, ", scan [", r.start, ",", r.end, ") = {",
                    absl::StrJoin(r.found, " ", [](std::string* out, const KeyRead& kr) {
                      out->append(ReadText(kr));
                    }),
                    "}");
  }
  if (!op.writes.empty()) {
    absl::StrAppend(&s, ", write [",
                    absl::StrJoin(op.writes, " ", [](std::string* out, const KeyWrite& w) {
                      out->append(WriteText(w));
                    }),
                    "]");
  }
  if (!op.error.empty()) absl::StrAppend(&s, ", error: ", op.error);
  absl::StrAppend(&s, ", t=[", op.invoke_ns, ",", op.complete_ns, "])");
  return s;
}

void WriteHistory(const History& history, std::ostream& out) {
  for (const Op& op : history) out << Describe(op) << "\n";
}

}  // namespace cowdb::history
