// A deterministic commit workload and its model, for tests that crash or
// break a database and then check what survived.
//
// The batch that version v commits is a pure function of (seed, v), so the
// model of any version can be rebuilt, whichever commits were lost and
// committed again: after a loss the writer commits the same batch again
// under the same version number.

#ifndef COWDB_TESTS_UTIL_WORKLOAD_H_
#define COWDB_TESTS_UTIL_WORKLOAD_H_

#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "engine/db.h"

namespace cowdb::testing {

using Model = std::map<std::string, std::string>;

// The batch that version `v` commits: 1 to `max_ops` puts and deletes over
// 3,000 keys, some values large enough to be blobs, plus "last_batch" = v.
// Every value names its version, so a mixed state shows. One put in four
// attaches lease v (KeyMeta::lease; logged as op 2) and says so in its
// value ("v<version>L:..."), so a reader can check it (LeaseOfValue).
inline WriteBatch BatchFor(uint64_t seed, uint64_t v, int max_ops = 60) {
  std::mt19937_64 rng(seed * 1000003 + v);
  WriteBatch batch;
  int n = 1 + rng() % max_ops;
  for (int i = 0; i < n; ++i) {
    std::string key = "k" + std::to_string(rng() % 3000);
    if (rng() % 4 == 0) {
      batch.Delete(key);
    } else {
      size_t len = rng() % 8 == 0 ? 2000 : rng() % 150;
      const bool leased = rng() % 4 == 0;
      batch.Put(key, "v" + std::to_string(v) + (leased ? "L:" : ":") + std::string(len, 'x'),
                leased ? v : 0);
    }
  }
  batch.Put("last_batch", std::to_string(v));
  return batch;
}

// The lease a value written by BatchFor must carry: its version if the
// value is marked leased, else 0.
inline uint64_t LeaseOfValue(std::string_view value) {
  size_t colon = value.find(':');
  if (value.size() < 2 || value[0] != 'v' || colon == std::string_view::npos ||
      value[colon - 1] != 'L') {
    return 0;
  }
  return std::stoull(std::string(value.substr(1, colon - 2)));
}

inline void ApplyBatch(const WriteBatch& batch, Model* m) {
  for (const auto& op : batch.ops()) {
    if (op.is_delete) {
      m->erase(op.key);
    } else {
      (*m)[op.key] = op.value;
    }
  }
}

// Models of versions of one seed, rebuilt from checkpoints every 64
// versions.
class ModelHistory {
 public:
  explicit ModelHistory(uint64_t seed, int max_ops = 60)
      : seed_(seed), max_ops_(max_ops) {
    checkpoints_[0] = Model();
  }

  Model At(uint64_t v) {
    auto it = std::prev(checkpoints_.upper_bound(v));
    Model m = it->second;
    for (uint64_t x = it->first + 1; x <= v; ++x) {
      ApplyBatch(BatchFor(seed_, x, max_ops_), &m);
      if (x % 64 == 0) checkpoints_.emplace(x, m);
    }
    return m;
  }

 private:
  uint64_t seed_;
  int max_ops_;
  std::map<uint64_t, Model> checkpoints_;
};

// Compares version `v` of `db` with `m`: "" if equal, otherwise the first
// difference (or the read error). For use where a mismatch must be counted
// rather than fail the test at once.
inline std::string DiffWithModel(DB* db, uint64_t v, const Model& m) {
  ReadOptions ro;
  ro.version = v;
  absl::StatusOr<std::unique_ptr<Iterator>> it = db->NewIterator(ro);
  if (!it.ok()) return "cannot iterate: " + it.status().ToString();
  auto mit = m.begin();
  for ((*it)->SeekToFirst(); (*it)->Valid(); (*it)->Next(), ++mit) {
    std::string key((*it)->key());
    if (mit == m.end()) return "extra key " + key;
    if (key != mit->first) return "key " + key + ", expected " + mit->first;
    std::string value((*it)->value());
    if (!(*it)->status().ok()) return "read error: " + (*it)->status().ToString();
    if (value != mit->second) {
      return "key " + key + " = " + value.substr(0, 20) + "..., expected " +
             mit->second.substr(0, 20) + "...";
    }
  }
  if (!(*it)->status().ok()) return "read error: " + (*it)->status().ToString();
  if (mit != m.end()) return "missing key " + mit->first;
  return "";
}

}  // namespace cowdb::testing

#endif  // COWDB_TESTS_UTIL_WORKLOAD_H_
