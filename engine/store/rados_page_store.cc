#include "engine/store/rados_page_store.h"

#include <rados/librados.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {
namespace {

constexpr char kHead[] = "head";
constexpr char kMarkerAttr[] = "cowdb";
constexpr char kEpochAttr[] = "epoch";
// Omap keys of deletions a commit has yet to finish: "z/<epoch>.<seq>".
constexpr char kPendingPrefix[] = "z/";

// Objects written or removed at once by one commit.
constexpr size_t kMaxInFlight = 64;
// A page fits in the first read; larger blobs take a second.
constexpr size_t kFirstRead = 128 << 10;
// Omap entries fetched per round trip of a scan.
constexpr uint64_t kScanBatch = 512;

bool IsObjectSpace(Space s) { return s == Space::kPages || s == Space::kBlobs; }

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

std::string OmapPrefix(Space s) {
  return absl::StrCat(std::string(1, static_cast<char>('a' + static_cast<int>(s))),
                      "/");
}
std::string OmapKey(Space s, std::string_view key) {
  return absl::StrCat(OmapPrefix(s), Hex(key));
}
std::string ObjectPrefix(Space s) { return s == Space::kPages ? "p." : "b."; }
std::string ObjectName(Space s, std::string_view key) {
  return absl::StrCat(ObjectPrefix(s), Hex(key));
}
// Hex back to bytes; false on anything that is not even-length hex.
bool Unhex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(absl::string_view(hex.data(), hex.size()));
  return true;
}

// Epochs are compared by the OSD as strings: fixed width keeps that the
// numeric order.
std::string EpochBytes(uint64_t epoch) { return absl::StrFormat("%020u", epoch); }

std::string Errno(int r) { return std::strerror(r < 0 ? -r : r); }

// A librados error code as a Status; `what` says which operation.
absl::Status FromRados(int r, const std::string& what) {
  if (r >= 0) return absl::OkStatus();
  std::string msg = absl::StrCat(what, ": ", Errno(r));
  switch (-r) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case ETIMEDOUT:
    case ENOTCONN:
    case ECONNREFUSED:
    case EAGAIN:
    case ESHUTDOWN:
      return absl::UnavailableError(msg);
    case EINVAL:
      return absl::InvalidArgumentError(msg);
    case EDQUOT:
    case ENOSPC:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// RAII wrappers of librados handles.
struct WriteOp {
  WriteOp() : op(rados_create_write_op()) {}
  ~WriteOp() { rados_release_write_op(op); }
  WriteOp(const WriteOp&) = delete;
  WriteOp& operator=(const WriteOp&) = delete;
  rados_write_op_t op;
};
struct ReadOp {
  ReadOp() : op(rados_create_read_op()) {}
  ~ReadOp() { rados_release_read_op(op); }
  ReadOp(const ReadOp&) = delete;
  ReadOp& operator=(const ReadOp&) = delete;
  rados_read_op_t op;
};
struct Completion {
  Completion() { rados_aio_create_completion(nullptr, nullptr, nullptr, &c); }
  ~Completion() { rados_aio_release(c); }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  int Wait() {
    rados_aio_wait_for_complete(c);
    return rados_aio_get_return_value(c);
  }
  rados_completion_t c;
};

// Appends the entries an omap read returned to `out`.
void CollectOmap(rados_omap_iter_t iter,
                 std::vector<std::pair<std::string, std::string>>* out) {
  char* k;
  char* v;
  size_t klen, vlen;
  while (rados_omap_get_next2(iter, &k, &v, &klen, &vlen) == 0 && k != nullptr) {
    out->emplace_back(std::string(k, klen), std::string(v, vlen));
  }
}

class RadosPageStore : public PageStore {
 public:
  RadosPageStore(rados_t cluster, rados_ioctx_t io, uint64_t epoch,
                 bool read_only)
      : cluster_(cluster), io_(io), epoch_(epoch), read_only_(read_only) {}

  ~RadosPageStore() override {
    rados_ioctx_destroy(io_);
    rados_shutdown(cluster_);
  }

  absl::StatusOr<std::optional<std::string>> Get(
      Space space, std::string_view key) override {
    reads_.fetch_add(1, std::memory_order_relaxed);
    if (IsObjectSpace(space)) return ReadObject(ObjectName(space, key));
    std::vector<std::pair<std::string, std::string>> found;
    RETURN_IF_ERROR(OmapGet({OmapKey(space, key)}, &found));
    if (found.empty()) return std::nullopt;
    return std::move(found[0].second);
  }

  absl::Status Scan(Space space, std::string_view start,
                    const std::function<bool(std::string_view,
                                             std::string_view)>& fn) override {
    if (IsObjectSpace(space)) return ScanObjects(space, start, fn);
    const std::string prefix = OmapPrefix(space);
    // The largest string below every key >= start (see OmapScanStart).
    std::string after = OmapScanStart(space, start);
    std::string key;
    for (;;) {
      std::vector<std::pair<std::string, std::string>> entries;
      bool more = false;
      RETURN_IF_ERROR(OmapScan(after, prefix, &entries, &more));
      for (auto& [omap_key, value] : entries) {
        if (!Unhex(std::string_view(omap_key).substr(prefix.size()), &key)) {
          return absl::DataLossError(
              absl::StrCat("malformed key in the head object: ", omap_key));
        }
        if (!fn(key, value)) return absl::OkStatus();
      }
      if (!more || entries.empty()) return absl::OkStatus();
      after = entries.back().first;
    }
  }

  absl::Status Commit(const StoreBatch& batch, bool /*sync*/) override {
    if (read_only_) {
      return absl::FailedPreconditionError(
          "the store is open read-only (a replica cannot write)");
    }
    if (fenced_.load()) return Fenced();
    // The final state of each key, in batch order (a later op wins).
    std::map<std::string, std::optional<std::string>> omap;
    std::map<std::string, const std::string*> objects;  // nullptr: delete
    for (const StoreBatch::Op& op : batch.ops()) {
      if (IsObjectSpace(op.space)) {
        objects[ObjectName(op.space, op.key)] = op.is_delete ? nullptr : &op.value;
      } else if (op.is_delete) {
        omap[OmapKey(op.space, op.key)] = std::nullopt;
      } else {
        omap[OmapKey(op.space, op.key)] = op.value;
      }
    }

    std::map<std::string, const std::string*> object_puts;
    std::vector<std::string> object_deletes;
    for (const auto& [name, value] : objects) {
      if (value != nullptr) {
        object_puts.emplace(name, value);
      } else {
        object_deletes.push_back(name);
      }
    }

    // 1. Pages and blobs, all acknowledged before the head names them.
    RETURN_IF_ERROR(WriteObjects(object_puts));

    // 2. The head, atomically and fenced.
    std::string pending_key;
    if (!object_deletes.empty()) {
      pending_key = absl::StrCat(kPendingPrefix, EpochBytes(epoch_), ".",
                                 EpochBytes(pending_seq_.fetch_add(1)));
      omap[pending_key] = absl::StrJoin(object_deletes, "\n");
    }
    RETURN_IF_ERROR(UpdateHead(omap));
    commits_.fetch_add(1, std::memory_order_relaxed);
    bytes_written_.fetch_add(batch.bytes(), std::memory_order_relaxed);

    // 3. What the batch deleted. The batch is committed whatever happens
    // here: an error leaves the pending record for the next writer.
    if (!pending_key.empty()) {
      RETURN_IF_ERROR(RemoveObjects(object_deletes));
      std::map<std::string, std::optional<std::string>> done;
      done[pending_key] = std::nullopt;
      RETURN_IF_ERROR(UpdateHead(done));
    }
    return absl::OkStatus();
  }

  StoreStats GetStats() override {
    StoreStats s;
    s.reads = reads_.load(std::memory_order_relaxed);
    s.commits = commits_.load(std::memory_order_relaxed);
    s.syncs = s.commits;  // every RADOS write is acknowledged when durable
    s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    return s;
  }

  // Removes what commits of earlier writers left pending (a crash between
  // a commit's head step and its removals).
  absl::Status FinishPendingDeletes() {
    std::vector<std::pair<std::string, std::string>> entries;
    bool more = true;
    std::string after = "z";  // below every "z/..." key
    while (more) {
      size_t before = entries.size();
      RETURN_IF_ERROR(OmapScan(after, kPendingPrefix, &entries, &more));
      if (entries.size() == before) break;
      after = entries.back().first;
    }
    for (const auto& [key, names] : entries) {
      std::vector<std::string> objects =
          absl::StrSplit(names, '\n', absl::SkipEmpty());
      RETURN_IF_ERROR(RemoveObjects(objects));
      std::map<std::string, std::optional<std::string>> done;
      done[key] = std::nullopt;
      RETURN_IF_ERROR(UpdateHead(done));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Fenced() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "fenced: this writer's epoch ", epoch_,
        " was superseded by a newer writer of the database"));
  }

  // Keys >= start of `space` are exactly the omap keys > the result: the
  // hex of `start` with its last digit lowered by one and followed by a
  // character above every hex digit (or the bare space letter for "").
  static std::string OmapScanStart(Space space, std::string_view start) {
    std::string prefix = OmapPrefix(space);
    if (start.empty()) return prefix.substr(0, 1);
    std::string key = absl::StrCat(prefix, Hex(start));
    key.back() = static_cast<char>(key.back() - 1);
    key.push_back('~');
    return key;
  }

  absl::Status OmapGet(const std::vector<std::string>& keys,
                       std::vector<std::pair<std::string, std::string>>* out) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& k : keys) {
      ptrs.push_back(k.data());
      lens.push_back(k.size());
    }
    ReadOp op;
    rados_omap_iter_t iter = nullptr;
    int rval = 0;
    rados_read_op_omap_get_vals_by_keys2(op.op, ptrs.data(), ptrs.size(),
                                         lens.data(), &iter, &rval);
    int r = rados_read_op_operate(op.op, io_, kHead, 0);
    if (r == 0) r = rval;
    if (r < 0) {
      if (iter != nullptr) rados_omap_get_end(iter);
      return FromRados(r, "read the head object");
    }
    CollectOmap(iter, out);
    rados_omap_get_end(iter);
    return absl::OkStatus();
  }

  absl::Status OmapScan(const std::string& after, const std::string& prefix,
                        std::vector<std::pair<std::string, std::string>>* out,
                        bool* more) {
    ReadOp op;
    rados_omap_iter_t iter = nullptr;
    unsigned char pmore = 0;
    int rval = 0;
    rados_read_op_omap_get_vals2(op.op, after.c_str(), prefix.c_str(),
                                 kScanBatch, &iter, &pmore, &rval);
    int r = rados_read_op_operate(op.op, io_, kHead, 0);
    if (r == 0) r = rval;
    if (r < 0) {
      if (iter != nullptr) rados_omap_get_end(iter);
      return FromRados(r, "scan the head object");
    }
    CollectOmap(iter, out);
    rados_omap_get_end(iter);
    *more = pmore != 0;
    return absl::OkStatus();
  }

  // Applies `omap` (nullopt = delete) to the head in one operation that
  // succeeds only while the head's epoch is ours.
  absl::Status UpdateHead(
      const std::map<std::string, std::optional<std::string>>& omap) {
    std::vector<const char*> set_keys, set_vals, rm_keys;
    std::vector<size_t> set_klens, set_vlens, rm_klens;
    for (const auto& [key, value] : omap) {
      if (value.has_value()) {
        set_keys.push_back(key.data());
        set_klens.push_back(key.size());
        set_vals.push_back(value->data());
        set_vlens.push_back(value->size());
      } else {
        rm_keys.push_back(key.data());
        rm_klens.push_back(key.size());
      }
    }
    const std::string epoch = EpochBytes(epoch_);
    WriteOp op;
    rados_write_op_cmpxattr(op.op, kEpochAttr, LIBRADOS_CMPXATTR_OP_EQ,
                            epoch.data(), epoch.size());
    if (!set_keys.empty()) {
      rados_write_op_omap_set2(op.op, set_keys.data(), set_vals.data(),
                               set_klens.data(), set_vlens.data(),
                               set_keys.size());
    }
    if (!rm_keys.empty()) {
      rados_write_op_omap_rm_keys2(op.op, rm_keys.data(), rm_klens.data(),
                                   rm_keys.size());
    }
    int r = rados_write_op_operate2(op.op, io_, kHead, nullptr, 0);
    if (r == -ECANCELED) {
      fenced_.store(true);
      return Fenced();
    }
    return FromRados(r, "write the head object");
  }

  // Writes each object: created exclusively, or (when it exists, left by a
  // writer that crashed before naming it) overwritten if its epoch is not
  // newer than ours.
  absl::Status WriteObjects(
      const std::map<std::string, const std::string*>& objects) {
    const std::string epoch = EpochBytes(epoch_);
    std::vector<std::pair<std::string, const std::string*>> exists;
    auto it = objects.begin();
    while (it != objects.end()) {
      std::vector<std::unique_ptr<WriteOp>> ops;
      std::vector<std::unique_ptr<Completion>> done;
      std::vector<decltype(it)> which;
      for (; it != objects.end() && ops.size() < kMaxInFlight; ++it) {
        auto op = std::make_unique<WriteOp>();
        rados_write_op_create(op->op, LIBRADOS_CREATE_EXCLUSIVE, nullptr);
        rados_write_op_write_full(op->op, it->second->data(),
                                  it->second->size());
        rados_write_op_setxattr(op->op, kEpochAttr, epoch.data(),
                                epoch.size());
        auto c = std::make_unique<Completion>();
        int r = rados_aio_write_op_operate(op->op, io_, c->c,
                                           it->first.c_str(), nullptr, 0);
        if (r < 0) {
          // Not submitted: wait for the rest before returning.
          for (auto& d : done) d->Wait();
          return FromRados(r, absl::StrCat("write ", it->first));
        }
        ops.push_back(std::move(op));
        done.push_back(std::move(c));
        which.push_back(it);
      }
      absl::Status status;
      for (size_t i = 0; i < done.size(); ++i) {
        int r = done[i]->Wait();
        if (r == -EEXIST) {
          exists.emplace_back(which[i]->first, which[i]->second);
        } else if (r < 0 && status.ok()) {
          status = FromRados(r, absl::StrCat("write ", which[i]->first));
        }
      }
      RETURN_IF_ERROR(status);
    }
    for (const auto& [name, value] : exists) {
      WriteOp op;
      rados_write_op_cmpxattr(op.op, kEpochAttr, LIBRADOS_CMPXATTR_OP_GTE,
                              epoch.data(), epoch.size());
      rados_write_op_write_full(op.op, value->data(), value->size());
      rados_write_op_setxattr(op.op, kEpochAttr, epoch.data(), epoch.size());
      int r = rados_write_op_operate2(op.op, io_, name.c_str(), nullptr, 0);
      if (r == -ECANCELED) {
        fenced_.store(true);
        return Fenced();
      }
      RETURN_IF_ERROR(FromRados(r, absl::StrCat("overwrite ", name)));
    }
    return absl::OkStatus();
  }

  // Removes objects; ones already gone are fine.
  absl::Status RemoveObjects(const std::vector<std::string>& all) {
    for (size_t begin = 0; begin < all.size(); begin += kMaxInFlight) {
      size_t end = std::min(all.size(), begin + kMaxInFlight);
      std::vector<std::unique_ptr<Completion>> done;
      absl::Status status;
      for (size_t i = begin; i < end; ++i) {
        auto c = std::make_unique<Completion>();
        int r = rados_aio_remove(io_, all[i].c_str(), c->c);
        if (r < 0) {
          status = FromRados(r, absl::StrCat("remove ", all[i]));
          break;
        }
        done.push_back(std::move(c));
      }
      for (size_t i = 0; i < done.size(); ++i) {
        int r = done[i]->Wait();
        if (r < 0 && r != -ENOENT && status.ok()) {
          status = FromRados(r, absl::StrCat("remove ", all[begin + i]));
        }
      }
      RETURN_IF_ERROR(status);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<std::string>> ReadObject(
      const std::string& name) {
    // The first read lands in a per-thread buffer, so that reading a 4 KiB
    // page neither allocates nor clears kFirstRead bytes.
    thread_local std::string first(kFirstRead, '\0');
    size_t bytes_read = 0;
    uint64_t size = 0;
    time_t mtime;
    int stat_rval = 0, read_rval = 0;
    {
      ReadOp op;
      rados_read_op_stat(op.op, &size, &mtime, &stat_rval);
      rados_read_op_read(op.op, 0, first.size(), first.data(), &bytes_read,
                         &read_rval);
      int r = rados_read_op_operate(op.op, io_, name.c_str(), 0);
      if (r == -ENOENT) return std::nullopt;
      if (r == 0) r = stat_rval < 0 ? stat_rval : read_rval;
      RETURN_IF_ERROR(FromRados(r, absl::StrCat("read ", name)));
    }
    std::string value(first.data(), bytes_read);
    value.resize(size);
    while (bytes_read < size) {
      int r = rados_read(io_, name.c_str(), value.data() + bytes_read,
                         size - bytes_read, bytes_read);
      if (r == 0) {
        return absl::DataLossError(
            absl::StrCat(name, " shrank while being read"));
      }
      RETURN_IF_ERROR(FromRados(r, absl::StrCat("read ", name)));
      bytes_read += r;
    }
    return value;
  }

  // Objects are listed in hash order: collect the space's names, sort, read.
  absl::Status ScanObjects(
      Space space, std::string_view start,
      const std::function<bool(std::string_view, std::string_view)>& fn) {
    const std::string prefix = ObjectPrefix(space);
    std::vector<std::string> keys;
    rados_list_ctx_t ctx;
    RETURN_IF_ERROR(FromRados(rados_nobjects_list_open(io_, &ctx),
                              "list the database's objects"));
    for (;;) {
      const char* entry;
      size_t entry_size = 0;
      int r = rados_nobjects_list_next2(ctx, &entry, nullptr, nullptr,
                                        &entry_size, nullptr, nullptr);
      if (r == -ENOENT) break;
      if (r < 0) {
        rados_nobjects_list_close(ctx);
        return FromRados(r, "list the database's objects");
      }
      std::string_view name(entry, entry_size);
      std::string key;
      if (name.substr(0, prefix.size()) == prefix &&
          Unhex(name.substr(prefix.size()), &key) && key >= start) {
        keys.push_back(std::move(key));
      }
    }
    rados_nobjects_list_close(ctx);
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) {
      ASSIGN_OR_RETURN(std::optional<std::string> value,
                       ReadObject(ObjectName(space, key)));
      if (!value.has_value()) continue;  // removed since the listing
      if (!fn(key, *value)) break;
    }
    return absl::OkStatus();
  }

  rados_t cluster_;
  rados_ioctx_t io_;
  const uint64_t epoch_;
  const bool read_only_;
  std::atomic<bool> fenced_{false};
  std::atomic<uint64_t> pending_seq_{0};
  std::atomic<uint64_t> reads_{0}, commits_{0}, bytes_written_{0};
};

// A connected cluster handle and an I/O context on the database's
// namespace; destroyed unless released.
struct Connection {
  ~Connection() {
    if (io != nullptr) rados_ioctx_destroy(io);
    if (cluster != nullptr) rados_shutdown(cluster);
  }
  rados_t cluster = nullptr;
  rados_ioctx_t io = nullptr;
};

absl::Status Connect(const RadosStoreOptions& options, Connection* conn) {
  if (options.pool.empty() || options.name.empty()) {
    return absl::InvalidArgumentError(
        "a RADOS store needs a pool and a database name");
  }
  const std::string where =
      options.conf_path.empty() ? "the default Ceph configuration"
                                : absl::StrCat("Ceph at ", options.conf_path);
  RETURN_IF_ERROR(FromRados(
      rados_create(&conn->cluster, options.client_id.c_str()),
      absl::StrCat("create a Ceph client '", options.client_id, "'")));
  int r = rados_conf_read_file(
      conn->cluster,
      options.conf_path.empty() ? nullptr : options.conf_path.c_str());
  if (r < 0) return FromRados(r, absl::StrCat("read ", where));
  const std::string timeout = absl::StrCat(options.op_timeout_seconds);
  for (const char* option :
       {"client_mount_timeout", "rados_mon_op_timeout", "rados_osd_op_timeout"}) {
    RETURN_IF_ERROR(FromRados(
        rados_conf_set(conn->cluster, option, timeout.c_str()),
        absl::StrCat("set ", option)));
  }
  r = rados_connect(conn->cluster);
  if (r < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", where, ": ", Errno(r)));
  }
  r = rados_ioctx_create(conn->cluster, options.pool.c_str(), &conn->io);
  if (r == -ENOENT) {
    return absl::NotFoundError(absl::StrCat(
        "Ceph pool '", options.pool, "' does not exist (", where, ")"));
  }
  RETURN_IF_ERROR(FromRados(r, absl::StrCat("open pool ", options.pool)));
  rados_ioctx_set_namespace(conn->io, options.name.c_str());
  return absl::OkStatus();
}

// The head's xattr `name`: nullopt if the head has no such attribute,
// NotFound if there is no head.
absl::StatusOr<std::optional<std::string>> GetAttr(rados_ioctx_t io,
                                                   const char* name) {
  char buf[256];
  int r = rados_getxattr(io, kHead, name, buf, sizeof(buf));
  if (r == -ENODATA) return std::nullopt;
  RETURN_IF_ERROR(FromRados(r, absl::StrCat("read the head's ", name)));
  return std::string(buf, r);
}

absl::StatusOr<uint64_t> ParseEpoch(const std::string& bytes) {
  uint64_t epoch;
  if (!absl::SimpleAtoi(bytes, &epoch)) {
    return absl::DataLossError(
        absl::StrCat("the database's epoch is malformed: '", bytes, "'"));
  }
  return epoch;
}

// Creates the head if the namespace has none (and we may), then checks it.
absl::Status OpenHead(const RadosStoreOptions& options, rados_ioctx_t io) {
  const std::string db =
      absl::StrCat("database '", options.name, "' in pool '", options.pool, "'");
  auto marker = GetAttr(io, kMarkerAttr);
  if (absl::IsNotFound(marker.status())) {
    if (options.read_only || !options.create_if_missing) {
      return absl::NotFoundError(absl::StrCat(db, " does not exist"));
    }
    const std::string mark = absl::StrCat("cowdb rados ", kRadosLayoutVersion);
    const std::string epoch = EpochBytes(0);
    WriteOp op;
    rados_write_op_create(op.op, LIBRADOS_CREATE_EXCLUSIVE, nullptr);
    rados_write_op_setxattr(op.op, kMarkerAttr, mark.data(), mark.size());
    rados_write_op_setxattr(op.op, kEpochAttr, epoch.data(), epoch.size());
    int r = rados_write_op_operate2(op.op, io, kHead, nullptr, 0);
    if (r != -EEXIST) RETURN_IF_ERROR(FromRados(r, absl::StrCat("create ", db)));
    marker = GetAttr(io, kMarkerAttr);  // ours, or a concurrent creator's
  }
  RETURN_IF_ERROR(marker.status());
  if (!marker->has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat(db, ": its head object is not a cowdb database's"));
  }
  const std::string& mark = **marker;
  int layout = 0;
  if (!absl::StartsWith(mark, "cowdb rados ") ||
      !absl::SimpleAtoi(mark.substr(12), &layout)) {
    return absl::FailedPreconditionError(
        absl::StrCat(db, ": unrecognized marker '", mark, "'"));
  }
  if (layout > kRadosLayoutVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        db, " has layout ", layout, "; this build reads up to ",
        kRadosLayoutVersion));
  }
  return absl::OkStatus();
}

// Raises the head's epoch to `options.epoch` (or the stored one plus one);
// returns the epoch taken.
absl::StatusOr<uint64_t> TakeEpoch(const RadosStoreOptions& options,
                                   rados_ioctx_t io) {
  ASSIGN_OR_RETURN(std::optional<std::string> attr, GetAttr(io, kEpochAttr));
  const std::string stored_bytes = attr.value_or(EpochBytes(0));
  ASSIGN_OR_RETURN(uint64_t stored, ParseEpoch(stored_bytes));
  const uint64_t epoch = options.epoch != 0 ? options.epoch : stored + 1;
  const std::string bytes = EpochBytes(epoch);
  WriteOp op;
  if (options.epoch == 0) {
    rados_write_op_cmpxattr(op.op, kEpochAttr, LIBRADOS_CMPXATTR_OP_EQ,
                            stored_bytes.data(), stored_bytes.size());
  } else {
    // Passes when our epoch >= the stored one (the OSD compares the
    // supplied value against the stored one).
    rados_write_op_cmpxattr(op.op, kEpochAttr, LIBRADOS_CMPXATTR_OP_GTE,
                            bytes.data(), bytes.size());
  }
  rados_write_op_setxattr(op.op, kEpochAttr, bytes.data(), bytes.size());
  int r = rados_write_op_operate2(op.op, io, kHead, nullptr, 0);
  if (r == -ECANCELED) {
    if (options.epoch == 0) {
      return absl::AbortedError(
          "another writer opened the database at the same moment");
    }
    auto now = GetAttr(io, kEpochAttr);
    uint64_t current = 0;
    std::string theirs = "(unreadable)";
    if (now.ok() && now->has_value() && absl::SimpleAtoi(**now, &current)) {
      theirs = absl::StrCat(current);
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "fenced: epoch ", epoch, " is older than the database's epoch ",
        theirs));
  }
  RETURN_IF_ERROR(FromRados(r, "take the database's epoch"));
  return epoch;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PageStore>> OpenRadosPageStore(
    const RadosStoreOptions& options) {
  Connection conn;
  RETURN_IF_ERROR(Connect(options, &conn));
  RETURN_IF_ERROR(OpenHead(options, conn.io));
  uint64_t epoch = 0;
  if (!options.read_only) {
    ASSIGN_OR_RETURN(epoch, TakeEpoch(options, conn.io));
  }
  auto store = std::make_unique<RadosPageStore>(conn.cluster, conn.io, epoch,
                                                options.read_only);
  conn.cluster = nullptr;
  conn.io = nullptr;
  if (!options.read_only) RETURN_IF_ERROR(store->FinishPendingDeletes());
  return std::unique_ptr<PageStore>(std::move(store));
}

absl::StatusOr<uint64_t> ReadRadosEpoch(const RadosStoreOptions& options) {
  Connection conn;
  RETURN_IF_ERROR(Connect(options, &conn));
  auto stored = GetAttr(conn.io, kEpochAttr);
  if (absl::IsNotFound(stored.status())) return 0;
  RETURN_IF_ERROR(stored.status());
  if (!stored->has_value()) return 0;
  return ParseEpoch(**stored);
}

}  // namespace cowdb::internal
