// The etcd Watch stream over cowdb watchers: one engine watcher (and one
// thread) per watch; the stream's reader thread creates and cancels them.
// Events of one version go out in one response, as etcd sends one
// response per revision.

#include "server/etcd/auth_policy.h"
#include "server/etcd/internal.h"

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"

namespace cowdb::server::etcd {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(100);
// Each watch has a thread; a stream may not open more than this many.
constexpr size_t kMaxWatchesPerStream = 1000;

class Stream;

// One watch of a stream.
class Watch {
 public:
  Watch(Stream* stream, int64_t id, const pb::WatchCreateRequest& req)
      : stream_(stream), id_(id), req_(req) {}
  ~Watch() { Cancel(); }

  // Starts delivering changes after `from`. False if no thread could be
  // started.
  bool Start(uint64_t from) {
    try {
      thread_ = std::thread([this, from] {
        Run(from);
        finished_ = true;
      });
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }
  void Cancel() {
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Every event up to this version has been sent; 0 until it started.
  uint64_t delivered() const { return delivered_.load(); }
  // The server ended it (compaction, an error, a broken stream).
  bool finished() const { return finished_.load(); }
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
  std::atomic<bool> finished_{false};
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
    auto refuse = [&](const std::string& reason) {
      resp.set_watch_id(-1);
      resp.set_canceled(true);
      resp.set_cancel_reason(reason);
      Send(resp, false);
    };
    // The caller must be allowed to read the range (auth_policy.h); refused,
    // the watch is cancelled with etcd's error, as etcd prints it, as the
    // reason.
    if (grpc::Status a = AdmitEtcd(*s_.auth, ctx_, NeedOf(creq)); !a.ok()) {
      resp.set_canceled(true);
      resp.set_watch_id(creq.watch_id());
      resp.set_cancel_reason(AsGoError(a));
      Send(resp, false);
      return;
    }
    const std::string& end = creq.range_end();
    if (!end.empty() && end != std::string(1, '\0') && creq.key() >= end) {
      return refuse("mvcc: watcher range is empty");
    }
    int64_t id = creq.watch_id();
    Watch* w = nullptr;
    std::vector<std::unique_ptr<Watch>> ended;  // joined outside the lock
    bool full = false, duplicate = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Watches the server ended free their ids and places.
      for (auto it = watches_.begin(); it != watches_.end();) {
        if (it->second->finished()) {
          ended.push_back(std::move(it->second));
          it = watches_.erase(it);
        } else {
          ++it;
        }
      }
      if (watches_.size() >= kMaxWatchesPerStream) {
        full = true;
      } else if (id == 0) {
        while (watches_.count(next_id_) != 0) ++next_id_;
        id = next_id_++;
      } else if (watches_.count(id) != 0) {
        duplicate = true;
      }
      if (!full && !duplicate) {
        auto watch = std::make_unique<Watch>(this, id, creq);
        w = watch.get();
        watches_[id] = std::move(watch);
      }
    }
    ended.clear();
    if (duplicate) return refuse("mvcc: duplicate watch ID provided on the WatchStream");
    if (full) {
      return refuse(absl::StrCat("cowdb: too many watches on one stream (at most ",
                                 kMaxWatchesPerStream, ")"));
    }
    resp.set_watch_id(id);
    Send(resp, false);
    int64_t start = creq.start_revision();
    if (!w->Start(start <= 0 ? current : static_cast<uint64_t>(start) - 1)) {
      CancelWatch(id, "cowdb: cannot start a watch (out of threads)");
    }
  }

  // Cancels a watch (the client asked, or with `reason` the server could
  // not run it).
  void CancelWatch(int64_t id, const std::string& reason = "") {
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
    resp.set_cancel_reason(reason);
    Send(resp, false);
  }

  // Answers with a revision up to which every watch of the stream has
  // sent all its events.
  void Progress() {
    uint64_t rev = s_.db->LatestVersion();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, w] : watches_) {
        if (w->finished() || w->delivered() == 0) continue;  // ended, or not started
        rev = std::min(rev, w->delivered());
      }
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
  auto compacted = [&] {
    pb::WatchResponse resp;
    s.FillHeader(s.db->LatestVersion(), resp.mutable_header());
    resp.set_watch_id(id_);
    resp.set_compact_revision(static_cast<int64_t>(s.CompactRevision()));
    resp.set_canceled(true);
    stream_->Send(resp, false);
  };
  // Changes after `from` start at revision from + 1.
  if (from + 1 < s.CompactRevision()) {
    compacted();
    return;
  }
  absl::StatusOr<std::unique_ptr<Watcher>> watcher = s.hub->Subscribe(from, span.begin, end);
  if (*watcher == nullptr) watcher = s.db->Watch(from, span.begin, end);
  auto fail = [&](const absl::Status& st) {
    Log("error", "watch failed", absl::StrCat("error=\"", st.ToString(), "\""));
    pb::WatchResponse resp;
    s.FillHeader(s.db->LatestVersion(), resp.mutable_header());
    resp.set_watch_id(id_);
    resp.set_canceled(true);
    resp.set_cancel_reason(absl::StrCat("cowdb: ", st.message()));
    stream_->Send(resp, false);
  };
  if (!watcher.ok()) {
    if (absl::IsOutOfRange(watcher.status())) {
      compacted();
    } else {
      fail(watcher.status());
    }
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
      fail(ev.status());
      return;
    }
    if (ev->net) {  // versions were released under the watch
      compacted();
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

// ------------------------------------------------------------------ the hub

class WatchHub::Sub final : public Watcher {
 public:
  Sub(WatchHub* hub, uint64_t from, std::string begin, std::string end)
      : hub_(hub), begin_(std::move(begin)), end_(std::move(end)), seen_(from) {}
  ~Sub() override { hub_->Remove(this); }

  absl::StatusOr<WatchEvent> Next(absl::Duration timeout) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (queue_.empty() && !overflowed_) {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                   [&] { return !queue_.empty() || overflowed_; });
    }
    if (!queue_.empty()) {
      WatchEvent e = std::move(queue_.front());
      queue_.pop_front();
      return e;
    }
    if (!overflowed_) return absl::DeadlineExceededError("no change");
    // Fell behind: read the engine from the last version queued whole.
    if (own_ == nullptr) {
      lock.unlock();
      absl::StatusOr<std::unique_ptr<Watcher>> w = hub_->db_->Watch(resume_, begin_, end_);
      if (!w.ok()) return w.status();
      lock.lock();
      own_ = *std::move(w);
    }
    Watcher* own = own_.get();
    lock.unlock();
    return own->Next(timeout);
  }

  uint64_t position() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return own_ != nullptr ? own_->position() : seen_;
  }

  // From the hub, under its lock: the changes of `version`, in key order.
  void Push(uint64_t version, const std::vector<WatchEvent>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    if (overflowed_ || version <= seen_) return;
    size_t added = 0;
    for (const WatchEvent& e : batch) {
      const std::string& k = e.change.key;
      if (k < begin_ || (!end_.empty() && k >= end_)) continue;
      if (queue_.size() + added >= hub_->max_queued_) {
        // Drop this version's events again: the fallback reads it whole.
        queue_.erase(queue_.end() - static_cast<std::ptrdiff_t>(added), queue_.end());
        overflowed_ = true;
        resume_ = seen_;
        cv_.notify_all();
        return;
      }
      queue_.push_back(e);
      ++added;
    }
    seen_ = version;
    if (added > 0) cv_.notify_all();
  }
  // From the hub: it stopped; read the engine from here on.
  void Overflow() {
    std::lock_guard<std::mutex> lock(mu_);
    if (overflowed_) return;
    overflowed_ = true;
    resume_ = seen_;
    cv_.notify_all();
  }
  // From the hub: nothing changed up to `version`.
  void Advance(uint64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!overflowed_ && queue_.empty() && version > seen_) seen_ = version;
  }

 private:
  WatchHub* const hub_;
  const std::string begin_, end_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WatchEvent> queue_;
  uint64_t seen_;  // every change up to it is queued or delivered
  bool overflowed_ = false;
  uint64_t resume_ = 0;
  std::unique_ptr<Watcher> own_;
};

std::unique_ptr<Watcher> WatchHub::Subscribe(uint64_t from, std::string begin,
                                             std::string end) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return nullptr;
  if (!started_) {
    // Starts at this watch's version, which is retained (the caller
    // checked) and recent.
    absl::StatusOr<std::unique_ptr<Watcher>> all =
        db_->Watch(from, std::string(1, '\0'), "");
    if (!all.ok()) return nullptr;
    started_ = true;
    position_ = from;
    thread_ = std::thread([this, w = std::move(*all)]() mutable { Run(std::move(w)); });
  }
  if (from < position_) return nullptr;
  auto sub = std::make_unique<Sub>(this, from, std::move(begin), std::move(end));
  subs_.insert(sub.get());
  return sub;
}

void WatchHub::Remove(Sub* sub) {
  std::lock_guard<std::mutex> lock(mu_);
  subs_.erase(sub);
}

void WatchHub::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WatchHub::Run(std::unique_ptr<Watcher> watcher) {
  std::optional<WatchEvent> held;
  std::vector<WatchEvent> batch;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    absl::StatusOr<WatchEvent> ev =
        held ? absl::StatusOr<WatchEvent>(*std::move(held)) : watcher->Next(kPoll);
    held.reset();
    if (absl::IsDeadlineExceeded(ev.status())) {
      std::lock_guard<std::mutex> lock(mu_);
      position_ = std::max(position_, watcher->position());
      for (Sub* sub : subs_) sub->Advance(position_);
      continue;
    }
    if (!ev.ok() || ev->net) {
      // Cannot happen while the hub pins its position; if it does, every
      // subscription falls back to its own watcher.
      Log("error", "watch hub stopped",
          absl::StrCat("error=\"", ev.ok() ? "released under the hub" : ev.status().ToString(), "\""));
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      for (Sub* sub : subs_) sub->Overflow();
      return;
    }
    uint64_t version = ev->version;
    batch.clear();
    batch.push_back(*std::move(ev));
    for (;;) {
      absl::StatusOr<WatchEvent> more = watcher->Next(absl::ZeroDuration());
      if (!more.ok()) break;
      if (more->version != version || more->net) {
        held = *std::move(more);
        break;
      }
      batch.push_back(*std::move(more));
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (Sub* sub : subs_) sub->Push(version, batch);
    position_ = version;
  }
}

grpc::Status ServeWatch(const Shared& s, grpc::ServerContext* ctx,
                        grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* rw) {
  Stream stream(s, rw, ctx);
  stream.Serve();
  return grpc::Status::OK;
}

}  // namespace cowdb::server::etcd
