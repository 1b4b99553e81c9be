#include "server/metrics.h"

#include <civetweb.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cowdb::server {
namespace {

// A label value: backslash, quote and newline escaped.
std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Header(std::string* out, const std::string& name, const std::string& type,
            const std::string& help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// One unlabelled sample with its header.
void Sample(std::string* out, const std::string& name, const std::string& type,
            const std::string& help, double value) {
  Header(out, name, type, help);
  absl::StrAppend(out, name, " ", absl::StrFormat("%.17g", value), "\n");
}

class RecordingInterceptor final : public grpc::experimental::Interceptor {
 public:
  RecordingInterceptor(RpcMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method == nullptr ? "" : method), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, methods->GetSendStatus().error_code(), absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
};

class RecordingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RecordingInterceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

// ------------------------------------------------------------- RpcMetrics

RpcMetrics::Method* RpcMetrics::Find(std::string_view method) {
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = methods_.find(method);
    if (it != methods_.end()) return it->second.get();
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  std::unique_ptr<Method>& m = methods_[std::string(method)];
  if (m == nullptr) m = std::make_unique<Method>();
  return m.get();
}

void RpcMetrics::Record(std::string_view method, grpc::StatusCode code, absl::Duration latency) {
  Method* m = Find(method);
  const int c = static_cast<int>(code);
  m->codes[c >= 0 && c < kCodes ? c : static_cast<int>(grpc::StatusCode::UNKNOWN)].fetch_add(
      1, std::memory_order_relaxed);
  const double seconds = absl::ToDoubleSeconds(latency);
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  m->buckets[b].fetch_add(1, std::memory_order_relaxed);
  m->sum_nanos.fetch_add(absl::ToInt64Nanoseconds(latency), std::memory_order_relaxed);
  m->count.fetch_add(1, std::memory_order_relaxed);
}

void RpcMetrics::Render(std::string* out) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  Header(out, "cowdb_rpc_requests_total", "counter", "RPCs answered, by method and status code.");
  for (const auto& [name, m] : methods_) {
    for (int c = 0; c < kCodes; ++c) {
      const uint64_t n = m->codes[c].load(std::memory_order_relaxed);
      if (n == 0) continue;
      absl::StrAppend(out, "cowdb_rpc_requests_total{method=\"", LabelValue(name),
                      "\",code=\"", absl::StatusCodeToString(static_cast<absl::StatusCode>(c)),
                      "\"} ", n, "\n");
    }
  }
  Header(out, "cowdb_rpc_duration_seconds", "histogram",
         "Time from a call's arrival to its status, by method.");
  for (const auto& [name, m] : methods_) {
    const std::string label = LabelValue(name);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += m->buckets[b].load(std::memory_order_relaxed);
      const std::string le =
          b < kBuckets.size() ? absl::StrFormat("%g", kBuckets[b]) : std::string("+Inf");
      absl::StrAppend(out, "cowdb_rpc_duration_seconds_bucket{method=\"", label, "\",le=\"", le,
                      "\"} ", cumulative, "\n");
    }
    // The count is the +Inf bucket's: both from the same loads.
    absl::StrAppend(out, "cowdb_rpc_duration_seconds_sum{method=\"", label, "\"} ",
                    absl::StrFormat("%.9f", m->sum_nanos.load(std::memory_order_relaxed) / 1e9),
                    "\ncowdb_rpc_duration_seconds_count{method=\"", label, "\"} ", cumulative,
                    "\n");
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<RecordingFactory>(this);
}

// --------------------------------------------------------------- rendering

std::string RenderMetrics(const MetricsSources& sources) {
  std::string out;
  if (sources.rpcs != nullptr) sources.rpcs->Render(&out);
  if (sources.db != nullptr) {
    const DBStats s = sources.db->GetStats();
    struct Row {
      const char* name;
      const char* type;
      const char* help;
      double value;
    };
    const Row rows[] = {
        {"cowdb_commits_total", "counter", "Versions committed since the server started.",
         static_cast<double>(s.commits)},
        {"cowdb_commit_syncs_total", "counter",
         "Synced commit log writes (one per group commit) since the server started.",
         static_cast<double>(s.syncs)},
        {"cowdb_log_bytes_total", "counter", "Commit log bytes written since the server started.",
         static_cast<double>(s.log_bytes)},
        {"cowdb_checkpoints_total", "counter", "Checkpoints written since the server started.",
         static_cast<double>(s.checkpoints)},
        {"cowdb_checkpoint_version", "gauge", "Version of the last checkpoint.",
         static_cast<double>(s.checkpoint_version)},
        {"cowdb_unwritten_bytes", "gauge", "Tree nodes in memory that no checkpoint wrote yet.",
         static_cast<double>(s.unwritten_bytes)},
        {"cowdb_pages_written_total", "counter", "Tree pages written by checkpoints.",
         static_cast<double>(s.pages_written)},
        {"cowdb_blobs_written_total", "counter", "Out-of-line values written.",
         static_cast<double>(s.blobs_written)},
        {"cowdb_storage_bytes_written_total", "counter", "Bytes handed to storage.",
         static_cast<double>(s.bytes_written)},
        {"cowdb_storage_reads_total", "counter", "Page and blob reads from storage.",
         static_cast<double>(s.page_reads)},
        {"cowdb_cache_hits_total", "counter", "Node cache hits.",
         static_cast<double>(s.cache_hits)},
        {"cowdb_cache_misses_total", "counter", "Node cache misses.",
         static_cast<double>(s.cache_misses)},
        {"cowdb_cache_bytes", "gauge", "Bytes of decoded pages held by the node cache.",
         static_cast<double>(s.cache_bytes)},
        {"cowdb_cache_capacity_bytes", "gauge", "The node cache's capacity.",
         static_cast<double>(s.cache_capacity)},
        {"cowdb_disk_bytes", "gauge", "Approximate size of the database on disk.",
         static_cast<double>(s.disk_bytes)},
        {"cowdb_latest_version", "gauge", "The latest version.",
         static_cast<double>(s.latest_version)},
        {"cowdb_oldest_version", "gauge", "The oldest version that can still be read.",
         static_cast<double>(sources.db->OldestVersion())},
        {"cowdb_release_floor", "gauge",
         "Versions below it are released unless tagged or pinned.",
         static_cast<double>(sources.db->ReleaseFloor())},
        {"cowdb_entries", "gauge", "Keys in the latest version.",
         static_cast<double>(s.entries)},
        {"cowdb_recovery_replayed_commits", "gauge",
         "Log records the last open replayed.", static_cast<double>(s.replayed_commits)},
        {"cowdb_recovery_seconds", "gauge", "How long the last open took to recover.",
         s.recovery_micros / 1e6},
    };
    for (const Row& r : rows) Sample(&out, r.name, r.type, r.help, r.value);
  }
  if (const WriteAdmission* a = sources.admission) {
    Sample(&out, "cowdb_inflight_writes", "gauge", "Writes accepted and not yet answered.",
           static_cast<double>(a->in_flight_writes()));
    Sample(&out, "cowdb_inflight_write_bytes", "gauge", "Request bytes of the writes in flight.",
           static_cast<double>(a->in_flight_bytes()));
    Sample(&out, "cowdb_rejected_writes_total", "counter",
           "Writes refused because the server or their client had too many in flight.",
           static_cast<double>(a->rejected()));
  }
  if (sources.db != nullptr) {
    const DBStats s = sources.db->GetStats();
    Header(&out, "cowdb_disk_bytes_by_kind", "gauge",
           "Approximate bytes on disk by what they hold (column families).");
    const std::pair<const char*, uint64_t> kinds[] = {{"pages", s.disk_bytes_pages},
                                                      {"blobs", s.disk_bytes_blobs},
                                                      {"log", s.disk_bytes_log},
                                                      {"records", s.disk_bytes_records}};
    for (const auto& [kind, bytes] : kinds) {
      absl::StrAppend(&out, "cowdb_disk_bytes_by_kind{kind=\"", kind, "\"} ", bytes, "\n");
    }
  }
  if (sources.open_transactions) {
    Sample(&out, "cowdb_open_transactions", "gauge", "Interactive transactions open.",
           static_cast<double>(sources.open_transactions()));
  }
  return out;
}

// ------------------------------------------------------- MetricsHttpServer

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, std::function<std::string()> render) {
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_listen=\"", listen, "\" is not HOST:PORT"));
  }
  mg_init_library(0);
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->render_ = std::move(render);
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", "2",
                           nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };  // quiet
  server->ctx_ = mg_start(&callbacks, server.get(), options);
  if (server->ctx_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen));
  }
  mg_set_request_handler(server->ctx_, "/metrics$", &MetricsHttpServer::HandleMetrics,
                         server.get());
  mg_set_request_handler(server->ctx_, "/healthz$", &MetricsHttpServer::HandleHealth,
                         server.get());
  mg_server_port ports[1] = {};
  if (mg_get_server_ports(server->ctx_, 1, ports) < 1) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen));
  }
  server->addr_ = absl::StrCat(listen.substr(0, colon), ":", ports[0].port);
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (ctx_ != nullptr) mg_stop(ctx_);
}

namespace {

int Reply(mg_connection* conn, int code, const char* reason, const char* type,
          const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            code, reason, type, body.size());
  mg_write(conn, body.data(), body.size());
  return code;
}

bool IsGet(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  return std::string_view(info->request_method) == "GET";
}

}  // namespace

int MetricsHttpServer::HandleMetrics(mg_connection* conn, void* self) {
  if (!IsGet(conn)) return Reply(conn, 405, "Method Not Allowed", "text/plain", "GET only\n");
  return Reply(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
               static_cast<MetricsHttpServer*>(self)->render_());
}

int MetricsHttpServer::HandleHealth(mg_connection* conn, void*) {
  if (!IsGet(conn)) return Reply(conn, 405, "Method Not Allowed", "text/plain", "GET only\n");
  return Reply(conn, 200, "OK", "text/plain", "ok\n");
}

}  // namespace cowdb::server
