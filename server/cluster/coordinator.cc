#include "server/cluster/coordinator.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/util/status_macros.h"

namespace cowdb::cluster {
namespace {

using Compare = EtcdClient::Compare;
using Op = EtcdClient::Op;

constexpr char kRootTag[] = "cowdb.root.v1";
constexpr char kRootTagPrefix[] = "cowdb.root.v";

// (std::string_view: Debian's absl::StartsWith takes absl::string_view.)
bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Consumes "<name>=<u64> " (a canonical u64, see EncodeRoot's grammar, and
// the space before the next field) from the front of `*in`.
bool ConsumeField(std::string_view* in, std::string_view name,
                  uint64_t* value) {
  if (!StartsWith(*in, name) || in->size() <= name.size() ||
      (*in)[name.size()] != '=') {
    return false;
  }
  in->remove_prefix(name.size() + 1);
  size_t n = 0;
  while (n < in->size() && (*in)[n] >= '0' && (*in)[n] <= '9') ++n;
  if (n == 0 || n > 20 || (n > 1 && (*in)[0] == '0')) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t digit = static_cast<uint64_t>((*in)[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;  // overflow
    v = v * 10 + digit;
  }
  in->remove_prefix(n);
  if (in->empty() || in->front() != ' ') return false;
  in->remove_prefix(1);
  *value = v;
  return true;
}

bool ValidClusterName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------
// Root encoding

std::string EncodeRoot(const Root& root) {
  return absl::StrCat(
      kRootTag, " epoch=", root.epoch, " checkpoint=", root.checkpoint,
      " log_version=", root.log_version, " writer=", root.writer);
}

absl::StatusOr<Root> DecodeRoot(std::string_view bytes) {
  const auto bad = [bytes](std::string_view why) {
    return absl::DataLossError(absl::StrCat(
        "undecodable cowdb root (", std::string(why), "): \"",
        absl::CHexEscape(std::string(bytes.substr(0, 120))), "\""));
  };
  std::string_view in = bytes;
  const size_t space = in.find(' ');
  const std::string_view tag = in.substr(0, space);
  if (tag != kRootTag) {
    if (StartsWith(tag, kRootTagPrefix)) {
      const std::string_view version = tag.substr(sizeof(kRootTagPrefix) - 1);
      if (!version.empty() &&
          version.find_first_not_of("0123456789") == std::string_view::npos) {
        return absl::FailedPreconditionError(
            absl::StrCat("cowdb root in format \"", std::string(tag),
                         "\", which this build does not read (it reads ",
                         kRootTag, "): written by a later cowdb?"));
      }
    }
    return bad("no cowdb.root.v1 tag");
  }
  if (space == std::string_view::npos) return bad("truncated");
  in.remove_prefix(space + 1);
  Root root;
  if (!ConsumeField(&in, "epoch", &root.epoch)) return bad("epoch");
  if (!ConsumeField(&in, "checkpoint", &root.checkpoint)) {
    return bad("checkpoint");
  }
  if (!ConsumeField(&in, "log_version", &root.log_version)) {
    return bad("log_version");
  }
  if (!StartsWith(in, "writer=")) return bad("writer");
  in.remove_prefix(7);
  root.writer = std::string(in);
  return root;
}

// ---------------------------------------------------------------------------
// Coordinator

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    std::shared_ptr<EtcdClient> etcd, std::string cluster) {
  if (etcd == nullptr) {
    return absl::InvalidArgumentError("Coordinator: no etcd client");
  }
  if (!ValidClusterName(cluster)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Coordinator: bad cluster name \"", absl::CHexEscape(cluster),
        "\" (non-empty; letters, digits, '-', '_', '.')"));
  }
  return std::unique_ptr<Coordinator>(
      new Coordinator(std::move(etcd), std::move(cluster)));
}

Coordinator::Coordinator(std::shared_ptr<EtcdClient> etcd, std::string cluster)
    : etcd_(std::move(etcd)),
      cluster_(std::move(cluster)),
      root_key_(absl::StrCat("/cowdb/", cluster_, "/root")),
      leader_key_(absl::StrCat("/cowdb/", cluster_, "/leader")) {}

Coordinator::~Coordinator() {
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper;
  {
    std::lock_guard<std::mutex> op(op_mu_);
    keeper = std::move(keeper_);
  }
  keeper.reset();  // outside op_mu_, as in Resign
}

absl::Status Coordinator::Occupied(const EtcdClient::KeyValue& leader) const {
  return absl::FailedPreconditionError(
      absl::StrCat("cluster ", cluster_, " has a live writer at \"",
                   absl::CHexEscape(leader.value), "\" (lease ", leader.lease,
                   ", since revision ", leader.create_revision, ")"));
}

absl::StatusOr<Root> Coordinator::ReadRoot() {
  ASSIGN_OR_RETURN(EtcdClient::GetResult got, etcd_->Get(root_key_));
  if (!got.kv.has_value()) return Root{};
  return DecodeRoot(got.kv->value);
}

absl::StatusOr<Root> Coordinator::AcquireWriter(std::string address,
                                                absl::Duration lease_ttl) {
  std::lock_guard<std::mutex> op(op_mu_);
  {
    internal::MutexLock lock(&mu_);
    if (tenure_.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster ", cluster_, ": already the writer (epoch ",
                       tenure_->epoch, ")"));
    }
  }
  if (lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AcquireWriter: lease TTL must be > 0, not ",
                     absl::FormatDuration(lease_ttl)));
  }

  // Reads first: a live writer is the common answer, and needs no lease.
  ASSIGN_OR_RETURN(EtcdClient::GetResult leader, etcd_->Get(leader_key_));
  if (leader.kv.has_value()) return Occupied(*leader.kv);
  ASSIGN_OR_RETURN(EtcdClient::GetResult root_kv, etcd_->Get(root_key_));
  Root root;
  int64_t root_mod = 0;
  if (root_kv.kv.has_value()) {
    ASSIGN_OR_RETURN(root, DecodeRoot(root_kv.kv->value));
    root_mod = root_kv.kv->mod_revision;
  }

  const int64_t ttl_seconds = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(lease_ttl))));
  ASSIGN_OR_RETURN(EtcdClient::Lease lease, etcd_->LeaseGrant(ttl_seconds));
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper =
      etcd_->KeepAlive(lease, [this, id = lease.id] { OnLeaseLost(id); });

  Root next = root;
  next.epoch = root.epoch + 1;
  next.writer = address;
  absl::StatusOr<EtcdClient::TxnResult> txn =
      etcd_->Txn({Compare::CreateRevisionIs(leader_key_, 0),
                  Compare::ModRevisionIs(root_key_, root_mod)},
                 {Op::Put(leader_key_, address, lease.id),
                  Op::Put(root_key_, EncodeRoot(next))});

  int64_t acquired_at = 0;
  absl::Status failure;
  if (txn.ok() && txn->succeeded) {
    acquired_at = txn->revision;
  } else {
    // A retried Txn may have found its own earlier success (etcd_client.h,
    // "Retried writes"): then the leader key carries our lease, which no
    // other process has.
    absl::StatusOr<EtcdClient::GetResult> now = etcd_->Get(leader_key_);
    if (now.ok() && now->kv.has_value() && now->kv->lease == lease.id) {
      acquired_at = now->kv->create_revision;
    } else if (!txn.ok()) {
      failure = txn.status();
    } else if (!now.ok()) {
      failure = now.status();
    } else if (now->kv.has_value()) {
      failure = Occupied(*now->kv);
    } else {
      failure = absl::AbortedError(absl::StrCat(
          "cluster ", cluster_,
          ": the root changed while acquiring the writer role (another "
          "writer came and went); try again"));
    }
  }
  if (acquired_at == 0) {
    keeper.reset();
    // Best effort: unrevoked, the unused lease lapses after its TTL.
    etcd_->LeaseRevoke(lease.id).IgnoreError();
    return failure;
  }

  std::function<void()> lost_callback;
  {
    internal::MutexLock lock(&mu_);
    tenure_ = Tenure{address, lease.id, acquired_at, next.epoch};
    lost_ = false;
    // A loss reported before the tenure existed was ignored by OnLeaseLost.
    if (keeper->lost()) lost_callback = MarkLost();
  }
  keeper_ = std::move(keeper);
  if (lost_callback) lost_callback();
  return next;
}

std::function<void()> Coordinator::MarkLost() {
  if (lost_) return nullptr;
  lost_ = true;
  return on_lost_;
}

void Coordinator::OnLeaseLost(int64_t lease) {
  std::function<void()> callback;
  {
    internal::MutexLock lock(&mu_);
    if (!tenure_.has_value() || tenure_->lease != lease) return;
    callback = MarkLost();
  }
  if (callback) callback();
}

absl::Status Coordinator::WaitForVacancy(absl::Time deadline) {
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(wait_mu_);
    generation = wait_generation_;
  }
  ASSIGN_OR_RETURN(EtcdClient::GetResult leader, etcd_->Get(leader_key_));
  if (!leader.kv.has_value()) return absl::OkStatus();

  // Set by the watch's callback; guarded by wait_mu_. `watch`, declared
  // after them, stops before they go.
  bool vacant = false;
  absl::Status error;
  ASSIGN_OR_RETURN(
      std::unique_ptr<EtcdClient::WatchHandle> watch,
      etcd_->Watch(leader_key_, leader.revision + 1,
                   [this, &vacant,
                    &error](absl::StatusOr<EtcdClient::WatchEvent> event) {
                     std::lock_guard<std::mutex> lock(wait_mu_);
                     if (!event.ok()) {
                       error = event.status();
                     } else if (event->type ==
                                EtcdClient::WatchEvent::Type::kDelete) {
                       vacant = true;
                     }
                     wait_cv_.notify_all();
                   }));
  std::unique_lock<std::mutex> lock(wait_mu_);
  wait_cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] {
    return vacant || !error.ok() || wait_generation_ != generation;
  });
  if (vacant) return absl::OkStatus();
  if (!error.ok()) return error;
  if (wait_generation_ != generation) {
    return absl::CancelledError(
        absl::StrCat("cluster ", cluster_, ": WaitForVacancy cancelled"));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("cluster ", cluster_, ": the writer at \"",
                   absl::CHexEscape(leader.kv->value),
                   "\" still held its lease at the "
                   "deadline"));
}

void Coordinator::CancelWaits() {
  std::lock_guard<std::mutex> lock(wait_mu_);
  ++wait_generation_;
  wait_cv_.notify_all();
}

absl::Status Coordinator::PublishRoot(const Root& root) {
  std::function<void()> lost_callback;
  absl::Status result;
  {
    std::lock_guard<std::mutex> op(op_mu_);
    Tenure t;
    {
      internal::MutexLock lock(&mu_);
      if (!tenure_.has_value()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cluster ", cluster_, ": PublishRoot: not the writer"));
      }
      t = *tenure_;
    }
    if (root.epoch != t.epoch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster ", cluster_, ": PublishRoot: the root has epoch ",
          root.epoch, " but this writer holds epoch ", t.epoch));
    }
    Root stored = root;
    stored.writer = t.address;
    ASSIGN_OR_RETURN(
        EtcdClient::TxnResult txn,
        etcd_->Txn({Compare::CreateRevisionIs(leader_key_, t.acquired_at),
                    Compare::LeaseIs(leader_key_, t.lease)},
                   {Op::Put(root_key_, EncodeRoot(stored))}));
    if (txn.succeeded) return absl::OkStatus();

    std::string now = "no writer holds the lease now";
    absl::StatusOr<EtcdClient::GetResult> leader = etcd_->Get(leader_key_);
    if (leader.ok() && leader->kv.has_value()) {
      now = absl::StrCat("the writer now is \"",
                         absl::CHexEscape(leader->kv->value), "\"");
    }
    result = absl::FailedPreconditionError(absl::StrCat(
        "fenced: cluster ", cluster_, ": epoch ", t.epoch,
        " is over (its leader key, created at revision ", t.acquired_at,
        " with lease ", t.lease, ", is gone); ", now));
    internal::MutexLock lock(&mu_);
    lost_callback = MarkLost();
  }
  if (lost_callback) lost_callback();
  return result;
}

absl::StatusOr<std::unique_ptr<EtcdClient::WatchHandle>> Coordinator::WatchRoot(
    std::function<void(absl::StatusOr<Root>)> callback) {
  ASSIGN_OR_RETURN(EtcdClient::GetResult got, etcd_->Get(root_key_));
  if (got.kv.has_value()) callback(DecodeRoot(got.kv->value));
  return etcd_->Watch(
      root_key_, got.revision + 1,
      [callback = std::move(callback),
       cluster = cluster_](absl::StatusOr<EtcdClient::WatchEvent> event) {
        if (!event.ok()) {
          callback(event.status());
        } else if (event->type == EtcdClient::WatchEvent::Type::kDelete) {
          callback(absl::DataLossError(absl::StrCat(
              "cluster ", cluster, ": the root key was deleted (revision ",
              event->kv.mod_revision, ")")));
        } else {
          callback(DecodeRoot(event->kv.value));
        }
      });
}

void Coordinator::SetLeaseLostCallback(std::function<void()> on_lost) {
  internal::MutexLock lock(&mu_);
  on_lost_ = std::move(on_lost);
}

bool Coordinator::is_writer() const {
  internal::MutexLock lock(&mu_);
  return tenure_.has_value();
}

bool Coordinator::lease_lost() const {
  internal::MutexLock lock(&mu_);
  return tenure_.has_value() && lost_;
}

absl::Status Coordinator::Resign() {
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper;
  std::optional<Tenure> t;
  {
    std::lock_guard<std::mutex> op(op_mu_);
    keeper = std::move(keeper_);
    internal::MutexLock lock(&mu_);
    t = std::move(tenure_);
    tenure_.reset();
    lost_ = false;
  }
  // Outside op_mu_: the keeper's on_lost may be running, and may itself
  // call Resign.
  keeper.reset();
  if (!t.has_value()) return absl::OkStatus();
  return etcd_->LeaseRevoke(t->lease);
}

void Coordinator::PauseKeepAliveForTesting(bool paused) {
  std::lock_guard<std::mutex> op(op_mu_);
  if (keeper_ != nullptr) keeper_->PauseForTesting(paused);
}

}  // namespace cowdb::cluster
