#include "server/cluster/node.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/util/status_macros.h"
#include "server/status.h"

namespace cowdb::cluster {

absl::StatusOr<Role> ParseRole(std::string_view name) {
  if (name == "writer") return Role::kWriter;
  if (name == "standby") return Role::kStandby;
  if (name == "replica") return Role::kReplica;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown role '", std::string(name), "' (writer, standby or replica)"));
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kWriter:
      return "writer";
    case Role::kStandby:
      return "standby";
    case Role::kReplica:
      return "replica";
  }
  return "?";
}

Node::Node(const NodeOptions& options,
           std::function<void(const std::string&)> on_step_down)
    : options_(options), on_step_down_(std::move(on_step_down)) {}

absl::StatusOr<std::unique_ptr<Node>> Node::Start(
    const Options& db_options, const NodeOptions& options,
    std::function<void(const std::string&)> on_step_down) {
  if (options.etcd_endpoints.empty() && options.role != Role::kWriter) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", RoleName(options.role), " role needs etcd endpoints (--etcd)"));
  }
  std::unique_ptr<Node> node(new Node(options, std::move(on_step_down)));
  if (!options.etcd_endpoints.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> etcd,
                     EtcdClient::Connect(options.etcd_endpoints, absl::Seconds(5)));
    node->etcd_ = std::move(etcd);
    ASSIGN_OR_RETURN(node->coordinator_,
                     Coordinator::Create(node->etcd_, options.cluster));
  }
  if (options.role == Role::kReplica) {
    RETURN_IF_ERROR(node->StartReplica(db_options));
  } else {
    RETURN_IF_ERROR(node->StartWriter(db_options));
  }
  return node;
}

absl::Status Node::StartWriter(const Options& db_options) {
  RadosOptions rados = options_.rados;
  if (coordinator_ != nullptr) {
    absl::StatusOr<Root> root =
        coordinator_->AcquireWriter(options_.address, options_.lease_ttl);
    while (options_.role == Role::kStandby &&
           (absl::IsFailedPrecondition(root.status()) ||
            absl::IsAborted(root.status()))) {
      server::Log("info", "standby: waiting for the writer lease",
                  absl::StrCat("reason=\"", root.status().message(), "\""));
      absl::Status waited = absl::DeadlineExceededError("");
      while (absl::IsDeadlineExceeded(waited)) {
        if (options_.cancelled && options_.cancelled()) {
          return absl::CancelledError("stopped while waiting as a standby");
        }
        waited = coordinator_->WaitForVacancy(absl::Now() + absl::Seconds(1));
      }
      RETURN_IF_ERROR(waited);
      root = coordinator_->AcquireWriter(options_.address, options_.lease_ttl);
    }
    if (!root.ok()) {
      return absl::Status(root.status().code(),
                          absl::StrCat("cannot become the writer: ",
                                       std::string(root.status().message())));
    }
    epoch_ = root->epoch;
    rados.epoch = epoch_;
    coordinator_->SetLeaseLostCallback(
        [this] { StepDown("the writer lease was lost"); });
    server::Log("info", "writer lease taken",
                absl::StrCat("epoch=", epoch_, " cluster=", options_.cluster));
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<DB>> db = DB::OpenRados(db_options, rados);
  if (!db.ok()) {
    if (coordinator_ != nullptr) coordinator_->Resign().IgnoreError();
    return db.status();
  }
  db_ = *std::move(db);
  server::Log("info", "database open as the writer",
              absl::StrCat("epoch=", epoch_, " version=", db_->LatestVersion(),
                           " recovery_ms=",
                           absl::ToInt64Milliseconds(absl::Now() - start)));
  if (coordinator_ != nullptr) {
    worker_ = std::thread([this] { PublishLoop(); });
  }
  return absl::OkStatus();
}

absl::Status Node::StartReplica(const Options& db_options) {
  Options options = db_options;
  options.read_only = true;
  ASSIGN_OR_RETURN(db_, DB::OpenRados(options, options_.rados));
  ASSIGN_OR_RETURN(root_watch_,
                   coordinator_->WatchRoot([this](absl::StatusOr<Root> root) {
                     if (!root.ok()) return;
                     std::lock_guard<std::mutex> lock(mu_);
                     root_changed_ = true;
                     cv_.notify_all();
                   }));
  worker_ = std::thread([this] { FollowLoop(); });
  return absl::OkStatus();
}

void Node::PublishLoop() {
  Root root;
  root.epoch = epoch_;
  root.writer = options_.address;
  uint64_t published = ~0ull;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const uint64_t latest = db_->LatestVersion();
    if (latest != published) {
      root.log_version = latest;
      root.checkpoint = db_->GetStats().checkpoint_version;
      absl::Status s = coordinator_->PublishRoot(root);
      if (s.ok()) {
        published = latest;
      } else if (absl::StrContains(s.message(), "fenced")) {
        StepDown(absl::StrCat("publishing the root failed: ",
                              std::string(s.message())));
      } else {
        server::Log("warning", "cannot publish the root",
                    absl::StrCat("error=\"", s.message(), "\""));
      }
    }
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.publish_interval),
                 [this] { return stopping_; });
  }
}

void Node::FollowLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    root_changed_ = false;
    lock.unlock();
    absl::StatusOr<uint64_t> v = db_->CatchUp();
    if (!v.ok()) {
      server::Log("warning", "replica cannot catch up",
                  absl::StrCat("error=\"", v.status().message(), "\""));
    }
    lock.lock();
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.catch_up_interval),
                 [this] { return stopping_ || root_changed_; });
  }
}

void Node::StepDown(const std::string& reason) {
  if (stepped_down_.exchange(true)) return;
  server::Log("error", "stepping down as the writer",
              absl::StrCat("reason=\"", reason, "\""));
  if (on_step_down_) on_step_down_(reason);
}

Node::~Node() {
  root_watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  db_.reset();  // a writer's clean close checkpoints
  if (coordinator_ != nullptr && options_.role != Role::kReplica) {
    coordinator_->Resign().IgnoreError();
  }
}

}  // namespace cowdb::cluster
