#include "tests/history/load_generator.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "tests/util/server_process.h"

namespace cowdb::history {
namespace {

using client::Client;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The client of the running server, handed to the workers. While the
// server is down (between a kill and its restart) workers wait.
class ServerSlot {
 public:
  // Publishes a connected client and lets the workers run.
  void Up(std::shared_ptr<Client> c) {
    std::lock_guard<std::mutex> lock(mu_);
    client_ = std::move(c);
    cv_.notify_all();
  }
  // Stops handing out clients (the server is about to be killed).
  void Down() {
    std::lock_guard<std::mutex> lock(mu_);
    client_.reset();
  }
  // Ends the run: Acquire returns nullptr from now on.
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    client_.reset();
    cv_.notify_all();
  }
  // The current client, waiting while the server is down; nullptr once
  // stopped.
  std::shared_ptr<Client> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stopped_ || client_ != nullptr; });
    return stopped_ ? nullptr : client_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Client> client_;
  bool stopped_ = false;
};

// Records one operation: the invocation time at construction, the
// completion time and outcome at Finish.
class Recorder {
 public:
  Recorder(int client, OpType type) {
    op_.client = client;
    op_.type = type;
    op_.invoke_ns = NowNs();
  }
  Op& op() { return op_; }
  // Completes the operation with `status` (OK or the failure).
  Op Finish(const absl::Status& status) {
    op_.complete_ns = NowNs();
    op_.outcome = OutcomeOf(status);
    if (!status.ok()) op_.error = status.ToString();
    return std::move(op_);
  }

 private:
  Op op_;
};

KeyRead FromEntry(std::string key, const client::Entry& e) {
  return KeyRead{std::move(key), true, e.value, e.mod_version};
}

KeyRead AbsentKey(std::string key) { return KeyRead{std::move(key), false, "", 0}; }

// One client thread: a random mix of operations until the run stops.
class Worker {
 public:
  Worker(int id, const LoadOptions& options, ServerSlot* slot)
      : id_(id), options_(options), slot_(slot), rng_(options.seed * 1000003 + id) {}

  void Run() {
    while (std::shared_ptr<Client> c = slot_->Acquire()) {
      const int dice = std::uniform_int_distribution<int>(0, 99)(rng_);
      if (dice < 15) {
        Record(Get(*c, RandomKey(), std::nullopt));
      } else if (dice < 25) {
        Record(Get(*c, RandomKey(), RecentVersion()));
      } else if (dice < 33) {
        Record(Scan(*c));
      } else if (dice < 53) {
        Record(Put(*c));
      } else if (dice < 61) {
        Record(Delete(*c));
      } else if (dice < 73) {
        CompareAndSwap(*c);
      } else if (dice < 95) {
        Record(ReadWriteTransaction(*c));
      } else {
        Record(ReadOnlyTransaction(*c));
      }
    }
  }

  std::vector<Op>& ops() { return ops_; }

 private:
  std::string RandomKey() {
    return absl::StrFormat("k%02d", std::uniform_int_distribution<int>(0, options_.keys - 1)(rng_));
  }
  // `n` distinct random keys.
  std::vector<std::string> RandomKeys(int n) {
    std::vector<std::string> keys;
    while (static_cast<int>(keys.size()) < n) {
      std::string k = RandomKey();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    return keys;
  }
  std::string NewValue(int i = 0) { return absl::StrCat("c", id_, ".", seq_, ".", i); }
  // A version this client saw recently (kept: every version is retained).
  std::optional<uint64_t> RecentVersion() {
    if (seen_ == 0) return std::nullopt;
    const uint64_t back = std::uniform_int_distribution<uint64_t>(0, 30)(rng_);
    return back >= seen_ ? 1 : seen_ - back;
  }

  void Record(Op op) {
    if (op.outcome == Outcome::kOk) {
      seen_ = std::max({seen_, op.read_version, op.AckedWrites() ? op.commit_version : 0});
    }
    ops_.push_back(std::move(op));
    ++seq_;
  }

  Op Get(Client& c, std::string key, std::optional<uint64_t> at) {
    Recorder rec(id_, OpType::kGet);
    rec.op().at_version = at;
    absl::StatusOr<client::Entry> e = c.Get(key, at);
    if (e.ok()) {
      rec.op().reads = {FromEntry(key, *e)};
      rec.op().read_version = e->version;
      return rec.Finish(absl::OkStatus());
    }
    if (absl::IsNotFound(e.status())) {
      // Absent. At the latest version the server does not say which.
      rec.op().reads = {AbsentKey(key)};
      rec.op().read_version = at.value_or(0);
      return rec.Finish(absl::OkStatus());
    }
    return rec.Finish(e.status());
  }

  Op Scan(Client& c) {
    Recorder rec(id_, OpType::kScan);
    client::ScanOptions so;
    so.range = client::Range{"k", "l", ""};
    uint64_t version = 0;
    absl::StatusOr<std::vector<client::KeyValue>> kvs = c.ScanAll(so, &version);
    if (!kvs.ok()) return rec.Finish(kvs.status());
    RangeRead range{"k", "l", {}};
    for (const client::KeyValue& kv : *kvs) {
      range.found.push_back(KeyRead{kv.key, true, kv.value, kv.mod_version});
    }
    rec.op().ranges = {std::move(range)};
    rec.op().read_version = version;
    return rec.Finish(absl::OkStatus());
  }

  Op Put(Client& c) {
    Recorder rec(id_, OpType::kPut);
    const std::string key = RandomKey(), value = NewValue();
    rec.op().writes = {{key, value}};
    absl::StatusOr<uint64_t> v = c.Put(key, value);
    if (v.ok()) rec.op().commit_version = *v;
    return rec.Finish(v.status());
  }

  Op Delete(Client& c) {
    Recorder rec(id_, OpType::kDelete);
    const std::string key = RandomKey();
    rec.op().writes = {{key, std::nullopt}};
    absl::StatusOr<uint64_t> v = c.Delete(key);
    if (v.ok()) rec.op().commit_version = *v;
    return rec.Finish(v.status());
  }

  // Reads a key (recorded as a Get), then swaps it and a second key if its
  // mod_version is still the one read. Both branches read the key, so the
  // history shows which branch the compare called for.
  void CompareAndSwap(Client& c) {
    const std::vector<std::string> keys = RandomKeys(2);
    Op get = Get(c, keys[0], std::nullopt);
    const bool read_ok = get.outcome == Outcome::kOk;
    const uint64_t expected = read_ok ? get.reads[0].mod_version : 0;
    Record(std::move(get));
    if (!read_ok) return;
    // Now and then compare against a stale mod_version, so that the
    // failure branch runs too.
    const bool stale = std::uniform_int_distribution<int>(0, 3)(rng_) == 0;
    Recorder rec(id_, OpType::kCas);
    Op& op = rec.op();
    op.cas_key = keys[0];
    op.cas_expected_mod = stale && expected > 0 ? expected - 1 : expected;
    op.serializable = true;
    op.writes = {{keys[0], NewValue(0)}, {keys[1], NewValue(1)}};
    client::TxnRequest req;
    client::Compare cmp;
    cmp.key = keys[0];
    cmp.target = client::Compare::Target::kModVersion;
    cmp.op = client::Compare::Op::kEqual;
    cmp.mod_version = op.cas_expected_mod;
    req.compares = {cmp};
    req.success = {client::TxnOp::Get(keys[0]), client::TxnOp::Put(keys[0], *op.writes[0].value),
                   client::TxnOp::Put(keys[1], *op.writes[1].value)};
    req.failure = {client::TxnOp::Get(keys[0])};
    absl::StatusOr<client::TxnResult> r = c.Txn(req);
    if (!r.ok()) {
      Record(rec.Finish(r.status()));
      return;
    }
    op.cas_succeeded = r->succeeded;
    op.reads = {AbsentKey(keys[0])};
    for (const client::KeyValue& kv : r->gets) {
      op.reads[0] = KeyRead{kv.key, true, kv.value, kv.mod_version};
    }
    if (r->succeeded) {
      op.commit_version = r->version;  // read just before it, serializably
    } else {
      op.read_version = r->version;
    }
    Record(rec.Finish(absl::OkStatus()));
  }

  // Reads `key` inside `t` into `op`; false (with `status` set) on an error.
  static bool TxnGet(client::Transaction& t, const std::string& key, Op& op,
                     absl::Status* status) {
    absl::StatusOr<client::Entry> e = t.Get(key);
    if (e.ok()) {
      op.reads.push_back(FromEntry(key, *e));
    } else if (absl::IsNotFound(e.status())) {
      op.reads.push_back(AbsentKey(key));
    } else {
      *status = e.status();
      return false;
    }
    return true;
  }

  // A serializable transaction: reads two keys and a range of three, then
  // writes one or two other keys (or one it read).
  Op ReadWriteTransaction(Client& c) {
    Recorder rec(id_, OpType::kTxn);
    Op& op = rec.op();
    op.serializable = true;
    std::vector<std::string> keys = RandomKeys(4);
    const int writes = std::uniform_int_distribution<int>(1, 2)(rng_);
    for (int i = 0; i < writes; ++i) op.writes.push_back({keys[2 + i], NewValue(i)});
    if (std::uniform_int_distribution<int>(0, 3)(rng_) == 0) {
      op.writes[0].key = keys[0];  // read-modify-write
    }
    absl::StatusOr<std::unique_ptr<client::Transaction>> t = c.Begin();
    // Nothing was committed unless Commit was sent: a failure before it is
    // definite.
    auto not_committed = [&](const absl::Status& s) {
      Op out = rec.Finish(s);
      out.outcome = Outcome::kFailed;
      return out;
    };
    if (!t.ok()) return not_committed(t.status());
    op.read_version = (*t)->read_version();
    absl::Status status;
    for (int i = 0; i < 2; ++i) {
      if (!TxnGet(**t, keys[i], op, &status)) return not_committed(status);
    }
    const int lo = std::uniform_int_distribution<int>(0, options_.keys - 3)(rng_);
    RangeRead range{absl::StrFormat("k%02d", lo), absl::StrFormat("k%02d", lo + 3), {}};
    client::ScanOptions so;
    so.range = client::Range{range.start, range.end, ""};
    absl::StatusOr<uint64_t> scanned = (*t)->Scan(so, [&](const client::KeyValue& kv) {
      range.found.push_back(KeyRead{kv.key, true, kv.value, kv.mod_version});
      return true;
    });
    if (!scanned.ok()) return not_committed(scanned.status());
    op.ranges = {std::move(range)};
    for (const KeyWrite& w : op.writes) {
      if (absl::Status s = (*t)->Put(w.key, *w.value); !s.ok()) return not_committed(s);
    }
    absl::StatusOr<uint64_t> v = (*t)->Commit();
    if (v.ok()) op.commit_version = *v;
    return rec.Finish(v.status());
  }

  // A read-only transaction at a recent version: three keys.
  Op ReadOnlyTransaction(Client& c) {
    Recorder rec(id_, OpType::kTxn);
    Op& op = rec.op();
    client::TransactionOptions to;
    to.read_only = true;
    to.read_version = RecentVersion();
    op.at_version = to.read_version;
    absl::StatusOr<std::unique_ptr<client::Transaction>> t = c.Begin(to);
    if (!t.ok()) return rec.Finish(t.status());
    op.read_version = (*t)->read_version();
    absl::Status status;
    for (const std::string& key : RandomKeys(3)) {
      if (!TxnGet(**t, key, op, &status)) return rec.Finish(status);
    }
    return rec.Finish((*t)->Commit().status());
  }

  const int id_;
  const LoadOptions& options_;
  ServerSlot* const slot_;
  std::mt19937_64 rng_;
  uint64_t seq_ = 0;
  uint64_t seen_ = 0;  // the highest version this client observed
  std::vector<Op> ops_;
};

// The server under test and a client connected to it.
class Server {
 public:
  explicit Server(const LoadOptions& options) : options_(options) {}

  absl::StatusOr<std::shared_ptr<Client>> Start() {
    std::vector<std::string> flags = {"--retain_versions=0"};
    flags.insert(flags.end(), options_.server_flags.begin(), options_.server_flags.end());
    if (!process_.Start(options_.data_dir, flags)) {
      return absl::InternalError(absl::StrCat("cowdb_server did not start (status ",
                                              process_.exit_status(), ")"));
    }
    client::ConnectOptions co;
    co.target = process_.addr();
    co.timeout = options_.call_timeout;
    absl::StatusOr<std::unique_ptr<Client>> c = client::Connect(co);
    if (!c.ok()) return c.status();
    return std::shared_ptr<Client>(*std::move(c));
  }
  void Kill() { process_.Kill(); }
  bool Stop() { return process_.Stop(); }

 private:
  const LoadOptions& options_;
  testing::ServerProcess process_;
};

// Reads back every acknowledged write at its version, then scans the
// latest version; appends these reads to `history` as client -1.
void Verify(Client& c, History& history) {
  std::vector<std::pair<std::string, uint64_t>> targets;
  for (const Op& op : history) {
    if (!op.AckedWrites()) continue;
    for (const KeyWrite& w : op.writes) targets.emplace_back(w.key, op.commit_version);
  }
  auto record = [&](Op op) {
    op.client = -1;
    history.push_back(std::move(op));
  };
  for (const auto& [key, version] : targets) {
    Recorder rec(-1, OpType::kGet);
    rec.op().at_version = version;
    absl::StatusOr<client::Entry> e = c.Get(key, version);
    rec.op().read_version = version;
    if (e.ok()) {
      rec.op().reads = {FromEntry(key, *e)};
      record(rec.Finish(absl::OkStatus()));
    } else if (absl::IsNotFound(e.status())) {
      rec.op().reads = {AbsentKey(key)};
      record(rec.Finish(absl::OkStatus()));
    } else {
      record(rec.Finish(e.status()));
    }
  }
  Recorder rec(-1, OpType::kScan);
  uint64_t version = 0;
  client::ScanOptions so;
  so.range = client::Range{"", "", ""};
  absl::StatusOr<std::vector<client::KeyValue>> kvs = c.ScanAll(so, &version);
  if (kvs.ok()) {
    RangeRead range{"", "", {}};
    for (const client::KeyValue& kv : *kvs) {
      range.found.push_back(KeyRead{kv.key, true, kv.value, kv.mod_version});
    }
    rec.op().ranges = {std::move(range)};
    rec.op().read_version = version;
  }
  record(rec.Finish(kvs.status()));
}

}  // namespace

Outcome OutcomeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Outcome::kOk;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kAlreadyExists:
      return Outcome::kFailed;
    default:
      return Outcome::kUnknown;
  }
}

absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options) {
  LoadReport report;
  Server server(options);
  ServerSlot slot;
  absl::StatusOr<std::shared_ptr<Client>> c = server.Start();
  if (!c.ok()) return c.status();
  slot.Up(*c);

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < options.clients; ++i) {
    workers.push_back(std::make_unique<Worker>(i, options, &slot));
    threads.emplace_back([w = workers.back().get()] { w->Run(); });
  }
  // Kills evenly spaced over the run, each followed by a restart.
  auto kill_and_restart = [&]() -> absl::Status {
    slot.Down();
    server.Kill();
    ++report.kills;
    absl::StatusOr<std::shared_ptr<Client>> next = server.Start();
    if (!next.ok()) return next.status();
    slot.Up(*next);
    return absl::OkStatus();
  };
  const absl::Duration step = options.duration / (options.kills + 1);
  absl::Status status;
  for (int k = 0; k < options.kills && status.ok(); ++k) {
    absl::SleepFor(step);
    status = kill_and_restart();
  }
  if (status.ok()) absl::SleepFor(step);
  slot.Stop();
  for (std::thread& t : threads) t.join();
  if (!status.ok()) return status;

  for (auto& w : workers) {
    for (Op& op : w->ops()) report.history.push_back(std::move(op));
  }
  // The final kill: everything acknowledged must survive it too.
  server.Kill();
  ++report.kills;
  c = server.Start();
  if (!c.ok()) return c.status();
  const size_t before = report.history.size();
  Verify(**c, report.history);
  report.verifier_ops = report.history.size() - before;
  for (size_t i = 0; i < report.history.size(); ++i) report.history[i].id = i + 1;
  c->reset();
  if (!server.Stop()) return absl::InternalError("cowdb_server did not stop cleanly");
  return report;
}

}  // namespace cowdb::history
