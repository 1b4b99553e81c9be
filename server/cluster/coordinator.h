// Coordinator: a cowdb cluster's coordination state in etcd — which
// process is the writer, under which epoch, and the cluster's root (the
// latest checkpoint and log position in shared storage).
//
//   auto etcd = std::shared_ptr<EtcdClient>(std::move(connected));
//   ASSIGN_OR_RETURN(auto coord, Coordinator::Create(etcd, "prod"));
//   coord->SetLeaseLostCallback([&] { server.StepDown(); });
//   absl::StatusOr<Root> root = coord->AcquireWriter("10.0.0.7:7000",
//                                                    absl::Seconds(10));
//   while (absl::IsFailedPrecondition(root.status())) {  // a live writer
//     RETURN_IF_ERROR(coord->WaitForVacancy(absl::InfiniteFuture()));
//     root = coord->AcquireWriter("10.0.0.7:7000", absl::Seconds(10));
//   }
//   // ... write to storage with root->epoch as the fencing token, then:
//   RETURN_IF_ERROR(coord->PublishRoot(updated));  // "fenced: ..." if deposed
//
// Keys, under the prefix "/cowdb/<cluster>/":
//
//   root    EncodeRoot(Root): the epoch, checkpoint, log version and writer.
//           Written only by the acquisition transaction and by PublishRoot.
//   leader  the writer's address, attached to the writer's lease: it exists
//           exactly while a writer holds a live lease.
//
// Acquisition is one etcd transaction: if `leader` does not exist and
// `root` has the mod_revision read just before, create `leader` with a
// fresh lease and write `root` with epoch + 1. PublishRoot is one
// transaction too: if `leader` still has the create_revision and lease of
// this writer's acquisition, write `root`. A lease that lapsed or was
// revoked deletes `leader`; a later acquisition creates it again at a
// higher revision; either way the old writer's comparison fails.
//
// Invariants (each tested in tests/cluster/coordinator_test.cc):
//   - At most one acquisition succeeds while `leader` exists: two
//     processes racing never both become the writer.
//   - The epoch in `root` grows by exactly one per acquisition, so each
//     writer's epoch is unique and larger than every earlier writer's.
//   - A root is published only by the writer whose acquisition created
//     the current `leader` key: a writer whose lease lapsed, or who was
//     replaced, gets FailedPrecondition ("fenced: ...") and changes nothing.
//
// etcd alone cannot stop a deposed writer from writing to shared storage
// in the moment before it notices (its keep-alive deadline is its own
// clock's estimate). That is what the epoch is for: the writer passes it
// to the storage layer, which rejects appends from older epochs.
//
// Thread safety: all methods may be called concurrently; AcquireWriter,
// PublishRoot and Resign are serialized. Callbacks run on EtcdClient's
// background threads (see etcd_client.h); they may call Resign but must
// not destroy the Coordinator.

#ifndef COWDB_SERVER_CLUSTER_COORDINATOR_H_
#define COWDB_SERVER_CLUSTER_COORDINATOR_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/util/mutex.h"
#include "server/cluster/etcd_client.h"

namespace cowdb::cluster {

// The cluster's root record. Epoch 0 (and an empty writer) means that no
// writer was ever acquired.
struct Root {
  uint64_t epoch = 0;        // the fencing token of the writer that wrote it
  uint64_t checkpoint = 0;   // the latest complete checkpoint's version
  uint64_t log_version = 0;  // the last version durably in the log
  std::string writer;        // the address of the epoch's writer

  friend bool operator==(const Root& a, const Root& b) {
    return a.epoch == b.epoch && a.checkpoint == b.checkpoint &&
           a.log_version == b.log_version && a.writer == b.writer;
  }
  friend bool operator!=(const Root& a, const Root& b) { return !(a == b); }
};

// The stored form of a Root: one line of text, readable with etcdctl.
//
//   root    := "cowdb.root.v1" " epoch=" u64 " checkpoint=" u64
//              " log_version=" u64 " writer=" writer
//   u64     := "0" | [1-9][0-9]*      (at most 2^64 - 1; no sign, no spaces)
//   writer  := any bytes, to the end  (may be empty)
//
// The tag names the format version; DO NOT CHANGE version 1. A later
// version gets a new tag.
std::string EncodeRoot(const Root& root);

// The inverse of EncodeRoot. Errors: FailedPrecondition for a later format
// version ("cowdb.root.v2 ..."); DataLoss for anything else that is not
// exactly EncodeRoot's output.
absl::StatusOr<Root> DecodeRoot(std::string_view bytes);

class Coordinator {
 public:
  // A coordinator for cluster `cluster` (non-empty; letters, digits,
  // '-', '_' and '.') over `etcd`. Makes no call.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      std::shared_ptr<EtcdClient> etcd, std::string cluster);

  // Stops renewing the lease, without revoking it: to other processes
  // this writer looks crashed until its lease lapses. Call Resign() first
  // for a clean handover.
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  const std::string& root_key() const { return root_key_; }
  const std::string& leader_key() const { return leader_key_; }

  // The current root; Root{} (epoch 0) when the cluster has none yet.
  // Errors: DataLoss / FailedPrecondition for an undecodable root; etcd's.
  absl::StatusOr<Root> ReadRoot();

  // Becomes the writer if there is no live writer: grants a lease of
  // `lease_ttl` (rounded up to whole seconds, >= 1 s), keeps it alive in
  // the background, and in one transaction creates the leader key and
  // writes the root with epoch + 1 and writer = `address`. Returns that
  // root. Errors: FailedPrecondition naming the live writer (wait with
  // WaitForVacancy, then try again), or when this coordinator is the
  // writer already; Aborted when the root changed meanwhile (another
  // writer came and went: try again); InvalidArgument; etcd's errors.
  absl::StatusOr<Root> AcquireWriter(std::string address,
                                     absl::Duration lease_ttl);

  // Blocks until no writer holds the lease (at once if none does now).
  // Errors: DeadlineExceeded at `deadline`; Cancelled after CancelWaits();
  // etcd's errors.
  absl::Status WaitForVacancy(absl::Time deadline);

  // Makes every WaitForVacancy in progress return Cancelled.
  void CancelWaits();

  // Writes `root` (its checkpoint and log_version; writer is set to this
  // writer's address) if this coordinator is still the writer in etcd.
  // REQUIRES: root.epoch is the epoch AcquireWriter returned
  // (InvalidArgument otherwise). Errors: FailedPrecondition "fenced: ..."
  // when the lease lapsed, was revoked, or another writer took over (this
  // also marks the lease lost, see SetLeaseLostCallback);
  // FailedPrecondition when not the writer; etcd's errors (the root may or
  // may not have been written; publishing the same root again is safe).
  absl::Status PublishRoot(const Root& root);

  // Calls `callback` with the current root (before returning, if there is
  // one), then with every root published later, in order, from the
  // watch's thread. An undecodable or deleted root is passed as an error
  // (DataLoss / FailedPrecondition) and the watch goes on; an OutOfRange
  // error ends it (see EtcdClient::WatchCallback). Destroying the handle
  // stops the watch.
  absl::StatusOr<std::unique_ptr<EtcdClient::WatchHandle>> WatchRoot(
      std::function<void(absl::StatusOr<Root>)> callback);

  // `on_lost` is called once per tenure when this writer's lease is
  // lost: its keep-alive failed (etcd said the lease is gone, or its
  // deadline passed without a renewal) or PublishRoot found it fenced. The
  // server should stop writing, then Resign() (which may be called from
  // the callback) before it acquires again. Set it before AcquireWriter.
  void SetLeaseLostCallback(std::function<void()> on_lost);

  // Whether this coordinator holds (or held, until Resign) the writer role.
  bool is_writer() const;
  // Whether the lease of the current tenure is known to be lost.
  bool lease_lost() const;

  // Ends the tenure: stops the keep-alive and revokes the lease, which
  // deletes the leader key so that a standby takes over at once. OK when
  // not the writer. On an etcd error the lease still lapses after its TTL.
  absl::Status Resign();

  // For tests: pauses or resumes the lease keep-alive (see
  // EtcdClient::LeaseKeeper::PauseForTesting). REQUIRES: is_writer().
  void PauseKeepAliveForTesting(bool paused);

 private:
  // What this process holds while it is the writer.
  struct Tenure {
    std::string address;
    int64_t lease = 0;
    int64_t acquired_at = 0;  // the revision that created the leader key
    uint64_t epoch = 0;
  };

  Coordinator(std::shared_ptr<EtcdClient> etcd, std::string cluster);

  // The keep-alive of lease `lease` reported it lost.
  void OnLeaseLost(int64_t lease);
  // Marks the tenure's lease lost; returns the callback to call (once).
  std::function<void()> MarkLost() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // "cluster C has a live writer at ADDR (lease L)".
  absl::Status Occupied(const EtcdClient::KeyValue& leader) const;

  const std::shared_ptr<EtcdClient> etcd_;
  const std::string cluster_;
  const std::string root_key_;
  const std::string leader_key_;

  // Serializes AcquireWriter, PublishRoot and Resign; guards keeper_.
  std::mutex op_mu_;
  std::unique_ptr<EtcdClient::LeaseKeeper> keeper_;  // guarded by op_mu_

  mutable internal::Mutex mu_;
  std::optional<Tenure> tenure_ ABSL_GUARDED_BY(mu_);
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_lost_ ABSL_GUARDED_BY(mu_);

  // WaitForVacancy's waiters (std::mutex for std::condition_variable).
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  uint64_t wait_generation_ = 0;  // CancelWaits() bumps it; guarded by wait_mu_
};

}  // namespace cowdb::cluster

#endif  // COWDB_SERVER_CLUSTER_COORDINATOR_H_
