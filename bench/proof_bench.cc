// The cost of verified reads (issue 17 §2): two databases with the same
// contents side by side in one process, one created with
// Options::verifiable = true (every commit SHA-256 hashes the nodes it
// seals) and one with verifiable = false (no hashing at all).
//
//   bazel run --config=opt //bench:proof_bench -- [--keys=1000000] \
//       [--rounds=5] [--commit_seconds=2] [--read_seconds=2] [--dir=/tmp/x]
//
// Both databases are preloaded with --keys keys (16-byte keys from
// bench_util's Key, 100-byte random values) in batches of --load_batch,
// sync off and background checkpoints off, the two taking turns batch by
// batch; then each is checkpointed once, so that its pages are exactly
// one tree. Then, each figure the median of --rounds rounds, every round
// running each configuration once, in turn (the order alternating from
// round to round: A B, B A, ...):
//
//  1. Commit throughput, hashed vs not: random existing keys, single-put
//     commits and batches of --batch puts, for --commit_seconds each and
//     then a checkpoint (timed: the pages those commits dirtied), with
//     sync = false (the CPU path: hashing's worst case) and sync = true
//     (the default durability). Both databases run the same key and
//     value sequence in a round. Default options otherwise (background
//     checkpoints and reclamation on). Target: hashed >= 0.9x of not.
//  2. Point reads at the version of the trusted digest, one thread, random
//     existing keys, for --read_seconds each: Get on the hashed database;
//     ProveGet alone; ProveGet + VerifyReadAgainst (the client's check,
//     against the digest from GetDigest(latest) taken once); and Get on
//     the unhashed database (the tree's shape alone). Target: verified
//     >= 0.5x of Get.
//  3. Proof size per read over --proof_samples random keys: the bytes of
//     a compact serialization (ProofBytes below), median / p99 / max, and
//     the path depth.
//  4. Disk: the pages' column family after the checkpoint that follows
//     the load, and after reopening, hashed vs not.
//
// Rates come with CPU microseconds per operation: the whole process's and
// the calling thread's. --phases picks the parts to run (load and disk
// always run); --configs runs only some configurations, for profiling.

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "engine/db.h"
#include "engine/proof.h"

ABSL_FLAG(uint64_t, keys, 1000000, "keys preloaded into each database");
ABSL_FLAG(int, rounds, 5, "rounds per figure; the median is reported");
ABSL_FLAG(double, commit_seconds, 2.0, "duration of one commit run");
ABSL_FLAG(double, read_seconds, 2.0, "duration of one read run");
ABSL_FLAG(int, batch, 100, "puts per commit in the batch rows");
ABSL_FLAG(uint64_t, load_batch, 10000, "puts per commit while preloading");
ABSL_FLAG(uint64_t, proof_samples, 20000, "reads whose proof is measured");
ABSL_FLAG(std::string, phases, "reads,proofs,commits_nosync,commits_sync",
          "parts to run, in this order whatever the order given");
ABSL_FLAG(std::string, configs, "",
          "run only these configurations (for profiling): get, prove, verify, get_plain "
          "(reads), hashed, plain (commits); empty: all");
ABSL_FLAG(std::string, dir, "", "directory for the two databases (default: a new temp dir under /tmp)");

namespace {

using cowdb::bench::Check;
using cowdb::bench::Key;
using cowdb::bench::Median;
using cowdb::bench::RandomBytes;
using cowdb::bench::Seconds;
using cowdb::bench::Unwrap;
using Clock = std::chrono::steady_clock;

constexpr size_t kValueSize = 100;

void Die(const std::string& what) {
  fprintf(stderr, "proof_bench: %s\n", what.c_str());
  exit(1);
}


// The process's CPU time (user + system, all threads), in seconds.
double CpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// The calling thread's CPU time, in seconds.
double ThreadCpuSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// One timed run: operations per second of wall time, and CPU microseconds
// per operation: the process's (every thread: the caller's, the engine's
// background checkpoints and reclamation, RocksDB's flushes and
// compactions) and the calling thread's alone (where a lone committer
// applies, seals and hashes its commit).
struct Sample {
  double rate = 0;
  double cpu_us = 0;
  double thread_cpu_us = 0;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  while (v >= 128) {
    v >>= 7;
    ++n;
  }
  return n;
}

// The size of `p` serialized compactly, as a wire format for proofs
// would: varint lengths and counts, fixed 8-byte versions and times.
//   header   version:8 commit_micros:8 previous_digest:32 path_count:varint
//   node     level:1 children:varint (separator:bytes){children-1} child:32{children}
//   leaf     count:varint (key:bytes blob:1 value:bytes mod_version:8){count}
// (bytes := length:varint data). Returns {path bytes, leaf bytes}; the
// header goes with the path.
std::pair<size_t, size_t> ProofBytes(const cowdb::ReadProof& p) {
  size_t path = 8 + 8 + 32 + VarintBytes(p.path.size());
  for (const cowdb::ProofNode& n : p.path) {
    path += 1 + VarintBytes(n.children.size());
    for (const std::string& s : n.separators) path += VarintBytes(s.size()) + s.size();
    path += 32 * n.children.size();
  }
  size_t leaf = VarintBytes(p.leaf.size());
  for (const cowdb::ProofEntry& e : p.leaf) {
    leaf += VarintBytes(e.key.size()) + e.key.size() + 1 + VarintBytes(e.value.size()) +
            e.value.size() + 8;
  }
  return {path, leaf};
}

struct Bench {
  std::string dir;
  uint64_t keys = 0;
  std::unique_ptr<cowdb::DB> hashed, plain;

  std::string PathOf(bool verifiable) const {
    return dir + (verifiable ? "/hashed" : "/plain");
  }

  // Opens (creating) the database with `verifiable` and `sync`; the rest
  // default unless `load` (no background checkpoints while preloading).
  std::unique_ptr<cowdb::DB> Open(bool verifiable, bool sync, bool load) const {
    cowdb::Options o;
    o.verifiable = verifiable;
    o.sync = sync;
    if (load) o.background_checkpoint = false;
    return Unwrap(cowdb::DB::Open(o, PathOf(verifiable)), "open");
  }

  void Reopen(bool sync) {
    hashed.reset();
    plain.reset();
    hashed = Open(true, sync, false);
    plain = Open(false, sync, false);
  }
};

// Loads keys [0, keys) into both databases in batches of `batch`, each
// key with a random value (the same in both), the two databases taking
// turns batch by batch (which goes first alternates). Returns each one's
// seconds spent in Write.
std::pair<double, double> Load(cowdb::DB* hashed, cowdb::DB* plain, uint64_t keys,
                               uint64_t batch) {
  std::mt19937_64 rng(12345);
  std::string value(kValueSize, 0);
  double secs[2] = {0, 0};
  for (uint64_t i = 0; i < keys; i += batch) {
    cowdb::WriteBatch b;
    for (uint64_t j = i; j < std::min(keys, i + batch); ++j) {
      RandomBytes(rng, &value);
      b.Put(Key(j), value);
    }
    for (int k = 0; k < 2; ++k) {
      const int which = (i / batch + k) % 2;  // 0: hashed
      const auto t0 = Clock::now();
      Check((which == 0 ? hashed : plain)->Write(b).status(), "load");
      secs[which] += Seconds(t0);
    }
  }
  return {secs[0], secs[1]};
}

// Commits for `seconds`: random existing keys, `batch` puts each, values
// random; the sequence is fixed by `seed`. Then a checkpoint, timed too:
// it writes the pages those commits left unwritten, so that each run pays
// for all of its own work and the idle database has nothing pending (no
// background checkpoint of its own) while the other one runs.
Sample TimedCommits(cowdb::DB* db, uint64_t keys, int batch, double seconds, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string value(kValueSize, 0);
  RandomBytes(rng, &value);
  uint64_t commits = 0;
  const double cpu0 = CpuSeconds(), thread0 = ThreadCpuSeconds();
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (batch == 1) {
      const uint64_t r = rng();
      memcpy(&value[0], &r, sizeof(r));
      Check(db->Put(Key(r % keys), value).status(), "put");
    } else {
      cowdb::WriteBatch b;
      for (int i = 0; i < batch; ++i) {
        const uint64_t r = rng();
        memcpy(&value[0], &r, sizeof(r));
        b.Put(Key(r % keys), value);
      }
      Check(db->Write(b).status(), "write");
    }
    ++commits;
  }
  Check(db->Checkpoint(), "checkpoint");
  const double wall = Seconds(t0);
  return {commits / wall, 1e6 * (CpuSeconds() - cpu0) / commits,
          1e6 * (ThreadCpuSeconds() - thread0) / commits};
}

// One configuration of a row: a short name for --configs, a label, and
// one timed run.
struct Config {
  std::string name;
  std::string label;
  std::function<Sample(int round)> run;
};

bool Selected(const std::string& name) {
  const std::string flag = absl::GetFlag(FLAGS_configs);
  if (flag.empty()) return true;
  for (absl::string_view n : absl::StrSplit(flag, ',')) {
    if (n == name) return true;
  }
  return false;
}

// Runs every selected configuration once per round, alternating the
// order between rounds (A B, B A, ...), and returns each one's samples
// (empty for one not selected).
std::vector<std::vector<Sample>> Interleave(const std::vector<Config>& configs, int rounds) {
  std::vector<std::vector<Sample>> samples(configs.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t k = 0; k < configs.size(); ++k) {
      const size_t c = r % 2 == 0 ? k : configs.size() - 1 - k;
      if (Selected(configs[c].name)) samples[c].push_back(configs[c].run(r));
    }
  }
  return samples;
}

std::vector<double> Field(const std::vector<Sample>& v, double Sample::*f) {
  std::vector<double> out;
  for (const Sample& x : v) out.push_back(x.*f);
  return out;
}

std::string Runs(const std::vector<Sample>& v) {
  std::string s;
  for (const Sample& x : v) {
    absl::StrAppend(&s, s.empty() ? "" : " ", static_cast<int64_t>(x.rate + 0.5));
  }
  return s;
}

void PrintHeader(const char* unit) {
  printf("  %-32s %9s %9s %9s   [runs, %s]\n", "", unit, "proc CPU", "thr CPU", unit);
}

// Median rate, median CPU microseconds per operation (the process's; the
// calling thread's), the runs' rates.
void PrintRow(const Config& c, const std::vector<Sample>& s) {
  if (s.empty()) return;
  printf("  %-32s %9.0f %9.1f %9.1f   [%s]\n", c.label.c_str(), Median(Field(s, &Sample::rate)),
         Median(Field(s, &Sample::cpu_us)), Median(Field(s, &Sample::thread_cpu_us)),
         Runs(s).c_str());
}

// a / b: the ratio of the medians, and the median of the rounds' ratios
// (each round runs both back to back, so its ratio cancels slow drifts).
void PrintRatio(const std::string& what, const std::vector<Sample>& a,
                const std::vector<Sample>& b, const char* target) {
  if (a.empty() || b.empty()) return;
  std::vector<double> paired;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) paired.push_back(a[i].rate / b[i].rate);
  printf("  %-32s %8.2fx %8.2fx %8.2fx   (paired per round: %.2fx)%s\n", what.c_str(),
         Median(Field(a, &Sample::rate)) / Median(Field(b, &Sample::rate)),
         Median(Field(a, &Sample::cpu_us)) / Median(Field(b, &Sample::cpu_us)),
         Median(Field(a, &Sample::thread_cpu_us)) / Median(Field(b, &Sample::thread_cpu_us)),
         Median(paired), target);
}

void CommitRows(Bench& b, bool sync, int rounds) {
  const double seconds = absl::GetFlag(FLAGS_commit_seconds);
  const int batch = absl::GetFlag(FLAGS_batch);
  for (int puts : {1, batch}) {
    std::vector<Config> configs;
    for (bool verifiable : {true, false}) {
      cowdb::DB* db = verifiable ? b.hashed.get() : b.plain.get();
      configs.push_back({verifiable ? "hashed" : "plain",
                         verifiable ? "hashed (verifiable=true)" : "not hashed (verifiable=false)",
                         [&b, db, puts, seconds](int r) {
                           return TimedCommits(db, b.keys, puts, seconds, 1000 + r);
                         }});
    }
    std::vector<std::vector<Sample>> s = Interleave(configs, rounds);
    printf("%s commits, sync=%s (%d rounds of %.1f s + a checkpoint)\n",
           puts == 1 ? "single-put" : absl::StrCat(puts, "-put").c_str(), sync ? "true" : "false",
           rounds, seconds);
    PrintHeader("commits/s");
    PrintRow(configs[0], s[0]);
    PrintRow(configs[1], s[1]);
    PrintRatio("hashed / not hashed", s[0], s[1], "  target >= 0.9x");
    fflush(stdout);
  }
}

void ReadRows(Bench& b, int rounds) {
  const cowdb::VersionDigest trusted =
      Unwrap(b.hashed->GetDigest(b.hashed->LatestVersion()), "digest");
  cowdb::ReadOptions hro;
  hro.version = trusted.version;
  cowdb::ReadOptions pro;
  pro.version = b.plain->LatestVersion();
  // Keys chosen in advance so that making them is not timed.
  std::vector<std::string> sample;
  {
    std::mt19937_64 rng(77);
    sample.reserve(1 << 20);
    for (int i = 0; i < (1 << 20); ++i) sample.push_back(Key(rng() % b.keys));
  }
  // Warm both caches: a full scan of each.
  for (cowdb::DB* db : {b.hashed.get(), b.plain.get()}) {
    const auto t0 = Clock::now();
    std::unique_ptr<cowdb::Iterator> it = Unwrap(db->NewIterator(cowdb::ReadOptions()), "iter");
    uint64_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    Check(it->status(), "scan");
    if (n != b.keys) Die(absl::StrCat("scan saw ", n, " keys, not ", b.keys));
    printf("  (warm-up scan of %llu keys: %.1f s)\n", static_cast<unsigned long long>(n),
           Seconds(t0));
  }
  const double seconds = absl::GetFlag(FLAGS_read_seconds);
  // Reads for `seconds`, starting at a round-dependent place in the sample.
  auto timed = [&](int round, const std::function<void(const std::string&)>& read) {
    size_t i = (static_cast<size_t>(round) * 7919 * 64) % sample.size();
    uint64_t n = 0;
    const double cpu0 = CpuSeconds(), thread0 = ThreadCpuSeconds();
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      for (int k = 0; k < 256; ++k) {
        read(sample[i]);
        if (++i == sample.size()) i = 0;
      }
      n += 256;
    }
    const double wall = Seconds(t0);
    return Sample{n / wall, 1e6 * (CpuSeconds() - cpu0) / n,
                  1e6 * (ThreadCpuSeconds() - thread0) / n};
  };
  std::vector<Config> configs = {
      {"get", "Get (hashed database)",
       [&](int r) {
         return timed(r, [&](const std::string& k) {
           absl::StatusOr<std::string> v = b.hashed->Get(hro, k);
           Check(v.status(), "get");
           cowdb::bench::Consume(v->size());
         });
       }},
      {"prove", "ProveGet alone",
       [&](int r) {
         return timed(r, [&](const std::string& k) {
           absl::StatusOr<cowdb::ProvedValue> p = b.hashed->ProveGet(hro, k);
           Check(p.status(), "prove");
           cowdb::bench::Consume(p->proof.leaf.size());
         });
       }},
      {"verify", "ProveGet + VerifyReadAgainst",
       [&](int r) {
         return timed(r, [&](const std::string& k) {
           absl::StatusOr<cowdb::ProvedValue> p = b.hashed->ProveGet(hro, k);
           Check(p.status(), "prove");
           if (!p->value) Die("a preloaded key is absent");
           Check(cowdb::VerifyReadAgainst(p->proof, k, p->value, trusted.digest), "verify");
         });
       }},
      {"get_plain", "Get (not-hashed database)",
       [&](int r) {
         return timed(r, [&](const std::string& k) {
           absl::StatusOr<std::string> v = b.plain->Get(pro, k);
           Check(v.status(), "get");
           cowdb::bench::Consume(v->size());
         });
       }},
  };
  std::vector<std::vector<Sample>> s = Interleave(configs, rounds);
  printf("point reads, 1 thread, %d rounds of %.1f s\n", rounds, seconds);
  PrintHeader("reads/s");
  for (size_t c = 0; c < configs.size(); ++c) PrintRow(configs[c], s[c]);
  PrintRatio("verified / Get", s[2], s[0], "  target >= 0.5x");
  PrintRatio("ProveGet alone / Get", s[1], s[0], "");
  PrintRatio("Get not hashed / Get hashed", s[3], s[0], "");
  if (!s[0].empty() && !s[1].empty() && !s[2].empty()) {
    auto us = [&](int c) { return 1e6 / Median(Field(s[c], &Sample::rate)); };
    printf("  %-32s %.2f / %.2f / %.2f us\n", "per read: Get / ProveGet / verify", us(0), us(1),
           us(2) - us(1));
  }
  fflush(stdout);
}

void ProofRows(Bench& b) {
  const uint64_t n = absl::GetFlag(FLAGS_proof_samples);
  std::mt19937_64 rng(4242);
  std::vector<double> total, path, leaf, depth, entries, fanout;
  for (uint64_t i = 0; i < n; ++i) {
    const std::string k = Key(rng() % b.keys);
    cowdb::ProvedValue p = Unwrap(b.hashed->ProveGet(cowdb::ReadOptions(), k), "prove");
    auto [pb, lb] = ProofBytes(p.proof);
    total.push_back(pb + lb);
    path.push_back(pb);
    leaf.push_back(lb);
    depth.push_back(p.proof.path.size() + 1);
    entries.push_back(p.proof.leaf.size());
    if (!p.proof.path.empty()) fanout.push_back(p.proof.path.back().children.size());
  }
  auto line = [](const char* what, const std::vector<double>& v, const char* unit) {
    printf("  %-36s %8.0f %8.0f %8.0f %s\n", what, Median(v), Percentile(v, 0.99),
           *std::max_element(v.begin(), v.end()), unit);
  };
  printf("proof per read, %llu random keys (compact serialization)\n",
         static_cast<unsigned long long>(n));
  printf("  %-36s %8s %8s %8s\n", "", "median", "p99", "max");
  line("whole proof", total, "bytes");
  line("  header + internal nodes", path, "bytes");
  line("  leaf (every entry of it)", leaf, "bytes");
  line("depth (levels, leaf included)", depth, "");
  line("entries in the leaf", entries, "");
  if (!fanout.empty()) line("children of the leaf's parent", fanout, "");
  printf("  (the value itself: %zu bytes; the key: 16)\n", kValueSize);
  fflush(stdout);
}

void DiskRow(const char* when, const cowdb::DBStats& h, const cowdb::DBStats& p) {
  printf("  %-36s %8.1f MiB %8.1f MiB   %.3fx\n", when, h.disk_bytes_pages / 1048576.0,
         p.disk_bytes_pages / 1048576.0,
         static_cast<double>(h.disk_bytes_pages) / std::max<uint64_t>(1, p.disk_bytes_pages));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  Bench b;
  b.keys = absl::GetFlag(FLAGS_keys);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (b.keys == 0 || rounds < 1) Die("--keys and --rounds must be positive");
  std::vector<std::string> phases = absl::StrSplit(absl::GetFlag(FLAGS_phases), ',');
  auto want = [&](const char* p) { return std::find(phases.begin(), phases.end(), p) != phases.end(); };
  b.dir = absl::GetFlag(FLAGS_dir);
  const bool temp = b.dir.empty();
  if (temp) {
    char tmpl[] = "/tmp/cowdb_proof_bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    b.dir = tmpl;
  } else {
    std::filesystem::remove_all(b.dir);
    std::filesystem::create_directories(b.dir);
  }
  printf("cowdb proof_bench: %llu keys (16-byte keys, %zu-byte random values), %d rounds, in %s\n",
         static_cast<unsigned long long>(b.keys), kValueSize, rounds, b.dir.c_str());

  // Load, one database after the other (not interleaved: one run each).
  const uint64_t load_batch = absl::GetFlag(FLAGS_load_batch);
  b.hashed = b.Open(true, false, true);
  b.plain = b.Open(false, false, true);
  const auto [load_h, load_p] = Load(b.hashed.get(), b.plain.get(), b.keys, load_batch);
  printf("preload in batches of %llu, sync=false, no checkpoint (batches interleaved)\n",
         static_cast<unsigned long long>(load_batch));
  printf("  %-36s %8.1f s  %8.0f puts/s\n", "hashed", load_h, b.keys / load_h);
  printf("  %-36s %8.1f s  %8.0f puts/s\n", "not hashed", load_p, b.keys / load_p);
  printf("  %-36s %8.2fx\n", "hashed / not hashed (throughput)", load_p / load_h);

  // Disk: one checkpoint writes each tree's pages once.
  Check(b.hashed->Checkpoint(), "checkpoint");
  Check(b.plain->Checkpoint(), "checkpoint");
  const cowdb::DBStats h0 = b.hashed->GetStats(), p0 = b.plain->GetStats();
  printf("pages on disk (RocksDB SST + memtable, column family of pages)\n");
  printf("  %-36s %12s %12s\n", "", "hashed", "not hashed");
  printf("  %-36s %12llu %12llu   %.3fx\n", "pages written by the checkpoint",
         static_cast<unsigned long long>(h0.pages_written),
         static_cast<unsigned long long>(p0.pages_written),
         static_cast<double>(h0.pages_written) / std::max<uint64_t>(1, p0.pages_written));
  DiskRow("after the checkpoint", h0, p0);
  b.Reopen(false);
  const cowdb::DBStats h1 = b.hashed->GetStats(), p1 = b.plain->GetStats();
  DiskRow("after reopening", h1, p1);
  fflush(stdout);

  if (want("reads")) ReadRows(b, rounds);
  if (want("proofs")) ProofRows(b);
  if (want("commits_nosync")) CommitRows(b, false, rounds);
  if (want("commits_sync")) {
    b.Reopen(true);
    CommitRows(b, true, rounds);
  }
  b.hashed.reset();
  b.plain.reset();
  std::filesystem::remove_all(b.dir);
  return 0;
}
