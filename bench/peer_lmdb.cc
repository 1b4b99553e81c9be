// LMDB behind the peer interface. Default environment flags: every write
// transaction is synced at commit (no MDB_NOSYNC / MDB_NOMETASYNC /
// MDB_WRITEMAP), like cowdb's sync = true. Plain mdb_put (no MDB_APPEND
// for sorted loads: the same call as for random loads, like the others).

#include <lmdb.h>
#include <sys/stat.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "bench/peer.h"

namespace cowdb::bench {
namespace {

void MdbCheck(int rc, const char* what) {
  if (rc != MDB_SUCCESS) {
    std::cerr << "lmdb " << what << ": " << mdb_strerror(rc) << std::endl;
    std::exit(1);
  }
}

MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

class LmdbIterator final : public PeerIterator {
 public:
  LmdbIterator(MDB_txn* txn, MDB_dbi dbi) {
    MdbCheck(mdb_cursor_open(txn, dbi, &cursor_), "cursor open");
  }
  ~LmdbIterator() override { mdb_cursor_close(cursor_); }
  void Seek(std::string_view target) override {
    key_ = Val(target);
    Move(MDB_SET_RANGE);
  }
  void SeekToFirst() override { Move(MDB_FIRST); }
  bool Valid() const override { return valid_; }
  void Next() override { Move(MDB_NEXT); }
  std::string_view key() const override { return View(key_); }
  std::string_view value() const override { return View(value_); }

 private:
  void Move(MDB_cursor_op op) {
    int rc = mdb_cursor_get(cursor_, &key_, &value_, op);
    if (rc == MDB_NOTFOUND) {
      valid_ = false;
      return;
    }
    MdbCheck(rc, "cursor get");
    valid_ = true;
  }

  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{}, value_{};
  bool valid_ = false;
};

class LmdbReader final : public PeerReader {
 public:
  LmdbReader(MDB_env* env, MDB_dbi dbi) : dbi_(dbi) {
    MdbCheck(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_), "read txn");
  }
  ~LmdbReader() override { mdb_txn_abort(txn_); }
  bool Get(std::string_view key, std::string_view* value) override {
    MDB_val k = Val(key), v;
    int rc = mdb_get(txn_, dbi_, &k, &v);
    if (rc == MDB_NOTFOUND) return false;
    MdbCheck(rc, "get");
    *value = View(v);
    return true;
  }
  std::unique_ptr<PeerIterator> NewIterator() override {
    return std::make_unique<LmdbIterator>(txn_, dbi_);
  }

 private:
  MDB_txn* txn_ = nullptr;
  const MDB_dbi dbi_;
};

class LmdbPeer final : public PeerDB {
 public:
  LmdbPeer(MDB_env* env, MDB_dbi dbi, size_t map_bytes)
      : env_(env), dbi_(dbi), map_bytes_(map_bytes) {}
  ~LmdbPeer() override { mdb_env_close(env_); }
  const char* name() const override { return "lmdb"; }
  void Put(std::string_view key, std::string_view value) override {
    MDB_txn* txn;
    MdbCheck(mdb_txn_begin(env_, nullptr, 0, &txn), "write txn");
    MDB_val k = Val(key), v = Val(value);
    MdbCheck(mdb_put(txn, dbi_, &k, &v, 0), "put");
    MdbCheck(mdb_txn_commit(txn), "commit");
  }
  void Write(const std::vector<KV>& puts) override {
    MDB_txn* txn;
    MdbCheck(mdb_txn_begin(env_, nullptr, 0, &txn), "write txn");
    for (const KV& kv : puts) {
      MDB_val k = Val(kv.first), v = Val(kv.second);
      MdbCheck(mdb_put(txn, dbi_, &k, &v, 0), "put");
    }
    MdbCheck(mdb_txn_commit(txn), "commit");
  }
  std::unique_ptr<PeerReader> NewReader() override {
    return std::make_unique<LmdbReader>(env_, dbi_);
  }
  bool reads_old_versions() const override { return false; }
  std::string Settings() const override {
    return absl::StrFormat(
        "LMDB %d.%d.%d: default env flags (synced commits: no MDB_NOSYNC, "
        "MDB_NOMETASYNC, MDB_WRITEMAP), map size %u GiB, maxreaders 512, "
        "plain mdb_put (no MDB_APPEND)",
        MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH, map_bytes_ >> 30);
  }

 private:
  MDB_env* env_;
  MDB_dbi dbi_;
  size_t map_bytes_;
};

}  // namespace

std::unique_ptr<PeerDB> OpenLmdbPeer(const std::string& dir,
                                     const PeerOptions& options) {
  mkdir(dir.c_str(), 0755);
  MDB_env* env;
  MdbCheck(mdb_env_create(&env), "env create");
  MdbCheck(mdb_env_set_mapsize(env, options.lmdb_map_bytes), "set mapsize");
  MdbCheck(mdb_env_set_maxreaders(env, 512), "set maxreaders");
  MdbCheck(mdb_env_open(env, dir.c_str(), 0, 0644), "env open");
  MDB_txn* txn;
  MDB_dbi dbi;
  MdbCheck(mdb_txn_begin(env, nullptr, 0, &txn), "txn");
  MdbCheck(mdb_dbi_open(txn, nullptr, 0, &dbi), "dbi open");
  MdbCheck(mdb_txn_commit(txn), "commit");
  return std::make_unique<LmdbPeer>(env, dbi, options.lmdb_map_bytes);
}

}  // namespace cowdb::bench
