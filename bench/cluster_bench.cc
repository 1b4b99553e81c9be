// Scale-out over RADOS: cowdb on a Ceph pool (DB::OpenRados) against cowdb
// on its default RocksDB store, the same workload side by side in one run,
// then read replicas following the RADOS writer in the same process.
//
//   tools/cluster/ceph.sh start /tmp/cowdb-bench-ceph
//   bazel run -c opt //bench:cluster_bench -- \
//       --ceph_conf=/tmp/cowdb-bench-ceph/ceph.conf --pool=cowdb
//   tools/cluster/ceph.sh stop /tmp/cowdb-bench-ceph
//
// Both databases get the same options (sync = true, the defaults
// otherwise), the same --keys preloaded (16-byte keys, 100-byte random
// values) and the same seeded operations. Phases (--phases):
//
//  probe       the floors under a commit: 4 KiB append + fdatasync in the
//              RocksDB directory; raw librados operations shaped like the
//              store's: the head op (cmpxattr + omap_set of one ~200-byte
//              value), a 4 KiB page object (exclusive create + write_full +
//              setxattr), an omap read of the head (what CatchUp repeats).
//  write       single-put commits from 1 and 8 threads (group commit), and
//              commits of --batch puts from 1 thread, each for --seconds;
//              commits/s and p50/p99 latency. Every round runs each row on
//              both backends back to back, the first backend alternating
//              from round to round; a checkpoint (untimed) precedes every
//              run, so no background checkpoint falls inside one.
//  checkpoint  --checkpoint_commits single-put commits (8 threads), then a
//              timed Checkpoint(): the pages it writes (RADOS: one object
//              each).
//  lag         one writer thread commits single puts for --seconds while a
//              replica (Options::read_only) calls CatchUp() in a loop in
//              another thread: time from the writer's Put returning to the
//              replica's CatchUp having that version.
//  recovery    --recovery_commits single-put commits (8 threads) after a
//              checkpoint, then a timed open of a replica, which replays
//              them from the log: what a standby's takeover and a replica's
//              start cost (RADOS only; the writer stays open).
//  reads       1, 2, 3 (--replicas) replicas opened afresh, each read by
//              its own thread: a full scan first (cold: pages from RADOS),
//              then random point Gets at the latest version for --seconds;
//              reads/s and CPU per read (process and reader threads). The
//              writers sit idle meanwhile. Baselines: one thread reading
//              the RocksDB database and the RADOS writer.
//
// Every figure is the median over --rounds; ratios are RADOS / RocksDB.
// This file reaches librados directly for the probe only (as the peers of
// peer_bench reach RocksDB): the engine's store is the one place that
// otherwise does.

#include <fcntl.h>
#include <rados/librados.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "engine/db.h"

ABSL_FLAG(std::string, ceph_conf, "", "ceph.conf of the cluster (required)");
ABSL_FLAG(std::string, pool, "cowdb", "RADOS pool (must exist)");
ABSL_FLAG(std::string, name, "",
          "database name in the pool (default: cluster_bench.<pid>.<random>)");
ABSL_FLAG(std::string, dir, "", "RocksDB backend's directory (default: temp)");
ABSL_FLAG(std::string, phases, "probe,write,checkpoint,recovery,lag,reads",
          "phases to run");
ABSL_FLAG(std::string, backends, "rocksdb,rados",
          "backends of the write and checkpoint phases");
ABSL_FLAG(uint64_t, keys, 100000, "keys preloaded into each database");
ABSL_FLAG(int, rounds, 5, "rounds per row; medians are reported");
ABSL_FLAG(double, seconds, 2.0, "duration of each timed run");
ABSL_FLAG(std::string, threads, "1,8", "committer threads of single-put rows");
ABSL_FLAG(int, batch, 100, "puts per commit of the batch row (0: no row)");
ABSL_FLAG(int, checkpoint_commits, 1000,
          "single-put commits before each timed Checkpoint()");
ABSL_FLAG(int, recovery_commits, 20000,
          "commits replayed by the recovery phase's open");
ABSL_FLAG(std::string, replicas, "1,2,3", "replica counts of the reads phase");
ABSL_FLAG(int, probe_ops, 500, "operations per probe row");
ABSL_FLAG(bool, background_reclaim, true,
          "Options::background_reclaim; false only to profile (the figures "
          "are then not those of the defaults)");

namespace {

using cowdb::bench::Check;
using cowdb::bench::Key;
using cowdb::bench::Median;
using cowdb::bench::RandomBytes;
using cowdb::bench::Seconds;
using cowdb::bench::Unwrap;
using Clock = std::chrono::steady_clock;

constexpr size_t kValueSize = 100;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Micros(Clock::time_point since) { return 1e6 * Seconds(since); }

double ThreadCpuSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// User + system CPU of the whole process (every thread: librados'
// messengers, the engine's background threads), in seconds.
double ProcessCpuSeconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

std::vector<int> Ints(const std::string& csv) {
  std::vector<int> out;
  for (absl::string_view s : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    out.push_back(std::stoi(std::string(s)));
  }
  return out;
}

bool Has(const std::string& csv, absl::string_view item) {
  for (absl::string_view s : absl::StrSplit(csv, ',')) {
    if (s == item) return true;
  }
  return false;
}

std::string Fmt(double v) {
  if (v >= 100) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2f", v);
}

// Fills keys [0, n) with random 100-byte values in commits of 1,000.
void Preload(cowdb::DB* db, uint64_t n) {
  std::mt19937_64 rng(1);
  std::string value(kValueSize, '\0');
  for (uint64_t i = 0; i < n; i += 1000) {
    cowdb::WriteBatch batch;
    for (uint64_t j = i; j < std::min(n, i + 1000); ++j) {
      RandomBytes(rng, &value);
      batch.Put(Key(j), value);
    }
    Check(db->Write(batch).status(), "preload");
  }
}

// ------------------------------------------------------------------ probe

struct Latency {
  double p50 = 0, p99 = 0;
};

Latency Summary(const std::vector<double>& us) {
  return {Percentile(us, 0.5), Percentile(us, 0.99)};
}

// 4 KiB appends + fdatasync in `dir`: a synced RocksDB WAL write's floor.
Latency DiskSync(const std::string& dir, int n) {
  const std::string path = dir + "/sync_probe";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return {};
  std::string block(4096, 'x');
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (write(fd, block.data(), block.size()) < 0 || fdatasync(fd) != 0) break;
    us.push_back(Micros(t0));
  }
  close(fd);
  unlink(path.c_str());
  return Summary(us);
}

void CheckRados(int r, const char* what) {
  if (r < 0) {
    fprintf(stderr, "cluster_bench: %s: %s\n", what, strerror(-r));
    exit(1);
  }
}

struct RadosProbe {
  Latency head_op, head_op_full, page_write, omap_read;
};

// Raw librados operations shaped like RadosPageStore's, one at a time and
// synchronous, in namespace `ns` of the pool.
RadosProbe ProbeRados(const std::string& conf, const std::string& pool,
                      const std::string& ns, int n) {
  rados_t cluster;
  rados_ioctx_t io;
  CheckRados(rados_create(&cluster, "admin"), "rados_create");
  CheckRados(rados_conf_read_file(cluster, conf.c_str()), "read ceph.conf");
  CheckRados(rados_connect(cluster), "connect");
  CheckRados(rados_ioctx_create(cluster, pool.c_str(), &io), "open pool");
  rados_ioctx_set_namespace(io, ns.c_str());
  const std::string epoch = absl::StrFormat("%020u", 1);
  {
    rados_write_op_t op = rados_create_write_op();
    rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, nullptr);
    rados_write_op_setxattr(op, "epoch", epoch.data(), epoch.size());
    CheckRados(rados_write_op_operate2(op, io, "head", nullptr, 0),
               "create head");
    rados_release_write_op(op);
  }
  std::mt19937_64 rng(3);
  std::string value(200, '\0');
  RandomBytes(rng, &value);
  RadosProbe p;
  std::vector<double> us;
  auto head_ops = [&](const std::string& prefix) {
    us.clear();
    for (int i = 0; i < n; ++i) {
      const std::string key = absl::StrFormat("%s%016x", prefix, i);
      const char* k = key.c_str();
      const char* v = value.data();
      size_t klen = key.size(), vlen = value.size();
      auto t0 = Clock::now();
      rados_write_op_t op = rados_create_write_op();
      rados_write_op_cmpxattr(op, "epoch", LIBRADOS_CMPXATTR_OP_EQ,
                              epoch.data(), epoch.size());
      rados_write_op_omap_set2(op, &k, &v, &klen, &vlen, 1);
      CheckRados(rados_write_op_operate2(op, io, "head", nullptr, 0),
                 "head op");
      rados_release_write_op(op);
      us.push_back(Micros(t0));
    }
    return Summary(us);
  };
  p.head_op = head_ops("l/");
  // The same with the omap holding what a preload of 100,000 keys leaves
  // in the log: 100 records of ~120 KB.
  {
    std::string big(120000, '\0');
    RandomBytes(rng, &big);
    for (int i = 0; i < 100; ++i) {
      const std::string key = absl::StrFormat("k/%016x", i);
      const char* k = key.c_str();
      const char* v = big.data();
      size_t klen = key.size(), vlen = big.size();
      rados_write_op_t op = rados_create_write_op();
      rados_write_op_omap_set2(op, &k, &v, &klen, &vlen, 1);
      CheckRados(rados_write_op_operate2(op, io, "head", nullptr, 0),
                 "fill head");
      rados_release_write_op(op);
    }
  }
  p.head_op_full = head_ops("m/");
  us.clear();
  std::string page(4096, '\0');
  RandomBytes(rng, &page);
  for (int i = 0; i < n; ++i) {
    const std::string name = absl::StrFormat("p.%016x", i);
    auto t0 = Clock::now();
    rados_write_op_t op = rados_create_write_op();
    rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, nullptr);
    rados_write_op_write_full(op, page.data(), page.size());
    rados_write_op_setxattr(op, "epoch", epoch.data(), epoch.size());
    CheckRados(rados_write_op_operate2(op, io, name.c_str(), nullptr, 0),
               "page write");
    rados_release_write_op(op);
    us.push_back(Micros(t0));
  }
  p.page_write = Summary(us);
  us.clear();
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    rados_read_op_t op = rados_create_read_op();
    rados_omap_iter_t iter = nullptr;
    unsigned char more = 0;
    int rval = 0;
    const std::string after = absl::StrFormat("l/%016x", std::max(0, n - 2));
    rados_read_op_omap_get_vals2(op, after.c_str(), "l/", 512, &iter, &more,
                                 &rval);
    CheckRados(rados_read_op_operate(op, io, "head", 0), "omap read");
    rados_omap_get_end(iter);
    rados_release_read_op(op);
    us.push_back(Micros(t0));
  }
  p.omap_read = Summary(us);
  rados_ioctx_destroy(io);
  rados_shutdown(cluster);
  return p;
}

// ------------------------------------------------------------------ writes

struct Run {
  double rate = 0;          // commits/s
  double p50 = 0, p99 = 0;  // µs per commit
  double syncs_per_commit = 0;
};

// `threads` threads commit `batch` random puts each time for `seconds`.
Run Commits(cowdb::DB* db, int threads, int batch, double seconds,
            uint64_t keys, uint64_t seed) {
  const uint64_t syncs0 = db->GetStats().syncs;
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(threads);
  std::vector<std::thread> pool;
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000 + t);
      std::string value(kValueSize, '\0');
      while (!stop.load(std::memory_order_relaxed)) {
        cowdb::WriteBatch b;
        for (int i = 0; i < batch; ++i) {
          RandomBytes(rng, &value);
          b.Put(Key(rng() % keys), value);
        }
        auto c0 = Clock::now();
        Check(db->Write(b).status(), "commit");
        lat[t].push_back(Micros(c0));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double secs = Seconds(t0);
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  Run r;
  r.rate = all.size() / secs;
  r.p50 = Percentile(all, 0.5);
  r.p99 = Percentile(all, 0.99);
  r.syncs_per_commit = static_cast<double>(db->GetStats().syncs - syncs0) /
                       std::max<size_t>(1, all.size());
  return r;
}

struct Backend {
  std::string name;
  cowdb::DB* db;
};

// A row's runs per backend, over rounds.
struct Row {
  std::string label;
  std::vector<Run> runs[2];
};

void PrintWriteRows(const std::vector<Row>& rows,
                    const std::vector<Backend>& b) {
  const bool pair = b.size() == 2;
  printf("\n| row | %s |", b[0].name.c_str());
  if (pair)
    printf(" %s | %s/%s | per round |", b[1].name.c_str(), b[1].name.c_str(),
           b[0].name.c_str());
  printf("\n|---|---|%s\n", pair ? "---|---|---|" : "");
  for (const Row& row : rows) {
    auto med = [&](int i, double Run::*f) {
      std::vector<double> v;
      for (const Run& r : row.runs[i]) v.push_back(r.*f);
      return v.empty() ? 0.0 : Median(v);
    };
    auto line = [&](const char* what, double Run::*f) {
      const double a = med(0, f);
      printf("| %s, %s | %s |", row.label.c_str(), what, Fmt(a).c_str());
      if (pair) {
        const double c = med(1, f);
        std::string rounds;
        for (size_t i = 0; i < row.runs[1].size(); ++i) {
          absl::StrAppend(
              &rounds, i ? " / " : "",
              absl::StrFormat("%.2f", row.runs[1][i].*f / row.runs[0][i].*f));
        }
        printf(" %s | **%.2fx** | %s |", Fmt(c).c_str(), c / a, rounds.c_str());
      }
      printf("\n");
    };
    line("commits/s", &Run::rate);
    line("p50 us", &Run::p50);
    line("p99 us", &Run::p99);
    line("syncs/commit", &Run::syncs_per_commit);
  }
  fflush(stdout);
}

// ------------------------------------------------------------------ reads

struct ReadRun {
  double rate = 0;            // reads/s, all threads
  double process_cpu_us = 0;  // process CPU per read
  double thread_cpu_us = 0;   // reader threads' CPU per read
  uint64_t page_reads = 0;    // store reads during the run (cache misses)
};

// One thread per database reads random keys at the latest version.
ReadRun Reads(const std::vector<cowdb::DB*>& dbs, double seconds, uint64_t keys,
              uint64_t seed) {
  uint64_t page_reads0 = 0;
  for (cowdb::DB* db : dbs) page_reads0 += db->GetStats().page_reads;
  std::atomic<bool> stop{false};
  std::vector<uint64_t> n(dbs.size());
  std::vector<double> cpu(dbs.size());
  std::vector<std::thread> pool;
  const double pcpu0 = ProcessCpuSeconds();
  const auto t0 = Clock::now();
  for (size_t t = 0; t < dbs.size(); ++t) {
    pool.emplace_back([&, t] {
      const double c0 = ThreadCpuSeconds();
      std::mt19937_64 rng(seed * 1000 + t);
      cowdb::ReadOptions ro;
      std::string value;
      uint64_t done = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 256; ++i) {
          Check(dbs[t]->Get(ro, Key(rng() % keys), &value), "get");
          cowdb::bench::Consume(value.size());
        }
        done += 256;
      }
      n[t] = done;
      cpu[t] = ThreadCpuSeconds() - c0;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double secs = Seconds(t0);
  const double pcpu = ProcessCpuSeconds() - pcpu0;
  ReadRun r;
  uint64_t total = 0;
  double tcpu = 0;
  for (size_t t = 0; t < dbs.size(); ++t) {
    total += n[t];
    tcpu += cpu[t];
  }
  uint64_t page_reads = 0;
  for (cowdb::DB* db : dbs) page_reads += db->GetStats().page_reads;
  r.rate = total / secs;
  r.process_cpu_us = 1e6 * pcpu / total;
  r.thread_cpu_us = 1e6 * tcpu / total;
  r.page_reads = page_reads - page_reads0;
  return r;
}

ReadRun MedianReads(const std::vector<ReadRun>& runs) {
  std::vector<double> rate, pcpu, tcpu;
  ReadRun r;
  for (const ReadRun& x : runs) {
    rate.push_back(x.rate);
    pcpu.push_back(x.process_cpu_us);
    tcpu.push_back(x.thread_cpu_us);
    r.page_reads += x.page_reads;
  }
  r.rate = Median(rate);
  r.process_cpu_us = Median(pcpu);
  r.thread_cpu_us = Median(tcpu);
  return r;
}

// Scans every key of `db` (loads every page into its cache); seconds.
double Scan(cowdb::DB* db, uint64_t keys) {
  const auto t0 = Clock::now();
  auto it = Unwrap(db->NewIterator(cowdb::ReadOptions()), "iterator");
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  Check(it->status(), "scan");
  if (n != keys) {
    fprintf(stderr, "cluster_bench: scan saw %llu keys, expected %llu\n",
            static_cast<unsigned long long>(n),
            static_cast<unsigned long long>(keys));
    exit(1);
  }
  return Seconds(t0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string conf = absl::GetFlag(FLAGS_ceph_conf);
  if (conf.empty()) {
    fprintf(stderr,
            "cluster_bench: --ceph_conf=DIR/ceph.conf is required (start a "
            "cluster with tools/cluster/ceph.sh start DIR)\n");
    return 2;
  }
  const std::string phases = absl::GetFlag(FLAGS_phases);
  const uint64_t keys = absl::GetFlag(FLAGS_keys);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  std::string name = absl::GetFlag(FLAGS_name);
  if (name.empty()) {
    name =
        absl::StrCat("cluster_bench.", getpid(), ".", std::random_device()());
  }
  std::string dir = absl::GetFlag(FLAGS_dir);
  const bool temp = dir.empty();
  if (temp) {
    dir = (std::filesystem::temp_directory_path() /
           absl::StrCat("cowdb_cluster_bench.", getpid()))
              .string();
    std::filesystem::remove_all(dir);
  }

  cowdb::Options options;  // sync = true, the defaults otherwise
  options.background_reclaim = absl::GetFlag(FLAGS_background_reclaim);
  cowdb::RadosOptions rados;
  rados.conf_path = conf;
  rados.pool = absl::GetFlag(FLAGS_pool);
  rados.name = name;

  printf(
      "cowdb cluster_bench: RADOS pool '%s' (database '%s', %s) vs RocksDB "
      "(%s); %llu keys preloaded, sync = true, %d rounds of %.1f s runs%s\n",
      rados.pool.c_str(), name.c_str(), conf.c_str(), dir.c_str(),
      static_cast<unsigned long long>(keys), rounds, seconds,
      options.background_reclaim ? "" : "; NO background reclamation");
  fflush(stdout);

  if (Has(phases, "probe")) {
    std::filesystem::create_directories(dir);
    const int n = absl::GetFlag(FLAGS_probe_ops);
    Latency disk = DiskSync(dir, n);
    RadosProbe p = ProbeRados(conf, rados.pool, name + ".probe", n);
    printf(
        "\n## Probe (%d ops each, one at a time; us)\n\n"
        "| operation | p50 | p99 |\n|---|---|---|\n"
        "| disk: 4 KiB append + fdatasync | %s | %s |\n"
        "| RADOS head op: cmpxattr + omap_set of 200 B | %s | %s |\n"
        "| the same, the head's omap holding 12 MB | %s | %s |\n"
        "| RADOS 4 KiB page object: create + write_full + setxattr | %s | %s "
        "|\n"
        "| RADOS omap read of the head | %s | %s |\n",
        n, Fmt(disk.p50).c_str(), Fmt(disk.p99).c_str(),
        Fmt(p.head_op.p50).c_str(), Fmt(p.head_op.p99).c_str(),
        Fmt(p.head_op_full.p50).c_str(), Fmt(p.head_op_full.p99).c_str(),
        Fmt(p.page_write.p50).c_str(), Fmt(p.page_write.p99).c_str(),
        Fmt(p.omap_read.p50).c_str(), Fmt(p.omap_read.p99).c_str());
    fflush(stdout);
  }

  // Both databases, preloaded identically. The write and checkpoint
  // phases run on `backends`: RocksDB first, so ratios are [1] / [0].
  const std::string which = absl::GetFlag(FLAGS_backends);
  std::unique_ptr<cowdb::DB> rocks_db, rados_db;
  if (Has(which, "rocksdb")) {
    rocks_db = Unwrap(cowdb::DB::Open(options, dir), "open RocksDB");
  }
  if (Has(which, "rados") || Has(phases, "lag") || Has(phases, "reads")) {
    rados_db = Unwrap(cowdb::DB::OpenRados(options, rados), "open RADOS");
  }
  std::vector<Backend> backends;
  if (rocks_db) backends.push_back({"RocksDB", rocks_db.get()});
  if (Has(which, "rados")) backends.push_back({"RADOS", rados_db.get()});
  printf("\npreload (%llu keys, commits of 1,000, then a checkpoint):",
         static_cast<unsigned long long>(keys));
  for (cowdb::DB* db : {rocks_db.get(), rados_db.get()}) {
    if (db == nullptr) continue;
    auto t0 = Clock::now();
    Preload(db, keys);
    const double load = Seconds(t0);
    t0 = Clock::now();
    Check(db->Checkpoint(), "checkpoint");
    printf(" %s %.1f s + checkpoint %.1f s (%llu pages);",
           db == rados_db.get() ? "RADOS" : "RocksDB", load, Seconds(t0),
           static_cast<unsigned long long>(db->GetStats().pages_written));
    fflush(stdout);
  }
  printf("\n");

  // Runs `f(backend index)` on each backend, the first one alternating
  // with the round.
  auto alternate = [&](int round, const std::function<void(size_t)>& f) {
    for (size_t k = 0; k < backends.size(); ++k) {
      f((k + round) % backends.size());
    }
  };

  if (Has(phases, "write")) {
    std::vector<Row> rows;
    std::vector<std::pair<int, int>> shapes;  // threads, puts per commit
    for (int t : Ints(absl::GetFlag(FLAGS_threads))) shapes.push_back({t, 1});
    if (absl::GetFlag(FLAGS_batch) > 0)
      shapes.push_back({1, absl::GetFlag(FLAGS_batch)});
    for (auto [t, batch] : shapes) {
      rows.push_back(
          {batch == 1 ? absl::StrCat(t, t == 1 ? " thread" : " threads",
                                     ", single-put commits")
                      : absl::StrCat("1 thread, commits of ", batch, " puts"),
           {}});
    }
    for (int round = 0; round < rounds; ++round) {
      for (size_t s = 0; s < shapes.size(); ++s) {
        alternate(round, [&](size_t i) {
          cowdb::DB* db = backends[i].db;
          Check(db->Checkpoint(), "checkpoint");
          rows[s].runs[i].push_back(Commits(db, shapes[s].first,
                                            shapes[s].second, seconds, keys,
                                            round * 10 + s));
        });
      }
      printf("write round %d/%d done\n", round + 1, rounds);
      fflush(stdout);
    }
    printf(
        "\n## Writer: commits with sync = true (median of %d rounds of %.1f "
        "s)\n",
        rounds, seconds);
    PrintWriteRows(rows, backends);
  }

  if (Has(phases, "checkpoint")) {
    const int n = absl::GetFlag(FLAGS_checkpoint_commits);
    std::vector<double> ms[2], pages[2];
    for (int round = 0; round < rounds; ++round) {
      alternate(round, [&](size_t i) {
        cowdb::DB* db = backends[i].db;
        Check(db->Checkpoint(), "checkpoint");
        std::vector<std::thread> pool;
        for (int t = 0; t < 8; ++t) {
          pool.emplace_back([&, t] {
            std::mt19937_64 rng(round * 100 + t);
            std::string value(kValueSize, '\0');
            for (int k = t; k < n; k += 8) {
              RandomBytes(rng, &value);
              Check(db->Put(Key(rng() % keys), value).status(), "put");
            }
          });
        }
        for (auto& th : pool) th.join();
        const uint64_t pages0 = db->GetStats().pages_written;
        auto t0 = Clock::now();
        Check(db->Checkpoint(), "checkpoint");
        ms[i].push_back(1e3 * Seconds(t0));
        pages[i].push_back(db->GetStats().pages_written - pages0);
      });
    }
    printf(
        "\n## Checkpoint() after %d single-put commits (median of %d)\n\n"
        "| backend | ms | pages written | us per page |\n|---|---|---|---|\n",
        n, rounds);
    for (size_t i = 0; i < backends.size(); ++i) {
      printf(
          "| %s | %s | %.0f | %s |\n", backends[i].name.c_str(),
          Fmt(Median(ms[i])).c_str(), Median(pages[i]),
          Fmt(1e3 * Median(ms[i]) / std::max(1.0, Median(pages[i]))).c_str());
    }
    if (backends.size() == 2) {
      printf("| RADOS/RocksDB | **%.2fx** | | |\n",
             Median(ms[1]) / Median(ms[0]));
    }
    fflush(stdout);
  }

  cowdb::Options replica_options = options;
  replica_options.read_only = true;

  if (Has(phases, "recovery")) {
    const int n = absl::GetFlag(FLAGS_recovery_commits);
    std::vector<double> open_s;
    for (int round = 0; round < rounds; ++round) {
      Check(rados_db->Checkpoint(), "checkpoint");
      std::atomic<int> next{0};
      std::vector<std::thread> committers;
      for (int t = 0; t < 8; ++t) {
        committers.emplace_back([&, t] {
          std::mt19937_64 rng(round * 100 + t);
          std::string value(kValueSize, '\0');
          while (next.fetch_add(1) < n) {
            RandomBytes(rng, &value);
            Check(rados_db->Put(Key(rng() % keys), value).status(), "put");
          }
        });
      }
      for (auto& c : committers) c.join();
      const auto t0 = Clock::now();
      auto replica = Unwrap(cowdb::DB::OpenRados(replica_options, rados), "open replica");
      open_s.push_back(Seconds(t0));
    }
    printf("\nrecovery: open of a replica replaying %d commits: median %.2f s "
           "(%.0f us per commit)\n",
           n, Median(open_s), Median(open_s) * 1e6 / n);
  }

  if (Has(phases, "lag")) {
    cowdb::DB* writer = rados_db.get();
    auto replica =
        Unwrap(cowdb::DB::OpenRados(replica_options, rados), "open replica");
    // A replica that serves reads has its tree cached: replaying a commit
    // then reads no page from RADOS.
    Check(replica->CatchUp().status(), "catch up");
    Scan(replica.get(), keys);
    std::vector<double> p50, p99, catchup_us, catchups_per_commit, commits_s;
    // CatchUp calls that brought versions, and those that found none.
    std::vector<double> catchup_new_us, catchup_empty_us, versions_per_new;
    std::vector<double> gets_per_catchup;
    uint64_t early = 0, total = 0;
    for (int round = 0; round < rounds; ++round) {
      Check(writer->Checkpoint(), "checkpoint");
      Check(replica->CatchUp().status(), "catch up");
      const uint64_t base = writer->LatestVersion();
      constexpr size_t kMax = 1 << 20;
      // Nanoseconds since t0 at which version base + 1 + i was returned by
      // the writer's Put, and first seen by the replica's CatchUp.
      std::vector<std::atomic<int64_t>> returned(kMax), seen(kMax);
      for (size_t i = 0; i < kMax; ++i) returned[i] = seen[i] = -1;
      std::atomic<uint64_t> last{base};
      std::atomic<bool> done{false};
      const auto t0 = Clock::now();
      auto ns = [&] {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   Clock::now() - t0)
            .count();
      };
      std::vector<double> cu, cu_new, cu_empty;
      uint64_t brought = 0;
      const uint64_t gets0 = replica->GetStats().page_reads;
      std::thread follower([&] {
        uint64_t have = base;
        while (!done.load() || have < last.load()) {
          auto c0 = Clock::now();
          const uint64_t v = Unwrap(replica->CatchUp(), "catch up");
          const int64_t now = ns();
          cu.push_back(Micros(c0));
          (v > have ? cu_new : cu_empty).push_back(cu.back());
          if (v > have) brought += v - have;
          for (uint64_t x = have + 1; x <= v && x - base - 1 < kMax; ++x) {
            seen[x - base - 1] = now;
          }
          have = std::max(have, v);
        }
      });
      std::mt19937_64 rng(round + 77);
      std::string value(kValueSize, '\0');
      uint64_t commits = 0;
      while (Seconds(t0) < seconds) {
        RandomBytes(rng, &value);
        const uint64_t v = Unwrap(writer->Put(Key(rng() % keys), value), "put");
        const int64_t now = ns();
        if (v - base - 1 < kMax) returned[v - base - 1] = now;
        last = v;
        ++commits;
      }
      commits_s.push_back(commits / Seconds(t0));
      done = true;
      follower.join();
      std::vector<double> lag;
      for (uint64_t i = 0; i < commits && i < kMax; ++i) {
        const int64_t r = returned[i], s = seen[i];
        if (r < 0 || s < 0) continue;
        ++total;
        if (s < r) ++early;  // seen before the writer's Put returned
        lag.push_back(std::max<int64_t>(0, s - r) / 1e3);
      }
      p50.push_back(Percentile(lag, 0.5));
      p99.push_back(Percentile(lag, 0.99));
      catchup_us.push_back(Percentile(cu, 0.5));
      catchups_per_commit.push_back(static_cast<double>(cu.size()) / commits);
      catchup_new_us.push_back(Percentile(cu_new, 0.5));
      catchup_empty_us.push_back(Percentile(cu_empty, 0.5));
      versions_per_new.push_back(static_cast<double>(brought) /
                                 std::max<size_t>(1, cu_new.size()));
      gets_per_catchup.push_back(
          static_cast<double>(replica->GetStats().page_reads - gets0) /
          std::max<size_t>(1, cu.size()));
    }
    printf(
        "\n## Replica lag: writer's Put returned -> replica's CatchUp has it "
        "(1 writer thread, 1 replica thread; median of %d rounds of %.1f s)\n\n"
        "| row | value |\n|---|---|\n"
        "| lag p50 (us) | %s |\n| lag p99 (us) | %s |\n"
        "| one CatchUp() call, p50 (us) | %s |\n"
        "| ... that brought versions, p50 (us) | %s |\n"
        "| ... that found none, p50 (us) | %s |\n"
        "| versions per CatchUp() that brought any | %.2f |\n"
        "| store Gets per CatchUp() (besides its 2 omap scans) | %.2f |\n"
        "| CatchUp() calls per commit | %.2f |\n"
        "| writer commits/s meanwhile | %s |\n"
        "| versions seen before the writer's Put returned (lag counted 0) | "
        "%.1f %% of %llu |\n",
        rounds, seconds, Fmt(Median(p50)).c_str(), Fmt(Median(p99)).c_str(),
        Fmt(Median(catchup_us)).c_str(), Fmt(Median(catchup_new_us)).c_str(),
        Fmt(Median(catchup_empty_us)).c_str(), Median(versions_per_new),
        Median(gets_per_catchup), Median(catchups_per_commit),
        Fmt(Median(commits_s)).c_str(),
        100.0 * early / std::max<uint64_t>(1, total),
        static_cast<unsigned long long>(total));
    fflush(stdout);
  }

  if (Has(phases, "reads")) {
    Check(rados_db->Checkpoint(), "checkpoint");
    printf(
        "\n## Replica reads: random point Gets at the latest version, one "
        "thread per replica (median of %d runs of %.1f s; writers idle)\n\n"
        "| replicas | cold scan of each (s) | reads/s, all | reads/s per "
        "replica | x 1 replica | process CPU us/read | reader-thread CPU "
        "us/read | store reads while timed "
        "|\n|---|---|---|---|---|---|---|---|\n",
        rounds, seconds);
    double single = 0;
    auto row = [&](const std::string& label, const std::string& scan,
                   const std::vector<cowdb::DB*>& dbs) {
      std::vector<ReadRun> runs;
      for (int round = 0; round < rounds; ++round) {
        runs.push_back(Reads(dbs, seconds, keys, round));
      }
      ReadRun m = MedianReads(runs);
      const bool replicas = label.find("replica") != std::string::npos;
      if (replicas && single == 0) single = m.rate;
      printf("| %s | %s | %s | %s | %s | %s | %s | %llu |\n", label.c_str(),
             scan.c_str(), Fmt(m.rate).c_str(),
             Fmt(m.rate / dbs.size()).c_str(),
             replicas ? absl::StrFormat("%.2fx", m.rate / single).c_str() : "",
             Fmt(m.process_cpu_us).c_str(), Fmt(m.thread_cpu_us).c_str(),
             static_cast<unsigned long long>(m.page_reads));
      fflush(stdout);
    };
    if (rocks_db) {
      row("RocksDB writer (baseline)", Fmt(Scan(rocks_db.get(), keys)),
          {rocks_db.get()});
    }
    row("RADOS writer (baseline)", Fmt(Scan(rados_db.get(), keys)),
        {rados_db.get()});
    for (int n : Ints(absl::GetFlag(FLAGS_replicas))) {
      std::vector<std::unique_ptr<cowdb::DB>> replicas;
      std::vector<cowdb::DB*> dbs;
      std::string scans;
      for (int i = 0; i < n; ++i) {
        replicas.push_back(Unwrap(cowdb::DB::OpenRados(replica_options, rados),
                                  "open replica"));
        dbs.push_back(replicas.back().get());
        Check(dbs.back()->CatchUp().status(), "catch up");
      }
      // The cold scans run one replica at a time.
      for (cowdb::DB* db : dbs) {
        absl::StrAppend(&scans, scans.empty() ? "" : " / ",
                        Fmt(Scan(db, keys)));
      }
      row(absl::StrCat(n, n == 1 ? " replica" : " replicas"), scans, dbs);
    }
  }

  rocks_db.reset();
  rados_db.reset();
  if (temp) std::filesystem::remove_all(dir);
  return 0;
}
