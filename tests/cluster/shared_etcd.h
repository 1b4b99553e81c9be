// A test fixture whose suite shares one etcd member (a LocalEtcd, started
// before the suite's first test and stopped after its last); the tests
// keep apart by using keys of their own. Where etcd is not installed,
// every test of the suite skips, saying so.
//
//   class FooTest : public SharedEtcdTest {
//    protected:
//     void SetUp() override {
//       SharedEtcdTest::SetUp();
//       if (IsSkipped() || HasFatalFailure()) return;
//       ... EtcdClient::Connect(etcd().endpoints(), ...)
//     }
//   };

#ifndef COWDB_TESTS_CLUSTER_SHARED_ETCD_H_
#define COWDB_TESTS_CLUSTER_SHARED_ETCD_H_

#include <memory>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/cluster/local_cluster.h"
#include "tests/util/status_matchers.h"

namespace cowdb::testing {

// What a test that needs etcd says when it skips (!EtcdInstalled()).
inline constexpr char kNoEtcdSkipMessage[] =
    "SKIPPED: needs the packages etcd-server and etcd-client "
    "(tools/setup.sh installs them)";

class SharedEtcdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!EtcdInstalled()) return;
    absl::StatusOr<std::unique_ptr<LocalEtcd>> etcd = LocalEtcd::Start(1);
    ASSERT_OK(etcd.status());
    etcd_ = etcd->release();
  }
  static void TearDownTestSuite() {
    delete etcd_;  // stops the member
    etcd_ = nullptr;
  }
  void SetUp() override {
    if (!EtcdInstalled()) GTEST_SKIP() << kNoEtcdSkipMessage;
    ASSERT_NE(etcd_, nullptr) << "the suite's etcd member did not start";
  }

  // The suite's member; valid once SetUp() has passed.
  static const LocalEtcd& etcd() { return *etcd_; }

 private:
  static inline LocalEtcd* etcd_ = nullptr;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_CLUSTER_SHARED_ETCD_H_
