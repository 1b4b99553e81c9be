// The cost of one authorization check (AccessControl::AdmitToken): a
// user's token looked up and its roles' permissions searched for the keys
// a call needs, as every call of cowdb_server does with auth enabled.
//
//   bazel run -c opt //bench:auth_bench
//
// The user holds one role with --permissions prefix permissions (plus one
// for the benchmark's keys); the checks cover a point read, a write and a
// range scan, and a root token for comparison.

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/db.h"
#include "server/auth.h"

namespace cowdb::server {
namespace {

constexpr int kPermissions = 32;

struct Fixture {
  Fixture() {
    dir = absl::StrCat(std::filesystem::temp_directory_path().string(), "/cowdb_auth_bench.",
                       getpid());
    std::filesystem::remove_all(dir);
    Options o;
    db = *DB::Open(o, dir);
    AccessOptions options;
    options.kdf_iterations = 1000;  // login cost is not measured here
    options.root_tokens = {"root-token"};
    access = *AccessControl::Open(db.get(), options);
    Check(access->AddUser("root", "pw"));
    Check(access->GrantRole("root", "root"));
    Check(access->AddUser("app", "pw"));
    Check(access->AddRole("app"));
    for (int i = 0; i < kPermissions; ++i) {
      v1::Permission p;
      p.set_type(i % 3 == 0 ? v1::Permission::READ : v1::Permission::READWRITE);
      p.set_key(absl::StrCat("tenant", 100 + i * 2, "/"));
      p.set_range_end(absl::StrCat("tenant", 100 + i * 2, "0"));
      Check(access->GrantPermission("app", p));
    }
    v1::Permission keys;
    keys.set_type(v1::Permission::READWRITE);
    keys.set_key("key/");
    keys.set_range_end("key0");
    Check(access->GrantPermission("app", keys));
    Check(access->GrantRole("app", "app"));
    Check(access->SetEnabled(true));
    token = *access->Authenticate("app", "pw");
  }
  ~Fixture() {
    access.reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }
  static void Check(const absl::Status& s) {
    if (!s.ok()) {
      fprintf(stderr, "auth_bench: %s\n", s.ToString().c_str());
      exit(1);
    }
  }
  std::string dir;
  std::unique_ptr<DB> db;
  std::unique_ptr<AccessControl> access;
  std::string token;
};

Fixture& F() {
  static Fixture* f = new Fixture;
  return *f;
}

void Run(benchmark::State& state, const std::string& token, const Need& need) {
  const AccessControl& access = *F().access;
  for (auto _ : state) {
    grpc::Status s = access.AdmitToken(token, need);
    if (!s.ok()) state.SkipWithError(s.error_message().c_str());
    benchmark::DoNotOptimize(s);
  }
}

void BM_ReadKey(benchmark::State& state) {
  Need need = Need::Keys();
  need.read.push_back(SpanOfKey("key/00001234"));
  Run(state, F().token, need);
}
BENCHMARK(BM_ReadKey)->ThreadRange(1, 2);

void BM_WriteKey(benchmark::State& state) {
  Need need = Need::Keys();
  need.write.push_back(SpanOfKey("key/00001234"));
  Run(state, F().token, need);
}
BENCHMARK(BM_WriteKey)->ThreadRange(1, 2);

void BM_ScanRange(benchmark::State& state) {
  Need need = Need::Keys();
  need.read.push_back(KeySpan{"key/0000", "key/0100"});
  Run(state, F().token, need);
}
BENCHMARK(BM_ScanRange);

void BM_RootToken(benchmark::State& state) {
  Need need = Need::Keys();
  need.write.push_back(SpanOfKey("key/00001234"));
  Run(state, "root-token", need);
}
BENCHMARK(BM_RootToken);

}  // namespace
}  // namespace cowdb::server

BENCHMARK_MAIN();
