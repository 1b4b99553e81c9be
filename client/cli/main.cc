// cowdb: the command-line client, for a cowdb_server or (with --data_dir)
// a database directory opened in this process. `cowdb --help` lists the
// commands, flags and exit codes.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cli/output.h"
#include "client/cli/txn_script.h"
#include "client/client.h"
#include "client/local_client.h"

ABSL_FLAG(std::string, endpoint, "",
          "server address HOST:PORT (default: $COWDB_ENDPOINT, else 127.0.0.1:7390)");
ABSL_FLAG(std::string, data_dir, "",
          "open this database directory in-process instead of using a server");
ABSL_FLAG(std::string, token_file, "", "file whose first line is the bearer token");
ABSL_FLAG(std::string, user, "",
          "authenticate as this user (the password comes from $COWDB_PASSWORD or "
          "--password_file)");
ABSL_FLAG(std::string, password_file, "", "file whose first line is --user's password");
ABSL_FLAG(bool, prefix, false, "role grant/revoke: KEY is a prefix (every key that starts with it)");
ABSL_FLAG(std::string, tls_ca, "", "PEM roots to trust: connect with TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mTLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (mTLS)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "deadline of each call; a watch has none unless this is given (then it "
          "exits with 4 when it runs out)");
ABSL_FLAG(bool, json, false, "print JSON (one object per line) instead of tables");
ABSL_FLAG(std::string, at, "",
          "read at this version: a number, a tag, or a time (RFC 3339, or Unix "
          "microseconds with a \"us\" suffix); default: the latest");
ABSL_FLAG(std::string, start, "", "scan/diff/watch: first key of the range");
ABSL_FLAG(std::string, end, "", "scan/diff/watch: end of the range (excluded)");
ABSL_FLAG(uint64_t, limit, 0,
          "scan: keys at most; watch: events, then exit; history: changes at most "
          "(0: no limit)");
ABSL_FLAG(bool, reverse, false, "scan: in descending key order");
ABSL_FLAG(bool, keys_only, false, "scan: print keys without values");
ABSL_FLAG(bool, count, false, "scan: print only the number of keys");
ABSL_FLAG(bool, verify, false,
          "get, scan: check the answer with its proof (verified reads); fails (exit 6) "
          "if it does not verify");
ABSL_FLAG(std::string, trusted, "",
          "get/scan --verify, digest: VERSION:DIGEST, a digest you trust (from `cowdb digest` "
          "where you trust the answer); the answer must extend it");
ABSL_FLAG(std::string, from, "",
          "watch: changes after this version (default: now); history: changes from this "
          "version on (default: the oldest retained); export: an incremental export of "
          "the changes from this version. A number, tag or time, as --at. branch create: "
          "the branch to fork from (default: main)");
ABSL_FLAG(std::string, branch, "",
          "the branch to read or write instead of main: get, put, del, scan, txn, diff "
          "(both sides, unless --to_branch), watch, versions (only the versions that "
          "changed it)");
ABSL_FLAG(std::string, to_branch, "",
          "diff: the branch of the TO side (default: --branch, else main); then FROM and TO "
          "may be left out (both sides at the latest version)");
ABSL_FLAG(std::string, policy, "fail",
          "merge: how a key both branches changed differently is settled: fail (merge "
          "nothing, list the conflicts, exit 3), ours (keep INTO's value) or theirs (take "
          "FROM's)");

namespace cowdb::cli {
namespace {

// absl::ParseCommandLine reports a bad flag or value and calls exit(1);
// the CLI's code for bad input is 2 (and --help is not an error). Until
// the flags are parsed, an exit is turned into that code.
std::atomic<int> g_exit_while_parsing{kBadInput};
// Whether --timeout was given (absl's flag reflection keeps that private).
bool g_timeout_given = false;
void ExitWhileParsing() {
  if (g_exit_while_parsing.load() >= 0) std::_Exit(g_exit_while_parsing.load());
}


constexpr char kUsage[] = R"(cowdb COMMAND [ARGS] [FLAGS]

Talks to a cowdb_server (--endpoint, default 127.0.0.1:7390), or opens a
database directory in this process with --data_dir=DIR (no server may have
it open).

Commands:
  get KEY                     print the value of KEY; --verify checks the
                              answer with its proof (against --trusted,
                              VERSION:DIGEST, when given)
  digest                      a version's digest (--at; default the
                              latest), which names its whole contents and
                              every version before it; --trusted checks
                              that it extends a digest you trust
  put KEY VALUE               set KEY (VALUE "-" reads the value from stdin)
  del KEY                     delete KEY
  scan [PREFIX]               keys with PREFIX, or --start/--end; --limit,
                              --reverse, --keys_only, --count; --verify
                              checks the keys with proofs (as get)
  txn [LINE ...]              an atomic compare-and-swap script, one
                              statement per argument or, with none, per
                              stdin line:  if KEY value|mod OP X,
                              if KEY exists|missing, put K V, del K,
                              get K, else
  versions                    retained versions: when, the branch each
                              commit changed, main's keys (--branch:
                              only the versions that changed it)
  tag NAME [VERSION]          name a version (default: latest); a tagged
                              version is kept until untagged
  untag NAME
  tags
  diff FROM TO [PREFIX]       what changed between two versions (of
                              --branch; with --to_branch, between two
                              branches: FROM and TO may then be left out)
  watch [PREFIX]              print changes as they commit (--from, --limit)
  branch create NAME          a new branch (O(1): it shares its pages): the
                              tree of branch --from (default main) at --at
                              (default its latest)
  branch list                 the branches: created at, source, keys
  branch delete NAME          delete a branch (its earlier versions stay
                              readable while retained)
  merge FROM INTO             apply what branch FROM changed since its
                              common ancestor with INTO (the fork or last
                              merge between them, or for two forks of one
                              branch the earlier fork) to INTO in one
                              commit; --policy=fail|ours|theirs
                              settles a key both changed differently
                              (fail, the default: nothing is merged, the
                              conflicts are listed as KEY BASE OURS THEIRS,
                              exit 3)
  history KEY                 the puts and deletes of KEY, newest first
                              (--from, --at, --limit)
  status                      versions, size, cache, open transactions
  stats                       all of the engine's figures: disk bytes by
                              kind (pages, values, log, records), log,
                              checkpoints, recovery, cache
  retention [set VERSIONS [SECONDS]]
                              show the retention window, or change it
                              until the server restarts (0 VERSIONS:
                              keep every version)
  export FILE                 the keys and values of a version (--at;
                              default the latest) as a portable file;
                              with --from, an incremental export of the
                              changes from --from to --at
  import FILE                 write an export file's keys, or apply an
                              incremental one (checksum verified first;
                              commits of 10,000 records)
  restore BACKUP --data_dir=DIR
                              make a backup the database in the new
                              directory DIR (copied, opened and checked
                              first; DIR appears only complete)
  backup DIR                  a hot backup of the whole database into the
                              new directory DIR (a database directory:
                              open it with --data_dir, or serve it)
  check                       verify every retained version (checksums,
                              tree invariants, nothing reachable freed);
                              a progress bar on a terminal
  auth status|enable|disable  users and roles: enabling needs a user with
                              the role root; then every call needs --user
  user add|passwd NAME        (the new password: stdin's first line)
  user del NAME | user list
  user grant|revoke NAME ROLE
  role add|del NAME | role list
  role grant ROLE read|write|readwrite KEY [END]
                              allow the keys [KEY, END) (no END: KEY alone;
                              --prefix: every key starting with KEY; KEY ""
                              with --prefix: every key)
  role revoke ROLE KEY [END]  (--prefix as grant)
Branches: --branch=NAME makes get, put, del, scan, txn, diff, watch and
versions act on branch NAME instead of main (other commands refuse it).
Versions are global: every commit, on any branch, is the next version,
and a version (number, tag or time) names every branch's state.
Verified reads (--verify) and history cover main only.
Wherever a version is asked for (--at, --from, diff, tag) a tag name or a
wall-clock time works too: 2026-11-30T17:00:00Z (RFC 3339) or
1764522000000000us (Unix microseconds) mean the version that was the
latest then. Output is a table; --json prints JSON lines. `get` prints a
UTF-8 value as it is (newlines included); tables escape control characters.
Keys and values print as text when they are UTF-8, else with \xNN escapes
(base64 in JSON). Use -- before arguments that start with '-'.

Exit codes: 0 ok, 1 not found (key, tag, version or branch), 2 bad input,
3 conflict (or txn compares that failed, or conflicts that a merge with
policy fail refused), 4 server unreachable or timed out, 5 unauthenticated,
6 other errors.)";

absl::Status Usage(std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(absl::string_view(msg.data(), msg.size()),
                                                 " (see cowdb --help)"));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A directory argument relative to where the user ran `bazel run`.
std::string UserPath(std::string path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd != nullptr && !path.empty() && path[0] != '/') path = absl::StrCat(cwd, "/", path);
  return path;
}

bool Writes(const std::vector<std::string>& args) {
  const std::string& command = args[0];
  return command == "put" || command == "del" || command == "txn" || command == "tag" ||
         command == "untag" || command == "import" ||
         (command == "branch" && args.size() > 1 && args[1] == "create");
}

absl::StatusOr<std::unique_ptr<client::Client>> Open(const std::vector<std::string>& args) {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  if (!dir.empty()) {
    if (!absl::GetFlag(FLAGS_endpoint).empty()) {
      return Usage("--data_dir and --endpoint exclude each other");
    }
    Options options;
    options.create_if_missing = Writes(args);  // reads never create a database
    absl::StatusOr<std::unique_ptr<client::Client>> c = client::OpenLocal(UserPath(dir), options);
    if (absl::IsNotFound(c.status())) {
      return absl::NotFoundError(absl::StrCat("no database in ", dir));
    }
    return c;
  }
  client::ConnectOptions o;
  o.target = absl::GetFlag(FLAGS_endpoint);
  if (o.target.empty()) {
    const char* env = std::getenv("COWDB_ENDPOINT");
    o.target = env != nullptr && *env != '\0' ? env : "127.0.0.1:7390";
  }
  o.timeout = absl::GetFlag(FLAGS_timeout);
  o.connect_timeout = std::min(o.timeout, absl::Seconds(5));
  if (const std::string f = absl::GetFlag(FLAGS_token_file); !f.empty()) {
    absl::StatusOr<std::string> token = ReadFile(f);
    if (!token.ok()) return token.status();
    o.token = token->substr(0, token->find_first_of("\r\n"));
  }
  o.user = absl::GetFlag(FLAGS_user);
  if (!o.user.empty()) {
    if (!o.token.empty()) return Usage("--user and --token_file exclude each other");
    if (const std::string f = absl::GetFlag(FLAGS_password_file); !f.empty()) {
      absl::StatusOr<std::string> password = ReadFile(f);
      if (!password.ok()) return password.status();
      o.password = password->substr(0, password->find_first_of("\r\n"));
    } else if (const char* env = std::getenv("COWDB_PASSWORD"); env != nullptr) {
      o.password = env;
    } else {
      return Usage("--user needs a password: set $COWDB_PASSWORD or --password_file");
    }
  }
  const std::pair<std::string, std::string*> pems[] = {
      {absl::GetFlag(FLAGS_tls_ca), &o.tls_root_certs},
      {absl::GetFlag(FLAGS_tls_cert), &o.tls_client_cert},
      {absl::GetFlag(FLAGS_tls_key), &o.tls_client_key}};
  for (const auto& [f, field] : pems) {
    if (!f.empty()) {
      absl::StatusOr<std::string> pem = ReadFile(f);
      if (!pem.ok()) return pem.status();
      *field = *pem;
    }
  }
  return client::Connect(o);
}

// A progress bar on stderr when it is a terminal (done/total, percent,
// rate, ETA), redrawn at most 5 times a second; nothing when piped.
class ProgressBar {
 public:
  ProgressBar(std::string what, std::string unit, bool enabled)
      : what_(std::move(what)), unit_(std::move(unit)),
        enabled_(enabled && isatty(STDERR_FILENO)), start_(absl::Now()) {}
  void Update(uint64_t done, uint64_t total) {
    const absl::Time now = absl::Now();
    if (!enabled_ || now - drawn_ < absl::Milliseconds(200)) return;
    drawn_ = now;
    const double secs = absl::ToDoubleSeconds(now - start_);
    const double rate = secs > 0 ? done / secs : 0;
    const std::string eta =
        rate > 0 && total > done ? absl::StrFormat(", ETA %.0fs", (total - done) / rate) : "";
    std::cerr << absl::StrFormat("\r%s: %d/%d %s (%d%%), %.0f/s%s   ", what_, done, total,
                                 unit_, total == 0 ? 100 : 100 * done / total, rate, eta)
              << std::flush;
  }
  void Clear() {
    if (enabled_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  const std::string what_, unit_;
  const bool enabled_;
  const absl::Time start_;
  absl::Time drawn_ = absl::InfinitePast();
};

class Cli {
 public:
  Cli(client::Client& db, std::ostream& out) : db_(db), out_(out), json_(absl::GetFlag(FLAGS_json)) {}

  // Runs `args` (the command and its arguments); returns the exit code.
  absl::Status Run(const std::vector<std::string>& args);

  ExitCode result() const { return result_; }

 private:
  absl::Status Get(const std::vector<std::string>& a);
  absl::Status VerifiedGet(const std::string& key, std::optional<uint64_t> at);
  absl::Status DigestCmd(const std::vector<std::string>& a);
  // --trusted parsed; nullopt when not given.
  absl::StatusOr<std::optional<client::TrustedDigest>> Trusted();
  absl::Status Put(const std::vector<std::string>& a);
  absl::Status Del(const std::vector<std::string>& a);
  absl::Status Scan(const std::vector<std::string>& a);
  absl::Status Txn(const std::vector<std::string>& a);
  absl::Status Versions(const std::vector<std::string>& a);
  absl::Status Tag(const std::vector<std::string>& a);
  absl::Status Untag(const std::vector<std::string>& a);
  absl::Status Tags(const std::vector<std::string>& a);
  absl::Status Diff(const std::vector<std::string>& a);
  absl::Status Watch(const std::vector<std::string>& a);
  absl::Status History(const std::vector<std::string>& a);
  absl::Status Check(const std::vector<std::string>& a);
  absl::Status Backup(const std::vector<std::string>& a);
  absl::Status Export(const std::vector<std::string>& a);
  absl::Status RetentionCmd(const std::vector<std::string>& a);
  absl::Status Import(const std::vector<std::string>& a);
  absl::Status Status(const std::vector<std::string>& a);
  absl::Status Stats(const std::vector<std::string>& a);
  absl::Status AuthCmd(const std::vector<std::string>& a);
  absl::Status UserCmd(const std::vector<std::string>& a);
  absl::Status RoleCmd(const std::vector<std::string>& a);
  absl::Status BranchCmd(const std::vector<std::string>& a);
  absl::Status MergeCmd(const std::vector<std::string>& a);
  // --branch ("" for main).
  static std::string Branch() { return absl::GetFlag(FLAGS_branch); }
  // The server's users and roles (none on a local database).
  absl::StatusOr<client::AuthAdmin*> Admin();

  // A version number, a time (RFC 3339, or Unix microseconds + "us"), or
  // a tag name.
  absl::StatusOr<uint64_t> ResolveVersion(const std::string& v);
  // --at resolved; nullopt for the latest.
  absl::StatusOr<std::optional<uint64_t>> At();
  // PREFIX (optional positional argument at `index`) or --start/--end.
  absl::StatusOr<client::Range> RangeArg(const std::vector<std::string>& a, size_t index);
  void Written(uint64_t version);
  // Named numbers: one JSON object with --json (returns false: the caller
  // prints nothing more), else a FIELD/VALUE table (returns true).
  bool PrintFields(const std::vector<std::pair<const char*, uint64_t>>& rows);
  void PrintChange(const client::Change& c, std::optional<uint64_t> version, bool net,
                   Table* table);

  client::Client& db_;
  std::ostream& out_;
  const bool json_;
  ExitCode result_ = kOk;
};

absl::Status Cli::Run(const std::vector<std::string>& args) {
  using Handler = absl::Status (Cli::*)(const std::vector<std::string>&);
  static const std::vector<std::pair<std::string, Handler>> kCommands = {
      {"get", &Cli::Get},   {"put", &Cli::Put},       {"del", &Cli::Del},
      {"scan", &Cli::Scan}, {"txn", &Cli::Txn},       {"versions", &Cli::Versions},
      {"tag", &Cli::Tag},   {"untag", &Cli::Untag},   {"tags", &Cli::Tags},
      {"diff", &Cli::Diff}, {"watch", &Cli::Watch},   {"status", &Cli::Status},
      {"history", &Cli::History}, {"check", &Cli::Check},     {"backup", &Cli::Backup},
      {"export", &Cli::Export},   {"import", &Cli::Import},   {"retention", &Cli::RetentionCmd},
      {"stats", &Cli::Stats},     {"auth", &Cli::AuthCmd},     {"user", &Cli::UserCmd},
      {"role", &Cli::RoleCmd},    {"digest", &Cli::DigestCmd},   {"branch", &Cli::BranchCmd},
      {"merge", &Cli::MergeCmd},
  };
  // A branch flag where it does not apply would silently act on main.
  static const std::vector<std::string> kOnBranches = {"get",  "put",  "del",   "scan",
                                                       "txn",  "diff", "watch", "versions"};
  if (const std::string b = Branch(); !b.empty() && b != "main" &&
      std::find(kOnBranches.begin(), kOnBranches.end(), args[0]) == kOnBranches.end()) {
    return Usage(absl::StrCat("--branch is for ", absl::StrJoin(kOnBranches, ", "), "; \"",
                              args[0], "\" acts on main (or names its branches itself)"));
  }
  if (!absl::GetFlag(FLAGS_to_branch).empty() && args[0] != "diff") {
    return Usage("--to_branch is for diff");
  }
  for (const auto& [name, handler] : kCommands) {
    if (args[0] == name) {
      return (this->*handler)(std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  return Usage(absl::StrCat("unknown command \"", args[0], "\""));
}

absl::StatusOr<uint64_t> Cli::ResolveVersion(const std::string& v) {
  uint64_t n = 0;
  if (absl::SimpleAtoi(v, &n)) return n;
  int64_t micros = 0;
  absl::Time time;
  std::string error;
  if (absl::EndsWith(v, "us") && absl::SimpleAtoi(v.substr(0, v.size() - 2), &micros)) {
    return db_.VersionAt(absl::FromUnixMicros(micros));
  }
  if (absl::ParseTime(absl::RFC3339_full, v, &time, &error)) return db_.VersionAt(time);
  if (v.size() >= 10 && v[4] == '-' && v[7] == '-' && absl::ascii_isdigit(v[0])) {
    return Usage(absl::StrCat("\"", v, "\" is not an RFC 3339 time (", error,
                              "); for example 2026-11-30T17:00:00Z"));
  }
  absl::StatusOr<std::map<std::string, uint64_t>> tags = db_.ListTags();
  if (!tags.ok()) return tags.status();
  auto it = tags->find(v);
  if (it == tags->end()) {
    return absl::NotFoundError(
        absl::StrCat("\"", v, "\" is neither a version, a time nor a tag"));
  }
  return it->second;
}

absl::StatusOr<std::optional<uint64_t>> Cli::At() {
  const std::string at = absl::GetFlag(FLAGS_at);
  if (at.empty()) return std::optional<uint64_t>();
  absl::StatusOr<uint64_t> v = ResolveVersion(at);
  if (!v.ok()) return v.status();
  return std::optional<uint64_t>(*v);
}

absl::StatusOr<client::Range> Cli::RangeArg(const std::vector<std::string>& a, size_t index) {
  client::Range r{absl::GetFlag(FLAGS_start), absl::GetFlag(FLAGS_end), ""};
  if (a.size() > index + 1) return Usage("too many arguments");
  if (a.size() == index + 1) {
    if (!r.start.empty() || !r.end.empty()) return Usage("give a PREFIX or --start/--end");
    r.prefix = a[index];
  }
  return r;
}

bool Cli::PrintFields(const std::vector<std::pair<const char*, uint64_t>>& rows) {
  if (json_) {
    out_ << "{";
    for (size_t i = 0; i < rows.size(); ++i) {
      out_ << (i ? "," : "") << "\"" << rows[i].first << "\":" << rows[i].second;
    }
    out_ << "}\n";
    return false;
  }
  Table table({"FIELD", "VALUE"});
  for (const auto& [name, value] : rows) table.Add({name, absl::StrCat(value)});
  table.Print(out_);
  return true;
}

void Cli::Written(uint64_t version) {
  if (json_) {
    out_ << "{\"version\":" << version << "}\n";
  } else {
    out_ << "OK version " << version << "\n";
  }
}

absl::Status Cli::Get(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb get KEY");
  absl::StatusOr<std::optional<uint64_t>> at = At();
  if (!at.ok()) return at.status();
  if (absl::GetFlag(FLAGS_verify)) {
    if (!Branch().empty() && Branch() != "main") {
      return absl::FailedPreconditionError(
          "reads of a branch cannot be verified: version digests cover the main branch only");
    }
    return VerifiedGet(a[0], *at);
  }
  absl::StatusOr<client::Entry> e = db_.Get(a[0], client::TreeAt(Branch(), *at));
  if (absl::IsNotFound(e.status()) && e.status().message().find("version") == std::string::npos &&
      e.status().message().find("branch") == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("no key \"", Printable(a[0]), "\""));
  }
  if (!e.ok()) return e.status();
  if (json_) {
    out_ << "{" << JsonBytesField("key", a[0]) << "," << JsonBytesField("value", e->value)
         << ",\"mod_version\":" << e->mod_version << ",\"read_version\":" << e->version << "}\n";
  } else {
    out_ << PrintableValue(e->value) << "\n";
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<client::TrustedDigest>> Cli::Trusted() {
  const std::string flag = absl::GetFlag(FLAGS_trusted);
  if (flag.empty()) return std::optional<client::TrustedDigest>();
  const size_t colon = flag.find(':');
  client::TrustedDigest t;
  if (colon == std::string::npos || !absl::SimpleAtoi(flag.substr(0, colon), &t.version)) {
    return Usage("--trusted is VERSION:DIGEST, as `cowdb digest` prints it");
  }
  absl::StatusOr<Hash> h = HashFromHex(flag.substr(colon + 1));
  if (!h.ok()) return Usage(absl::StrCat("--trusted: ", h.status().message()));
  t.digest = *h;
  return std::optional<client::TrustedDigest>(t);
}

absl::Status Cli::VerifiedGet(const std::string& key, std::optional<uint64_t> at) {
  absl::StatusOr<std::optional<client::TrustedDigest>> trusted = Trusted();
  if (!trusted.ok()) return trusted.status();
  client::VerifiedReader reader(&db_, *trusted);
  absl::StatusOr<client::VerifiedValue> v = reader.Get(key, at);
  if (!v.ok()) return v.status();
  const std::string digest = absl::StrCat(v->version, ":", HashToHex(v->digest));
  if (json_) {
    out_ << "{" << JsonBytesField("key", key) << ",";
    if (v->value) out_ << JsonBytesField("value", *v->value) << ",";
    out_ << "\"found\":" << (v->value ? "true" : "false") << ",\"read_version\":" << v->version
         << ",\"verified\":true,\"digest\":" << JsonString(digest) << "}\n";
  } else if (v->value) {
    out_ << PrintableValue(*v->value) << "\n";
  }
  // What was proved, on stderr: stdout stays the value alone.
  std::cerr << "verified: " << (v->value ? "present" : "absent") << " at version "
            << v->version << (*trusted ? ", extending the trusted digest" : " (no --trusted: "
            "checked against the server's own digest)") << "; digest " << digest << "\n";
  if (!v->value) {
    return absl::NotFoundError(absl::StrCat("no key \"", Printable(key), "\" (absence verified)"));
  }
  return absl::OkStatus();
}

absl::Status Cli::DigestCmd(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb digest [--at=VERSION] [--trusted=VERSION:DIGEST]");
  absl::StatusOr<std::optional<uint64_t>> at = At();
  if (!at.ok()) return at.status();
  absl::StatusOr<std::optional<client::TrustedDigest>> trusted = Trusted();
  if (!trusted.ok()) return trusted.status();
  absl::StatusOr<client::VersionDigest> d = db_.Digest(*at);
  if (!d.ok()) return d.status();
  if (*trusted) {
    const client::TrustedDigest& t = **trusted;
    if (t.version > d->version) {
      return Usage(absl::StrCat("--trusted is of version ", t.version, ", after version ",
                                d->version));
    }
    absl::StatusOr<std::vector<DigestLink>> links = db_.DigestLinks(t.version, d->version);
    if (!links.ok()) return links.status();
    absl::StatusOr<Hash> reached = VerifyChain(t.version, t.digest, *links);
    if (!reached.ok()) return reached.status();
    if (*reached != d->digest) {
      return absl::DataLossError(absl::StrCat(
          "verification failed: the digest of version ", d->version,
          " does not extend the trusted digest of version ", t.version));
    }
  }
  const std::string digest = absl::StrCat(d->version, ":", HashToHex(d->digest));
  if (json_) {
    out_ << "{\"version\":" << d->version << ",\"digest\":" << JsonString(digest)
         << ",\"root_hash\":" << JsonString(HashToHex(d->root_hash))
         << ",\"commit_unix_micros\":" << d->commit_micros
         << ",\"extends_trusted\":" << (*trusted ? "true" : "false") << "}\n";
    return absl::OkStatus();
  }
  Table table({"FIELD", "VALUE"});
  table.Add({"digest", digest});
  table.Add({"root_hash", HashToHex(d->root_hash)});
  table.Add({"commit_time", absl::FormatTime(absl::RFC3339_full,
                                             absl::FromUnixMicros(d->commit_micros),
                                             absl::UTCTimeZone())});
  if (*trusted) table.Add({"extends", absl::StrCat("the trusted digest of version ",
                                                    (*trusted)->version)});
  table.Print(out_);
  return absl::OkStatus();
}

absl::Status Cli::Put(const std::vector<std::string>& a) {
  if (a.size() != 2) return Usage("usage: cowdb put KEY VALUE");
  std::string value = a[1];
  if (value == "-") value.assign(std::istreambuf_iterator<char>(std::cin), {});
  absl::StatusOr<uint64_t> v = db_.Put(a[0], value, client::WriteOptions{Branch()});
  if (!v.ok()) return v.status();
  Written(*v);
  return absl::OkStatus();
}

absl::Status Cli::Del(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb del KEY");
  absl::StatusOr<uint64_t> v = db_.Delete(a[0], client::WriteOptions{Branch()});
  if (!v.ok()) return v.status();
  Written(*v);
  return absl::OkStatus();
}

absl::Status Cli::Scan(const std::vector<std::string>& a) {
  absl::StatusOr<client::Range> range = RangeArg(a, 0);
  if (!range.ok()) return range.status();
  absl::StatusOr<std::optional<uint64_t>> at = At();
  if (!at.ok()) return at.status();
  if (absl::GetFlag(FLAGS_count)) {
    absl::StatusOr<uint64_t> n = db_.Count(*range, client::TreeAt(Branch(), *at));
    if (!n.ok()) return n.status();
    uint64_t limit = absl::GetFlag(FLAGS_limit);
    uint64_t count = limit == 0 ? *n : std::min(*n, limit);
    if (json_) {
      out_ << "{\"count\":" << count << "}\n";
    } else {
      out_ << count << "\n";
    }
    return absl::OkStatus();
  }
  client::ScanOptions o;
  o.range = *range;
  o.at = *at;
  o.limit = absl::GetFlag(FLAGS_limit);
  o.reverse = absl::GetFlag(FLAGS_reverse);
  o.keys_only = absl::GetFlag(FLAGS_keys_only);
  o.branch = Branch();
  Table table(o.keys_only ? std::vector<std::string>{"KEY", "MOD_VERSION"}
                          : std::vector<std::string>{"KEY", "VALUE", "MOD_VERSION"});
  const bool verify = absl::GetFlag(FLAGS_verify);
  absl::StatusOr<std::optional<client::TrustedDigest>> trusted = Trusted();
  if (!trusted.ok()) return trusted.status();
  client::VerifiedReader reader(&db_, *trusted);
  auto scan = [&](const std::function<bool(const client::KeyValue&)>& visit) {
    return verify ? reader.Scan(o, visit) : db_.Scan(o, visit);
  };
  uint64_t keys = 0;
  absl::StatusOr<uint64_t> version = scan([&](const client::KeyValue& kv) {
    ++keys;
    if (json_) {
      out_ << "{" << JsonBytesField("key", kv.key);
      if (!o.keys_only) out_ << "," << JsonBytesField("value", kv.value);
      out_ << ",\"mod_version\":" << kv.mod_version << "}\n";
    } else if (o.keys_only) {
      table.Add({Printable(kv.key), absl::StrCat(kv.mod_version)});
    } else {
      table.Add({Printable(kv.key), Printable(kv.value), absl::StrCat(kv.mod_version)});
    }
    return true;
  });
  if (!version.ok()) return version.status();
  if (verify) {
    std::cerr << "verified: " << keys << (keys == 1 ? " key" : " keys") << " at version "
              << *version
              << (*trusted ? ", extending the trusted digest" : "") << "; digest "
              << reader.trusted()->version << ":" << HashToHex(reader.trusted()->digest) << "\n";
  }
  if (!json_) {
    table.Print(out_);
    out_ << "(" << table.size() << (table.size() == 1 ? " key" : " keys") << " at version "
         << *version << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::Txn(const std::vector<std::string>& a) {
  std::vector<std::string> lines = a;
  if (lines.empty()) {
    for (std::string line; std::getline(std::cin, line);) lines.push_back(line);
  }
  absl::StatusOr<client::TxnRequest> req = ParseTxnScript(lines);
  if (!req.ok()) return req.status();
  req->branch = Branch();
  absl::StatusOr<client::TxnResult> r = db_.Txn(*req);
  if (!r.ok()) return r.status();
  if (!r->succeeded) result_ = kConflict;
  if (json_) {
    out_ << "{\"succeeded\":" << (r->succeeded ? "true" : "false")
         << ",\"version\":" << r->version << ",\"gets\":[";
    for (size_t i = 0; i < r->gets.size(); ++i) {
      const client::KeyValue& kv = r->gets[i];
      out_ << (i ? "," : "") << "{" << JsonBytesField("key", kv.key) << ","
           << JsonBytesField("value", kv.value) << ",\"mod_version\":" << kv.mod_version << "}";
    }
    out_ << "]}\n";
    return absl::OkStatus();
  }
  out_ << (r->succeeded ? "SUCCEEDED" : "FAILED (a compare did not hold; ran the else branch)")
       << " at version " << r->version << "\n";
  if (!r->gets.empty()) {
    Table table({"KEY", "VALUE", "MOD_VERSION"});
    for (const client::KeyValue& kv : r->gets) {
      table.Add({Printable(kv.key), Printable(kv.value), absl::StrCat(kv.mod_version)});
    }
    table.Print(out_);
  }
  return absl::OkStatus();
}

absl::Status Cli::Versions(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb versions [--branch=NAME]");
  absl::StatusOr<std::vector<client::VersionInfo>> vs = db_.ListVersions();
  if (!vs.ok()) return vs.status();
  const std::string branch = Branch();
  // ENTRIES counts main's keys (what the engine records per version);
  // BRANCH is the branch the version's commit changed.
  Table table({"VERSION", "COMMITTED", "BRANCH", "ENTRIES"});
  for (const client::VersionInfo& v : *vs) {
    if (!branch.empty() && v.branch != branch) continue;
    std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                                        absl::FromUnixMicros(v.commit_micros),
                                        absl::UTCTimeZone());
    if (json_) {
      out_ << "{\"version\":" << v.version << ",\"committed\":" << JsonString(when)
           << ",\"branch\":" << JsonString(v.branch) << ",\"entries\":" << v.entries << "}\n";
    } else {
      table.Add({absl::StrCat(v.version), when, Printable(v.branch), absl::StrCat(v.entries)});
    }
  }
  if (!json_) table.Print(out_);
  return absl::OkStatus();
}

absl::StatusOr<client::AuthAdmin*> Cli::Admin() {
  client::AuthAdmin* admin = db_.Auth();
  if (admin == nullptr) {
    return Usage("users and roles belong to a server; a database opened with --data_dir has none");
  }
  return admin;
}

namespace {
// A new password: the first line of stdin.
absl::StatusOr<std::string> ReadNewPassword() {
  if (isatty(STDIN_FILENO)) std::cerr << "new password (one line): " << std::flush;
  std::string line;
  std::getline(std::cin, line);
  while (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return Usage("the new password (stdin's first line) is empty");
  return line;
}
}  // namespace

absl::Status Cli::AuthCmd(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb auth status|enable|disable");
  absl::StatusOr<client::AuthAdmin*> admin = Admin();
  if (!admin.ok()) return admin.status();
  if (a[0] == "enable" || a[0] == "disable") {
    if (absl::Status s = (*admin)->SetEnabled(a[0] == "enable"); !s.ok()) return s;
  } else if (a[0] != "status") {
    return Usage("usage: cowdb auth status|enable|disable");
  }
  absl::StatusOr<bool> on = (*admin)->Enabled();
  if (!on.ok()) return on.status();
  out_ << (json_ ? absl::StrCat("{\"enabled\":", *on ? "true" : "false", "}")
                 : absl::StrCat("auth ", *on ? "enabled" : "disabled"))
       << "\n";
  return absl::OkStatus();
}

absl::Status Cli::UserCmd(const std::vector<std::string>& a) {
  constexpr char kHow[] =
      "usage: cowdb user add|passwd|del NAME, user grant|revoke NAME ROLE, user list";
  if (a.empty()) return Usage(kHow);
  absl::StatusOr<client::AuthAdmin*> admin = Admin();
  if (!admin.ok()) return admin.status();
  client::AuthAdmin& auth = **admin;
  const std::string& verb = a[0];
  absl::Status s;
  if (verb == "list" && a.size() == 1) {
    absl::StatusOr<std::vector<client::User>> users = auth.ListUsers();
    if (!users.ok()) return users.status();
    Table table({"USER", "ROLES"});
    for (const client::User& u : *users) {
      if (json_) {
        std::vector<std::string> roles;
        for (const std::string& r : u.roles) roles.push_back(JsonString(r));
        out_ << "{\"user\":" << JsonString(u.name) << ",\"roles\":["
             << absl::StrJoin(roles, ",") << "]}\n";
      } else {
        table.Add({Printable(u.name), Printable(absl::StrJoin(u.roles, ","))});
      }
    }
    if (!json_) table.Print(out_);
    return absl::OkStatus();
  } else if ((verb == "add" || verb == "passwd") && a.size() == 2) {
    absl::StatusOr<std::string> password = ReadNewPassword();
    if (!password.ok()) return password.status();
    s = verb == "add" ? auth.AddUser(a[1], *password) : auth.SetPassword(a[1], *password);
  } else if (verb == "del" && a.size() == 2) {
    s = auth.DeleteUser(a[1]);
  } else if ((verb == "grant" || verb == "revoke") && a.size() == 3) {
    s = verb == "grant" ? auth.GrantRole(a[1], a[2]) : auth.RevokeRole(a[1], a[2]);
  } else {
    return Usage(kHow);
  }
  if (!s.ok()) return s;
  out_ << (json_ ? "{}" : "OK") << "\n";
  return absl::OkStatus();
}

absl::Status Cli::RoleCmd(const std::vector<std::string>& a) {
  constexpr char kHow[] =
      "usage: cowdb role add|del NAME, role grant ROLE read|write|readwrite KEY [END], "
      "role revoke ROLE KEY [END], role list";
  if (a.empty()) return Usage(kHow);
  absl::StatusOr<client::AuthAdmin*> admin = Admin();
  if (!admin.ok()) return admin.status();
  client::AuthAdmin& auth = **admin;
  const std::string& verb = a[0];
  // KEY [END] or --prefix KEY, as a permission's (key, range_end).
  auto keys = [&](size_t at, client::Permission* p) -> absl::Status {
    if (a.size() < at + 1 || a.size() > at + 2) return Usage(kHow);
    p->key = a[at];
    if (absl::GetFlag(FLAGS_prefix)) {
      if (a.size() == at + 2) return Usage("--prefix takes KEY without END");
      p->range_end = client::PrefixEnd(p->key);
    } else if (a.size() == at + 2) {
      p->range_end = a[at + 1];
    }
    return absl::OkStatus();
  };
  absl::Status s;
  if (verb == "list" && a.size() == 1) {
    absl::StatusOr<std::vector<client::Role>> roles = auth.ListRoles();
    if (!roles.ok()) return roles.status();
    Table table({"ROLE", "PERMISSION", "KEY", "RANGE_END"});
    static constexpr const char* kTypes[] = {"read", "write", "readwrite"};
    for (const client::Role& r : *roles) {
      if (json_) {
        std::vector<std::string> perms;
        for (const client::Permission& p : r.permissions) {
          perms.push_back(absl::StrCat("{\"type\":\"", kTypes[static_cast<int>(p.type)], "\",",
                                       JsonBytesField("key", p.key), ",",
                                       JsonBytesField("range_end", p.range_end), "}"));
        }
        out_ << "{\"role\":" << JsonString(r.name) << ",\"permissions\":["
             << absl::StrJoin(perms, ",") << "]}\n";
        continue;
      }
      if (r.permissions.empty()) {
        table.Add({Printable(r.name), r.name == "root" ? "everything" : "-", "", ""});
      }
      for (const client::Permission& p : r.permissions) {
        table.Add({Printable(r.name), kTypes[static_cast<int>(p.type)], Printable(p.key),
                   Printable(p.range_end)});
      }
    }
    if (!json_) table.Print(out_);
    return absl::OkStatus();
  } else if ((verb == "add" || verb == "del") && a.size() == 2) {
    s = verb == "add" ? auth.AddRole(a[1]) : auth.DeleteRole(a[1]);
  } else if (verb == "grant" && a.size() >= 4) {
    client::Permission p;
    if (a[2] == "read") {
      p.type = client::Permission::Type::kRead;
    } else if (a[2] == "write") {
      p.type = client::Permission::Type::kWrite;
    } else if (a[2] == "readwrite") {
      p.type = client::Permission::Type::kReadWrite;
    } else {
      return Usage(absl::StrCat("\"", a[2], "\" is not read, write or readwrite"));
    }
    if (absl::Status k = keys(3, &p); !k.ok()) return k;
    s = auth.GrantPermission(a[1], p);
  } else if (verb == "revoke" && a.size() >= 3) {
    client::Permission p;
    if (absl::Status k = keys(2, &p); !k.ok()) return k;
    s = auth.RevokePermission(a[1], p.key, p.range_end);
  } else {
    return Usage(kHow);
  }
  if (!s.ok()) return s;
  out_ << (json_ ? "{}" : "OK") << "\n";
  return absl::OkStatus();
}

absl::Status Cli::BranchCmd(const std::vector<std::string>& a) {
  constexpr char kHow[] =
      "usage: cowdb branch create NAME [--from=BRANCH] [--at=VERSION], branch list, "
      "branch delete NAME";
  if (a.empty()) return Usage(kHow);
  const std::string& verb = a[0];
  if (verb == "list" && a.size() == 1) {
    absl::StatusOr<std::vector<client::BranchInfo>> branches = db_.ListBranches();
    if (!branches.ok()) return branches.status();
    Table table({"BRANCH", "CREATED", "SOURCE", "SOURCE_VERSION", "ENTRIES"});
    for (const client::BranchInfo& b : *branches) {
      if (json_) {
        out_ << "{\"branch\":" << JsonString(b.name) << ",\"created\":" << b.created
             << ",\"source\":" << JsonString(b.source)
             << ",\"source_version\":" << b.source_version << ",\"entries\":" << b.entries
             << "}\n";
      } else if (b.source.empty()) {  // main
        table.Add({Printable(b.name), "-", "-", "-", absl::StrCat(b.entries)});
      } else {
        table.Add({Printable(b.name), absl::StrCat(b.created), Printable(b.source),
                   absl::StrCat(b.source_version), absl::StrCat(b.entries)});
      }
    }
    if (!json_) table.Print(out_);
    return absl::OkStatus();
  }
  if (verb == "create" && a.size() == 2) {
    absl::StatusOr<std::optional<uint64_t>> at = At();
    if (!at.ok()) return at.status();
    const std::string from = absl::GetFlag(FLAGS_from);
    absl::StatusOr<uint64_t> v = db_.Fork(a[1], client::TreeAt(from, *at));
    if (!v.ok()) return v.status();
    const std::string source = from.empty() ? "main" : from;
    if (json_) {
      out_ << "{\"branch\":" << JsonString(a[1]) << ",\"version\":" << *v
           << ",\"source\":" << JsonString(source) << "}\n";
    } else {
      out_ << "OK branch " << Printable(a[1]) << " created at version " << *v << " from "
           << Printable(source)
           << (at->has_value() ? absl::StrCat(" at version ", **at) : std::string()) << "\n";
    }
    return absl::OkStatus();
  }
  if ((verb == "delete" || verb == "del") && a.size() == 2) {
    absl::StatusOr<uint64_t> v = db_.DeleteBranch(a[1]);
    if (!v.ok()) return v.status();
    if (json_) {
      out_ << "{\"branch\":" << JsonString(a[1]) << ",\"deleted\":true,\"version\":" << *v
           << "}\n";
    } else {
      out_ << "OK branch " << Printable(a[1]) << " deleted at version " << *v << "\n";
    }
    return absl::OkStatus();
  }
  return Usage(kHow);
}

absl::Status Cli::MergeCmd(const std::vector<std::string>& a) {
  if (a.size() != 2) return Usage("usage: cowdb merge FROM INTO [--policy=fail|ours|theirs]");
  const std::string policy_flag = absl::GetFlag(FLAGS_policy);
  client::MergePolicy policy;
  if (policy_flag == "fail") {
    policy = client::MergePolicy::kFail;
  } else if (policy_flag == "ours") {
    policy = client::MergePolicy::kOurs;
  } else if (policy_flag == "theirs") {
    policy = client::MergePolicy::kTheirs;
  } else {
    return Usage(absl::StrCat("--policy is fail, ours or theirs, not \"", policy_flag, "\""));
  }
  absl::StatusOr<client::MergeResult> r = db_.Merge(a[0], a[1], policy);
  if (!r.ok()) return r.status();
  if (!r->merged) result_ = kConflict;
  if (json_) {
    std::vector<std::string> conflicts;
    for (const client::MergeConflict& c : r->conflicts) {
      std::string o = absl::StrCat("{", JsonBytesField("key", c.key));
      for (const auto& [name, value] :
           {std::pair("base", &c.base), std::pair("ours", &c.ours),
            std::pair("theirs", &c.theirs)}) {
        if (*value) absl::StrAppend(&o, ",", JsonBytesField(name, **value));
      }
      conflicts.push_back(o + "}");
    }
    out_ << "{\"merged\":" << (r->merged ? "true" : "false") << ",\"version\":" << r->version
         << ",\"changes\":" << r->changes << ",\"base_branch\":" << JsonString(r->base_branch)
         << ",\"base_version\":" << r->base_version
         << ",\"conflict_count\":" << r->conflict_count << ",\"conflicts\":["
         << absl::StrJoin(conflicts, ",") << "]}\n";
    return absl::OkStatus();
  }
  const std::string base =
      absl::StrCat(Printable(r->base_branch), " at version ", r->base_version);
  if (r->merged) {
    out_ << "MERGED " << Printable(a[0]) << " into " << Printable(a[1]) << " at version "
         << r->version << ": " << r->changes << (r->changes == 1 ? " change" : " changes")
         << " (common ancestor: " << base << ")\n";
  } else {
    out_ << "NOT MERGED: " << r->conflict_count
         << (r->conflict_count == 1 ? " conflict" : " conflicts")
         << " (--policy=fail); nothing was written (common ancestor: " << base << ")\n";
  }
  if (!r->conflicts.empty()) {
    Table table({"KEY", "BASE", "OURS", "THEIRS"});
    auto cell = [](const std::optional<std::string>& v) { return v ? Printable(*v) : "-"; };
    for (const client::MergeConflict& c : r->conflicts) {
      table.Add({Printable(c.key), cell(c.base), cell(c.ours), cell(c.theirs)});
    }
    table.Print(out_);
    if (r->merged) {
      out_ << "(" << r->conflicts.size() << (r->conflicts.size() == 1 ? " conflict" : " conflicts")
           << " settled by --policy=" << policy_flag << ")\n";
    }
    if (r->conflict_count > r->conflicts.size()) {
      out_ << "(and " << r->conflict_count - r->conflicts.size() << " more conflicts not shown)\n";
    }
  }
  return absl::OkStatus();
}

absl::Status Cli::Tag(const std::vector<std::string>& a) {
  if (a.empty() || a.size() > 2) return Usage("usage: cowdb tag NAME [VERSION]");
  uint64_t version = 0;
  if (a.size() == 2) {
    absl::StatusOr<uint64_t> v = ResolveVersion(a[1]);
    if (!v.ok()) return v.status();
    version = *v;
  } else {
    absl::StatusOr<client::ServerStatus> st = db_.Status();
    if (!st.ok()) return st.status();
    version = st->latest_version;
  }
  if (absl::Status s = db_.Tag(a[0], version); !s.ok()) return s;
  if (json_) {
    out_ << "{\"tag\":" << JsonString(a[0]) << ",\"version\":" << version << "}\n";
  } else {
    out_ << "OK tag " << a[0] << " = version " << version << "\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::Untag(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb untag NAME");
  if (absl::Status s = db_.Untag(a[0]); !s.ok()) return s;
  out_ << (json_ ? "{}" : "OK") << "\n";
  return absl::OkStatus();
}

absl::Status Cli::Tags(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb tags");
  absl::StatusOr<std::map<std::string, uint64_t>> tags = db_.ListTags();
  if (!tags.ok()) return tags.status();
  Table table({"TAG", "VERSION"});
  for (const auto& [name, version] : *tags) {
    if (json_) {
      out_ << "{\"tag\":" << JsonString(name) << ",\"version\":" << version << "}\n";
    } else {
      table.Add({Printable(name), absl::StrCat(version)});
    }
  }
  if (!json_) table.Print(out_);
  return absl::OkStatus();
}

void Cli::PrintChange(const client::Change& c, std::optional<uint64_t> version, bool net,
                      Table* table) {
  const char* op = !c.old_value ? "put" : !c.new_value ? "del" : "update";
  if (!c.new_value && !c.old_value) op = "none";
  if (json_) {
    out_ << "{";
    if (version) out_ << "\"version\":" << *version << ",";
    out_ << "\"op\":\"" << op << "\"," << JsonBytesField("key", c.key);
    if (c.old_value) out_ << "," << JsonBytesField("old_value", *c.old_value);
    if (c.new_value) out_ << "," << JsonBytesField("new_value", *c.new_value);
    out_ << ",\"old_mod_version\":" << c.old_mod_version
         << ",\"new_mod_version\":" << c.new_mod_version;
    if (net) out_ << ",\"net\":true";
    out_ << "}\n";
    return;
  }
  std::vector<std::string> row;
  if (version) row.push_back(absl::StrCat(*version, net ? " (net)" : ""));
  row.push_back(op);
  row.push_back(Printable(c.key));
  row.push_back(c.old_value ? Printable(*c.old_value) : "-");
  row.push_back(c.new_value ? Printable(*c.new_value) : "-");
  if (table != nullptr) {
    table->Add(std::move(row));
  } else {
    out_ << absl::StrJoin(row, "  ") << "\n" << std::flush;
  }
}

absl::Status Cli::Diff(const std::vector<std::string>& a) {
  const std::string from_branch = Branch();
  const std::string to_branch =
      absl::GetFlag(FLAGS_to_branch).empty() ? from_branch : absl::GetFlag(FLAGS_to_branch);
  // Across branches, FROM and TO may be left out: both at the latest.
  const bool versions_given = a.size() >= 2 || absl::GetFlag(FLAGS_to_branch).empty();
  if (a.size() < 2 && versions_given) {
    return Usage("usage: cowdb diff FROM TO [PREFIX] [--branch=B] [--to_branch=B2], or "
                 "cowdb diff [PREFIX] --to_branch=B2 (both at the latest version)");
  }
  uint64_t from = 0, to = 0;
  if (versions_given) {
    absl::StatusOr<uint64_t> v = ResolveVersion(a[0]);
    if (!v.ok()) return v.status();
    from = *v;
    v = ResolveVersion(a[1]);
    if (!v.ok()) return v.status();
    to = *v;
  } else {
    absl::StatusOr<client::ServerStatus> st = db_.Status();
    if (!st.ok()) return st.status();
    from = to = st->latest_version;
  }
  absl::StatusOr<client::Range> range = RangeArg(a, versions_given ? 2 : 0);
  if (!range.ok()) return range.status();
  Table table({"OP", "KEY", "OLD", "NEW"});
  absl::Status s = db_.Diff(client::TreeAt(from_branch, from), client::TreeAt(to_branch, to),
                            *range, [&](const client::Change& c) {
                              PrintChange(c, std::nullopt, false, &table);
                              return true;
                            });
  if (!s.ok()) return s;
  if (!json_) {
    table.Print(out_);
    out_ << "(" << table.size() << (table.size() == 1 ? " change" : " changes") << " from ";
    if (from_branch.empty() && to_branch.empty()) {
      out_ << "version " << from << " to " << to;
    } else {
      auto name = [](const std::string& b) { return b.empty() ? std::string("main") : b; };
      out_ << Printable(name(from_branch)) << " at version " << from << " to "
           << Printable(name(to_branch)) << " at version " << to;
    }
    out_ << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::Watch(const std::vector<std::string>& a) {
  absl::StatusOr<client::Range> range = RangeArg(a, 0);
  if (!range.ok()) return range.status();
  std::optional<uint64_t> from;  // unset: from now on
  if (const std::string f = absl::GetFlag(FLAGS_from); !f.empty()) {
    absl::StatusOr<uint64_t> v = ResolveVersion(f);
    if (!v.ok()) return v.status();
    from = *v;
  }
  const uint64_t limit = absl::GetFlag(FLAGS_limit);
  uint64_t seen = 0;
  if (!json_) out_ << "VERSION  OP  KEY  OLD  NEW\n" << std::flush;
  // A watch runs until stopped, unless --timeout is given: then the whole
  // watch ends at that deadline, as any call does (exit code 4). The client
  // API's Watch blocks, so a watchdog thread ends the process.
  std::optional<std::thread> watchdog;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  if (g_timeout_given) {
    const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
    watchdog.emplace([&, timeout] {
      std::unique_lock<std::mutex> lock(done_mu);
      if (done_cv.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return done; })) {
        return;
      }
      out_ << std::flush;
      std::cerr << "cowdb: DEADLINE_EXCEEDED: the watch ran for --timeout="
                << absl::FormatDuration(timeout) << "\n";
      std::_Exit(kUnreachable);
    });
  }
  absl::Status s = db_.Watch(client::TreeAt(Branch(), from), *range,
                             [&](const client::WatchEvent& e) {
    PrintChange(e.change, e.version, e.net, nullptr);
    out_ << std::flush;
    return limit == 0 || ++seen < limit;
  });
  if (watchdog) {
    {
      std::lock_guard<std::mutex> lock(done_mu);
      done = true;
    }
    done_cv.notify_one();
    watchdog->join();
  }
  return s;
}

absl::Status Cli::History(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb history KEY");
  client::HistoryOptions o;
  if (const std::string f = absl::GetFlag(FLAGS_from); !f.empty()) {
    absl::StatusOr<uint64_t> v = ResolveVersion(f);
    if (!v.ok()) return v.status();
    o.from = *v;
  }
  absl::StatusOr<std::optional<uint64_t>> at = At();
  if (!at.ok()) return at.status();
  o.to = *at;
  o.limit = absl::GetFlag(FLAGS_limit);
  absl::StatusOr<client::KeyHistory> h = db_.History(a[0], o);
  if (!h.ok()) return h.status();
  Table table({"VERSION", "OP", "VALUE", "CREATED", "WRITES", "LEASE"});
  for (const client::KeyChange& c : h->changes) {
    if (json_) {
      out_ << "{\"version\":" << c.version << ",\"op\":\"" << (c.value ? "put" : "del") << "\"";
      if (c.value) {
        out_ << "," << JsonBytesField("value", *c.value) << ",\"create_version\":"
             << c.create_version << ",\"writes\":" << c.writes << ",\"lease\":" << c.lease;
      }
      out_ << "}\n";
    } else if (c.value) {
      table.Add({absl::StrCat(c.version), "put", Printable(*c.value),
                 absl::StrCat(c.create_version), absl::StrCat(c.writes),
                 c.lease == 0 ? "-" : absl::StrCat(c.lease)});
    } else {
      table.Add({absl::StrCat(c.version), "del", "-", "-", "-", "-"});
    }
  }
  if (json_) return absl::OkStatus();
  table.Print(out_);
  out_ << "(" << table.size() << (table.size() == 1 ? " change" : " changes") << " of "
       << Printable(a[0]) << " in versions " << h->complete_from << ".." << h->to;
  if (h->more) {
    out_ << "; more before version " << h->complete_from << ": raise --limit";
  } else if (h->complete_from > std::max<uint64_t>(o.from, 1)) {
    out_ << "; versions before " << h->complete_from << " are released";
  }
  out_ << ")\n";
  return absl::OkStatus();
}

absl::Status Cli::Check(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb check");
  ProgressBar bar("checking", "versions", !json_);
  absl::StatusOr<client::CheckReport> r =
      db_.Check([&](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Clear();
  if (!r.ok()) return r.status();
  const std::vector<std::pair<const char*, uint64_t>> rows = {
      {"versions_checked", r->versions_checked}, {"pages_reachable", r->pages_reachable},
      {"blobs_reachable", r->blobs_reachable},   {"pages_stored", r->pages_stored},
      {"blobs_stored", r->blobs_stored},         {"pages_pending", r->pages_pending},
      {"blobs_pending", r->blobs_pending},       {"pages_leaked", r->pages_leaked},
      {"blobs_leaked", r->blobs_leaked}};
  if (!PrintFields(rows)) return absl::OkStatus();  // JSON: nothing more
  out_ << "OK: " << r->versions_checked << " versions verified";
  if (r->pages_leaked + r->blobs_leaked > 0) {
    out_ << "; " << r->pages_leaked << " pages and " << r->blobs_leaked
         << " blobs are stored but unreachable (a reclamation pass deletes them)";
  }
  out_ << "\n";
  return absl::OkStatus();
}

absl::Status Cli::Backup(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb backup DIR");
  const std::string dir = UserPath(a[0]);
  ProgressBar bar("backing up", "bytes", !json_);
  uint64_t bytes = 0;
  absl::Status s = db_.Backup(dir, [&](uint64_t done, uint64_t total) {
    bar.Update(done, total);
    bytes = done;
  });
  bar.Clear();
  if (!s.ok()) return s;
  if (json_) {
    out_ << "{\"backup\":" << JsonString(dir) << ",\"bytes\":" << bytes << "}\n";
  } else {
    out_ << "OK backup in " << dir
         << " (a database directory: open it with --data_dir, or start cowdb_server on it)\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::RetentionCmd(const std::vector<std::string>& a) {
  absl::StatusOr<client::Retention> r;
  if (a.empty()) {
    r = db_.GetRetention();
  } else {
    if (!absl::GetFlag(FLAGS_data_dir).empty()) {
      return Usage("retention set changes a running server's window; a database opened with "
                   "--data_dir lives for one command");
    }
    uint64_t versions = 0, seconds = 0;
    if (a[0] != "set" || a.size() < 2 || a.size() > 3 || !absl::SimpleAtoi(a[1], &versions) ||
        (a.size() == 3 && !absl::SimpleAtoi(a[2], &seconds))) {
      return Usage("usage: cowdb retention [set VERSIONS [SECONDS]]");
    }
    r = db_.SetRetention(versions, seconds);
  }
  if (!r.ok()) return r.status();
  if (json_) {
    out_ << "{\"retain_versions\":" << r->retain_versions
         << ",\"retain_seconds\":" << r->retain_seconds
         << ",\"oldest_version\":" << r->oldest_version
         << ",\"release_floor\":" << r->release_floor
         << ",\"latest_version\":" << r->latest_version << "}\n";
    return absl::OkStatus();
  }
  Table table({"FIELD", "VALUE"});
  table.Add({"retain versions",
             r->retain_versions == 0 ? "all" : absl::StrCat("the last ", r->retain_versions)});
  table.Add({"retain seconds",
             r->retain_seconds == 0 ? "-" : absl::StrCat(r->retain_seconds, " (and younger)")});
  table.Add({"oldest readable", absl::StrCat(r->oldest_version)});
  table.Add({"release floor", absl::StrCat(r->release_floor)});
  table.Add({"latest", absl::StrCat(r->latest_version)});
  table.Print(out_);
  if (!a.empty()) out_ << "(changed until the server restarts)\n";
  return absl::OkStatus();
}

absl::Status Cli::Export(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb export FILE [--at=VERSION] [--from=VERSION]");
  absl::StatusOr<std::optional<uint64_t>> at = At();
  if (!at.ok()) return at.status();
  std::optional<uint64_t> from;
  if (const std::string f = absl::GetFlag(FLAGS_from); !f.empty()) {
    absl::StatusOr<uint64_t> v = ResolveVersion(f);
    if (!v.ok()) return v.status();
    from = *v;
  }
  const std::string path = UserPath(a[0]);
  ProgressBar bar("exporting", "bytes", !json_);
  auto progress = [&](uint64_t done, uint64_t total) { bar.Update(done, total); };
  absl::Status s = from ? db_.ExportChanges(*from, *at, path, progress)
                        : db_.Export(*at, path, progress);
  bar.Clear();
  if (!s.ok()) return s;
  const std::string to = at->has_value() ? absl::StrCat("version ", **at) : "the latest version";
  if (json_) {
    out_ << "{\"export\":" << JsonString(path);
    if (from) out_ << ",\"from\":" << *from;
    out_ << "}\n";
  } else if (from) {
    out_ << "OK exported the changes from version " << *from << " to " << to << " to " << path
         << "\n";
  } else {
    out_ << "OK exported " << to << " to " << path << "\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::Import(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb import FILE");
  ProgressBar bar("importing", "bytes", !json_);
  absl::StatusOr<uint64_t> keys =
      db_.Import(UserPath(a[0]), [&](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Clear();
  if (!keys.ok()) return keys.status();
  if (json_) {
    out_ << "{\"keys\":" << *keys << "}\n";
  } else {
    out_ << "OK imported " << *keys << (*keys == 1 ? " key" : " keys") << "\n";
  }
  return absl::OkStatus();
}

absl::Status Cli::Stats(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb stats");
  absl::StatusOr<client::ServerStatus> st = db_.Status();
  if (!st.ok()) return st.status();
  const std::vector<std::pair<const char*, uint64_t>> rows = {
      {"latest_version", st->latest_version},
      {"oldest_version", st->oldest_version},
      {"release_floor", st->release_floor},
      {"entries", st->entries},
      {"disk_bytes", st->disk_bytes},
      {"disk_bytes_pages", st->disk_bytes_pages},
      {"disk_bytes_blobs", st->disk_bytes_blobs},
      {"disk_bytes_log", st->disk_bytes_log},
      {"disk_bytes_records", st->disk_bytes_records},
      {"commits", st->commits},
      {"syncs", st->syncs},
      {"log_bytes", st->log_bytes},
      {"checkpoints", st->checkpoints},
      {"checkpoint_version", st->checkpoint_version},
      {"unwritten_bytes", st->unwritten_bytes},
      {"pages_written", st->pages_written},
      {"bytes_written", st->bytes_written},
      {"cache_bytes", st->cache_bytes},
      {"cache_capacity", st->cache_capacity},
      {"cache_hits", st->cache_hits},
      {"cache_misses", st->cache_misses},
      {"open_transactions", st->open_transactions},
      {"replayed_commits", st->replayed_commits},
      {"recovery_micros", st->recovery_micros},
  };
  if (!PrintFields(rows)) return absl::OkStatus();  // JSON: nothing more
  out_ << "(counters since the server, or this command, started)\n";
  return absl::OkStatus();
}

absl::Status Cli::Status(const std::vector<std::string>& a) {
  if (!a.empty()) return Usage("usage: cowdb status");
  absl::StatusOr<client::ServerStatus> st = db_.Status();
  if (!st.ok()) return st.status();
  const uint64_t lookups = st->cache_hits + st->cache_misses;
  const double hit_rate = lookups == 0 ? 0 : 100.0 * st->cache_hits / lookups;
  if (json_) {
    out_ << "{\"latest_version\":" << st->latest_version
         << ",\"oldest_version\":" << st->oldest_version << ",\"entries\":" << st->entries
         << ",\"disk_bytes\":" << st->disk_bytes << ",\"cache_hits\":" << st->cache_hits
         << ",\"cache_misses\":" << st->cache_misses
         << ",\"open_transactions\":" << st->open_transactions
         << ",\"commits\":" << st->commits << ",\"syncs\":" << st->syncs
         << ",\"pages_written\":" << st->pages_written
         << ",\"bytes_written\":" << st->bytes_written
         << ",\"cache_bytes\":" << st->cache_bytes << "}\n";
    return absl::OkStatus();
  }
  Table table({"FIELD", "VALUE"});
  table.Add({"latest version", absl::StrCat(st->latest_version)});
  table.Add({"oldest retained", absl::StrCat(st->oldest_version)});
  table.Add({"entries", absl::StrCat(st->entries)});
  table.Add({"disk bytes", absl::StrCat(st->disk_bytes)});
  table.Add({"cache hit rate", absl::StrFormat("%.1f%% of %d lookups", hit_rate, lookups)});
  table.Add({"open transactions", absl::StrCat(st->open_transactions)});
  table.Add({"commits / syncs", absl::StrCat(st->commits, " / ", st->syncs, " since start")});
  table.Add({"pages written", absl::StrCat(st->pages_written, " (", st->bytes_written,
                                           " bytes) since start")});
  table.Add({"cache bytes", absl::StrCat(st->cache_bytes)});
  table.Print(out_);
  return absl::OkStatus();
}

// `restore BACKUP --data_dir=DIR`: copies the backup into DIR.partial,
// opens and checks it there, then renames it to DIR. Offline: no server
// serves DIR meanwhile (it does not exist yet).
absl::Status Restore(const std::vector<std::string>& a) {
  if (a.size() != 1) return Usage("usage: cowdb restore BACKUP --data_dir=DIR");
  const std::string target = absl::GetFlag(FLAGS_data_dir);
  if (target.empty()) return Usage("restore needs --data_dir=DIR, the new database directory");
  if (!absl::GetFlag(FLAGS_endpoint).empty()) {
    return Usage("restore works on directories, not a server (stop it, restore, start it)");
  }
  const std::string backup = UserPath(a[0]), dir = UserPath(target);
  const std::string partial = dir + ".partial";
  for (const std::string& d : {dir, partial}) {
    if (std::filesystem::exists(d)) return absl::AlreadyExistsError(d + " already exists");
  }
  if (!std::filesystem::is_directory(backup)) {
    return absl::NotFoundError(backup + " is not a directory");
  }
  std::error_code ec;
  std::filesystem::copy(backup, partial, std::filesystem::copy_options::recursive, ec);
  absl::Status s = ec ? absl::InternalError(absl::StrCat("cannot copy ", backup, ": ",
                                                         ec.message()))
                      : absl::OkStatus();
  if (s.ok()) {
    Options options;
    options.create_if_missing = false;
    absl::StatusOr<std::unique_ptr<client::Client>> db = client::OpenLocal(partial, options);
    if (!db.ok()) {
      s = absl::Status(db.status().code(),
                       absl::StrCat(backup, " is not a cowdb backup: ", db.status().message()));
    } else {
      ProgressBar bar("checking", "versions", !absl::GetFlag(FLAGS_json));
      absl::StatusOr<client::CheckReport> r =
          (*db)->Check([&](uint64_t done, uint64_t total) { bar.Update(done, total); });
      bar.Clear();
      s = r.status();
    }
  }
  if (s.ok()) {
    std::filesystem::rename(partial, dir, ec);
    if (ec) s = absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", ec.message()));
  }
  if (!s.ok()) {
    std::filesystem::remove_all(partial, ec);
    return s;
  }
  std::cout << (absl::GetFlag(FLAGS_json) ? absl::StrCat("{\"restored\":", JsonString(dir), "}")
                                          : "OK restored into " + dir)
            << "\n";
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "--helpfull" || arg == "--helpshort") {
      g_exit_while_parsing = kOk;
    }
    if (arg.rfind("--timeout", 0) == 0 || arg.rfind("-timeout", 0) == 0) {
      g_timeout_given = true;
    }
  }
  std::atexit(ExitWhileParsing);
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view f) {
    return f.find("client/cli/main.cc") != absl::string_view::npos;
  };
  absl::SetFlagsUsageConfig(config);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  g_exit_while_parsing = -1;
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (args.empty()) {
    std::cerr << kUsage << "\n";
    return kBadInput;
  }
  absl::Status s;
  ExitCode code = kOk;
  if (args[0] == "restore") {
    s = Restore(std::vector<std::string>(args.begin() + 1, args.end()));
  } else {
    absl::StatusOr<std::unique_ptr<client::Client>> db = Open(args);
    if (!db.ok()) {
      s = db.status();
    } else {
      Cli cli(**db, std::cout);
      s = cli.Run(args);
      code = cli.result();
    }
  }
  std::cout << std::flush;
  if (!s.ok()) {
    std::cerr << "cowdb: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
    return ExitCodeFor(s);
  }
  return code;
}

}  // namespace
}  // namespace cowdb::cli

int main(int argc, char** argv) { return cowdb::cli::Main(argc, argv); }
