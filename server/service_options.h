// The limits and timeouts of cowdb_server's services (flags in main.cc).
#ifndef COWDB_SERVER_SERVICE_OPTIONS_H_
#define COWDB_SERVER_SERVICE_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace cowdb::server {

struct ServiceOptions {
  // Keys per ScanResponse message.
  uint64_t scan_page_size = 1000;
  // Open interactive transactions at most, in all and per client (its
  // connection); Begin beyond either is RESOURCE_EXHAUSTED.
  uint64_t max_open_transactions = 10000;
  uint64_t max_open_transactions_per_client = 2500;
  // Watches one client (connection) may have open; beyond it, Watch is
  // RESOURCE_EXHAUSTED.
  uint64_t max_watches_per_client = 1000;
  // Mutations per transaction (and per one-shot Txn) at most, and bytes of
  // keys and values per transaction at most; beyond either a Write or
  // Commit is RESOURCE_EXHAUSTED and the transaction stays open.
  uint64_t max_transaction_ops = 100000;
  uint64_t max_transaction_bytes = 64 << 20;
  // The deadline of a call that sets none, and the longest deadline
  // honoured. Streams (Scan, Diff) that run past it end with
  // DEADLINE_EXCEEDED; one blocked writing to a client that does not read
  // is cancelled 1 s after its deadline (see CallWatchdog). A Watch has no
  // deadline, but one whose client takes no message for default_deadline
  // (and 1 s) is cancelled.
  absl::Duration default_deadline = absl::Seconds(60);
  absl::Duration max_deadline = absl::Minutes(10);
  // A transaction unused this long is rolled back.
  absl::Duration transaction_idle_timeout = absl::Seconds(60);
  // Writes (Put, Delete, Txn) accepted but not yet answered, at most, and
  // their request bytes; one client (connection) may hold a quarter of
  // each. Beyond: RESOURCE_EXHAUSTED at once (see server/admission.h).
  // Where hot backups are staged before they are streamed: a path prefix
  // on the database's file system (a random suffix is added). Empty:
  // Backup is FAILED_PRECONDITION.
  std::string backup_staging_prefix;
  uint64_t max_inflight_writes = 4096;
  uint64_t max_inflight_write_bytes = 256 << 20;
  // Bytes of keys and values of the conflicts a MergeResponse lists at
  // most (the merge is done whatever it lists; conflict_count counts them
  // all), so that the answer stays under the message limit: 16 MiB, or
  // half of --max_message_bytes when that is smaller.
  uint64_t merge_conflict_bytes = 16 << 20;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_SERVICE_OPTIONS_H_
