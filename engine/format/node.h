// The in-memory form of a B+tree node, shared by the page codec (which
// encodes and decodes it) and the tree (which reads and builds it).
//
// A node reachable from a published version is immutable and shared as a
// NodeRef. A node being built by a commit ("dirty") is owned by that commit
// through a DirtyRef; when the commit writes it, the page it encodes to is
// decoded again into the immutable node readers see.
//
// Keys and inline values are views, not copies. An immutable node's views
// point into its own page bytes (`page`), so a decoded node is one buffer
// plus an array of small fixed-size entries: no allocation per key. A
// dirty node's views point into storage its TreeBuilder keeps alive (the
// committed pages it copied, and an arena for the bytes put), which is why
// a dirty node never outlives its builder.

#ifndef COWDB_ENGINE_FORMAT_NODE_H_
#define COWDB_ENGINE_FORMAT_NODE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/proof.h"
#include "engine/util/mutex.h"

namespace cowdb::internal {

struct Node;
// Blob bytes held in memory, by the address of their first byte.
using BlobPool =
    absl::flat_hash_map<const char*, std::shared_ptr<const std::string>>;
using NodeRef = std::shared_ptr<const Node>;
using DirtyRef = std::shared_ptr<Node>;

// A value as stored in a leaf: inline bytes, or a blob (a value stored out
// of line because it is longer than the inline limit).
//
// A blob decoded from a page is a reference: `blob_id` names it and `data`
// is empty until it is loaded. A blob in a node not yet written (or copied
// from one) holds its bytes in `data` (kept alive by the node's
// `held_blobs`) and gets its id when a checkpoint writes it; `blob_id` is
// 0 until then.
struct StoredValue {
  uint64_t blob_id = 0;    // the blob's id; 0 = inline, or not yet assigned
  uint64_t blob_size = 0;  // length of a blob's value; 0 = inline
  std::string_view data;   // the inline value, or a blob's bytes in memory
  // A blob's BlobDigest (proof.h), 32 bytes; empty in a database that
  // does not hash (and in pages written before page format 3).
  std::string_view digest;

  bool is_blob() const { return blob_size != 0; }
  // Whether the bytes are in `data` (else the blob must be loaded by id).
  bool in_memory() const { return !is_blob() || !data.empty(); }
  uint64_t size() const { return is_blob() ? blob_size : data.size(); }
};

// A key's entry. Besides the value, what the public KeyMeta reports
// (iterator.h): the tree sets these when it applies a put
// (TreeBuilder::Put), from the entry the put replaces.
struct LeafEntry {
  std::string_view key;
  StoredValue value;
  uint64_t mod_version = 0;     // the version that last wrote this key
  uint64_t create_version = 0;  // the version whose put created it
                                // (<= mod_version)
  uint64_t writes = 0;          // puts since its creation, >= 1
  uint64_t lease = 0;           // what the last put attached; 0 = none
};

// An internal node's reference to a child subtree: a stored page, a node
// in memory that a published version reaches (not yet written when the
// reference was made; see Node::written_id), or a node being built.
struct ChildRef {
  uint64_t page_id = 0;  // 0 unless the child is a stored page
  NodeRef mem;           // set for a published node held in memory
  DirtyRef dirty;        // set while the child is being built
  uint64_t count = 0;    // entries in the subtree
  uint64_t max_mod = 0;  // the last version that changed the subtree
                         // (= the child page's birth version)
  Hash hash{};           // the child's Merkle hash (format/merkle.h); zero
                         // in a database that does not hash, and while
                         // the child is being built
};

// An immutable internal node's links to its decoded children, kept by
// nodes above level 1 (whose children are internal nodes too). Readers
// link a child on first use; after that a descent reaches it with one
// atomic load: no cache lock, no hash lookup, no reference count. A linked
// child lives as long as its parent, so links hold only internal nodes, a
// small fraction of a tree, outside the cache's eviction. Leaves are never
// linked: their memory stays bounded by the node cache.
class ChildLinks {
 public:
  explicit ChildLinks(size_t children) : slots_(new Slot[children]) {}

  // Child i if it is linked, else nullptr.
  const Node* Get(size_t i) const {
    return slots_[i].node.load(std::memory_order_acquire);
  }
  // Child i as a reference of its own if it is linked, else nullptr.
  NodeRef GetRef(size_t i) const {
    // The owner is written once, before the release store Get acquires.
    if (Get(i) == nullptr) return nullptr;
    return slots_[i].owner;
  }
  // Links `child` as child i unless one is linked already; returns the
  // linked one.
  const Node* Link(size_t i, NodeRef child);

  // Memory of the links of a node with `children` children (not counting
  // the linked nodes, which are charged as what they are).
  static size_t BytesFor(size_t children) {
    return sizeof(ChildLinks) + children * sizeof(Slot);
  }

 private:
  struct Slot {
    std::atomic<const Node*> node{nullptr};
    NodeRef owner;  // written once, under mu_, before `node`
  };
  std::unique_ptr<Slot[]> slots_;
  Mutex mu_;  // serializes Link
};

// The page id a checkpoint gave a node held in memory; 0 until then. Set
// once. A copy of a node is a new, unwritten node: it copies as 0.
class WrittenId {
 public:
  WrittenId() = default;
  WrittenId(const WrittenId&) {}
  WrittenId& operator=(const WrittenId&) { return *this; }
  uint64_t get() const { return id_.load(std::memory_order_acquire); }
  void set(uint64_t id) const { id_.store(id, std::memory_order_release); }

 private:
  mutable std::atomic<uint64_t> id_{0};
};

struct Node {
  uint8_t level = 0;   // 0 = leaf; a parent is one above its children
  uint64_t birth = 0;  // the version that created this node

  // Leaf: the entries, strictly ascending by key.
  std::vector<LeafEntry> entries;

  // Internal: children.size() >= 1 and keys.size() == children.size() - 1.
  // Child i holds the keys k with keys[i-1] <= k < keys[i].
  std::vector<std::string_view> keys;
  std::vector<ChildRef> children;

  // The bytes the views point into (immutable nodes): the page a node was
  // decoded from, or the buffer a sealed node packed its keys and inline
  // values into. Shared, never copied, when a node is copied.
  std::shared_ptr<const std::string> page;
  // The bytes of the blobs not yet written whose values `entries` hold in
  // memory (see StoredValue).
  std::vector<std::shared_ptr<const std::string>> held_blobs;

  // For a node held in memory: its page id once a checkpoint wrote it, and
  // the ids that checkpoint gave to its held blobs (indexed like
  // `entries`; 0 for entries that are not blobs or that already had one).
  // Set by the checkpoint's planning step, which runs between commits;
  // read only by commits and checkpoints, never by readers.
  WrittenId written_id;
  mutable std::vector<uint64_t> assigned_blob_ids;

  // The search index of an immutable node (BuildIndex; empty while dirty):
  // the length of the prefix all its keys share, and for each key the 8
  // bytes after that prefix as a big-endian integer, zero-padded. Those
  // integers are ordered like the keys, so a binary search runs over one
  // dense array and compares whole keys only where two integers tie.
  size_t index_skip = 0;
  std::vector<uint64_t> index;
  // Links to the decoded children (BuildIndex, for levels >= 2; null
  // otherwise and while dirty). Shared, not copied, when a node is copied.
  std::shared_ptr<ChildLinks> links;

  bool is_leaf() const { return level == 0; }
  size_t size() const { return is_leaf() ? entries.size() : children.size(); }

  // Entries in this subtree.
  uint64_t count() const;

  // Approximate encoded size in bytes; what split and merge decisions use.
  size_t ByteSize() const;

  // The keys searched: a leaf's entry keys, an internal node's separators.
  size_t num_keys() const { return is_leaf() ? entries.size() : keys.size(); }
  std::string_view key(size_t i) const {
    return is_leaf() ? entries[i].key : keys[i];
  }

  // Builds the search index and, above level 1, the child links; for
  // nodes that will not change again.
  void BuildIndex();
  // Drops both; a node about to be modified must do this first.
  void DropIndex() {
    index_skip = 0;
    index = {};
    links = nullptr;
  }

  // Makes a node that was built in place immutable and self-contained:
  // copies its keys and inline values into one buffer of its own (`page`),
  // keeps only the held blobs its entries still use (found in `pool`, by
  // the address of their bytes), and builds the index. Children must be
  // sealed first (they are referenced, not copied).
  void Seal(const BlobPool& pool);
};

// The node's Merkle hash (format/merkle.h), from its entries or its
// children's hashes. REQUIRES: every blob entry has its digest.
Hash HashOf(const Node& n);

// The first i with n.key(i) >= key (LowerBound) or > key (UpperBound);
// n.num_keys() if none. Uses the index when the node has one.
size_t LowerBound(const Node& n, std::string_view key);
size_t UpperBound(const Node& n, std::string_view key);

// Encoded-size contributions, kept next to the format they approximate.
inline constexpr size_t kNodeHeaderBytes = 24;
size_t LeafEntryBytes(const LeafEntry& e);
// A child reference, and a separator with the child after it.
size_t ChildBytes(const ChildRef& c);
size_t ChildEntryBytes(std::string_view separator, const ChildRef& c);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_FORMAT_NODE_H_
