// The etcd Watch stream over cowdb watchers: one engine watcher (and one
// thread) per watch; the stream's reader thread creates and cancels them.
// Events of one version go out in one response, as etcd sends one
// response per revision.

#include "server/etcd/internal.h"

#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"

namespace cowdb::server::etcd {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(100);

class Stream;

// One watch of a stream.
class Watch {
 public:
  Watch(Stream* stream, int64_t id, const pb::WatchCreateRequest& req)
      : stream_(stream), id_(id), req_(req) {}
  ~Watch() { Cancel(); }

  // Starts delivering changes after `from`.
  void Start(uint64_t from) {
    thread_ = std::thread([this, from] { Run(from); });
  }
  void Cancel() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Every event up to this version has been sent.
  uint64_t delivered() const { return delivered_.load(); }
  int64_t id() const { return id_; }

 private:
  void Run(uint64_t from);
  bool Wanted(const WatchEvent& e) const;
  void Add(const WatchEvent& e, pb::WatchResponse* resp) const;

  Stream* const stream_;
  const int64_t id_;
  const pb::WatchCreateRequest req_;
  std::atomic<bool> cancel_{false};
  std::atomic<uint64_t> delivered_{0};
  std::thread thread_;
};

class Stream {
 public:
  Stream(const Shared& s,
         grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* rw,
         grpc::ServerContext* ctx)
      : s_(s), rw_(rw), ctx_(ctx) {}

  const Shared& shared() const { return s_; }
  bool done() const { return ctx_->IsCancelled() || broken_.load(); }

  // Sends `resp` (split into fragments if the watch asked for them).
  bool Send(const pb::WatchResponse& resp, bool fragment) {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (broken_) return false;
    bool ok = true;
    size_t limit = s_.options->max_request_bytes;
    if (!fragment || resp.ByteSizeLong() < limit || resp.events_size() < 2) {
      ok = rw_->Write(resp);
    } else {
      pb::WatchResponse cur = resp;
      cur.clear_events();
      int i = 0;
      while (ok && i < resp.events_size()) {
        pb::WatchResponse part = cur;
        part.set_fragment(true);
        while (i < resp.events_size()) {
          *part.add_events() = resp.events(i);
          if (part.events_size() > 1 && part.ByteSizeLong() >= limit) {
            part.mutable_events()->RemoveLast();
            break;
          }
          ++i;
        }
        if (i == resp.events_size()) part.set_fragment(false);
        ok = rw_->Write(part);
      }
    }
    if (!ok) broken_ = true;
    return ok;
  }

  void Serve() {
    pb::WatchRequest req;
    while (!done() && rw_->Read(&req)) {
      switch (req.request_union_case()) {
        case pb::WatchRequest::kCreateRequest:
          Create(req.create_request());
          break;
        case pb::WatchRequest::kCancelRequest:
          CancelWatch(req.cancel_request().watch_id());
          break;
        case pb::WatchRequest::kProgressRequest:
          Progress();
          break;
        default:
          break;  // as etcd: ignore what it does not know
      }
    }
    std::map<int64_t, std::unique_ptr<Watch>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(watches_);
    }
    all.clear();  // cancels and joins
  }

 private:
  void Create(pb::WatchCreateRequest creq) {
    if (creq.key().empty()) creq.set_key(std::string(1, '\0'));
    uint64_t current = s_.db->LatestVersion();
    pb::WatchResponse resp;
    s_.FillHeader(current, resp.mutable_header());
    resp.set_created(true);
    int64_t id = creq.watch_id();
    Watch* w = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (id == 0) {
        while (watches_.count(next_id_) != 0) ++next_id_;
        id = next_id_++;
      } else if (watches_.count(id) != 0) {
        resp.set_watch_id(-1);
        resp.set_canceled(true);
        resp.set_cancel_reason("mvcc: duplicate watch ID provided on the WatchStream");
        Send(resp, false);
        return;
      }
      auto watch = std::make_unique<Watch>(this, id, creq);
      w = watch.get();
      watches_[id] = std::move(watch);
    }
    resp.set_watch_id(id);
    Send(resp, false);
    int64_t start = creq.start_revision();
    w->Start(start <= 0 ? current : static_cast<uint64_t>(start) - 1);
  }

  void CancelWatch(int64_t id) {
    std::unique_ptr<Watch> w;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = watches_.find(id);
      if (it == watches_.end()) return;  // as etcd: no answer
      w = std::move(it->second);
      watches_.erase(it);
    }
    w->Cancel();
    pb::WatchResponse resp;
    s_.FillHeader(s_.db->LatestVersion(), resp.mutable_header());
    resp.set_watch_id(id);
    resp.set_canceled(true);
    Send(resp, false);
  }

  // Answers with a revision up to which every watch of the stream has
  // sent all its events.
  void Progress() {
    uint64_t rev = s_.db->LatestVersion();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, w] : watches_) rev = std::min(rev, w->delivered());
    }
    pb::WatchResponse resp;
    s_.FillHeader(rev, resp.mutable_header());
    resp.set_watch_id(-1);
    Send(resp, false);
  }

  const Shared& s_;
  grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* const rw_;
  grpc::ServerContext* const ctx_;
  std::mutex write_mu_;
  std::atomic<bool> broken_{false};
  std::mutex mu_;
  std::map<int64_t, std::unique_ptr<Watch>> watches_;
  int64_t next_id_ = 0;
};

bool Watch::Wanted(const WatchEvent& e) const {
  bool put = e.change.new_value.has_value();
  for (int f : req_.filters()) {
    if (f == pb::WatchCreateRequest::NOPUT && put) return false;
    if (f == pb::WatchCreateRequest::NODELETE && !put) return false;
  }
  return true;
}

void Watch::Add(const WatchEvent& e, pb::WatchResponse* resp) const {
  const Change& c = e.change;
  mvccpb::Event* ev = resp->add_events();
  if (c.new_value.has_value()) {
    ev->set_type(mvccpb::Event::PUT);
    FillKv(c.key, *c.new_value, c.new_meta, ev->mutable_kv());
  } else {
    ev->set_type(mvccpb::Event::DELETE);
    ev->mutable_kv()->set_key(c.key);
    ev->mutable_kv()->set_mod_revision(static_cast<int64_t>(e.version));
  }
  if (req_.prev_kv() && c.old_value.has_value()) {
    FillKv(c.key, *c.old_value, c.old_meta, ev->mutable_prev_kv());
  }
}

void Watch::Run(uint64_t from) {
  const Shared& s = stream_->shared();
  KeySpan span = KeySpan::Of(req_.key(), req_.range_end());
  std::string end = span.single ? req_.key() + std::string(1, '\0') : span.end;
  // A start in the future waits for it.
  while (!cancel_ && !stream_->done() && from > s.db->LatestVersion()) {
    absl::SleepFor(kPoll);
  }
  auto compacted = [&](uint64_t oldest) {
    pb::WatchResponse resp;
    s.FillHeader(s.db->LatestVersion(), resp.mutable_header());
    resp.set_watch_id(id_);
    // The first revision a new watch can start at.
    resp.set_compact_revision(static_cast<int64_t>(oldest) + 1);
    resp.set_canceled(true);
    stream_->Send(resp, false);
  };
  if (from < s.db->OldestVersion()) {
    compacted(s.db->OldestVersion());
    return;
  }
  absl::StatusOr<std::unique_ptr<Watcher>> watcher =
      s.db->Watch(from, span.begin, end);
  if (!watcher.ok()) {
    if (absl::IsOutOfRange(watcher.status())) compacted(s.db->OldestVersion());
    return;
  }
  delivered_ = from;
  absl::Time last_sent = absl::Now();
  std::optional<WatchEvent> held;
  while (!cancel_ && !stream_->done()) {
    absl::StatusOr<WatchEvent> ev =
        held ? absl::StatusOr<WatchEvent>(*std::move(held)) : (*watcher)->Next(kPoll);
    held.reset();
    if (absl::IsDeadlineExceeded(ev.status())) {
      delivered_ = (*watcher)->position();
      if (req_.progress_notify() &&
          absl::Now() - last_sent >= s.options->progress_interval) {
        pb::WatchResponse resp;
        s.FillHeader(delivered_, resp.mutable_header());
        resp.set_watch_id(id_);
        if (!stream_->Send(resp, false)) return;
        last_sent = absl::Now();
      }
      continue;
    }
    if (!ev.ok()) {
      Log("error", "watch failed", absl::StrCat("error=\"", ev.status().ToString(), "\""));
      return;
    }
    if (ev->net) {  // versions were released under the watch
      compacted(s.db->OldestVersion());
      return;
    }
    // The rest of this version's events.
    uint64_t version = ev->version;
    pb::WatchResponse resp;
    s.FillHeader(version, resp.mutable_header());
    resp.set_watch_id(id_);
    if (Wanted(*ev)) Add(*ev, &resp);
    while (true) {
      absl::StatusOr<WatchEvent> more = (*watcher)->Next(absl::ZeroDuration());
      if (!more.ok()) break;
      if (more->version != version || more->net) {
        held = *std::move(more);
        break;
      }
      if (Wanted(*more)) Add(*more, &resp);
    }
    if (resp.events_size() > 0) {
      if (!stream_->Send(resp, req_.fragment())) return;
      last_sent = absl::Now();
    }
    delivered_ = version;
  }
}

}  // namespace

grpc::Status ServeWatch(const Shared& s, grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* rw) {
  Stream stream(s, rw, ctx);
  stream.Serve();
  return grpc::Status::OK;
}

}  // namespace cowdb::server::etcd
