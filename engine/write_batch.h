// A batch of writes applied atomically by DB::Write: one new version that
// contains all of them or (after a failure or crash) none of them.
//
//   cowdb::WriteBatch batch;
//   batch.Put("a", "1");
//   batch.Delete("b");
//   absl::StatusOr<uint64_t> v = db->Write(batch);
//
// Operations apply in the order they were added; for a key written twice
// the last write wins. Keys and values are copied into the batch.
//
// Thread safety: a batch is used by one thread at a time.

#ifndef COWDB_ENGINE_WRITE_BATCH_H_
#define COWDB_ENGINE_WRITE_BATCH_H_

#include <string>
#include <string_view>
#include <vector>

namespace cowdb {

class WriteBatch {
 public:
  struct Op {
    bool is_delete;
    std::string key;
    std::string value;  // empty for deletes
    uint64_t lease = 0;  // KeyMeta::lease for puts
  };

  // Sets `key` to `value`, attaching `lease` (KeyMeta::lease; 0 = none).
  void Put(std::string_view key, std::string_view value, uint64_t lease = 0) {
    bytes_ += key.size() + value.size();
    ops_.push_back({false, std::string(key), std::string(value), lease});
  }
  void Delete(std::string_view key) {
    bytes_ += key.size();
    ops_.push_back({true, std::string(key), {}, 0});
  }
  void Clear() {
    ops_.clear();
    bytes_ = 0;
  }

  // The branch the batch commits to ("" or "main": main; see DB::Fork).
  // Clear keeps it.
  void SetBranch(std::string_view branch) { branch_ = std::string(branch); }
  const std::string& branch() const { return branch_; }

  size_t Count() const { return ops_.size(); }
  // Sum of the key and value bytes in the batch.
  size_t ApproximateSize() const { return bytes_; }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
  std::string branch_;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_WRITE_BATCH_H_
