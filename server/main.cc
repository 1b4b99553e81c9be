// cowdb_server: the cowdb database over gRPC.
//
//   bazel run //server:cowdb_server -- --data_dir=cowdb-data
//
// Prints "listening on HOST:PORT" on stdout once it serves (with
// --listen=127.0.0.1:0 the port is chosen by the system), and "metrics on
// HOST:PORT" with --metrics_listen (Prometheus /metrics, /healthz). Logs are one
// line each on stderr, key=value. SIGTERM or SIGINT: stop accepting, give
// in-flight calls up to --shutdown_grace, then close the database.

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/db.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/cluster/node.h"
#include "server/etcd/etcd.h"
#include "server/metrics.h"
#include "server/service.h"

ABSL_FLAG(std::string, data_dir, "cowdb-data",
          "database directory (created if missing)");
ABSL_FLAG(std::string, listen, "127.0.0.1:7390", "address to listen on");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "largest request or response");
ABSL_FLAG(uint64_t, scan_page_size, 1000, "keys per Scan response message");
ABSL_FLAG(uint64_t, max_open_transactions, 10000, "open transactions at most");
ABSL_FLAG(uint64_t, max_transaction_ops, 100000, "mutations per transaction at most");
ABSL_FLAG(uint64_t, max_transaction_bytes, 64 << 20,
          "bytes of keys and values per transaction at most");
ABSL_FLAG(absl::Duration, default_deadline, absl::Seconds(60),
          "deadline of a call that sets none");
ABSL_FLAG(absl::Duration, max_deadline, absl::Minutes(10), "longest call deadline honoured");
ABSL_FLAG(absl::Duration, transaction_idle_timeout, absl::Seconds(60),
          "roll back a transaction unused this long");
ABSL_FLAG(uint64_t, retain_versions, 1000, "versions to retain (0 = all)");
ABSL_FLAG(uint64_t, max_open_transactions_per_client, 2500,
          "open transactions one client (connection) may hold");
ABSL_FLAG(uint64_t, max_watches_per_client, 1000, "watches one client (connection) may hold open");
ABSL_FLAG(uint64_t, max_inflight_writes, 4096,
          "writes (Put, Delete, Txn; the etcd face's too, counted apart) accepted and not "
          "yet answered, at most; one client may hold a quarter. Beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(uint64_t, max_inflight_write_bytes, 256 << 20,
          "request bytes of the writes in flight, at most (a quarter per client)");
ABSL_FLAG(absl::Duration, auth_token_ttl, absl::Minutes(5),
          "with users and roles on: a login's token expires unused this long");
ABSL_FLAG(std::string, auth_token_file, "",
          "file of bearer tokens that act as root, one per line; with it, every call "
          "needs a token even while users and roles (cowdb auth enable) are off");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain (enables TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require client certificates it signed (mTLS)");
ABSL_FLAG(std::string, metrics_listen, "",
          "serve Prometheus metrics (/metrics) and /healthz over HTTP on HOST:PORT "
          "(empty: off)");
ABSL_FLAG(std::string, etcd_listen, "",
          "also serve etcd 3.4's v3 API on this address (off if empty); "
          "the same TLS and token options apply");
ABSL_FLAG(int, etcd_max_txn_ops, 128, "etcd face: compares and ops per Txn branch at most");
ABSL_FLAG(std::string, rados_pool, "",
          "keep the database in this Ceph RADOS pool instead of --data_dir, "
          "shared by a writer, standbys and replicas (see --role)");
ABSL_FLAG(std::string, rados_name, "cowdb",
          "the database's name in --rados_pool (a RADOS namespace)");
ABSL_FLAG(std::string, ceph_conf, "",
          "Ceph configuration file (default: $CEPH_CONF, then /etc/ceph/ceph.conf)");
ABSL_FLAG(std::string, etcd, "",
          "comma-separated etcd endpoints (host:port) that coordinate the "
          "cluster: the writer lease, its epoch and the root");
ABSL_FLAG(std::string, cluster, "",
          "the cluster's name in etcd (default: --rados_name)");
ABSL_FLAG(std::string, role, "writer",
          "with --rados_pool: writer, standby (takes over when the writer's "
          "lease lapses) or replica (serves reads, follows the writer)");
ABSL_FLAG(std::string, advertise, "",
          "the address clients reach this server at (default: --listen)");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(5),
          "the writer lease; a writer that dies is replaced about this long later");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "time in-flight calls get on shutdown");

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Insecure by default (loopback); TLS with --tls_cert/--tls_key, and mTLS
// with --tls_client_ca.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials() {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() && key.empty()) {
    if (!ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> c = ReadFile(cert), k = ReadFile(key);
  if (!c.ok()) return c.status();
  if (!k.ok()) return k.status();
  pair.cert_chain = *c;
  pair.private_key = *k;
  opts.pem_key_cert_pairs.push_back(pair);
  if (!ca.empty()) {
    absl::StatusOr<std::string> roots = ReadFile(ca);
    if (!roots.ok()) return roots.status();
    opts.pem_root_certs = *roots;
    opts.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

absl::Status Validate(const cowdb::server::ServiceOptions& o) {
  if (o.scan_page_size == 0) return absl::InvalidArgumentError("--scan_page_size must be > 0");
  if (o.transaction_idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--transaction_idle_timeout must be > 0");
  }
  if (o.default_deadline <= absl::ZeroDuration() || o.max_deadline < o.default_deadline) {
    return absl::InvalidArgumentError("need 0 < --default_deadline <= --max_deadline");
  }
  if (absl::GetFlag(FLAGS_max_message_bytes) <= 0) {
    return absl::InvalidArgumentError("--max_message_bytes must be > 0");
  }
  if (o.max_open_transactions_per_client == 0 || o.max_watches_per_client == 0) {
    return absl::InvalidArgumentError(
        "--max_open_transactions_per_client and --max_watches_per_client must be > 0");
  }
  if (o.max_inflight_writes == 0 || o.max_inflight_write_bytes == 0) {
    return absl::InvalidArgumentError(
        "--max_inflight_writes and --max_inflight_write_bytes must be > 0");
  }
  return absl::OkStatus();
}

// The cluster flags as a node's options. A standby's wait ends on SIGTERM
// or SIGINT (checked without consuming them otherwise).
absl::StatusOr<cowdb::cluster::NodeOptions> NodeOptionsFromFlags(const sigset_t& signals) {
  cowdb::cluster::NodeOptions o;
  absl::StatusOr<cowdb::cluster::Role> role = cowdb::cluster::ParseRole(absl::GetFlag(FLAGS_role));
  if (!role.ok()) return role.status();
  o.role = *role;
  for (absl::string_view e : absl::StrSplit(absl::GetFlag(FLAGS_etcd), ',', absl::SkipEmpty())) {
    o.etcd_endpoints.emplace_back(e);
  }
  o.rados.pool = absl::GetFlag(FLAGS_rados_pool);
  o.rados.name = absl::GetFlag(FLAGS_rados_name);
  o.rados.conf_path = absl::GetFlag(FLAGS_ceph_conf);
  o.cluster = absl::GetFlag(FLAGS_cluster).empty() ? o.rados.name : absl::GetFlag(FLAGS_cluster);
  o.address = absl::GetFlag(FLAGS_advertise).empty() ? absl::GetFlag(FLAGS_listen)
                                                      : absl::GetFlag(FLAGS_advertise);
  o.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  if (o.lease_ttl < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--lease_ttl must be at least 1s");
  }
  o.cancelled = [signals] {
    timespec zero{0, 0};
    sigset_t set = signals;
    return sigtimedwait(&set, nullptr, &zero) > 0;
  };
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("cowdb_server --data_dir=DIR --listen=HOST:PORT");
  absl::ParseCommandLine(argc, argv);

  // Signals go to a dedicated thread, blocked everywhere else.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  cowdb::server::AccessOptions access_options;
  access_options.token_ttl = absl::GetFlag(FLAGS_auth_token_ttl);
  if (access_options.token_ttl < absl::Seconds(1)) {
    cowdb::server::Log("error", "bad flags", "error=\"--auth_token_ttl must be at least 1s\"");
    return 1;
  }
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::vector<std::string>> tokens =
        cowdb::server::ReadTokenFile(absl::GetFlag(FLAGS_auth_token_file));
    if (!tokens.ok()) {
      cowdb::server::Log("error", "bad --auth_token_file", absl::StrCat("error=\"", tokens.status().ToString(), "\""));
      return 1;
    }
    access_options.root_tokens = *std::move(tokens);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = Credentials();
  if (!creds.ok()) {
    cowdb::server::Log("error", "bad TLS flags", absl::StrCat("error=\"", creds.status().ToString(), "\""));
    return 1;
  }

  cowdb::server::ServiceOptions service_options;
  service_options.scan_page_size = absl::GetFlag(FLAGS_scan_page_size);
  service_options.max_open_transactions = absl::GetFlag(FLAGS_max_open_transactions);
  service_options.max_transaction_ops = absl::GetFlag(FLAGS_max_transaction_ops);
  service_options.max_transaction_bytes = absl::GetFlag(FLAGS_max_transaction_bytes);
  service_options.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  service_options.max_deadline = absl::GetFlag(FLAGS_max_deadline);
  service_options.transaction_idle_timeout =
      absl::GetFlag(FLAGS_transaction_idle_timeout);
  service_options.max_inflight_writes = absl::GetFlag(FLAGS_max_inflight_writes);
  service_options.max_open_transactions_per_client =
      absl::GetFlag(FLAGS_max_open_transactions_per_client);
  service_options.max_watches_per_client = absl::GetFlag(FLAGS_max_watches_per_client);
  service_options.max_inflight_write_bytes = absl::GetFlag(FLAGS_max_inflight_write_bytes);
  service_options.merge_conflict_bytes = std::min<uint64_t>(
      service_options.merge_conflict_bytes, absl::GetFlag(FLAGS_max_message_bytes) / 2);
  if (absl::Status s = Validate(service_options); !s.ok()) {
    cowdb::server::Log("error", "bad flags", absl::StrCat("error=\"", s.message(), "\""));
    return 1;
  }

  cowdb::Options options;
  uint64_t retain = absl::GetFlag(FLAGS_retain_versions);
  options.retain_versions = retain == 0 ? cowdb::Options::kRetainAll : retain;
  std::string dir = absl::GetFlag(FLAGS_data_dir);
  // Under `bazel run`, resolve a relative directory against the caller's.
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd != nullptr && !dir.empty() && dir[0] != '/') {
    dir = absl::StrCat(cwd, "/", dir);
  }
  // Hot backups are staged beside the data directory (same file system:
  // RocksDB hard-links its files), then streamed to the client.
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  service_options.backup_staging_prefix = dir + ".backup-staging-";
  // In a cluster (--rados_pool) the node owns the database; else `db`.
  std::unique_ptr<cowdb::cluster::Node> node;
  absl::StatusOr<std::unique_ptr<cowdb::DB>> db = std::unique_ptr<cowdb::DB>();
  const std::string pool = absl::GetFlag(FLAGS_rados_pool);
  std::string where = absl::StrCat("dir=\"", dir, "\"");
  if (pool.empty()) {
    db = cowdb::DB::Open(options, dir);
  } else {
    absl::StatusOr<cowdb::cluster::NodeOptions> node_options = NodeOptionsFromFlags(signals);
    if (!node_options.ok()) {
      cowdb::server::Log("error", "bad flags",
                         absl::StrCat("error=\"", node_options.status().message(), "\""));
      return 1;
    }
    where = absl::StrCat("pool=", pool, " name=", node_options->rados.name,
                         " role=", absl::GetFlag(FLAGS_role));
    absl::StatusOr<std::unique_ptr<cowdb::cluster::Node>> started =
        cowdb::cluster::Node::Start(options, *node_options, [](const std::string& reason) {
          // The storage fences this writer already; exit so that a
          // supervisor restarts it as a standby.
          cowdb::server::Log("error", "exiting: no longer the writer",
                             absl::StrCat("reason=\"", reason, "\""));
          std::_Exit(75);
        });
    if (started.ok()) {
      node = *std::move(started);
    } else if (absl::IsCancelled(started.status())) {
      cowdb::server::Log("info", "stopped", "role=standby");
      return 0;
    } else {
      db = started.status();
    }
  }
  if (!db.ok()) {
    cowdb::server::Log("error", "cannot open the database",
        absl::StrCat(where, " error=\"", db.status().ToString(), "\""));
    return 1;
  }
  cowdb::DB* const database = node != nullptr ? node->db() : db->get();

  absl::StatusOr<std::unique_ptr<cowdb::server::AccessControl>> access =
      cowdb::server::AccessControl::Open(database, access_options);
  if (!access.ok()) {
    cowdb::server::Log("error", "cannot load users and roles",
        absl::StrCat("error=\"", access.status().ToString(), "\""));
    return 1;
  }
  auto txns = std::make_unique<cowdb::server::TransactionRegistry>(service_options);
  cowdb::server::CallWatchdog watchdog;
  const cowdb::server::ServiceContext service_context{database, txns.get(), service_options,
                                                      access->get(), &watchdog};
  cowdb::server::KvService kv(service_context);
  cowdb::server::VersionsService versions(service_context);
  cowdb::server::AuthService auth_service(access->get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Every RPC is counted and timed (when metrics are on).
  cowdb::server::RpcMetrics rpc_metrics;
  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(rpc_metrics.InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, *creds, &port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&kv);
  builder.RegisterService(&versions);
  builder.RegisterService(&auth_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    cowdb::server::Log("error", "cannot listen", absl::StrCat("addr=\"", listen, "\""));
    return 1;
  }
  std::string host = listen.substr(0, listen.rfind(':'));
  std::string addr = absl::StrCat(host, ":", port);
  cowdb::server::Log("info", "serving", absl::StrCat("addr=", addr, " ", where,
                                       " version=", database->LatestVersion()));
  std::cout << "listening on " << addr << std::endl;

  std::unique_ptr<cowdb::server::MetricsHttpServer> metrics;
  if (!metrics_listen.empty()) {
    cowdb::server::MetricsSources sources;
    sources.db = database;
    sources.open_transactions = [&txns] { return txns->size(); };
    sources.rpcs = &rpc_metrics;
    sources.admission = &kv.admission();
    absl::StatusOr<std::unique_ptr<cowdb::server::MetricsHttpServer>> m =
        cowdb::server::MetricsHttpServer::Start(
            metrics_listen, [sources] { return cowdb::server::RenderMetrics(sources); });
    if (!m.ok()) {
      cowdb::server::Log("error", "cannot serve metrics",
                         absl::StrCat("error=\"", m.status().message(), "\""));
      server->Shutdown();
      return 1;
    }
    metrics = *std::move(m);
    cowdb::server::Log("info", "serving metrics", absl::StrCat("addr=", metrics->addr()));
    std::cout << "metrics on " << metrics->addr() << std::endl;
  }

  // The etcd face, on its own address.
  std::unique_ptr<cowdb::server::etcd::EtcdFace> etcd;
  std::unique_ptr<grpc::Server> etcd_server;
  if (const std::string etcd_listen = absl::GetFlag(FLAGS_etcd_listen); !etcd_listen.empty()) {
    grpc::ServerBuilder etcd_builder;
    int etcd_port = 0;
    etcd_builder.AddListeningPort(etcd_listen, *creds, &etcd_port);
    cowdb::server::etcd::EtcdOptions etcd_defaults;
    // As etcd: requests up to --max-request-bytes plus gRPC's overhead.
    etcd_builder.SetMaxReceiveMessageSize(
        static_cast<int>(etcd_defaults.max_request_bytes) + 512 * 1024);
    etcd_builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
    cowdb::server::etcd::EtcdOptions etcd_options;
    etcd_options.lease_file = dir + "/etcd-leases";
    etcd_options.max_txn_ops = absl::GetFlag(FLAGS_etcd_max_txn_ops);
    etcd_options.max_inflight_writes = absl::GetFlag(FLAGS_max_inflight_writes);
    etcd_options.max_inflight_write_bytes = absl::GetFlag(FLAGS_max_inflight_write_bytes);
    etcd_options.client_urls = {absl::StrCat(
        absl::GetFlag(FLAGS_tls_cert).empty() ? "http://" : "https://", etcd_listen)};
    absl::StatusOr<std::unique_ptr<cowdb::server::etcd::EtcdFace>> face =
        cowdb::server::etcd::EtcdFace::Create(database, etcd_options, access->get());
    if (!face.ok()) {
      cowdb::server::Log("error", "cannot start the etcd face",
                         absl::StrCat("error=\"", face.status().ToString(), "\""));
      return 1;
    }
    etcd = *std::move(face);
    etcd->Register(&etcd_builder);
    if (!metrics_listen.empty()) {
      std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> c;
      c.push_back(rpc_metrics.InterceptorFactory());
      etcd_builder.experimental().SetInterceptorCreators(std::move(c));
    }
    etcd_server = etcd_builder.BuildAndStart();
    if (etcd_server == nullptr || etcd_port == 0) {
      cowdb::server::Log("error", "cannot listen", absl::StrCat("addr=\"", etcd_listen, "\""));
      return 1;
    }
    std::string etcd_addr =
        absl::StrCat(etcd_listen.substr(0, etcd_listen.rfind(':')), ":", etcd_port);
    cowdb::server::Log("info", "serving etcd v3 API", absl::StrCat("addr=", etcd_addr));
    std::cout << "etcd API on " << etcd_addr << std::endl;
  }

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    cowdb::server::Log("info", "shutting down", absl::StrCat("signal=", sig));
    auto deadline = std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_shutdown_grace));
    if (etcd_server != nullptr) etcd_server->Shutdown(deadline);
    server->Shutdown(deadline);
  });
  server->Wait();
  stopper.join();
  if (etcd_server != nullptr) etcd_server->Wait();
  if (etcd != nullptr) etcd->Stop();
  etcd.reset();
  metrics.reset();  // before what it reads
  txns.reset();  // rolls back open transactions
  db->reset();
  node.reset();  // resigns the writer lease: a standby takes over at once
  cowdb::server::Log("info", "stopped");
  return 0;
}
