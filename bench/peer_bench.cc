// Side-by-side benchmark: cowdb vs LMDB vs RocksDB on the same workloads,
// in one run, each figure the median of --repeats runs.
//
//   bazel run --config=opt //bench:peer_bench                 # 1M keys
//   bazel run --config=opt //bench:peer_bench -- --quick      # 100k keys, short runs
//   bazel run --config=opt //bench:peer_bench -- --keys=10000000
//   bazel run --config=opt //bench:peer_bench -- --engines=cowdb --workloads=R1
//
// Data: 16-byte keys (bench::Key, hashed order), 100-byte random
// (incompressible) values. Every write is a durable commit on every engine
// (see peer_*.cc for the settings). Each engine runs in its own forked
// child process, one after the other, so that its RSS and I/O counters are
// its own; the parent prints the tables and writes results.{json,csv}.
//
// Workloads, in the order they run on each engine:
//   W7  bulk load in durable batches of --load_batch puts: keys in sorted
//       order (into a fresh database, then discarded), then in random
//       order (the database every later row uses). Then every key is
//       read once, untimed, to warm the caches.
//   R1  random point gets from a snapshot, 1 and 2 threads, uniform and
//       Zipf(--zipf_theta) keys.
//   R2  seek to a random key + 10 nexts; a full scan (entries/s).
//   R3  snapshot open + close.
//   W4  one reader's point gets (taking a fresh snapshot every 1,000 gets)
//       alone, then while one writer commits single puts unthrottled.
//   W1  durable single-put commits from 1, 4, 16, 64 concurrent threads.
//   W2  durable batches of 10 / 100 / 1,000 random puts from one thread.
//   W5  point gets through snapshots held at v-1, v-100, v-10,000 (taken
//       while 10,000 commits of 10 random puts run) vs the latest version.
//       LMDB is reported n/a (it has no old versions to open).
//
// Measurement: time-bounded runs of --seconds; throughput is operations
// completed / wall time. Latency: every operation of writes is timed;
// every 8th get / seek (the clock costs ~20 ns). "bytes written" is the
// growth of write_bytes in /proc/self/io of the engine's process (all its
// threads, including RocksDB's flushes and compactions, counted when a
// page is dirtied, so a commit that dirties part of a 4 KiB page counts
// 4 KiB) during the timed runs and the settling after them (the harness
// waits, up to --settle_max, until background writes stop, so a row counts
// the flushes and compactions it caused and the next row does not pay for
// them), divided by the puts committed. On-disk size is the allocated
// blocks (st_blocks) of the database directory.

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "bench/peer.h"

ABSL_FLAG(uint64_t, keys, 1000000, "keys in the database (10000000 for the large run)");
ABSL_FLAG(int, repeats, 3, "runs per figure; the median is reported (at least 3 for the docs)");
ABSL_FLAG(double, seconds, 2.0, "duration of each time-bounded run");
ABSL_FLAG(bool, quick, false,
          "quick subset: 100,000 keys, 0.5 s runs, old versions up to v-1,000");
ABSL_FLAG(std::string, engines, "cowdb,lmdb,rocksdb", "engines to run, in order");
ABSL_FLAG(std::string, workloads, "W7,R1,R2,R3,W4,W1,W2,W5",
          "workloads to run (a random load always builds the database)");
ABSL_FLAG(std::string, committers, "1,4,16,64", "W1 committer thread counts");
ABSL_FLAG(std::string, batches, "10,100,1000", "W2 batch sizes");
ABSL_FLAG(std::string, old_versions, "1,100,10000", "W5: how far back to read");
ABSL_FLAG(uint64_t, load_batch, 10000, "W7: puts per durable load commit");
ABSL_FLAG(double, zipf_theta, 0.99, "R1: Zipf skew");
ABSL_FLAG(uint64_t, cache_mb, 256, "cowdb node cache and RocksDB block cache, MiB");
ABSL_FLAG(uint64_t, lmdb_map_gb, 64, "LMDB map size, GiB");
ABSL_FLAG(uint64_t, cowdb_checkpoint_mb, 0,
          "cowdb: Options::checkpoint_memory_bytes in MiB (0: the default)");
ABSL_FLAG(double, settle_max, 60,
          "longest wait, in seconds, for an engine's background writes to stop "
          "between rows");
ABSL_FLAG(std::string, dir, "", "where the databases go (default: a fresh temp dir)");
ABSL_FLAG(std::string, out, "",
          "directory for results.json and results.csv (default: "
          "<workspace>/bench-results)");

namespace cowdb::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// ---------------------------------------------------------------- data

// splitmix64: fast enough not to show in the figures.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t operator()() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return ((*this)() >> 11) * (1.0 / 9007199254740992.0); }
};

// Keys 0..n-1 (bench::Key), precomputed so that building keys does not
// cost inside timed loops; and a pool of random 100-byte values.
class Data {
 public:
  explicit Data(uint64_t n) : n_(n), keys_(n * 16), values_(kValues * 100) {
    for (uint64_t i = 0; i < n; ++i) Key(i).copy(&keys_[i * 16], 16);
    Rng rng(42);
    for (size_t i = 0; i < values_.size(); i += 8) {
      uint64_t r = rng();
      memcpy(&values_[i], &r, 8);
    }
  }
  uint64_t n() const { return n_; }
  std::string_view key(uint64_t i) const { return {&keys_[i * 16], 16}; }
  std::string_view value(uint64_t r) const {
    return {&values_[(r % kValues) * 100], 100};
  }

 private:
  static constexpr size_t kValues = 65536;
  uint64_t n_;
  std::vector<char> keys_;
  std::vector<char> values_;
};

// Zipfian ranks in [0, n) (Gray et al., as YCSB): rank 0 is the hottest.
// Rank r reads key r, and bench::Key scatters those over the key space.
class Zipf {
 public:
  Zipf(uint64_t n, double theta) : n_(n), theta_(theta) {
    double zetan = 0;
    for (uint64_t i = 1; i <= n; ++i) zetan += 1.0 / std::pow(double(i), theta);
    double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    zetan_ = zetan;
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1 - std::pow(2.0 / n, 1 - theta)) / (1 - zeta2 / zetan);
  }
  uint64_t Next(Rng& rng) const {
    double u = rng.Uniform();
    double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return 1;
    uint64_t r = static_cast<uint64_t>(n_ * std::pow(eta_ * u - eta_ + 1, alpha_));
    return std::min(r, n_ - 1);
  }

 private:
  uint64_t n_;
  double theta_, zetan_, alpha_, eta_;
};

// ---------------------------------------------------------------- system

uint64_t WriteBytes() {
  std::ifstream in("/proc/self/io");
  std::string name;
  uint64_t v;
  while (in >> name >> v) {
    if (name == "write_bytes:") return v;
  }
  return 0;
}

double DirMiB(const std::string& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    struct stat st;
    if (stat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      bytes += uint64_t(st.st_blocks) * 512;
    }
  }
  return bytes / 1048576.0;
}

double RssMiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  }
  return 0;
}

std::string MachineLine() {
  std::string model = "?";
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  struct utsname u;
  uname(&u);
  return absl::StrFormat("%d CPUs (%s), Linux %s", std::thread::hardware_concurrency(),
                         model, u.release);
}

// Waits until the process's background writes (RocksDB flushes and
// compactions, in cowdb's page store or in RocksDB itself) die down:
// write_bytes grows by less than 256 KiB in half a second, or `max_s`
// passes. Returns the seconds waited. Run after every write row, so that
// a row's bytes written include the deferred work it caused, and so that
// the next row does not pay for it.
double Settle(double max_s) {
  auto t0 = Clock::now();
  uint64_t prev = WriteBytes();
  while (Secs(Clock::now() - t0) < max_s) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    uint64_t cur = WriteBytes();
    if (cur - prev < (256 << 10)) break;
    prev = cur;
  }
  return Secs(Clock::now() - t0);
}

// ---------------------------------------------------------------- timing

struct RunResult {
  double rate = 0;  // ops/s
  double p50_us = 0, p99_us = 0;
  uint64_t ops = 0;
};

using Op = std::function<void()>;
// Makes a thread's operation, on that thread (readers belong to threads).
using MakeOp = std::function<Op(int thread)>;

// `threads` threads run their op until --seconds have passed. Every
// `sample_every`-th op is timed for the latency percentiles; the stop flag
// is checked every `chunk` ops.
RunResult TimedRun(int threads, double seconds, int sample_every, int chunk,
                   const MakeOp& make) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false}, stop{false};
  std::vector<uint64_t> ops(threads);
  std::vector<std::vector<float>> lat(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Op op = make(t);
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      uint64_t n = 0;
      std::vector<float>& l = lat[t];
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < chunk; ++k, ++n) {
          if (n % sample_every == 0) {
            auto a = Clock::now();
            op();
            l.push_back(std::chrono::duration<float, std::micro>(Clock::now() - a).count());
          } else {
            op();
          }
        }
      }
      ops[t] = n;
      op = nullptr;  // destroy the thread's reader on its own thread
    });
  }
  while (ready.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto t0 = Clock::now();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  double secs = Secs(Clock::now() - t0);
  RunResult r;
  std::vector<float> all;
  for (int t = 0; t < threads; ++t) {
    r.ops += ops[t];
    all.insert(all.end(), lat[t].begin(), lat[t].end());
  }
  r.rate = r.ops / secs;
  if (!all.empty()) {
    auto pct = [&](double p) {
      size_t i = std::min(all.size() - 1, static_cast<size_t>(p * all.size()));
      std::nth_element(all.begin(), all.begin() + i, all.end());
      return double(all[i]);
    };
    r.p50_us = pct(0.50);
    r.p99_us = pct(0.99);
  }
  return r;
}

// The median of each field over runs; ops are summed.
RunResult Summarize(const std::vector<RunResult>& runs) {
  std::vector<double> rate, p50, p99;
  RunResult r;
  for (const RunResult& x : runs) {
    rate.push_back(x.rate);
    p50.push_back(x.p50_us);
    p99.push_back(x.p99_us);
    r.ops += x.ops;
  }
  r.rate = Median(rate);
  r.p50_us = Median(p50);
  r.p99_us = Median(p99);
  return r;
}

// ---------------------------------------------------------------- results

struct Rec {
  std::string engine, workload, key, label, unit;
  int threads = 0;
  double value = NAN;
  double p50_us = NAN, p99_us = NAN;
};

// Flat TSV, one record a line, from the engine's child to the parent.
std::string ToTsv(const Rec& r) {
  return absl::StrFormat("%s\t%s\t%s\t%s\t%s\t%d\t%.17g\t%.17g\t%.17g\n", r.engine,
                         r.workload, r.key, r.label, r.unit, r.threads, r.value,
                         r.p50_us, r.p99_us);
}

Rec FromTsv(const std::string& line) {
  std::vector<std::string> f = absl::StrSplit(line, '\t');
  Rec r;
  if (f.size() != 9) return r;
  r.engine = f[0];
  r.workload = f[1];
  r.key = f[2];
  r.label = f[3];
  r.unit = f[4];
  r.threads = std::stoi(f[5]);
  r.value = std::strtod(f[6].c_str(), nullptr);
  r.p50_us = std::strtod(f[7].c_str(), nullptr);
  r.p99_us = std::strtod(f[8].c_str(), nullptr);
  return r;
}

// ---------------------------------------------------------------- engine run

struct Config {
  uint64_t keys;
  int repeats;
  double seconds;
  std::vector<int> committers, batches;
  std::vector<uint64_t> old_versions;
  uint64_t load_batch;
  double zipf_theta;
  double settle_max;
  PeerOptions peer;
  std::vector<std::string> workloads;
  bool Has(const std::string& w) const {
    return std::find(workloads.begin(), workloads.end(), w) != workloads.end();
  }
};

std::unique_ptr<PeerDB> OpenPeer(const std::string& engine, const std::string& dir,
                                 const PeerOptions& o) {
  std::filesystem::remove_all(dir);
  if (engine == "cowdb") return OpenCowdbPeer(dir, o);
  if (engine == "lmdb") return OpenLmdbPeer(dir, o);
  if (engine == "rocksdb") return OpenRocksdbPeer(dir, o);
  std::cerr << "unknown engine " << engine << std::endl;
  std::exit(2);
}

class EngineRun {
 public:
  EngineRun(std::string engine, std::string dir, const Config& c, const Data& d)
      : engine_(std::move(engine)), dir_(std::move(dir)), c_(c), d_(d) {}

  std::vector<Rec> Run();

 private:
  void Emit(const std::string& workload, const std::string& key,
            const std::string& label, const std::string& unit, int threads,
            double value, double p50 = NAN, double p99 = NAN) {
    Rec r{engine_, workload, key, label, unit, threads, value, p50, p99};
    if (std::isnan(p50)) {
      printf("  %-44s %14s %s\n", label.c_str(),
             std::isnan(value) ? "n/a" : absl::StrFormat("%.1f", value).c_str(),
             unit.c_str());
    } else {
      printf("  %-44s %14.1f %-10s p50 %9.1f us  p99 %9.1f us\n", label.c_str(),
             value, unit.c_str(), p50, p99);
    }
    fflush(stdout);
    recs_.push_back(std::move(r));
  }
  void Emit(const std::string& workload, const std::string& key,
            const std::string& label, const std::string& unit, int threads,
            const RunResult& r) {
    Emit(workload, key, label, unit, threads, r.rate, r.p50_us, r.p99_us);
  }

  // Settle (see above), saying how long it took when it took a while.
  void SettleNow() {
    double s = Settle(c_.settle_max);
    if (s > 1.5) {
      printf("  (waited %.1f s for background writes to stop)\n", s);
      fflush(stdout);
    }
  }

  template <typename F>
  RunResult Repeat(F&& run_once) {
    std::vector<RunResult> runs;
    for (int i = 0; i < c_.repeats; ++i) runs.push_back(run_once());
    return Summarize(runs);
  }

  void Load(bool sorted, bool measure);
  void WarmUp();
  void PointGets();
  void Seeks();
  void Snapshots();
  void ReadWhileWriting();
  void Commits();
  void Batches();
  void OldVersions();

  const std::string engine_, dir_;
  const Config& c_;
  const Data& d_;
  std::unique_ptr<PeerDB> db_;
  std::vector<Rec> recs_;
};

// One load of all keys in durable batches; returns puts/s.
void EngineRun::Load(bool sorted, bool measure) {
  const uint64_t n = d_.n();
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i) order[i] = i;
  if (sorted) {
    std::sort(order.begin(), order.end(),
              [&](uint64_t a, uint64_t b) { return d_.key(a) < d_.key(b); });
  }  // else: index order, which bench::Key hashes into random key order
  const char* what = sorted ? "sorted" : "random";
  std::vector<RunResult> runs;
  double bytes_per_put = 0, disk = 0;
  int times = measure ? c_.repeats : 1;
  for (int r = 0; r < times; ++r) {
    db_.reset();
    db_ = OpenPeer(engine_, dir_, c_.peer);
    std::vector<KV> batch;
    std::vector<float> lat;
    Rng rng(r + 1);
    uint64_t w0 = WriteBytes();
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; i += c_.load_batch) {
      batch.clear();
      for (uint64_t j = i; j < std::min(n, i + c_.load_batch); ++j) {
        batch.emplace_back(d_.key(order[j]), d_.value(rng()));
      }
      auto a = Clock::now();
      db_->Write(batch);
      lat.push_back(std::chrono::duration<float, std::micro>(Clock::now() - a).count());
    }
    RunResult run;
    run.ops = n;
    run.rate = n / Secs(Clock::now() - t0);
    std::sort(lat.begin(), lat.end());
    run.p50_us = lat[lat.size() / 2];
    run.p99_us = lat[std::min(lat.size() - 1, size_t(lat.size() * 0.99))];
    runs.push_back(run);
    SettleNow();
    bytes_per_put = double(WriteBytes() - w0) / n;  // the last run's
    disk = DirMiB(dir_);
  }
  if (!measure) return;
  RunResult s = Summarize(runs);
  std::string key = absl::StrCat("W7.", what);
  Emit("W7", key,
       absl::StrFormat("W7 bulk load %s, batches of %u", what, c_.load_batch),
       "puts/s", 1, s);
  Emit("W7", key + ".bpp", absl::StrFormat("W7 load %s: bytes written/put", what),
       "B/put", 1, bytes_per_put);
  Emit("W7", key + ".disk", absl::StrFormat("W7 load %s: on-disk size", what), "MiB",
       1, disk);
}

// Reads every key once, untimed, so that read rows measure warm caches
// on every engine: cowdb's node cache is full of the pages the load just
// wrote, LMDB's pages sit in the OS page cache, but RocksDB's block cache
// starts empty after a load.
void EngineRun::WarmUp() {
  auto t0 = Clock::now();
  std::unique_ptr<PeerReader> reader = db_->NewReader();
  std::string_view v;
  for (uint64_t i = 0; i < d_.n(); ++i) {
    if (!reader->Get(d_.key(i), &v)) std::exit(1);
  }
  reader.reset();
  printf("  (warm-up: read every key once in %.1f s)\n", Secs(Clock::now() - t0));
  fflush(stdout);
}

void EngineRun::PointGets() {
  const Zipf zipf(d_.n(), c_.zipf_theta);
  for (bool skewed : {false, true}) {
    for (int threads : {1, 2}) {
      RunResult r = Repeat([&] {
        return TimedRun(threads, c_.seconds, 8, 64, [&](int t) -> Op {
          auto reader = std::shared_ptr<PeerReader>(db_->NewReader());
          auto rng = std::make_shared<Rng>(t * 7919 + 3);
          return [this, reader, rng, skewed, &zipf] {
            uint64_t i = skewed ? zipf.Next(*rng) : (*rng)() % d_.n();
            std::string_view v;
            if (!reader->Get(d_.key(i), &v)) {
              std::cerr << engine_ << ": key missing\n";
              std::exit(1);
            }
            Consume(v.size() + static_cast<uint8_t>(v[0]));
          };
        });
      });
      Emit("R1", absl::StrFormat("R1.%s.%dt", skewed ? "z" : "u", threads),
           absl::StrFormat("R1 point gets, %s, %d thread%s",
                           skewed ? "zipf" : "uniform", threads, threads > 1 ? "s" : ""),
           "gets/s", threads, r);
    }
  }
}

void EngineRun::Seeks() {
  RunResult r = Repeat([&] {
    return TimedRun(1, c_.seconds, 8, 16, [&](int) -> Op {
      auto reader = std::shared_ptr<PeerReader>(db_->NewReader());
      // The iterator goes before its reader: declared after, captured into
      // a holder that releases in that order.
      struct Holder {
        std::shared_ptr<PeerReader> reader;
        std::unique_ptr<PeerIterator> it;
        Rng rng{5};
        ~Holder() { it.reset(); }
      };
      auto h = std::make_shared<Holder>();
      h->reader = reader;
      h->it = reader->NewIterator();
      return [this, h] {
        h->it->Seek(d_.key(h->rng() % d_.n()));
        uint64_t seen = 0;
        for (int j = 0; j < 10 && h->it->Valid(); ++j, h->it->Next()) {
          seen += h->it->value().size();
        }
        Consume(seen);
      };
    });
  });
  Emit("R2", "R2.seek", "R2 seek + 10 nexts", "seeks/s", 1, r);

  std::vector<RunResult> runs;
  for (int i = 0; i < c_.repeats; ++i) {
    std::unique_ptr<PeerReader> reader = db_->NewReader();
    std::unique_ptr<PeerIterator> it = reader->NewIterator();
    uint64_t entries = 0, bytes = 0;
    auto t0 = Clock::now();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      bytes += it->key().size() + it->value().size();
      ++entries;
    }
    double s = Secs(Clock::now() - t0);
    Consume(bytes);
    if (entries != d_.n()) {
      std::cerr << engine_ << ": scan saw " << entries << " entries\n";
      std::exit(1);
    }
    RunResult r;
    r.rate = entries / s;
    r.ops = entries;
    runs.push_back(r);
  }
  Emit("R2", "R2.scan", "R2 full scan", "entries/s", 1, Summarize(runs).rate);
}

void EngineRun::Snapshots() {
  RunResult r = Repeat([&] {
    return TimedRun(1, c_.seconds, 1, 64, [&](int) -> Op {
      return [this] { db_->NewReader().reset(); };
    });
  });
  Emit("R3", "R3.snap", "R3 snapshot open + close", "ops/s", 1, r);
}

// One reader, fresh snapshot every 1,000 gets, alone and with a writer.
void EngineRun::ReadWhileWriting() {
  auto reader_op = [&](int) -> Op {
    struct State {
      std::unique_ptr<PeerReader> reader;
      Rng rng{17};
      int left = 0;
    };
    auto s = std::make_shared<State>();
    return [this, s] {
      if (s->left-- == 0) {
        s->reader.reset();  // LMDB: one read transaction per thread
        s->reader = db_->NewReader();
        s->left = 999;
      }
      std::string_view v;
      if (!s->reader->Get(d_.key(s->rng() % d_.n()), &v)) std::exit(1);
      Consume(v.size());
    };
  };
  std::vector<RunResult> solo, mixed;
  std::vector<double> writer_rates;
  for (int i = 0; i < c_.repeats; ++i) {
    SettleNow();
    solo.push_back(TimedRun(1, c_.seconds, 8, 64, reader_op));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> commits{0};
    auto t0 = Clock::now();
    std::thread writer([&] {
      Rng rng(99 + i);
      while (!stop.load(std::memory_order_relaxed)) {
        db_->Put(d_.key(rng() % d_.n()), d_.value(rng()));
        commits.fetch_add(1, std::memory_order_relaxed);
      }
    });
    mixed.push_back(TimedRun(1, c_.seconds, 8, 64, reader_op));
    stop = true;
    writer.join();
    writer_rates.push_back(commits / Secs(Clock::now() - t0));
  }
  RunResult s = Summarize(solo), m = Summarize(mixed);
  Emit("W4", "W4.solo", "W4 reader alone", "gets/s", 1, s);
  Emit("W4", "W4.mixed", "W4 reader + 1 writer", "gets/s", 1, m);
  Emit("W4", "W4.ratio", "W4 reader with writer / alone", "x", 1, m.rate / s.rate);
  Emit("W4", "W4.writer", "W4 writer meanwhile", "commits/s", 1, Median(writer_rates));
}

void EngineRun::Commits() {
  for (int threads : c_.committers) {
    uint64_t w0 = WriteBytes();
    RunResult r = Repeat([&] {
      return TimedRun(threads, c_.seconds, 1, 1, [&](int t) -> Op {
        auto rng = std::make_shared<Rng>(1000 + t);
        return [this, rng] { db_->Put(d_.key((*rng)() % d_.n()), d_.value((*rng)())); };
      });
    });
    SettleNow();
    double bpc = double(WriteBytes() - w0) / std::max<uint64_t>(1, r.ops);
    Emit("W1", absl::StrFormat("W1.c%d", threads),
         absl::StrFormat("W1 single-put commits, %d committer%s", threads,
                         threads > 1 ? "s" : ""),
         "commits/s", threads, r);
    Emit("W1", absl::StrFormat("W1.c%d.bpp", threads),
         absl::StrFormat("W1 %d committer%s: bytes written/put", threads,
                         threads > 1 ? "s" : ""),
         "B/put",
         threads, bpc);
  }
  Emit("W1", "W1.disk", "W1 on-disk size after", "MiB", 0, DirMiB(dir_));
}

void EngineRun::Batches() {
  for (int size : c_.batches) {
    uint64_t w0 = WriteBytes();
    RunResult r = Repeat([&] {
      return TimedRun(1, c_.seconds, 1, 1, [&](int) -> Op {
        auto rng = std::make_shared<Rng>(2000 + size);
        auto batch = std::make_shared<std::vector<KV>>();
        return [this, rng, batch, size] {
          batch->clear();
          for (int j = 0; j < size; ++j) {
            batch->emplace_back(d_.key((*rng)() % d_.n()), d_.value((*rng)()));
          }
          db_->Write(*batch);
        };
      });
    });
    SettleNow();
    double puts = double(r.ops) * size;
    double bpp = (WriteBytes() - w0) / std::max(1.0, puts);
    Emit("W2", absl::StrFormat("W2.b%d", size),
         absl::StrFormat("W2 batches of %d puts (latency per batch)", size), "puts/s",
         1, r.rate * size, r.p50_us, r.p99_us);
    Emit("W2", absl::StrFormat("W2.b%d.bpp", size),
         absl::StrFormat("W2 batches of %d: bytes written/put", size), "B/put", 1, bpp);
  }
  Emit("W2", "W2.disk", "W2 on-disk size after", "MiB", 0, DirMiB(dir_));
}

void EngineRun::OldVersions() {
  if (!db_->reads_old_versions()) {
    Emit("W5", "W5.latest", "W5 gets at latest", "gets/s", 1, NAN);
    for (uint64_t back : c_.old_versions) {
      Emit("W5", absl::StrFormat("W5.v-%u", back),
           absl::StrFormat("W5 gets at v-%u", back), "gets/s", 1, NAN);
      Emit("W5", absl::StrFormat("W5.v-%u.ratio", back),
           absl::StrFormat("W5 v-%u / latest", back), "x", 1, NAN);
    }
    return;
  }
  // Hold a reader at each depth while `depth` commits of 10 puts go by.
  uint64_t depth = *std::max_element(c_.old_versions.begin(), c_.old_versions.end());
  std::map<uint64_t, std::unique_ptr<PeerReader>> held;
  Rng rng(77);
  std::vector<KV> batch;
  for (uint64_t i = 0; i < depth; ++i) {
    uint64_t back = depth - i;
    if (std::count(c_.old_versions.begin(), c_.old_versions.end(), back)) {
      held[back] = db_->NewReader();
    }
    batch.clear();
    for (int j = 0; j < 10; ++j) batch.emplace_back(d_.key(rng() % d_.n()), d_.value(rng()));
    db_->Write(batch);
  }
  held[0] = db_->NewReader();
  SettleNow();
  // Interleave the versions within each repeat so noise hits all alike.
  std::map<uint64_t, std::vector<RunResult>> runs;
  for (int r = 0; r < c_.repeats; ++r) {
    for (auto& [back, reader] : held) {
      PeerReader* rd = reader.get();
      runs[back].push_back(TimedRun(1, c_.seconds, 8, 64, [&, rd](int) -> Op {
        auto g = std::make_shared<Rng>(31);
        return [this, rd, g] {
          std::string_view v;
          if (!rd->Get(d_.key((*g)() % d_.n()), &v)) std::exit(1);
          Consume(v.size());
        };
      }));
    }
  }
  RunResult latest = Summarize(runs[0]);
  Emit("W5", "W5.latest", "W5 gets at latest", "gets/s", 1, latest);
  for (uint64_t back : c_.old_versions) {
    RunResult r = Summarize(runs[back]);
    Emit("W5", absl::StrFormat("W5.v-%u", back), absl::StrFormat("W5 gets at v-%u", back),
         "gets/s", 1, r);
    Emit("W5", absl::StrFormat("W5.v-%u.ratio", back),
         absl::StrFormat("W5 v-%u / latest", back), "x", 1, r.rate / latest.rate);
  }
  held.clear();
}

std::vector<Rec> EngineRun::Run() {
  printf("\n== %s ==\n", engine_.c_str());
  fflush(stdout);
  Emit("RSS", "RSS.base", "RSS before opening (harness: keys, values)", "MiB", 0,
       RssMiB());
  if (c_.Has("W7")) Load(/*sorted=*/true, /*measure=*/true);
  Load(/*sorted=*/false, /*measure=*/c_.Has("W7"));
  Emit("RSS", "RSS.load", "RSS after load", "MiB", 0, RssMiB());
  WarmUp();
  if (c_.Has("R1")) PointGets();
  if (c_.Has("R2")) Seeks();
  if (c_.Has("R3")) Snapshots();
  if (c_.Has("W4")) ReadWhileWriting();
  if (c_.Has("W1")) {
    SettleNow();
    Commits();
  }
  if (c_.Has("W2")) {
    SettleNow();
    Batches();
  }
  if (c_.Has("W5")) OldVersions();
  Emit("RSS", "RSS.end", "RSS at the end", "MiB", 0, RssMiB());
  std::string stats = db_->Stats();
  if (!stats.empty()) printf("  (%s)\n", stats.c_str());
  recs_.push_back(Rec{engine_, "settings", "settings", db_->Settings(), "", 0, NAN});
  db_.reset();
  std::filesystem::remove_all(dir_);
  return recs_;
}

// ---------------------------------------------------------------- report

const char* Display(const std::string& engine) {
  if (engine == "cowdb") return "cowdb";
  if (engine == "lmdb") return "LMDB";
  if (engine == "rocksdb") return "RocksDB";
  return engine.c_str();
}

std::string Num(double v) {
  if (std::isnan(v)) return "n/a";
  if (v >= 1e7) return absl::StrFormat("%.1f M", v / 1e6);
  if (v >= 100) {
    std::string s = absl::StrFormat("%.0f", v), out;
    int k = 0;
    for (int i = int(s.size()) - 1; i >= 0; --i, ++k) {
      if (k && k % 3 == 0) out.insert(out.begin(), ',');
      out.insert(out.begin(), s[i]);
    }
    return out;
  }
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2f", v);
}

std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string JsonNum(double v) { return std::isnan(v) ? "null" : absl::StrFormat("%.6g", v); }

class Report {
 public:
  Report(std::vector<Rec> recs, std::vector<std::string> engines)
      : recs_(std::move(recs)), engines_(std::move(engines)) {
    for (const Rec& r : recs_) {
      if (r.workload == "settings") continue;
      if (!index_.count(r.key)) {
        index_[r.key] = order_.size();
        order_.push_back(r.key);
      }
      by_[{r.engine, r.key}] = &r;
    }
  }

  std::optional<double> Get(const std::string& engine, const std::string& key) const {
    auto it = by_.find({engine, key});
    if (it == by_.end() || std::isnan(it->second->value)) return std::nullopt;
    return it->second->value;
  }

  void Print() const {
    auto has = [&](const char* e) {
      return std::find(engines_.begin(), engines_.end(), e) != engines_.end();
    };
    printf("\n| row | unit |");
    for (const auto& e : engines_) printf(" %s |", Display(e));
    if (has("cowdb") && has("lmdb")) printf(" cowdb/LMDB |");
    if (has("cowdb") && has("rocksdb")) printf(" cowdb/RocksDB |");
    printf("\n|---|---|");
    for (size_t i = 0; i < engines_.size(); ++i) printf("---:|");
    if (has("cowdb") && has("lmdb")) printf("---:|");
    if (has("cowdb") && has("rocksdb")) printf("---:|");
    printf("\n");
    for (const std::string& key : order_) {
      const Rec* any = nullptr;
      for (const auto& e : engines_) {
        auto it = by_.find({e, key});
        if (it != by_.end()) any = it->second;
      }
      printf("| %s | %s |", any->label.c_str(), any->unit.c_str());
      for (const auto& e : engines_) {
        std::optional<double> v = Get(e, key);
        printf(" %s |", v ? Num(*v).c_str() : "n/a");
      }
      for (const char* peer : {"lmdb", "rocksdb"}) {
        if (!has("cowdb") || !has(peer)) continue;
        std::optional<double> a = Get("cowdb", key), b = Get(peer, key);
        if (a && b && *b != 0 && any->unit != "x") {
          printf(" %.2fx |", *a / *b);
        } else {
          printf(" |");
        }
      }
      printf("\n");
    }
    printf("\nLatency (p50 / p99, microseconds):\n\n| row |");
    for (const auto& e : engines_) printf(" %s |", Display(e));
    printf("\n|---|");
    for (size_t i = 0; i < engines_.size(); ++i) printf("---:|");
    printf("\n");
    for (const std::string& key : order_) {
      bool any_lat = false;
      std::string line;
      for (const auto& e : engines_) {
        auto it = by_.find({e, key});
        if (it != by_.end() && !std::isnan(it->second->p50_us) &&
            !std::isnan(it->second->value)) {
          any_lat = true;
          line += absl::StrFormat(" %s / %s |", Num(it->second->p50_us),
                                  Num(it->second->p99_us));
        } else {
          line += " n/a |";
        }
      }
      if (!any_lat) continue;
      const Rec* r = nullptr;
      for (const auto& e : engines_) {
        auto it = by_.find({e, key});
        if (it != by_.end()) r = it->second;
      }
      printf("| %s |%s\n", r->label.c_str(), line.c_str());
    }
  }

  // The targets, evaluated on this run's figures.
  void PrintTargets() const {
    printf("\nTargets:\n\n| target | figure | verdict |\n|---|---|---|\n");
    auto ratio = [&](const std::string& key, const char* peer, double min,
                     const std::string& what) {
      auto a = Get("cowdb", key), b = Get(peer, key);
      if (!a || !b) return;
      double x = *a / *b;
      printf("| %s | %.2fx | %s |\n", what.c_str(), x, x >= min ? "met" : "**missed**");
    };
    for (const char* k : {"R1.u.1t", "R1.u.2t", "R1.z.1t", "R1.z.2t"}) {
      ratio(k, "lmdb", 0.7, absl::StrCat(k, " >= 0.7x LMDB"));
      ratio(k, "rocksdb", 2.5, absl::StrCat(k, " >= 2.5x RocksDB"));
    }
    ratio("R2.seek", "lmdb", 0.6, "R2 seek + 10 nexts >= 0.6x LMDB");
    if (auto v = Get("cowdb", "R2.scan")) {
      printf("| R2 scan >= 15 M entries/s | %s | %s |\n", Num(*v).c_str(),
             *v >= 15e6 ? "met" : "**missed**");
    }
    ratio("W1.c1", "lmdb", 2.0, "W1 1 committer >= 2x LMDB");
    if (auto v = Get("cowdb", "W1.c64")) {
      printf("| W1 64 committers >= 50,000 commits/s | %s | %s |\n", Num(*v).c_str(),
             *v >= 50000 ? "met" : "**missed**");
    }
    for (int b : {10, 100, 1000}) {
      std::string k = absl::StrCat("W2.b", b);
      ratio(k, "lmdb", 1.0, absl::StrCat("W2 batches of ", b, ": puts/s >= LMDB"));
      auto a = Get("cowdb", k + ".bpp"), l = Get("lmdb", k + ".bpp");
      if (a && l) {
        printf("| W2 batches of %d: bytes/put <= LMDB | %s vs %s | %s |\n", b,
               Num(*a).c_str(), Num(*l).c_str(), *a <= *l ? "met" : "**missed**");
      }
    }
    if (auto v = Get("cowdb", "W4.ratio")) {
      printf("| W4 reader with writer >= 0.8x alone | %.2fx | %s |\n", *v,
             *v >= 0.8 ? "met" : "**missed**");
    }
    for (const std::string& key : order_) {
      if (key.rfind("W5.v-", 0) != 0 || key.find(".ratio") == std::string::npos) continue;
      if (auto v = Get("cowdb", key)) {
        // "within 1.2x of latest": latest / old <= 1.2.
        printf("| %s within 1.2x of latest | %.2fx | %s |\n", key.c_str(), *v,
               1.0 / *v <= 1.2 ? "met" : "**missed**");
      }
    }
  }

  void Write(const std::string& dir, const std::string& header_json) const {
    std::filesystem::create_directories(dir);
    std::ofstream csv(dir + "/results.csv");
    csv << "engine,workload,key,label,unit,threads,value,p50_us,p99_us\n";
    for (const Rec& r : recs_) {
      if (r.workload == "settings") continue;
      csv << r.engine << ',' << r.workload << ',' << r.key << ",\"" << r.label << "\","
          << r.unit << ',' << r.threads << ',' << JsonNum(r.value) << ','
          << JsonNum(r.p50_us) << ',' << JsonNum(r.p99_us) << '\n';
    }
    std::ofstream json(dir + "/results.json");
    json << "{\n" << header_json << ",\n  \"settings\": {";
    bool first = true;
    for (const Rec& r : recs_) {
      if (r.workload != "settings") continue;
      json << (first ? "\n" : ",\n") << "    " << JsonStr(r.engine) << ": "
           << JsonStr(r.label);
      first = false;
    }
    json << "\n  },\n  \"results\": [";
    first = true;
    for (const Rec& r : recs_) {
      if (r.workload == "settings") continue;
      json << (first ? "\n" : ",\n") << "    {\"engine\": " << JsonStr(r.engine)
           << ", \"workload\": " << JsonStr(r.workload) << ", \"key\": " << JsonStr(r.key)
           << ", \"label\": " << JsonStr(r.label) << ", \"unit\": " << JsonStr(r.unit)
           << ", \"threads\": " << r.threads << ", \"value\": " << JsonNum(r.value)
           << ", \"p50_us\": " << JsonNum(r.p50_us) << ", \"p99_us\": "
           << JsonNum(r.p99_us) << "}";
      first = false;
    }
    json << "\n  ]\n}\n";
    printf("\nwrote %s/results.json and results.csv\n", dir.c_str());
  }

 private:
  std::vector<Rec> recs_;
  std::vector<std::string> engines_;
  std::vector<std::string> order_;
  std::map<std::string, size_t> index_;
  std::map<std::pair<std::string, std::string>, const Rec*> by_;
};

template <typename T>
std::vector<T> ParseList(const std::string& s) {
  std::vector<T> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    out.push_back(static_cast<T>(std::stoull(std::string(part))));
  }
  return out;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  Config c;
  c.keys = absl::GetFlag(FLAGS_keys);
  c.repeats = absl::GetFlag(FLAGS_repeats);
  c.seconds = absl::GetFlag(FLAGS_seconds);
  c.committers = ParseList<int>(absl::GetFlag(FLAGS_committers));
  c.batches = ParseList<int>(absl::GetFlag(FLAGS_batches));
  c.old_versions = ParseList<uint64_t>(absl::GetFlag(FLAGS_old_versions));
  c.load_batch = absl::GetFlag(FLAGS_load_batch);
  c.zipf_theta = absl::GetFlag(FLAGS_zipf_theta);
  c.settle_max = absl::GetFlag(FLAGS_settle_max);
  c.peer.cache_bytes = absl::GetFlag(FLAGS_cache_mb) << 20;
  c.peer.lmdb_map_bytes = absl::GetFlag(FLAGS_lmdb_map_gb) << 30;
  c.peer.cowdb_checkpoint_memory_bytes = absl::GetFlag(FLAGS_cowdb_checkpoint_mb) << 20;
  c.workloads = absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',', absl::SkipEmpty());
  if (absl::GetFlag(FLAGS_quick)) {
    c.keys = 100000;
    c.seconds = 0.5;
    c.old_versions = {1, 100, 1000};
  }
  if (c.repeats < 1 || c.keys < 1000 || c.old_versions.empty()) {
    std::cerr << "need --repeats >= 1, --keys >= 1000, --old_versions\n";
    return 2;
  }
  std::vector<std::string> engines =
      absl::StrSplit(absl::GetFlag(FLAGS_engines), ',', absl::SkipEmpty());

  std::string base = absl::GetFlag(FLAGS_dir);
  if (base.empty()) {
    base = (std::filesystem::temp_directory_path() /
            absl::StrCat("cowdb_peer_bench.", getpid()))
               .string();
  }
  std::filesystem::create_directories(base);
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    const char* ws = getenv("BUILD_WORKSPACE_DIRECTORY");
    out = absl::StrCat(ws ? ws : ".", "/bench-results");
  }

  const std::string machine = MachineLine();
  printf("peer_bench: %s\n", machine.c_str());
  printf("%llu keys (16 B keys, 100 B random values), median of %d runs of %.1f s, "
         "databases in %s\n",
         static_cast<unsigned long long>(c.keys), c.repeats, c.seconds, base.c_str());
  printf("preparing keys...\n");
  fflush(stdout);
  const Data data(c.keys);

  std::vector<Rec> all;
  for (const std::string& engine : engines) {
    std::string tsv = absl::StrCat(base, "/", engine, ".tsv");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
      EngineRun run(engine, absl::StrCat(base, "/", engine), c, data);
      std::vector<Rec> recs = run.Run();
      std::ofstream f(tsv);
      for (const Rec& r : recs) f << ToTsv(r);
      f.close();
      fflush(stdout);
      _exit(f ? 0 : 1);
    }
    int status = 0;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::cerr << engine << " run failed (status " << status << ")\n";
      return 1;
    }
    std::ifstream in(tsv);
    std::string line;
    while (std::getline(in, line)) all.push_back(FromTsv(line));
    Rec peak{engine, "RSS", "RSS.peak", "peak RSS (whole run)", "MiB", 0,
             ru.ru_maxrss / 1024.0};
    all.push_back(peak);
    printf("  %-44s %14.1f MiB\n", "peak RSS (whole run)", peak.value);
  }
  std::filesystem::remove_all(base);

  Report report(all, engines);
  printf("\n%llu keys, median of %d runs; %s\n",
         static_cast<unsigned long long>(c.keys), c.repeats, machine.c_str());
  printf("\nSettings:\n");
  for (const Rec& r : all) {
    if (r.workload == "settings") printf("- %s\n", r.label.c_str());
  }
  report.Print();
  report.PrintTargets();
  std::string header = absl::StrFormat(
      "  \"machine\": %s,\n  \"keys\": %u,\n  \"repeats\": %d,\n  \"seconds\": %g,\n"
      "  \"load_batch\": %u,\n  \"zipf_theta\": %g",
      JsonStr(machine), c.keys, c.repeats, c.seconds, c.load_batch, c.zipf_theta);
  report.Write(out, header);
  return 0;
}

}  // namespace
}  // namespace cowdb::bench

int main(int argc, char** argv) { return cowdb::bench::Main(argc, argv); }
