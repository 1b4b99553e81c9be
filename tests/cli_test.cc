// The cowdb CLI end to end: the real binary against a real cowdb_server,
// and in embedded mode on a data directory. Checks output (tables and
// JSON) and the exit code of every failure class.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/server_process.h"
#include "tests/util/temp_dir.h"

namespace cowdb {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) s.append(buf, n);
  close(fd);
  return s;
}

// Runs `cowdb args...` with `input` on stdin.
Result RunCli(const std::vector<std::string>& args, const std::string& input = "") {
  // Close-on-exec: tests run the CLI from two threads at once, and a child
  // that inherited the other's pipe would keep it open (its reader would
  // never see EOF: a deadlock found under ASan).
  int in[2], out[2], err[2];
  EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
    std::vector<std::string> all = {"cowdb"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("client/cowdb", argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  EXPECT_EQ(write(in[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  close(in[1]);
  Result r;
  std::thread t([&] { r.err = Slurp(err[0]); });
  r.out = Slurp(out[0]);
  t.join();
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.Sub("db"), {"--shutdown_grace=300ms"}));
    endpoint_ = "--endpoint=" + server_.addr();
  }
  void TearDown() override {
    if (server_.running()) EXPECT_TRUE(server_.Stop());
  }

  // `cowdb --endpoint=... args...`
  Result Cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), endpoint_);
    return RunCli(args, input);
  }

  testing::TempDir dir_;
  testing::ServerProcess server_;
  std::string endpoint_;
};

TEST_F(CliTest, PutGetScanAndJson) {
  EXPECT_EQ(Cli({"put", "fruit/apple", "red"}).out, "OK version 1\n");
  EXPECT_EQ(Cli({"put", "fruit/kiwi", "green"}).code, 0);
  EXPECT_EQ(Cli({"put", "veg/leek", "white"}).code, 0);
  Result get = Cli({"get", "fruit/apple"});
  EXPECT_EQ(get.code, 0);
  EXPECT_EQ(get.out, "red\n");
  EXPECT_EQ(Cli({"get", "fruit/apple", "--json"}).out,
            "{\"key\":\"fruit/apple\",\"value\":\"red\",\"mod_version\":1,\"read_version\":3}\n");
  EXPECT_EQ(Cli({"scan", "fruit/"}).out,
            "KEY          VALUE  MOD_VERSION\n"
            "fruit/apple  red    1\n"
            "fruit/kiwi   green  2\n"
            "(2 keys at version 3)\n");
  EXPECT_EQ(Cli({"scan", "--reverse", "--limit=1", "--keys_only", "--json"}).out,
            "{\"key\":\"veg/leek\",\"mod_version\":3}\n");
  EXPECT_EQ(Cli({"scan", "--start=fruit/b", "--end=veg/", "--count"}).out, "1\n");
  EXPECT_EQ(Cli({"get", "fruit/apple", "--at=0"}).code, 1);
  EXPECT_EQ(Cli({"del", "fruit/apple"}).out, "OK version 4\n");
  EXPECT_EQ(Cli({"get", "fruit/apple", "--at=3"}).out, "red\n");
  // Bytes that are not text are escaped (base64 in JSON) and read back.
  EXPECT_EQ(Cli({"put", "bin", "-"}, std::string("\x01\xff", 2)).code, 0);
  EXPECT_EQ(Cli({"get", "bin"}).out, "\\x01\\xff\n");
  EXPECT_THAT(Cli({"get", "bin", "--json"}).out, HasSubstr("\"value_base64\":\"Af8=\""));
}

TEST_F(CliTest, ExitCodesPerFailureClass) {
  Result missing = Cli({"get", "nope"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Cli({"get"}).code, 2);                    // usage
  EXPECT_EQ(Cli({"frobnicate"}).code, 2);             // unknown command
  EXPECT_EQ(Cli({"put", "", "v"}).code, 2);           // empty key
  EXPECT_EQ(Cli({"scan", "--start=b", "--end=a"}).code, 2);
  EXPECT_EQ(Cli({"get", "k", "--at=no-such-tag"}).code, 1);
  EXPECT_EQ(RunCli({}).code, 2);
  // Bad flags and flag values are bad input too; --help is not an error.
  Result bad_flag = Cli({"--frobnicate", "get", "k"});
  EXPECT_EQ(bad_flag.code, 2);
  EXPECT_THAT(bad_flag.err, HasSubstr("frobnicate"));
  EXPECT_EQ(Cli({"scan", "--limit=many"}).code, 2);
  EXPECT_EQ(RunCli({"--help"}).code, 0);
  // A watch with --timeout ends when it runs out, with the timeout's code.
  Result watch = Cli({"watch", "--timeout=1s"});
  EXPECT_EQ(watch.code, 4);
  EXPECT_THAT(watch.err, HasSubstr("DEADLINE_EXCEEDED"));
  Result unreachable = RunCli({"--endpoint=127.0.0.1:1", "--timeout=1s", "get", "k"});
  EXPECT_EQ(unreachable.code, 4);
  EXPECT_THAT(unreachable.err, HasSubstr("cannot reach"));
  // A txn whose compares fail runs its else branch and exits 3.
  EXPECT_EQ(Cli({"txn", "if lock missing", "put lock me"}).code, 0);
  Result lost = Cli({"txn", "if lock missing", "put lock you", "else", "get lock"});
  EXPECT_EQ(lost.code, 3);
  EXPECT_THAT(lost.out, HasSubstr("FAILED"));
  EXPECT_THAT(lost.out, HasSubstr("lock  me"));
  Result bad_script = Cli({"txn", "if lock frob = 1"});
  EXPECT_EQ(bad_script.code, 2);
  EXPECT_THAT(bad_script.err, HasSubstr("line 1"));
}

TEST_F(CliTest, TxnScriptFromStdin) {
  Result r = Cli({"txn", "--json"},
                 "# move a token\n"
                 "if token value = \"at a\"\n"
                 "\n"
                 "put token \"at b\"\n"
                 "get token\n"
                 "else\n"
                 "put token \"at a\"\n");
  EXPECT_EQ(r.code, 3);  // token was absent: the else branch ran
  EXPECT_THAT(r.out, HasSubstr("\"succeeded\":false"));
  EXPECT_EQ(Cli({"get", "token"}).out, "at a\n");
  r = Cli({"txn"}, "if token value = \"at a\"\nput token \"at b\"\nget token\n");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("SUCCEEDED"));
  EXPECT_EQ(Cli({"get", "token"}).out, "at b\n");
}

TEST_F(CliTest, VersionsTagsDiffStatusAndWatch) {
  ASSERT_EQ(Cli({"put", "k", "one"}).code, 0);
  EXPECT_EQ(Cli({"tag", "first"}).out, "OK tag first = version 1\n");
  ASSERT_EQ(Cli({"put", "k", "two"}).code, 0);
  ASSERT_EQ(Cli({"put", "n", "new"}).code, 0);
  EXPECT_EQ(Cli({"tags"}).out, "TAG    VERSION\nfirst  1\n");
  EXPECT_EQ(Cli({"get", "k", "--at=first"}).out, "one\n");
  EXPECT_EQ(Cli({"diff", "first", "3"}).out,
            "OP      KEY  OLD  NEW\n"
            "update  k    one  two\n"
            "put     n    -    new\n"
            "(2 changes from version 1 to 3)\n");
  Result versions = Cli({"versions", "--json"});
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(versions.out, '\n', absl::SkipEmpty())).size(),
            4u);  // 0..3
  EXPECT_THAT(Cli({"status"}).out, HasSubstr("latest version     3"));
  EXPECT_THAT(Cli({"status", "--json"}).out, HasSubstr("\"latest_version\":3"));
  EXPECT_EQ(Cli({"untag", "first"}).code, 0);
  EXPECT_EQ(Cli({"untag", "first"}).code, 1);

  // A watch prints changes as they commit and exits after --limit.
  Result watched;
  std::thread watcher([&] { watched = Cli({"watch", "w/", "--from=3", "--limit=2", "--json"}); });
  ASSERT_EQ(Cli({"put", "w/1", "a"}).code, 0);
  ASSERT_EQ(Cli({"put", "x", "skipped"}).code, 0);
  ASSERT_EQ(Cli({"del", "w/1"}).code, 0);
  watcher.join();
  EXPECT_EQ(watched.code, 0);
  EXPECT_EQ(watched.out,
            "{\"version\":4,\"op\":\"put\",\"key\":\"w/1\",\"new_value\":\"a\","
            "\"old_mod_version\":0,\"new_mod_version\":4}\n"
            "{\"version\":6,\"op\":\"del\",\"key\":\"w/1\",\"old_value\":\"a\","
            "\"old_mod_version\":4,\"new_mod_version\":0}\n");
}

// `get` prints a UTF-8 value as it is (newlines too); tables escape it.
TEST_F(CliTest, GetPrintsTextValuesAsTheyAre) {
  ASSERT_EQ(Cli({"put", "poem", "roses\nviolets\tblue"}).code, 0);
  EXPECT_EQ(Cli({"get", "poem"}).out, "roses\nviolets\tblue\n");
  EXPECT_THAT(Cli({"scan"}).out, HasSubstr("roses\\x0aviolets\\x09blue"));
  ASSERT_EQ(Cli({"put", "bin", std::string("a\x01\xff", 3)}).code, 0);
  EXPECT_EQ(Cli({"get", "bin"}).out, "a\\x01\\xff\n");
}

TEST_F(CliTest, HistoryAndTimes) {
  ASSERT_EQ(Cli({"put", "k", "one"}).code, 0);
  absl::SleepFor(absl::Milliseconds(5));
  const absl::Time between = absl::Now();
  absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(Cli({"put", "k", "two"}).code, 0);
  ASSERT_EQ(Cli({"put", "j", "neighbour"}).code, 0);
  ASSERT_EQ(Cli({"del", "k"}).code, 0);
  ASSERT_EQ(Cli({"put", "k", "three"}).code, 0);
  EXPECT_EQ(Cli({"history", "k"}).out,
            "VERSION  OP   VALUE  CREATED  WRITES  LEASE\n"
            "5        put  three  5        1       -\n"
            "4        del  -      -        -       -\n"
            "2        put  two    1        2       -\n"
            "1        put  one    1        1       -\n"
            "(4 changes of k in versions 1..5)\n");
  EXPECT_EQ(Cli({"history", "k", "--limit=1", "--at=3", "--json"}).out,
            "{\"version\":2,\"op\":\"put\",\"value\":\"two\",\"create_version\":1,"
            "\"writes\":2,\"lease\":0}\n");
  EXPECT_THAT(Cli({"history", "k", "--from=3"}).out,
              HasSubstr("(2 changes of k in versions 3..5)"));
  EXPECT_EQ(Cli({"history"}).code, 2);
  // Times, wherever a version is asked for: RFC 3339 and Unix microseconds.
  const std::string rfc3339 = absl::FormatTime(absl::RFC3339_full, between, absl::UTCTimeZone());
  const std::string micros = absl::StrCat(absl::ToUnixMicros(between), "us");
  EXPECT_EQ(Cli({"get", "k", "--at=" + rfc3339}).out, "one\n");
  EXPECT_EQ(Cli({"get", "k", "--at=" + micros}).out, "one\n");
  EXPECT_THAT(Cli({"diff", rfc3339, "5"}).out, HasSubstr("(2 changes from version 1 to 5)"));
  EXPECT_EQ(Cli({"tag", "then", micros}).out, "OK tag then = version 1\n");
  EXPECT_THAT(Cli({"history", "k", "--at=" + rfc3339}).out,
              HasSubstr("(1 change of k in versions 1..1)"));
  Result bad = Cli({"get", "k", "--at=2026-13-01T00:00:00Z"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("is not an RFC 3339 time"));
  EXPECT_EQ(Cli({"get", "k", "--at=1000us"}).code, 1);  // before the database
}

TEST_F(CliTest, VerifiedGetAndDigests) {
  ASSERT_EQ(Cli({"put", "k", "one"}).code, 0);
  Result d1 = Cli({"digest", "--json"});
  ASSERT_EQ(d1.code, 0) << d1.err;
  // {"version":1,"digest":"1:<64 hex>",...}
  const size_t at = d1.out.find("\"digest\":\"") + 10;
  const std::string trusted = d1.out.substr(at, d1.out.find('"', at) - at);
  ASSERT_EQ(trusted.size(), 66u) << d1.out;
  EXPECT_THAT(Cli({"digest"}).out, HasSubstr("digest       " + trusted));

  ASSERT_EQ(Cli({"put", "k", "two"}).code, 0);
  Result get = Cli({"get", "k", "--verify", "--trusted=" + trusted});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out, "two\n");
  EXPECT_THAT(get.err, HasSubstr("verified: present at version 2, extending the trusted digest"));
  EXPECT_THAT(Cli({"get", "k", "--verify", "--json"}).out,
              HasSubstr("\"found\":true,\"read_version\":2,\"verified\":true"));
  Result absent = Cli({"get", "nope", "--verify"});
  EXPECT_EQ(absent.code, 1);
  EXPECT_THAT(absent.err, HasSubstr("absence verified"));
  Result old = Cli({"get", "k", "--verify", "--at=1", "--trusted=" + trusted});
  EXPECT_EQ(old.out, "one\n");
  EXPECT_THAT(Cli({"digest", "--trusted=" + trusted}).out,
              HasSubstr("the trusted digest of version 1"));

  // A digest this database never had: the check fails (exit 6).
  std::string wrong = trusted;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  Result lie = Cli({"get", "k", "--verify", "--trusted=" + wrong});
  EXPECT_EQ(lie.code, 6);
  EXPECT_THAT(lie.err, HasSubstr("verification failed"));
  EXPECT_EQ(Cli({"digest", "--trusted=" + wrong}).code, 6);
  EXPECT_EQ(Cli({"get", "k", "--verify", "--trusted=1:abc"}).code, 2);
  EXPECT_EQ(Cli({"get", "k", "--verify", "--trusted=" + trusted.substr(2)}).code, 2);
  EXPECT_EQ(Cli({"digest", "extra"}).code, 2);
  // Scans too.
  ASSERT_EQ(Cli({"put", "k2", "three"}).code, 0);
  Result scan = Cli({"scan", "k", "--verify", "--trusted=" + trusted});
  EXPECT_EQ(scan.code, 0) << scan.err;
  EXPECT_THAT(scan.out, HasSubstr("(2 keys at version 3)"));
  EXPECT_THAT(scan.err, HasSubstr("verified: 2 keys at version 3, extending the trusted digest"));
  EXPECT_EQ(Cli({"scan", "k", "--verify", "--trusted=" + wrong}).code, 6);
  EXPECT_EQ(Cli({"scan", "--verify", "--reverse"}).code, 2);
}

TEST_F(CliTest, CheckVerifiesWithoutABarWhenPiped) {
  ASSERT_EQ(Cli({"put", "k", "v"}).code, 0);
  Result check = Cli({"check"});
  EXPECT_EQ(check.code, 0);
  EXPECT_THAT(check.out, HasSubstr("OK: 2 versions verified"));
  EXPECT_EQ(check.err, "");  // stderr is a pipe: no progress bar
  EXPECT_THAT(Cli({"check", "--json"}).out, HasSubstr("\"versions_checked\":2,"));
  EXPECT_EQ(Cli({"check", "extra"}).code, 2);
}

TEST_F(CliTest, BackupFromAServerIsADatabase) {
  ASSERT_EQ(Cli({"put", "k", "backed up"}).code, 0);
  const std::string dir = dir_.Sub("backup");
  Result backup = Cli({"backup", dir});
  EXPECT_EQ(backup.code, 0) << backup.err;
  EXPECT_THAT(backup.out, HasSubstr("OK backup in " + dir));
  EXPECT_EQ(RunCli({"--data_dir=" + dir, "get", "k"}).out, "backed up\n");
  EXPECT_EQ(RunCli({"--data_dir=" + dir, "check"}).code, 0);
  Result again = Cli({"backup", dir});
  EXPECT_NE(again.code, 0);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  EXPECT_FALSE(std::filesystem::exists(dir + ".partial"));
  // Export a version, import it elsewhere.
  const std::string file = dir_.Sub("k.export");
  EXPECT_THAT(Cli({"export", file, "--at=1"}).out, HasSubstr("OK exported version 1"));
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("imported"), "import", file}).out,
            "OK imported 1 key\n");
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("imported"), "get", "k"}).out, "backed up\n");
  // An incremental export from version 1 brings the copy up to date.
  ASSERT_EQ(Cli({"put", "k2", "added"}).code, 0);
  ASSERT_EQ(Cli({"del", "k"}).code, 0);
  const std::string delta = dir_.Sub("delta.export");
  EXPECT_THAT(Cli({"export", delta, "--from=1"}).out,
              HasSubstr("OK exported the changes from version 1 to the latest version"));
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("imported"), "import", delta}).out,
            "OK imported 2 keys\n");
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("imported"), "get", "k"}).code, 1);
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("imported"), "get", "k2"}).out, "added\n");
  EXPECT_EQ(Cli({"export", delta, "--from=3", "--at=1"}).code, 2);  // backwards
  // Restore: the backup becomes a new database directory, checked first.
  const std::string restored = dir_.Sub("restored");
  Result restore = RunCli({"restore", dir, "--data_dir=" + restored});
  EXPECT_EQ(restore.code, 0) << restore.err;
  EXPECT_EQ(RunCli({"--data_dir=" + restored, "get", "k"}).out, "backed up\n");
  EXPECT_NE(RunCli({"restore", dir, "--data_dir=" + restored}).code, 0);  // exists
  EXPECT_EQ(RunCli({"restore", dir}).code, 2);                            // no --data_dir
  std::filesystem::create_directories(dir_.Sub("not-a-backup"));
  { std::ofstream(dir_.Sub("not-a-backup/file")) << "x"; }
  Result bad = RunCli({"restore", dir_.Sub("not-a-backup"), "--data_dir=" + dir_.Sub("r2")});
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("is not a cowdb backup"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("r2")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("r2.partial")));
}

TEST_F(CliTest, StatsShowsTheEngineFigures) {
  ASSERT_EQ(Cli({"put", "k", "v"}).code, 0);
  Result stats = Cli({"stats"});
  EXPECT_EQ(stats.code, 0);
  EXPECT_THAT(stats.out, HasSubstr("disk_bytes_log"));
  EXPECT_THAT(stats.out, HasSubstr("checkpoint_version"));
  EXPECT_THAT(Cli({"stats", "--json"}).out, HasSubstr("\"commits\":1,"));
}

TEST_F(CliTest, RetentionShownAndSet) {
  EXPECT_THAT(Cli({"retention"}).out, HasSubstr("retain versions  the last 1000"));
  Result set = Cli({"retention", "set", "2", "60", "--json"});
  EXPECT_EQ(set.code, 0) << set.err;
  EXPECT_THAT(set.out, HasSubstr("\"retain_versions\":2,\"retain_seconds\":60,"));
  EXPECT_EQ(Cli({"retention", "set"}).code, 2);
  EXPECT_EQ(Cli({"retention", "set", "many"}).code, 2);
  ASSERT_EQ(RunCli({"--data_dir=" + dir_.Sub("local"), "put", "k", "v"}).code, 0);
  EXPECT_EQ(RunCli({"--data_dir=" + dir_.Sub("local"), "retention", "set", "5"}).code, 2);
}

TEST_F(CliTest, TokensAreSentAndChecked) {
  ASSERT_TRUE(server_.Stop());
  {
    std::ofstream(dir_.Sub("tokens")) << "s3cret\n";
    std::ofstream(dir_.Sub("good")) << "s3cret\n";
    std::ofstream(dir_.Sub("bad")) << "guess\n";
  }
  ASSERT_TRUE(server_.Start(dir_.Sub("db"), {"--auth_token_file=" + dir_.Sub("tokens"),
                                             "--shutdown_grace=300ms"}));
  endpoint_ = "--endpoint=" + server_.addr();
  EXPECT_EQ(Cli({"put", "k", "v"}).code, 5);
  EXPECT_EQ(Cli({"--token_file=" + dir_.Sub("bad"), "put", "k", "v"}).code, 5);
  EXPECT_EQ(Cli({"--token_file=" + dir_.Sub("good"), "put", "k", "v"}).code, 0);
  EXPECT_EQ(Cli({"--token_file=" + dir_.Sub("missing"), "put", "k", "v"}).code, 2);
}

TEST_F(CliTest, UsersRolesAndPermissions) {
  ASSERT_EQ(Cli({"user", "add", "root"}, "root-pw\n").code, 0);
  ASSERT_EQ(Cli({"user", "grant", "root", "root"}).code, 0);
  ASSERT_EQ(Cli({"role", "add", "app"}).code, 0);
  ASSERT_EQ(Cli({"role", "grant", "app", "readwrite", "app/", "--prefix"}).code, 0);
  ASSERT_EQ(Cli({"user", "add", "alice"}, "alice-pw\n").code, 0);
  ASSERT_EQ(Cli({"user", "grant", "alice", "app"}).code, 0);
  EXPECT_EQ(Cli({"role", "grant", "app", "sometimes", "x"}).code, 2);
  EXPECT_EQ(Cli({"user", "add", "bob"}, "").code, 2);  // no password on stdin
  EXPECT_EQ(Cli({"auth", "status"}).out, "auth disabled\n");
  ASSERT_EQ(Cli({"auth", "enable"}).out, "auth enabled\n");

  // Every call now needs a user (or a token).
  Result anonymous = Cli({"put", "app/x", "1"});
  EXPECT_EQ(anonymous.code, 5);
  EXPECT_THAT(anonymous.err, ::testing::HasSubstr("authenticate"));
  {
    const std::string pw = dir_.Sub("alice-pw");
    std::ofstream(pw) << "alice-pw\n";
    EXPECT_EQ(Cli({"--user=alice", "--password_file=" + pw, "put", "app/x", "1"}).code, 0);
    Result denied = Cli({"--user=alice", "--password_file=" + pw, "put", "other", "1"});
    EXPECT_EQ(denied.code, 5);
    EXPECT_THAT(denied.err, ::testing::HasSubstr("may not write the key \"other\""));
    EXPECT_EQ(Cli({"--user=alice", "--password_file=" + pw, "user", "list"}).code, 5);
    EXPECT_EQ(Cli({"--user=alice", "--password_file=" + pw, "get", "app/x"}).out, "1\n");
  }
  const std::string wrong = dir_.Sub("wrong-pw");
  std::ofstream(wrong) << "guess\n";
  EXPECT_EQ(Cli({"--user=alice", "--password_file=" + wrong, "get", "app/x"}).code, 5);
  EXPECT_EQ(Cli({"--user=alice", "get", "app/x"}).code, 2);  // no password given

  const std::string root_pw = dir_.Sub("root-pw");
  std::ofstream(root_pw) << "root-pw\n";
  auto as_root = [&](std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--user=root", "--password_file=" + root_pw});
    return Cli(args, input);
  };
  EXPECT_EQ(as_root({"user", "list"}).out,
            "USER   ROLES\n"
            "alice  app\n"
            "root   root\n");
  EXPECT_EQ(as_root({"role", "list", "--json"}).out,
            "{\"role\":\"app\",\"permissions\":[{\"type\":\"readwrite\",\"key\":\"app/\","
            "\"range_end\":\"app0\"}]}\n"
            "{\"role\":\"root\",\"permissions\":[]}\n");
  EXPECT_EQ(as_root({"role", "revoke", "app", "app/", "--prefix"}).code, 0);
  EXPECT_EQ(as_root({"user", "del", "root"}).code, 6);  // the last root user
  EXPECT_EQ(as_root({"auth", "disable"}).out, "auth disabled\n");
  EXPECT_EQ(Cli({"put", "other", "1"}).code, 0);
}

TEST_F(CliTest, BranchesCreateWriteReadDiffMergeWatchAndDelete) {
  ASSERT_EQ(Cli({"put", "k", "base"}).out, "OK version 1\n");
  ASSERT_EQ(Cli({"put", "c", "1"}).code, 0);
  EXPECT_EQ(Cli({"branch", "create", "dev"}).out, "OK branch dev created at version 3 from main\n");
  EXPECT_EQ(Cli({"branch", "create", "dev"}).code, 6);       // exists
  EXPECT_EQ(Cli({"branch", "create", "bad name"}).code, 2);  // not a name
  EXPECT_EQ(Cli({"branch", "create", "x", "--from=nope"}).code, 1);
  EXPECT_EQ(Cli({"branch", "create", "x", "--at=99"}).code, 1);  // after the latest
  EXPECT_EQ(Cli({"branch"}).code, 2);
  EXPECT_EQ(Cli({"branch", "rename", "dev"}).code, 2);

  // Writes and reads on the branch; main stays as it was.
  EXPECT_EQ(Cli({"put", "k", "dev", "--branch=dev"}).out, "OK version 4\n");
  EXPECT_EQ(Cli({"put", "c", "theirs", "--branch=dev"}).out, "OK version 5\n");
  EXPECT_EQ(Cli({"put", "c", "ours"}).out, "OK version 6\n");
  EXPECT_EQ(Cli({"txn", "--branch=dev", "if k value = dev", "put t yes"}).code, 0);  // 7
  EXPECT_EQ(Cli({"get", "k"}).out, "base\n");
  EXPECT_EQ(Cli({"get", "k", "--branch=dev"}).out, "dev\n");
  EXPECT_EQ(Cli({"get", "k", "--branch=dev", "--at=3"}).out, "base\n");
  EXPECT_EQ(Cli({"get", "k", "--branch=main"}).out, "base\n");
  EXPECT_EQ(Cli({"get", "t"}).code, 1);
  EXPECT_EQ(Cli({"scan", "--branch=dev"}).out,
            "KEY  VALUE   MOD_VERSION\n"
            "c    theirs  5\n"
            "k    dev     4\n"
            "t    yes     7\n"
            "(3 keys at version 7)\n");
  EXPECT_EQ(Cli({"scan", "--branch=dev", "--count"}).out, "3\n");
  Result unknown = Cli({"get", "k", "--branch=nope"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("no branch named \"nope\""));
  EXPECT_EQ(Cli({"put", "k", "v", "--branch=nope"}).code, 1);
  EXPECT_EQ(Cli({"del", "k", "--branch=nope"}).code, 1);
  // --branch where it does not apply is refused, not read as main.
  Result misplaced = Cli({"history", "k", "--branch=dev"});
  EXPECT_EQ(misplaced.code, 2);
  EXPECT_THAT(misplaced.err, HasSubstr("--branch is for get, put"));
  EXPECT_EQ(Cli({"tags", "--to_branch=dev"}).code, 2);
  Result unverifiable = Cli({"get", "k", "--branch=dev", "--verify"});
  EXPECT_EQ(unverifiable.code, 6);
  EXPECT_THAT(unverifiable.err, HasSubstr("main branch only"));

  EXPECT_EQ(Cli({"branch", "list", "--json"}).out,
            "{\"branch\":\"main\",\"created\":0,\"source\":\"\",\"source_version\":0,"
            "\"entries\":2}\n"
            "{\"branch\":\"dev\",\"created\":3,\"source\":\"main\",\"source_version\":2,"
            "\"entries\":3}\n");
  EXPECT_EQ(Cli({"branch", "list"}).out,
            "BRANCH  CREATED  SOURCE  SOURCE_VERSION  ENTRIES\n"
            "main    -        -       -               2\n"
            "dev     3        main    2               3\n");
  Result dev_versions = Cli({"versions", "--branch=dev", "--json"});
  EXPECT_EQ(std::vector<std::string>(
                absl::StrSplit(dev_versions.out, '\n', absl::SkipEmpty())).size(),
            4u);  // 3 (the fork), 4, 5, 7
  EXPECT_THAT(dev_versions.out, Not(HasSubstr("\"branch\":\"main\"")));
  EXPECT_THAT(Cli({"versions"}).out, HasSubstr("VERSION  COMMITTED"));

  // Diffs across branches (FROM and TO left out: both at the latest) and
  // of a branch at two versions.
  EXPECT_EQ(Cli({"diff", "--to_branch=dev"}).out,
            "OP      KEY  OLD   NEW\n"
            "update  c    ours  theirs\n"
            "update  k    base  dev\n"
            "put     t    -     yes\n"
            "(3 changes from main at version 7 to dev at version 7)\n");
  EXPECT_EQ(Cli({"diff", "t", "--to_branch=dev", "--json"}).out,
            "{\"op\":\"put\",\"key\":\"t\",\"new_value\":\"yes\",\"old_mod_version\":0,"
            "\"new_mod_version\":7}\n");
  EXPECT_THAT(Cli({"diff", "3", "5", "--branch=dev"}).out,
              HasSubstr("(2 changes from dev at version 3 to dev at version 5)"));
  EXPECT_THAT(Cli({"diff", "6", "6", "--branch=dev", "--to_branch=main"}).out,
              HasSubstr("(2 changes from dev at version 6 to main at version 6)"));
  EXPECT_EQ(Cli({"diff", "--to_branch=nope"}).code, 1);
  EXPECT_EQ(Cli({"diff", "1"}).code, 2);

  // A merge under --policy=fail with a conflict writes nothing: exit 3.
  Result refused = Cli({"merge", "dev", "main"});
  EXPECT_EQ(refused.code, 3);
  EXPECT_EQ(refused.out,
            "NOT MERGED: 1 conflict (--policy=fail); nothing was written (common ancestor: "
            "dev at version 3)\n"
            "KEY  BASE  OURS  THEIRS\n"
            "c    1     ours  theirs\n");
  EXPECT_THAT(Cli({"status", "--json"}).out, HasSubstr("\"latest_version\":7"));
  EXPECT_EQ(Cli({"merge", "dev", "main", "--policy=bogus"}).code, 2);
  EXPECT_EQ(Cli({"merge", "dev"}).code, 2);
  EXPECT_EQ(Cli({"merge", "dev", "dev"}).code, 2);
  EXPECT_EQ(Cli({"merge", "nope", "main"}).code, 1);
  Result ours = Cli({"merge", "dev", "main", "--policy=ours"});
  EXPECT_EQ(ours.code, 0);
  EXPECT_EQ(ours.out,
            "MERGED dev into main at version 8: 2 changes (common ancestor: dev at version 3)\n"
            "KEY  BASE  OURS  THEIRS\n"
            "c    1     ours  theirs\n"
            "(1 conflict settled by --policy=ours)\n");
  EXPECT_EQ(Cli({"get", "k"}).out, "dev\n");
  EXPECT_EQ(Cli({"get", "c"}).out, "ours\n");
  EXPECT_EQ(Cli({"get", "t"}).out, "yes\n");
  ASSERT_EQ(Cli({"put", "c", "dev2", "--branch=dev"}).code, 0);  // 9
  ASSERT_EQ(Cli({"del", "c"}).code, 0);                          // 10
  Result theirs = Cli({"merge", "dev", "main", "--policy=theirs", "--json"});
  EXPECT_EQ(theirs.code, 0);
  EXPECT_EQ(theirs.out,
            "{\"merged\":true,\"version\":11,\"changes\":1,\"base_branch\":\"dev\","
            "\"base_version\":7,\"conflict_count\":1,\"conflicts\":[{\"key\":\"c\","
            "\"base\":\"theirs\",\"theirs\":\"dev2\"}]}\n");  // ours: deleted
  EXPECT_EQ(Cli({"get", "c"}).out, "dev2\n");

  // A watch of a branch sees its commits only.
  ASSERT_EQ(Cli({"branch", "create", "f2", "--from=dev", "--at=11"}).out,
            "OK branch f2 created at version 12 from dev at version 11\n");
  Result watched;
  std::thread watcher(
      [&] { watched = Cli({"watch", "--branch=f2", "--from=12", "--limit=1", "--json"}); });
  ASSERT_EQ(Cli({"put", "y", "main"}).code, 0);               // 13
  ASSERT_EQ(Cli({"put", "y", "f2", "--branch=f2"}).code, 0);  // 14
  watcher.join();
  EXPECT_EQ(watched.code, 0);
  EXPECT_EQ(watched.out,
            "{\"version\":14,\"op\":\"put\",\"key\":\"y\",\"new_value\":\"f2\","
            "\"old_mod_version\":0,\"new_mod_version\":14}\n");

  // Deleting a branch; its earlier trees stay readable.
  EXPECT_EQ(Cli({"branch", "delete", "dev"}).out, "OK branch dev deleted at version 15\n");
  EXPECT_EQ(Cli({"branch", "delete", "dev"}).code, 1);
  EXPECT_EQ(Cli({"branch", "delete", "main"}).code, 2);
  EXPECT_EQ(Cli({"get", "k", "--branch=dev", "--at=4"}).out, "dev\n");
  EXPECT_EQ(Cli({"get", "k", "--branch=dev"}).code, 1);
  EXPECT_EQ(Cli({"branch", "del", "f2", "--json"}).out,
            "{\"branch\":\"f2\",\"deleted\":true,\"version\":16}\n");
  // An older tree forks too: the deleted branch as it was at version 4.
  EXPECT_EQ(Cli({"branch", "create", "dev-again", "--from=dev", "--at=4"}).out,
            "OK branch dev-again created at version 17 from dev at version 4\n");
  EXPECT_EQ(Cli({"get", "k", "--branch=dev-again"}).out, "dev\n");
  EXPECT_EQ(Cli({"get", "c", "--branch=dev-again"}).out, "1\n");

  Result help = RunCli({"--help"});
  EXPECT_THAT(help.out + help.err, HasSubstr("branch create NAME"));
  EXPECT_THAT(help.out + help.err, HasSubstr("merge FROM INTO"));
}

TEST_F(CliTest, EmbeddedModeOpensADirectory) {
  const std::string local = "--data_dir=" + dir_.Sub("local");
  // Reads never create a database.
  Result none = RunCli({local, "get", "k"});
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("no database"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("local")));
  EXPECT_EQ(RunCli({local, "put", "k", "v"}).out, "OK version 1\n");
  EXPECT_EQ(RunCli({local, "get", "k"}).out, "v\n");
  EXPECT_EQ(RunCli({local, "scan", "--count"}).out, "1\n");
  // The directory the server has open is refused, not shared.
  Result locked = RunCli({"--data_dir=" + dir_.Sub("db"), "get", "k"});
  EXPECT_NE(locked.code, 0);
  EXPECT_THAT(locked.err, HasSubstr("lock"));
  EXPECT_EQ(RunCli({local, endpoint_, "get", "k"}).code, 2);
  // Branches in-process: listing never creates a database; a fork does.
  const std::string other = "--data_dir=" + dir_.Sub("other");
  EXPECT_EQ(RunCli({other, "branch", "list"}).code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("other")));
  EXPECT_EQ(RunCli({other, "branch", "create", "b"}).out,
            "OK branch b created at version 1 from main\n");
  EXPECT_EQ(RunCli({other, "put", "k", "v", "--branch=b"}).code, 0);
  EXPECT_EQ(RunCli({other, "merge", "b", "main"}).code, 0);
  EXPECT_EQ(RunCli({other, "get", "k"}).out, "v\n");
}

}  // namespace
}  // namespace cowdb
