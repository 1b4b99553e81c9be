#include "client/cli/txn_script.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cowdb::cli {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<client::Compare::Op> ParseOp(const std::string& op) {
  if (op == "=" || op == "==") return client::Compare::Op::kEqual;
  if (op == "!=") return client::Compare::Op::kNotEqual;
  if (op == "<") return client::Compare::Op::kLess;
  if (op == ">") return client::Compare::Op::kGreater;
  return absl::InvalidArgumentError(absl::StrCat("unknown comparison \"", op,
                                                 "\" (use = != < >)"));
}

// Parses the words of one `if` line.
absl::StatusOr<client::Compare> ParseCompare(const std::vector<std::string>& w) {
  client::Compare c;
  if (w.size() < 3) return absl::InvalidArgumentError("expected: if KEY (value|mod|exists|missing) ...");
  c.key = w[1];
  const std::string& what = w[2];
  if (what == "exists" || what == "missing") {
    if (w.size() != 3) return absl::InvalidArgumentError(absl::StrCat("nothing may follow \"", what, "\""));
    c.target = client::Compare::Target::kExists;
    c.exists = what == "exists";
    return c;
  }
  if (w.size() != 5) {
    return absl::InvalidArgumentError(absl::StrCat("expected: if KEY ", what, " OP OPERAND"));
  }
  absl::StatusOr<client::Compare::Op> op = ParseOp(w[3]);
  if (!op.ok()) return op.status();
  c.op = *op;
  if (what == "value") {
    c.target = client::Compare::Target::kValue;
    c.value = w[4];
  } else if (what == "mod") {
    c.target = client::Compare::Target::kModVersion;
    if (!absl::SimpleAtoi(w[4], &c.mod_version)) {
      return absl::InvalidArgumentError(absl::StrCat("\"", w[4], "\" is not a version number"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown compare target \"", what, "\" (use value, mod, exists or missing)"));
  }
  return c;
}

absl::StatusOr<client::TxnOp> ParseOpLine(const std::vector<std::string>& w) {
  const std::string& verb = w[0];
  if (verb == "put" && w.size() == 3) return client::TxnOp::Put(w[1], w[2]);
  if (verb == "del" && w.size() == 2) return client::TxnOp::Delete(w[1]);
  if (verb == "get" && w.size() == 2) return client::TxnOp::Get(w[1]);
  if (verb == "put" || verb == "del" || verb == "get") {
    return absl::InvalidArgumentError(
        absl::StrCat("expected: ", verb == "put" ? "put KEY VALUE" : verb + " KEY"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown statement \"", verb, "\" (use if, put, del, get or else)"));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitWords(const std::string& line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    std::string word;
    if (line[i] != '"') {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
        word += line[i++];
      }
      words.push_back(std::move(word));
      continue;
    }
    ++i;  // the opening quote
    bool closed = false;
    while (i < line.size()) {
      char c = line[i++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        word += c;
        continue;
      }
      if (i >= line.size()) break;
      char e = line[i++];
      switch (e) {
        case 'n': word += '\n'; break;
        case 't': word += '\t'; break;
        case 'r': word += '\r'; break;
        case '0': word += '\0'; break;
        case '\\': word += '\\'; break;
        case '"': word += '"'; break;
        case 'x': {
          int hi = i < line.size() ? HexDigit(line[i]) : -1;
          int lo = i + 1 < line.size() ? HexDigit(line[i + 1]) : -1;
          if (hi < 0 || lo < 0) return absl::InvalidArgumentError("\\x needs two hex digits");
          word += static_cast<char>(hi * 16 + lo);
          i += 2;
          break;
        }
        default:
          return absl::InvalidArgumentError(absl::StrCat("unknown escape \\", std::string(1, e)));
      }
    }
    if (!closed) return absl::InvalidArgumentError("unterminated quote");
    words.push_back(std::move(word));
  }
  return words;
}

absl::StatusOr<client::TxnRequest> ParseTxnScript(const std::vector<std::string>& lines) {
  client::TxnRequest req;
  bool in_else = false;
  bool any = false;
  for (size_t n = 0; n < lines.size(); ++n) {
    auto fail = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(absl::StrCat("line ", n + 1, ": ", s.message()));
    };
    absl::StatusOr<std::vector<std::string>> w = SplitWords(lines[n]);
    if (!w.ok()) return fail(w.status());
    if (w->empty() || (*w)[0][0] == '#') continue;
    any = true;
    if ((*w)[0] == "if") {
      if (in_else || !req.success.empty()) {
        return fail(absl::InvalidArgumentError("compares come before every operation"));
      }
      absl::StatusOr<client::Compare> c = ParseCompare(*w);
      if (!c.ok()) return fail(c.status());
      req.compares.push_back(*std::move(c));
    } else if ((*w)[0] == "else") {
      if (w->size() != 1) return fail(absl::InvalidArgumentError("nothing may follow \"else\""));
      if (in_else) return fail(absl::InvalidArgumentError("a second \"else\""));
      if (req.compares.empty()) {
        return fail(absl::InvalidArgumentError("\"else\" without any \"if\""));
      }
      in_else = true;
    } else {
      absl::StatusOr<client::TxnOp> op = ParseOpLine(*w);
      if (!op.ok()) return fail(op.status());
      (in_else ? req.failure : req.success).push_back(*std::move(op));
    }
  }
  if (!any) return absl::InvalidArgumentError("an empty transaction script");
  return req;
}

}  // namespace cowdb::cli
