// Every method of a set of gRPC services, found from the generated
// descriptors, and a raw call of one: for tests that must cover each RPC,
// including ones added after the test was written.
#ifndef COWDB_TESTS_UTIL_GRPC_METHODS_H_
#define COWDB_TESTS_UTIL_GRPC_METHODS_H_

#include <chrono>
#include <future>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace cowdb::testing {

// "/package.Service/Method" for every method of `services` (full names);
// empty if one is not linked in.
inline std::vector<std::string> MethodsOf(std::initializer_list<const char*> services) {
  std::vector<std::string> out;
  for (const char* name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (service == nullptr) return {};
    for (int i = 0; i < service->method_count(); ++i) {
      out.push_back(absl::StrCat("/", service->full_name(), "/", service->method(i)->name()));
    }
  }
  return out;
}

// Calls `method` with an empty request (sent as raw bytes through the
// generic stub), carrying "authorization: Bearer <token>" unless `token`
// is empty; returns the call's status.
inline grpc::Status CallWithEmptyRequest(const std::shared_ptr<grpc::Channel>& channel,
                                         const std::string& method, const std::string& token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_GRPC_METHODS_H_
