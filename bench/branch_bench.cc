// The cost of branches (issue targets for DB::Fork, DiffTrees and Merge):
//
//   bazel run --config=opt //bench:branch_bench -- [--keys=1000000] \
//       [--small_keys=10000] [--rounds=5] [--forks=200] \
//       [--changes=1,10,100,1000,10000] [--phases=...] [--dir=/tmp/x]
//
// Databases are preloaded with 16-byte keys (bench_util's Key, in hashed
// order) and 100-byte random values in batches of --load_batch, sync off
// and background checkpoints off, then checkpointed once, so that each
// one's pages are exactly one tree. Figures are medians over --rounds
// rounds (each round's own figure being the median of its operations).
//
//  1. Fork latency against the database's size (phases fork_sync,
//     fork_nosync): a --small_keys database and a --keys database side by
//     side in one process. A round runs --forks cycles; a cycle is, on
//     each database in turn (the order alternating from cycle to cycle),
//     Fork (main's latest tree), DeleteBranch and Checkpoint, each timed
//     apart, then one 4 KiB append + fdatasync of a probe file in the same
//     directory (the disk's sync latency, measured beside the forks). Then
//     --forks Tag + Untag pairs (Tag timed: one synced record write
//     through the engine) and --forks single-put commits, interleaved the
//     same way, for reference. Interleaving by operation, not by round,
//     makes both databases see the same disk: other jobs' fsyncs on this
//     machine come and go within seconds. Once with Options::sync = true
//     (the default: a fork is durable when it returns) and once with
//     sync = false. Wall time and the calling thread's CPU time per
//     operation, and the median over cycles of the paired ratio (large
//     fork / small fork of the same cycle). Default options otherwise
//     (background checkpoints and reclamation on). Target: fork latency
//     on 1M keys of the same order as on 10k.
//  2. Diff across branches (phase diff), on the --keys database, opened
//     with sync = true and background checkpoints and reclamation off (so
//     that nothing else touches the node cache while a diff is counted).
//     Per count N of --changes and per round: fork branch "d" from main,
//     put N distinct random existing keys (new random values) on it in one
//     batch, checkpoint, then DiffTrees(main, d) --diff_repeats times;
//     then the same N puts on main in one batch, checkpoint, and
//     DiffTrees(main before, main after); then delete "d" and checkpoint.
//     Pages visited = the node cache's hits + misses during the diff:
//     after a checkpoint every node of both trees is reached by page id
//     through NodeSource::Load, one cache lookup per node loaded (a miss
//     then reads the page from storage: "storage reads", the DBStats
//     page_reads delta, a subset of the misses, not added again). For
//     scale: a full scan of main with an iterator (same counters; there
//     internal nodes go through child links after their first load, so
//     it counts each page about once), and, when version 0 can be read,
//     DiffTrees(empty tree, main), which loads every page of the tree.
//     Target: the pages a diff visits grow with N, not with the tree.
//  3. Merge (phase merge), on the --keys database with default options
//     (sync = true): per N and round, fork "m", put N distinct random keys
//     on it in one batch, checkpoint, and time Merge("m", "main", kFail)
//     (no conflicts: main did not change meanwhile); for reference, time
//     a Write of N puts of other random keys to main. Then delete "m" and
//     checkpoint.

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "engine/db.h"

ABSL_FLAG(uint64_t, keys, 1000000, "keys of the large database");
ABSL_FLAG(uint64_t, small_keys, 10000, "keys of the small database (fork phases)");
ABSL_FLAG(int, rounds, 5, "rounds per figure; the median is reported");
ABSL_FLAG(int, forks, 200, "fork + delete + checkpoint cycles per database per round");
ABSL_FLAG(uint64_t, load_batch, 10000, "puts per commit while preloading");
ABSL_FLAG(std::string, changes, "1,10,100,1000,10000", "changed keys per diff / merge");
ABSL_FLAG(int, diff_repeats, 3, "timed diffs of the same two trees per round");
ABSL_FLAG(std::string, phases, "fork_sync,fork_nosync,diff,merge",
          "parts to run, in this order whatever the order given");
ABSL_FLAG(std::string, dir, "", "directory for the databases (default: a new temp dir under /tmp)");

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
  fprintf(stderr, "branch_bench: %s\n", what.c_str());
  exit(1);
}


// The calling thread's CPU time, in seconds.
double ThreadCpuSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Times one call: wall and calling-thread CPU microseconds.
struct Timing {
  double wall_us = 0;
  double cpu_us = 0;
};

template <typename F>
Timing Time(F&& f) {
  const double cpu0 = ThreadCpuSeconds();
  const auto t0 = Clock::now();
  f();
  return {1e6 * Seconds(t0), 1e6 * (ThreadCpuSeconds() - cpu0)};
}

// Microseconds per 4 KiB append + fdatasync in `dir` (as commit_bench):
// the floor under any synced write on this disk.
double SyncLatencyMicros(const std::string& dir) {
  const std::string path = dir + "/sync_probe";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return 0;
  std::string block(4096, 'x');
  constexpr int kN = 200;
  std::vector<double> us;
  for (int i = 0; i < kN; ++i) {
    const auto t0 = Clock::now();
    if (write(fd, block.data(), block.size()) < 0 || fdatasync(fd) != 0) break;
    us.push_back(1e6 * Seconds(t0));
  }
  close(fd);
  unlink(path.c_str());
  return us.empty() ? 0 : Median(us);
}

// One operation's samples over all rounds: each round's median, and every
// sample (for percentiles).
struct Row {
  std::vector<double> round_wall, round_cpu, all_wall;

  void AddRound(const std::vector<Timing>& t) {
    if (t.empty()) return;
    std::vector<double> w, c;
    for (const Timing& x : t) {
      w.push_back(x.wall_us);
      c.push_back(x.cpu_us);
      all_wall.push_back(x.wall_us);
    }
    round_wall.push_back(Median(w));
    round_cpu.push_back(Median(c));
  }
  double wall() const { return round_wall.empty() ? 0 : Median(round_wall); }
  double cpu() const { return round_cpu.empty() ? 0 : Median(round_cpu); }
};

std::string Runs(const std::vector<double>& v, int precision = 0) {
  std::vector<std::string> s;
  for (double x : v) s.push_back(absl::StrFormat("%.*f", precision, x));
  return absl::StrJoin(s, " ");
}

struct Db {
  std::string name;
  std::string path;
  uint64_t keys = 0;
  uint64_t tree_pages = 0;  // pages the first checkpoint wrote: the tree
  bool empty_tagged = false;  // version 0 tagged, so readable
  std::unique_ptr<cowdb::DB> db;

  enum Mode { kLoad, kDefaults, kQuiet };

  // Opens (creating) the database: kLoad (sync off, no background
  // checkpoints), kDefaults (defaults but `sync`), kQuiet (`sync`, no
  // background checkpoints or reclamation).
  void Open(Mode mode, bool sync) {
    db.reset();
    cowdb::Options o;
    o.sync = sync;
    if (mode != kDefaults) o.background_checkpoint = false;
    if (mode == kQuiet) o.background_reclaim = false;
    db = Unwrap(cowdb::DB::Open(o, path), "open");
  }
};

// Loads keys [0, keys) in batches of `batch`, random values; then one
// checkpoint writes the tree.
void Load(Db& d, uint64_t batch) {
  d.Open(Db::kLoad, false);
  // Version 0 (the empty tree) kept readable by a tag, to diff against.
  d.empty_tagged = d.db->Tag("bench-empty", 0).ok();
  std::mt19937_64 rng(12345);
  std::string value(kValueSize, 0);
  const auto t0 = Clock::now();
  for (uint64_t i = 0; i < d.keys; i += batch) {
    cowdb::WriteBatch b;
    for (uint64_t j = i; j < std::min(d.keys, i + batch); ++j) {
      RandomBytes(rng, &value);
      b.Put(Key(j), value);
    }
    Check(d.db->Write(b).status(), "load");
  }
  const double load = Seconds(t0);
  const uint64_t before = d.db->GetStats().pages_written;
  const auto t1 = Clock::now();
  Check(d.db->Checkpoint(), "checkpoint");
  d.tree_pages = d.db->GetStats().pages_written - before;
  printf("  %-10s %8llu keys: load %.1f s (%.0f puts/s), checkpoint %.1f s, %llu pages\n",
         d.name.c_str(), static_cast<unsigned long long>(d.keys), load, d.keys / load,
         Seconds(t1), static_cast<unsigned long long>(d.tree_pages));
  fflush(stdout);
}

// ------------------------------------------------------------------ forks

struct ForkRows {
  Row fork, del, checkpoint, tag, put;
};

// A file in `dir` to append 4 KiB + fdatasync to, timed: the disk's sync
// latency measured beside the operations, under the same conditions.
class SyncProbe {
 public:
  explicit SyncProbe(const std::string& dir) : path_(dir + "/sync_probe") {
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) Die("open " + path_);
  }
  ~SyncProbe() {
    close(fd_);
    unlink(path_.c_str());
  }
  Timing Once() {
    return Time([&] {
      if (write(fd_, block_.data(), block_.size()) < 0 || fdatasync(fd_) != 0) Die("probe");
    });
  }

 private:
  const std::string path_;
  const std::string block_ = std::string(4096, 'x');
  int fd_ = -1;
};

// One round: `n` cycles, each a fork / delete / checkpoint on both
// databases (the order alternating from cycle to cycle) and one disk
// probe; then `n` Tags (each followed by an untimed Untag) and `n`
// single-put commits, interleaved the same way, and an untimed checkpoint
// of each database. Interleaving by operation makes both databases see
// the same disk: another job's fsyncs on this machine come and go within
// seconds. `paired` gets the large / small ratio of each cycle's forks.
void ForkRound(Db* dbs[2], int n, int round, ForkRows rows[2], Row* disk,
               std::vector<double>* paired, SyncProbe* probe) {
  std::vector<Timing> fork[2], del[2], ckpt[2], tag[2], put[2], sync;
  const cowdb::TreeAt main;  // main's latest tree
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 2; ++k) {
      const int w = (i + round + k) % 2;
      cowdb::DB* db = dbs[w]->db.get();
      fork[w].push_back(Time([&] { Check(db->Fork("f", main).status(), "fork"); }));
      del[w].push_back(Time([&] { Check(db->DeleteBranch("f").status(), "delete branch"); }));
      ckpt[w].push_back(Time([&] { Check(db->Checkpoint(), "checkpoint"); }));
    }
    sync.push_back(probe->Once());
    paired->push_back(fork[1].back().wall_us / fork[0].back().wall_us);
  }
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 2; ++k) {
      const int w = (i + round + k) % 2;
      cowdb::DB* db = dbs[w]->db.get();
      const uint64_t v = db->LatestVersion();
      tag[w].push_back(Time([&] { Check(db->Tag("t", v), "tag"); }));
      Check(db->Untag("t"), "untag");
    }
  }
  std::mt19937_64 rng(777 + round);
  std::string value(kValueSize, 0);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 2; ++k) {
      const int w = (i + round + k) % 2;
      cowdb::DB* db = dbs[w]->db.get();
      RandomBytes(rng, &value);
      const std::string key = Key(rng() % dbs[w]->keys);
      put[w].push_back(Time([&] { Check(db->Put(key, value).status(), "put"); }));
    }
  }
  for (int w = 0; w < 2; ++w) {
    Check(dbs[w]->db->Checkpoint(), "checkpoint");
    rows[w].fork.AddRound(fork[w]);
    rows[w].del.AddRound(del[w]);
    rows[w].checkpoint.AddRound(ckpt[w]);
    rows[w].tag.AddRound(tag[w]);
    rows[w].put.AddRound(put[w]);
  }
  disk->AddRound(sync);
}

void PrintForkRow(const char* what, const Row& small, const Row& large) {
  printf("  %-30s %9.1f %9.1f %9.1f | %9.1f %9.1f %9.1f | %6.2fx   [%s | %s]\n", what,
         small.wall(), Percentile(small.all_wall, 0.9), small.cpu(), large.wall(),
         Percentile(large.all_wall, 0.9), large.cpu(), large.wall() / small.wall(),
         Runs(small.round_wall).c_str(), Runs(large.round_wall).c_str());
}

void ForkPhase(Db& small, Db& large, bool sync, int rounds, const std::string& dir) {
  small.Open(Db::kDefaults, sync);
  large.Open(Db::kDefaults, sync);
  const int n = absl::GetFlag(FLAGS_forks);
  Db* dbs[2] = {&small, &large};
  ForkRows rows[2];
  Row disk;
  std::vector<double> paired;
  SyncProbe probe(dir);
  for (int r = 0; r < rounds; ++r) ForkRound(dbs, n, r, rows, &disk, &paired, &probe);
  printf("fork latency, sync=%s (%d rounds x %d cycles, the two databases interleaved; "
         "microseconds)\n",
         sync ? "true" : "false", rounds, n);
  printf("  %-30s %9s %9s %9s | %9s %9s %9s | %7s   [round medians, wall: small | large]\n", "",
         "small p50", "p90", "thr CPU", "large p50", "p90", "thr CPU", "lg/sm");
  PrintForkRow("Fork", rows[0].fork, rows[1].fork);
  PrintForkRow("DeleteBranch", rows[0].del, rows[1].del);
  PrintForkRow("Checkpoint after the delete", rows[0].checkpoint, rows[1].checkpoint);
  PrintForkRow("Tag (reference)", rows[0].tag, rows[1].tag);
  PrintForkRow("single-put commit (reference)", rows[0].put, rows[1].put);
  printf("  %-30s %9.1f %9.1f %9.1f   [%s]\n", "disk: 4 KiB append + fdatasync", disk.wall(),
         Percentile(disk.all_wall, 0.9), disk.cpu(), Runs(disk.round_wall).c_str());
  printf("  %-30s %.2fx (median over %zu cycles of large fork / small fork, same cycle)\n",
         "paired fork ratio", Median(paired), paired.size());
  fflush(stdout);
}

// ------------------------------------------------------------------- diff

// The node cache's and the store's counters around a call.
struct Visit {
  Timing t;
  uint64_t pages = 0;  // cache hits + misses: nodes loaded
  uint64_t misses = 0;  // cache misses among them
  uint64_t reads = 0;   // storage reads (any record; a miss reads its page)
  uint64_t changes = 0;
};

template <typename F>
Visit Counted(cowdb::DB* db, F&& f) {
  const cowdb::DBStats a = db->GetStats();
  Visit v;
  v.t = Time([&] { v.changes = f(); });
  const cowdb::DBStats b = db->GetStats();
  v.pages = (b.cache_hits + b.cache_misses) - (a.cache_hits + a.cache_misses);
  v.misses = b.cache_misses - a.cache_misses;
  v.reads = b.page_reads - a.page_reads;
  return v;
}

uint64_t DiffCount(cowdb::DB* db, const cowdb::TreeAt& from, const cowdb::TreeAt& to) {
  uint64_t n = 0;
  Check(db->DiffTrees(from, to, "", "", [&](const cowdb::Change& c) {
    cowdb::bench::Consume(c.key.size());
    ++n;
    return true;
  }),
        "diff");
  return n;
}

// N distinct random indices in [0, keys).
std::vector<uint64_t> DistinctKeys(uint64_t keys, uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::set<uint64_t> s;
  while (s.size() < n) s.insert(rng() % keys);
  std::vector<uint64_t> v(s.begin(), s.end());
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

cowdb::WriteBatch Puts(const std::vector<uint64_t>& idx, uint64_t seed, const std::string& branch) {
  std::mt19937_64 rng(seed);
  std::string value(kValueSize, 0);
  cowdb::WriteBatch b;
  if (!branch.empty()) b.SetBranch(branch);
  for (uint64_t i : idx) {
    RandomBytes(rng, &value);
    b.Put(Key(i), value);
  }
  return b;
}

std::vector<uint64_t> ParseChanges() {
  std::vector<uint64_t> out;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_changes), ',')) {
    out.push_back(std::stoull(std::string(s)));
  }
  return out;
}

struct VisitRows {
  std::vector<double> wall, cpu, pages, misses, reads;
  std::set<uint64_t> changes_seen;
  void Add(const Visit& v) {
    wall.push_back(v.t.wall_us);
    cpu.push_back(v.t.cpu_us);
    pages.push_back(v.pages);
    misses.push_back(v.misses);
    reads.push_back(v.reads);
    changes_seen.insert(v.changes);
  }
};

// A row: the diffs (or scans) of one kind, the first of each round (right
// after the checkpoint that wrote the new side's pages) apart from the
// repeats (warm cache).
struct DiffRow {
  VisitRows first, warm;
  void Add(int repeat, const Visit& v) { (repeat == 0 ? first : warm).Add(v); }
};

double MedianOr0(const std::vector<double>& v) { return v.empty() ? 0 : Median(v); }

void PrintDiffHeader() {
  printf("  %-30s %8s %6s | %10s %7s %7s | %10s %10s\n", "", "pages", "/tree", "first us",
         "misses", "st.rds", "warm us", "warm CPU");
}

void PrintDiffRow(const std::string& what, const DiffRow& r, uint64_t tree_pages) {
  std::vector<double> pages = r.first.pages;
  pages.insert(pages.end(), r.warm.pages.begin(), r.warm.pages.end());
  const double p = Median(pages);
  printf("  %-30s %8.0f %6.3f | %10.1f %7.0f %7.0f | %10.1f %10.1f   [pages %s; first us %s; "
         "warm us %s]\n",
         what.c_str(), p, tree_pages ? p / tree_pages : 0.0, MedianOr0(r.first.wall),
         MedianOr0(r.first.misses), MedianOr0(r.first.reads), MedianOr0(r.warm.wall),
         MedianOr0(r.warm.cpu), Runs(r.first.pages).c_str(), Runs(r.first.wall).c_str(),
         Runs(r.warm.wall).c_str());
}

void DiffPhase(Db& d, int rounds) {
  d.Open(Db::kQuiet, true);
  cowdb::DB* db = d.db.get();
  const int repeats = absl::GetFlag(FLAGS_diff_repeats);
  printf("diff, %llu keys (tree: %llu pages), %d rounds x %d diffs of each pair\n",
         static_cast<unsigned long long>(d.keys), static_cast<unsigned long long>(d.tree_pages),
         rounds, repeats);
  printf("  pages = node cache hits + misses during the call (nodes loaded); misses and storage\n"
         "  reads (DBStats page_reads: every store read, also version records) are of the first\n"
         "  diff of each round, right after the checkpoint; warm = the repeats. Microseconds.\n");
  PrintDiffHeader();
  // Scale: full scans (the first after the open is cold; it warms the
  // cache), and the diff against the empty tree.
  DiffRow scan, full;
  for (int r = 0; r < rounds + 1; ++r) {
    Visit v = Counted(db, [&] {
      std::unique_ptr<cowdb::Iterator> it = Unwrap(db->NewIterator(cowdb::ReadOptions()), "iter");
      uint64_t n = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
      Check(it->status(), "scan");
      return n;
    });
    if (v.changes != d.keys) Die(absl::StrCat("scan saw ", v.changes, " keys"));
    scan.Add(r, v);
  }
  PrintDiffRow("full scan, main (iterator)", scan, d.tree_pages);
  if (d.empty_tagged) {
    cowdb::TreeAt empty;
    empty.version = 0;
    for (int r = 0; r < rounds + 1; ++r) {
      full.Add(r, Counted(db, [&] { return DiffCount(db, empty, cowdb::TreeAt()); }));
    }
    PrintDiffRow("DiffTrees(empty, main)", full, d.tree_pages);
  } else {
    printf("  (version 0 could not be tagged: no diff against the empty tree)\n");
  }
  fflush(stdout);

  for (uint64_t n : ParseChanges()) {
    DiffRow branch, versions;
    for (int r = 0; r < rounds; ++r) {
      const uint64_t seed = n * 1000 + r;
      const std::vector<uint64_t> idx = DistinctKeys(d.keys, n, seed);
      cowdb::TreeAt main, dev;
      dev.branch = "d";
      Check(db->Fork("d", main).status(), "fork");
      Check(db->Write(Puts(idx, seed, "d")).status(), "write on branch");
      Check(db->Checkpoint(), "checkpoint");
      for (int k = 0; k < repeats; ++k) {
        branch.Add(k, Counted(db, [&] { return DiffCount(db, main, dev); }));
      }
      cowdb::TreeAt before;
      before.version = db->LatestVersion();
      Check(db->Write(Puts(idx, seed, "")).status(), "write on main");
      Check(db->Checkpoint(), "checkpoint");
      cowdb::TreeAt after;
      after.version = db->LatestVersion();
      for (int k = 0; k < repeats; ++k) {
        versions.Add(k, Counted(db, [&] { return DiffCount(db, before, after); }));
      }
      Check(db->DeleteBranch("d").status(), "delete branch");
      Check(db->Checkpoint(), "checkpoint");
    }
    for (const DiffRow* row : {&branch, &versions}) {
      for (const VisitRows* v : {&row->first, &row->warm}) {
        if (!v->changes_seen.empty() && v->changes_seen != std::set<uint64_t>{n}) {
          Die(absl::StrCat("a diff of ", n, " changes saw ",
                           absl::StrJoin(v->changes_seen, ","), " changes"));
        }
      }
    }
    PrintDiffRow(absl::StrCat("N=", n, ": main vs branch"), branch, d.tree_pages);
    PrintDiffRow(absl::StrCat("N=", n, ": main, 2 versions"), versions, d.tree_pages);
    fflush(stdout);
  }
}

// ------------------------------------------------------------------ merge

void MergePhase(Db& d, int rounds) {
  d.Open(Db::kDefaults, true);
  cowdb::DB* db = d.db.get();
  printf("merge of N non-conflicting changes into main, %llu keys, sync=true, %d rounds "
         "(ms: wall / thread CPU)\n",
         static_cast<unsigned long long>(d.keys), rounds);
  printf("  %-10s %10s %10s | %10s %10s | %7s   [merge wall ms per round]\n", "N",
         "merge ms", "thr CPU", "Write ms", "thr CPU", "ratio");
  for (uint64_t n : ParseChanges()) {
    std::vector<Timing> merge, write;
    for (int r = 0; r < rounds; ++r) {
      const uint64_t seed = 7000000 + n * 1000 + r;
      const std::vector<uint64_t> idx = DistinctKeys(d.keys, 2 * n, seed);
      const std::vector<uint64_t> mine(idx.begin(), idx.begin() + n);
      const std::vector<uint64_t> other(idx.begin() + n, idx.end());
      Check(db->Fork("m", cowdb::TreeAt()).status(), "fork");
      Check(db->Write(Puts(mine, seed, "m")).status(), "write on branch");
      Check(db->Checkpoint(), "checkpoint");
      cowdb::MergeResult result;
      merge.push_back(Time([&] {
        result = Unwrap(db->Merge("m", "main", cowdb::MergePolicy::kFail), "merge");
      }));
      if (!result.merged || result.changes != n || !result.conflicts.empty()) {
        Die(absl::StrCat("merge of ", n, " changes: merged=", result.merged,
                         " changes=", result.changes, " conflicts=", result.conflicts.size()));
      }
      const cowdb::WriteBatch b = Puts(other, seed + 1, "");
      write.push_back(Time([&] { Check(db->Write(b).status(), "write"); }));
      Check(db->DeleteBranch("m").status(), "delete branch");
      Check(db->Checkpoint(), "checkpoint");
    }
    std::vector<double> mw, mc, ww, wc;  // one merge and one write per round
    for (const Timing& t : merge) {
      mw.push_back(t.wall_us / 1000);
      mc.push_back(t.cpu_us / 1000);
    }
    for (const Timing& t : write) {
      ww.push_back(t.wall_us / 1000);
      wc.push_back(t.cpu_us / 1000);
    }
    printf("  %-10llu %10.2f %10.2f | %10.2f %10.2f | %6.2fx   [%s]\n",
           static_cast<unsigned long long>(n), Median(mw), Median(mc), Median(ww), Median(wc),
           Median(mw) / Median(ww), Runs(mw, 2).c_str());
    fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  if (rounds < 1 || absl::GetFlag(FLAGS_forks) < 1 || absl::GetFlag(FLAGS_keys) == 0 ||
      absl::GetFlag(FLAGS_small_keys) == 0 || absl::GetFlag(FLAGS_diff_repeats) < 1) {
    Die("--rounds, --forks, --keys, --small_keys and --diff_repeats must be positive");
  }
  std::vector<std::string> phases = absl::StrSplit(absl::GetFlag(FLAGS_phases), ',');
  auto want = [&](const char* p) {
    return std::find(phases.begin(), phases.end(), p) != phases.end();
  };
  const bool forks = want("fork_sync") || want("fork_nosync");
  std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    char tmpl[] = "/tmp/cowdb_branch_bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    dir = tmpl;
  } else {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  printf("cowdb branch_bench: %llu and %llu keys (16-byte keys, %zu-byte random values), "
         "%d rounds, in %s\n",
         static_cast<unsigned long long>(absl::GetFlag(FLAGS_small_keys)),
         static_cast<unsigned long long>(absl::GetFlag(FLAGS_keys)), kValueSize, rounds,
         dir.c_str());
  const double sync_us = SyncLatencyMicros(dir);
  printf("disk: 4 KiB append + fdatasync, median of 200: %.0f us\n", sync_us);

  const uint64_t batch = absl::GetFlag(FLAGS_load_batch);
  printf("preload in batches of %llu, sync=false, then one checkpoint\n",
         static_cast<unsigned long long>(batch));
  Db small{"small", dir + "/small", absl::GetFlag(FLAGS_small_keys)};
  Db large{"large", dir + "/large", absl::GetFlag(FLAGS_keys)};
  if (forks) Load(small, batch);
  Load(large, batch);

  if (want("fork_sync")) ForkPhase(small, large, true, rounds, dir);
  if (want("fork_nosync")) ForkPhase(small, large, false, rounds, dir);
  small.db.reset();
  if (want("diff")) DiffPhase(large, rounds);
  if (want("merge")) MergePhase(large, rounds);
  large.db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
