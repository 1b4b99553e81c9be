// An in-process etcd face over a DB on a free loopback port, for tests.

#ifndef COWDB_TESTS_UTIL_ETCD_FACE_SERVER_H_
#define COWDB_TESTS_UTIL_ETCD_FACE_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "server/etcd/etcd.h"
#include "server/service.h"

namespace cowdb::testing {

class EtcdFaceServer {
 public:
  ~EtcdFaceServer() { Stop(); }

  // Serves `db` (which must outlive Stop) with `options`; users and roles
  // are kept in `db`, as cowdb_server keeps them.
  absl::Status Start(DB* db, server::etcd::EtcdOptions options) {
    server::AccessOptions access_options;
    access_options.kdf_iterations = 1000;  // fast tests; the server's default is far higher
    auto auth = server::AccessControl::Open(db, access_options);
    if (!auth.ok()) return auth.status();
    auth_ = *std::move(auth);
    auto face = server::etcd::EtcdFace::Create(db, std::move(options), auth_.get());
    if (!face.ok()) return face.status();
    face_ = *std::move(face);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    face_->Register(&b);
    server_ = b.BuildAndStart();
    if (server_ == nullptr || port == 0) return absl::InternalError("cannot listen");
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
    return absl::OkStatus();
  }

  // Shuts the server down, then the face. Idempotent.
  void Stop() {
    if (server_) server_->Shutdown();
    if (face_) face_->Stop();
    face_.reset();
    server_.reset();
    auth_.reset();
  }

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // REQUIRES: started.
  server::AccessControl* auth() const { return auth_.get(); }

 private:
  std::unique_ptr<server::AccessControl> auth_;
  std::unique_ptr<server::etcd::EtcdFace> face_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_ETCD_FACE_SERVER_H_
