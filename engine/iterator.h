// An ordered iterator over the keys of one version.
//
//   auto it = db->NewIterator(cowdb::ReadOptions()).value();
//   for (it->Seek("user/"); it->Valid() && it->key() < "user0"; it->Next()) {
//     Use(it->key(), it->value());
//   }
//   if (!it->status().ok()) ...
//
// An iterator pins its version: it sees the same data however long it lives
// and whatever commits land meanwhile. It takes no locks.
//
// Thread safety: one iterator is used by one thread at a time.
// REQUIRES: an iterator is destroyed before its DB.

#ifndef COWDB_ENGINE_ITERATOR_H_
#define COWDB_ENGINE_ITERATOR_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace cowdb {

// What the database keeps about a key besides its value. A key that is
// deleted and put again starts over: new create_version, writes = 1.
struct KeyMeta {
  uint64_t mod_version = 0;     // the version that last wrote the key
  uint64_t create_version = 0;  // the version whose put created it
  uint64_t writes = 0;          // puts since it was created, that one
                                // included (etcd's per-key "version")
  uint64_t lease = 0;           // what the last put attached; 0 = none.
                                // An opaque number to the engine (the
                                // etcd face stores lease ids in it)
};

class Iterator {
 public:
  Iterator() = default;
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;
  virtual ~Iterator() = default;

  // True when positioned at an entry. False after moving past either end
  // or after an error (see status()).
  virtual bool Valid() const = 0;

  virtual void SeekToFirst() = 0;
  virtual void SeekToLast() = 0;
  // Positions at the first key >= `target`.
  virtual void Seek(std::string_view target) = 0;

  // REQUIRES: Valid().
  virtual void Next() = 0;
  // REQUIRES: Valid().
  virtual void Prev() = 0;

  // REQUIRES: Valid(). The returned views stay valid until the iterator
  // moves or is destroyed.
  virtual std::string_view key() const = 0;
  // Reading a large (out of line) value may fail: then value() returns an
  // empty view, Valid() stays true and status() reports the error.
  virtual std::string_view value() const = 0;
  // The version that last wrote the current key.
  virtual uint64_t mod_version() const = 0;
  // REQUIRES: Valid(). Everything kept about the current key.
  virtual KeyMeta meta() const = 0;

  // The version this iterator reads.
  virtual uint64_t version() const = 0;

  // OK unless an error occurred (e.g. DataLoss for a corrupt page).
  virtual absl::Status status() const = 0;
};

}  // namespace cowdb

#endif  // COWDB_ENGINE_ITERATOR_H_
