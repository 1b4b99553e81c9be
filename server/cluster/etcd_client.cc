#include "server/cluster/etcd_client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/util/status_macros.h"
#include "etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::cluster {
namespace {

namespace pb = ::etcdserverpb;

// The pause before the second round through the endpoints, so that a
// member that is restarting or electing a leader gets a moment.
constexpr absl::Duration kRoundPause = absl::Milliseconds(200);
// How soon a failed lease renewal is tried again (on the next endpoint).
constexpr absl::Duration kRenewRetry = absl::Milliseconds(200);
// A broken watch waits this long before its next stream, doubling per
// failure in a row up to kWatchRetryMax.
constexpr absl::Duration kWatchRetry = absl::Milliseconds(100);
constexpr absl::Duration kWatchRetryMax = absl::Seconds(1);

// A deadline (unless infinite) and etcd's require-leader flag: a member
// without a leader answers UNAVAILABLE ("etcdserver: no leader") rather
// than serving a read or holding a stream open while cut off.
void PrepareContext(grpc::ClientContext* ctx, absl::Time deadline) {
  if (deadline != absl::InfiniteFuture()) {
    ctx->set_deadline(absl::ToChronoTime(deadline));
  }
  ctx->AddMetadata("hasleader", "true");
}

bool Retriable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& endpoint,
                      const std::string& what) {
  return absl::Status(
      static_cast<absl::StatusCode>(s.error_code()),
      absl::StrCat("etcd at ", endpoint, ": ", what, ": ", s.error_message()));
}

EtcdClient::KeyValue FromProto(const mvccpb::KeyValue& kv) {
  EtcdClient::KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

std::string Quote(std::string_view key) {
  return absl::StrCat("\"", absl::CHexEscape(std::string(key)), "\"");
}

}  // namespace

struct EtcdClient::Endpoint {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
};

template <typename Response>
struct EtcdClient::UnaryCall {
  std::string what;  // for errors: "Txn", "Range \"key\""
  std::function<grpc::Status(Endpoint&, grpc::ClientContext*, Response*)>
      invoke;
};

// ---------------------------------------------------------------------------
// Compare and Op

EtcdClient::Compare EtcdClient::Compare::ModRevisionIs(std::string key,
                                                       int64_t revision) {
  return Compare{std::move(key), Target::kModRevision, revision, ""};
}
EtcdClient::Compare EtcdClient::Compare::CreateRevisionIs(std::string key,
                                                          int64_t revision) {
  return Compare{std::move(key), Target::kCreateRevision, revision, ""};
}
EtcdClient::Compare EtcdClient::Compare::LeaseIs(std::string key,
                                                 int64_t lease) {
  return Compare{std::move(key), Target::kLease, lease, ""};
}
EtcdClient::Compare EtcdClient::Compare::ValueIs(std::string key,
                                                 std::string value) {
  return Compare{std::move(key), Target::kValue, 0, std::move(value)};
}

EtcdClient::Op EtcdClient::Op::Put(std::string key, std::string value,
                                   int64_t lease) {
  return Op{Type::kPut, std::move(key), std::move(value), lease};
}
EtcdClient::Op EtcdClient::Op::Delete(std::string key) {
  return Op{Type::kDelete, std::move(key), "", 0};
}

// ---------------------------------------------------------------------------
// Connecting and calling

EtcdClient::EtcdClient(std::vector<std::unique_ptr<Endpoint>> endpoints,
                       absl::Duration timeout)
    : endpoints_(std::move(endpoints)),
      addresses_([this] {
        std::vector<std::string> a;
        for (const auto& e : endpoints_) a.push_back(e->address);
        return a;
      }()),
      timeout_(timeout) {}

EtcdClient::~EtcdClient() = default;

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(
    std::vector<std::string> endpoints, absl::Duration timeout) {
  if (endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints given");
  }
  if (timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd: the call timeout must be > 0");
  }
  std::vector<std::unique_ptr<Endpoint>> eps;
  for (std::string& address : endpoints) {
    grpc::ChannelArguments args;
    // Pings find a dead peer under a quiet watch stream. etcd refuses
    // pings more often than every 5 s (--grpc-keepalive-min-time).
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // A restarted member is usable again within a second (gRPC's default
    // backoff grows to two minutes). Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS:
    // it is also the connection attempt's timeout (the call's deadline
    // bounds the wait for a connection anyway).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto e = std::make_unique<Endpoint>();
    e->address = std::move(address);
    e->channel = grpc::CreateCustomChannel(
        e->address, grpc::InsecureChannelCredentials(), args);
    e->kv = pb::KV::NewStub(e->channel);
    e->lease = pb::Lease::NewStub(e->channel);
    e->watch = pb::Watch::NewStub(e->channel);
    e->maintenance = pb::Maintenance::NewStub(e->channel);
    eps.push_back(std::move(e));
  }
  std::unique_ptr<EtcdClient> client(new EtcdClient(std::move(eps), timeout));

  std::vector<std::string> errors;
  for (size_t i = 0; i < client->endpoints_.size(); ++i) {
    Endpoint& e = *client->endpoints_[i];
    grpc::ClientContext ctx;
    PrepareContext(&ctx, absl::Now() + timeout);
    pb::StatusResponse resp;
    grpc::Status s = e.maintenance->Status(&ctx, pb::StatusRequest(), &resp);
    if (s.ok()) {
      client->current_.store(i);
      return client;
    }
    errors.push_back(absl::StrCat(e.address, ": ", s.error_message()));
  }
  return absl::UnavailableError(absl::StrCat(
      "etcd: no endpoint answered within ", absl::FormatDuration(timeout), ": ",
      absl::StrJoin(errors, "; ")));
}

const std::vector<std::string>& EtcdClient::endpoints() const {
  return addresses_;
}

std::string EtcdClient::current_endpoint() const {
  return addresses_[current()];
}

void EtcdClient::Failover(size_t failed) {
  size_t expected = failed;
  current_.compare_exchange_strong(expected, (failed + 1) % endpoints_.size());
}

template <typename Response>
absl::StatusOr<Response> EtcdClient::Call(const UnaryCall<Response>& call) {
  const size_t n = endpoints_.size();
  const absl::Time give_up = absl::Now() + timeout_;
  std::vector<std::string> errors;
  absl::StatusCode last = absl::StatusCode::kUnavailable;
  for (size_t attempt = 0;; ++attempt) {
    if (attempt >= 2 * n && absl::Now() >= give_up) break;
    if (attempt > 0 && attempt % n == 0) absl::SleepFor(kRoundPause);
    const size_t i = current();
    Endpoint& e = *endpoints_[i];
    grpc::ClientContext ctx;
    PrepareContext(&ctx, absl::Now() + timeout_);
    Response resp;
    grpc::Status s = call.invoke(e, &ctx, &resp);
    if (s.ok()) return resp;
    if (!Retriable(s.error_code())) return FromGrpc(s, e.address, call.what);
    last = static_cast<absl::StatusCode>(s.error_code());
    if (errors.size() < n) {
      errors.push_back(absl::StrCat(e.address, ": ", s.error_message()));
    }
    Failover(i);
  }
  return absl::Status(
      last, absl::StrCat("etcd: ", call.what, " failed on every endpoint: ",
                         absl::StrJoin(errors, "; ")));
}

// ---------------------------------------------------------------------------
// KV

absl::StatusOr<EtcdClient::GetResult> EtcdClient::Get(std::string_view key) {
  pb::RangeRequest req;
  req.set_key(std::string(key));
  ASSIGN_OR_RETURN(
      pb::RangeResponse resp,
      Call(UnaryCall<pb::RangeResponse>{
          absl::StrCat("Range ", Quote(key)),
          [&req](Endpoint& e, grpc::ClientContext* ctx, pb::RangeResponse* r) {
            return e.kv->Range(ctx, req, r);
          }}));
  GetResult out;
  out.revision = resp.header().revision();
  if (resp.kvs_size() > 0) out.kv = FromProto(resp.kvs(0));
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(std::string_view key,
                                        std::string_view value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  ASSIGN_OR_RETURN(
      pb::PutResponse resp,
      Call(UnaryCall<pb::PutResponse>{
          absl::StrCat("Put ", Quote(key)),
          [&req](Endpoint& e, grpc::ClientContext* ctx, pb::PutResponse* r) {
            return e.kv->Put(ctx, req, r);
          }}));
  return resp.header().revision();
}

absl::StatusOr<bool> EtcdClient::PutIf(std::string_view key,
                                       std::string_view value,
                                       int64_t expected_mod_revision,
                                       int64_t lease) {
  ASSIGN_OR_RETURN(
      TxnResult r,
      Txn({Compare::ModRevisionIs(std::string(key), expected_mod_revision)},
          {Op::Put(std::string(key), std::string(value), lease)}));
  return r.succeeded;
}

absl::StatusOr<EtcdClient::TxnResult> EtcdClient::Txn(
    const std::vector<Compare>& compares, const std::vector<Op>& ops) {
  pb::TxnRequest req;
  for (const Compare& c : compares) {
    pb::Compare* pc = req.add_compare();
    pc->set_key(c.key);
    pc->set_result(pb::Compare::EQUAL);
    switch (c.target) {
      case Compare::Target::kCreateRevision:
        pc->set_target(pb::Compare::CREATE);
        pc->set_create_revision(c.number);
        break;
      case Compare::Target::kModRevision:
        pc->set_target(pb::Compare::MOD);
        pc->set_mod_revision(c.number);
        break;
      case Compare::Target::kVersion:
        pc->set_target(pb::Compare::VERSION);
        pc->set_version(c.number);
        break;
      case Compare::Target::kLease:
        pc->set_target(pb::Compare::LEASE);
        pc->set_lease(c.number);
        break;
      case Compare::Target::kValue:
        pc->set_target(pb::Compare::VALUE);
        pc->set_value(c.value);
        break;
    }
  }
  for (const Op& op : ops) {
    pb::RequestOp* ro = req.add_success();
    if (op.type == Op::Type::kPut) {
      pb::PutRequest* put = ro->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
    } else {
      ro->mutable_request_delete_range()->set_key(op.key);
    }
  }
  ASSIGN_OR_RETURN(pb::TxnResponse resp,
                   Call(UnaryCall<pb::TxnResponse>{
                       "Txn", [&req](Endpoint& e, grpc::ClientContext* ctx,
                                     pb::TxnResponse* r) {
                         return e.kv->Txn(ctx, req, r);
                       }}));
  return TxnResult{resp.succeeded(), resp.header().revision()};
}

// ---------------------------------------------------------------------------
// Leases

absl::StatusOr<EtcdClient::Lease> EtcdClient::LeaseGrant(int64_t ttl_seconds) {
  if (ttl_seconds < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd: a lease TTL must be >= 1 s, not ", ttl_seconds));
  }
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  // Before the first attempt: the earliest time etcd can start counting.
  const absl::Time sent = absl::Now();
  ASSIGN_OR_RETURN(
      pb::LeaseGrantResponse resp,
      Call(UnaryCall<pb::LeaseGrantResponse>{
          "LeaseGrant", [&req](Endpoint& e, grpc::ClientContext* ctx,
                               pb::LeaseGrantResponse* r) {
            return e.lease->LeaseGrant(ctx, req, r);
          }}));
  if (!resp.error().empty() || resp.id() == 0 || resp.ttl() <= 0) {
    return absl::InternalError(
        absl::StrCat("etcd: LeaseGrant: no lease granted (id ", resp.id(),
                     ", TTL ", resp.ttl(), "): ", resp.error()));
  }
  return Lease{resp.id(), resp.ttl(), sent + absl::Seconds(resp.ttl())};
}

absl::Status EtcdClient::LeaseRevoke(int64_t id) {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  absl::StatusOr<pb::LeaseRevokeResponse> resp =
      Call(UnaryCall<pb::LeaseRevokeResponse>{
          absl::StrCat("LeaseRevoke ", id),
          [&req](Endpoint& e, grpc::ClientContext* ctx,
                 pb::LeaseRevokeResponse* r) {
            return e.lease->LeaseRevoke(ctx, req, r);
          }});
  // "etcdserver: requested lease not found": gone already (or revoked by
  // an earlier attempt of this call).
  if (resp.status().code() == absl::StatusCode::kNotFound) {
    return absl::OkStatus();
  }
  return resp.status();
}

struct EtcdClient::LeaseKeeper::State {
  EtcdClient* client = nullptr;
  Lease lease;
  std::function<void()> on_lost;
  std::atomic<bool> lost{false};
  std::atomic<bool> paused{false};

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;                // guarded by mu
  grpc::ClientContext* call = nullptr;  // the renewal in flight; guarded by mu
  std::thread thread;

  void Run();
};

EtcdClient::LeaseKeeper::LeaseKeeper(std::shared_ptr<State> state)
    : state_(std::move(state)) {}

EtcdClient::LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    if (state_->call != nullptr) state_->call->TryCancel();
  }
  state_->cv.notify_all();
  if (std::this_thread::get_id() == state_->thread.get_id()) {
    // From on_lost: the thread returns right after it, and owns `state_`
    // too.
    state_->thread.detach();
  } else {
    state_->thread.join();
  }
}

int64_t EtcdClient::LeaseKeeper::lease_id() const { return state_->lease.id; }
bool EtcdClient::LeaseKeeper::lost() const { return state_->lost.load(); }
void EtcdClient::LeaseKeeper::PauseForTesting(bool paused) {
  state_->paused.store(paused);
}

std::unique_ptr<EtcdClient::LeaseKeeper> EtcdClient::KeepAlive(
    Lease lease, std::function<void()> on_lost) {
  auto state = std::make_shared<LeaseKeeper::State>();
  state->client = this;
  state->lease = lease;
  state->on_lost = std::move(on_lost);
  // The thread's own reference keeps the state alive if the keeper is
  // destroyed from on_lost.
  state->thread = std::thread([state] { state->Run(); });
  return std::unique_ptr<LeaseKeeper>(new LeaseKeeper(std::move(state)));
}

// Each renewal is its own short LeaseKeepAlive stream (one request, one
// response) with its own deadline, so that a renewal never waits on a
// stream to a member that went silent, and each may go to any endpoint.
void EtcdClient::LeaseKeeper::State::Run() {
  // On the monotonic clock: a step of the wall clock must neither end a
  // live lease early nor keep a lapsed one.
  using Clock = std::chrono::steady_clock;
  const auto seconds = [](int64_t n) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(n));
  };
  const Clock::duration ttl = seconds(lease.ttl_seconds);
  Clock::time_point expires_by =
      Clock::now() + absl::ToChronoNanoseconds(lease.expires_by - absl::Now());
  Clock::time_point next = expires_by - ttl + ttl / 3;
  const Clock::duration timeout = absl::ToChronoNanoseconds(client->timeout_);
  const Clock::duration retry = absl::ToChronoNanoseconds(kRenewRetry);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_until(lock, next, [this] { return stopping; });
      if (stopping) return;
    }
    const Clock::time_point now = Clock::now();
    if (now >= expires_by) break;  // no renewal in time
    if (paused.load()) {
      next = std::min(now + ttl / 3, expires_by);
      continue;
    }
    const size_t i = client->current();
    Endpoint& e = *client->endpoints_[i];
    grpc::ClientContext ctx;
    PrepareContext(&ctx, absl::Now() + absl::FromChrono(std::min(
                                           timeout, expires_by - now)));
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
      call = &ctx;
    }
    auto stream = e.lease->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(lease.id);
    pb::LeaseKeepAliveResponse resp;
    const bool answered =
        stream->Write(req) && stream->Read(&resp) && resp.id() == lease.id;
    stream->WritesDone();
    // The outcome is `answered`; Finish only ends the call.
    grpc::Status finished = stream->Finish();
    (void)finished;
    {
      std::lock_guard<std::mutex> lock(mu);
      call = nullptr;
      if (stopping) return;
    }
    if (answered) {
      if (resp.ttl() <= 0) break;  // expired or revoked
      // From `now`, before the request was sent: etcd's expiry is later.
      expires_by = now + seconds(resp.ttl());
      next = now + seconds(resp.ttl()) / 3;
    } else {
      client->Failover(i);
      next = std::min(Clock::now() + retry, expires_by);
    }
  }
  lost.store(true);
  if (on_lost) on_lost();
}

// ---------------------------------------------------------------------------
// Watches

struct EtcdClient::WatchHandle::State {
  EtcdClient* client = nullptr;
  std::string key;
  WatchCallback callback;
  int64_t next_revision = 0;  // the watch thread's own

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;                  // guarded by mu
  grpc::ClientContext* stream = nullptr;  // guarded by mu
  std::string endpoint;                   // guarded by mu
  bool created = false;                   // once; guarded by mu
  bool ended = false;                     // guarded by mu
  absl::Status last_error;                // guarded by mu
  std::thread thread;

  void Run();
};

EtcdClient::WatchHandle::WatchHandle(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

EtcdClient::WatchHandle::~WatchHandle() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopping = true;
    if (state_->stream != nullptr) state_->stream->TryCancel();
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

std::string EtcdClient::WatchHandle::endpoint() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->endpoint;
}

void EtcdClient::WatchHandle::State::Run() {
  int failures = 0;
  while (true) {
    const size_t i = client->current();
    Endpoint& e = *client->endpoints_[i];
    grpc::ClientContext ctx;
    PrepareContext(&ctx, absl::InfiniteFuture());
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
      stream = &ctx;
    }
    auto rw = e.watch->Watch(&ctx);
    pb::WatchRequest req;
    pb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(key);
    create->set_start_revision(next_revision);
    absl::Status terminal;  // set when the watch ends for good
    bool ok = rw->Write(req);
    pb::WatchResponse resp;
    while (ok && rw->Read(&resp)) {
      if (resp.canceled()) {
        // etcd cancels a watch for good reasons only: its revision was
        // compacted, or it was refused (e.g. permission denied).
        if (resp.compact_revision() > 0) {
          terminal = absl::OutOfRangeError(absl::StrCat(
              "etcd at ", e.address, ": Watch ", Quote(key), ": revision ",
              next_revision, " was compacted (the oldest kept is ",
              resp.compact_revision(), ")"));
        } else {
          terminal = absl::FailedPreconditionError(
              absl::StrCat("etcd at ", e.address, ": Watch ", Quote(key),
                           ": canceled: ", resp.cancel_reason()));
        }
        break;
      }
      if (resp.created()) {
        if (next_revision == 0) next_revision = resp.header().revision() + 1;
        failures = 0;
        std::lock_guard<std::mutex> lock(mu);
        created = true;
        endpoint = e.address;
        cv.notify_all();
      }
      for (const mvccpb::Event& ev : resp.events()) {
        WatchEvent out;
        out.type = ev.type() == mvccpb::Event::DELETE
                       ? WatchEvent::Type::kDelete
                       : WatchEvent::Type::kPut;
        out.kv = FromProto(ev.kv());
        next_revision = ev.kv().mod_revision() + 1;
        callback(std::move(out));
      }
    }
    ctx.TryCancel();  // ends the stream if we left it open
    grpc::Status s = rw->Finish();
    bool report = false;
    {
      std::unique_lock<std::mutex> lock(mu);
      stream = nullptr;
      endpoint.clear();
      if (stopping) return;
      if (!terminal.ok()) {
        ended = true;
        last_error = terminal;
        report = created;  // before creation, Watch() returns the error
        cv.notify_all();
      } else {
        last_error = FromGrpc(s, e.address, absl::StrCat("Watch ", Quote(key)));
      }
    }
    if (!terminal.ok()) {
      if (report) callback(terminal);
      return;
    }
    client->Failover(i);
    const absl::Duration pause =
        std::min(kWatchRetry * (1 << std::min(failures, 4)), kWatchRetryMax);
    ++failures;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, absl::ToChronoNanoseconds(pause),
                [this] { return stopping; });
  }
}

absl::StatusOr<std::unique_ptr<EtcdClient::WatchHandle>> EtcdClient::Watch(
    std::string key, int64_t start_revision, WatchCallback callback) {
  if (key.empty()) return absl::InvalidArgumentError("etcd: Watch: empty key");
  if (start_revision < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd: Watch: negative start revision ", start_revision));
  }
  auto state = std::make_unique<WatchHandle::State>();
  state->client = this;
  state->key = std::move(key);
  state->callback = std::move(callback);
  state->next_revision = start_revision;
  WatchHandle::State* st = state.get();
  std::unique_ptr<WatchHandle> handle(new WatchHandle(std::move(state)));
  st->thread = std::thread([st] { st->Run(); });

  const absl::Duration wait =
      timeout_ * static_cast<int64_t>(2 * endpoints_.size());
  absl::Status error;
  {
    std::unique_lock<std::mutex> lock(st->mu);
    st->cv.wait_until(lock, absl::ToChronoTime(absl::Now() + wait),
                      [st] { return st->created || st->ended; });
    if (st->created) return handle;
    error = st->ended
                ? st->last_error
                : absl::UnavailableError(absl::StrCat(
                      "etcd: Watch ", Quote(st->key), ": not created within ",
                      absl::FormatDuration(wait), "; last error: ",
                      st->last_error.ok() ? "none (no answer)"
                                          : st->last_error.ToString()));
  }
  return error;  // `handle` stops the thread
}

}  // namespace cowdb::cluster
