// A real cowdb_server process for end-to-end tests: started on a free
// loopback port, stopped with SIGTERM (expecting a clean exit) or killed.
// The test target needs data = ["//server:cowdb_server"].

#ifndef COWDB_TESTS_UTIL_SERVER_PROCESS_H_
#define COWDB_TESTS_UTIL_SERVER_PROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cowdb::testing {

class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Starts `cowdb_server --data_dir=dir --listen=127.0.0.1:0 flags...`.
  // Returns false if it exited before serving (see exit_status()).
  bool Start(const std::string& dir, const std::vector<std::string>& flags) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;  // no other child inherits it
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      std::vector<std::string> args = {"cowdb_server", "--data_dir=" + dir,
                                       "--listen=127.0.0.1:0"};
      args.insert(args.end(), flags.begin(), flags.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv("server/cowdb_server", argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[256] = {0};
    const bool got = fgets(line, sizeof(line), f) != nullptr;
    fclose(f);
    if (!got) {
      waitpid(pid_, &exit_status_, 0);
      pid_ = -1;
      return false;
    }
    std::string s(line);
    constexpr char kPrefix[] = "listening on ";
    EXPECT_EQ(s.rfind(kPrefix, 0), 0u) << s;
    addr_ = s.substr(sizeof(kPrefix) - 1, s.size() - sizeof(kPrefix));  // drop '\n'
    return true;
  }

  // SIGTERM; true if the server exited with status 0.
  bool Stop() {
    if (pid_ <= 0) return true;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // SIGKILL, no chance to clean up.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  bool running() const { return pid_ > 0; }
  // The server's process id; -1 when not running.
  pid_t pid() const { return pid_; }
  const std::string& addr() const { return addr_; }
  int exit_status() const { return exit_status_; }

 private:
  pid_t pid_ = -1;
  int exit_status_ = 0;
  std::string addr_;
};

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_SERVER_PROCESS_H_
