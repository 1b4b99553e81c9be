// Prometheus metrics for cowdb_server (--metrics_listen).
//
// Three sources: every RPC, counted by method and status code with a
// latency histogram per method (RpcMetrics, fed by a gRPC server
// interceptor, so no handler can skip it); the database's own counters and
// gauges (DBStats), read at scrape time; the server's (open
// transactions). MetricsHttpServer serves them on /metrics in the text
// exposition format 0.0.4, and /healthz, with civetweb (Debian's
// libcivetweb), not a socket loop of ours.

#ifndef COWDB_SERVER_METRICS_H_
#define COWDB_SERVER_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/db.h"
#include "server/admission.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"

struct mg_connection;  // civetweb's
struct mg_context;

namespace cowdb::server {

// Request counts and latencies per RPC method. Thread-safe; recording is
// lock-free once a method has been seen.
class RpcMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (then +Inf).
  static constexpr std::array<double, 16> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};

  void Record(std::string_view method, grpc::StatusCode code, absl::Duration latency);

  // Appends cowdb_rpc_requests_total and cowdb_rpc_duration_seconds.
  void Render(std::string* out) const;

  // An interceptor factory that records every call of the server it is
  // registered with (ServerBuilder::experimental().SetInterceptorCreators).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  static constexpr int kCodes = 17;  // grpc::StatusCode 0..16
  struct Method {
    std::array<std::atomic<uint64_t>, kCodes> codes{};
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // not cumulative
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_nanos{0};
  };
  Method* Find(std::string_view method);

  // std::shared_mutex, not absl::Mutex: Debian's Abseil is built without
  // ThreadSanitizer annotations (see docs/TESTING.md).
  mutable std::shared_mutex mu_;
  std::map<std::string, std::unique_ptr<Method>, std::less<>> methods_;  // guarded by mu_
};

// What a scrape reads besides the RPCs.
struct MetricsSources {
  DB* db = nullptr;
  std::function<uint64_t()> open_transactions;  // may be empty
  const RpcMetrics* rpcs = nullptr;             // may be null
  const WriteAdmission* admission = nullptr;    // may be null
};

// The whole exposition.
std::string RenderMetrics(const MetricsSources& sources);

// Serves /metrics (what `render` returns) and /healthz ("ok") over HTTP.
class MetricsHttpServer {
 public:
  // Listens on "HOST:PORT" (port 0: any free port). Errors: InvalidArgument
  // for a bad address; Unavailable if it cannot listen.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, std::function<std::string()> render);
  ~MetricsHttpServer();  // stops serving; waits for requests in progress

  // "HOST:PORT" it listens on.
  const std::string& addr() const { return addr_; }

 private:
  MetricsHttpServer() = default;
  static int HandleMetrics(::mg_connection* conn, void* self);
  static int HandleHealth(::mg_connection* conn, void* self);

  ::mg_context* ctx_ = nullptr;
  std::function<std::string()> render_;
  std::string addr_;
};

}  // namespace cowdb::server

#endif  // COWDB_SERVER_METRICS_H_
