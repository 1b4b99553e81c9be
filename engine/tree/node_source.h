// Reading committed trees: the root of a published tree, and the loader of
// its stored pages and blobs (through the node cache).
//
// Thread safety: all methods may be called concurrently; a ValueReader is
// used by one thread.

#ifndef COWDB_ENGINE_TREE_NODE_SOURCE_H_
#define COWDB_ENGINE_TREE_NODE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/cache/node_cache.h"
#include "engine/format/node.h"
#include "engine/store/page_store.h"

namespace cowdb::internal {

// The root of a published tree.
struct Root {
  uint64_t page_id = 0;  // the stored root page; 0 = in memory, or empty
  uint64_t count = 0;    // entries in the tree
  uint64_t max_mod = 0;  // birth version of the root node
  // The tree's Merkle hash (format/merkle.h); zero in a database that does
  // not hash.
  Hash hash{};
  // The root node: the tree's only handle when it is held in memory
  // (page_id 0); else, when set, the stored root page pinned by the
  // holder of this Root. Null for the empty tree.
  NodeRef node;
  // Keeps the stored pages this tree reads: a use of the checkpoint it is
  // based on, which is not thinned away while used (version_store.h).
  // Null for trees outside a database.
  std::shared_ptr<const void> base;

  bool empty() const { return page_id == 0 && node == nullptr; }
};

// Loads committed pages and blobs: the node cache first, then the store.
class NodeSource {
 public:
  NodeSource(PageStore* store, NodeCache* cache) : store_(store), cache_(cache) {}

  // Errors: DataLoss for a missing or corrupt page; store errors.
  absl::StatusOr<NodeRef> Load(uint64_t page_id);
  // The root page of a non-empty tree: the pinned node, else Load.
  absl::StatusOr<NodeRef> LoadRoot(const Root& root);
  // Child i of the published internal node `parent`, borrowed from
  // `parent` when it holds the child in memory or links its children
  // (levels >= 2; see ChildLinks) and then valid for as long as `parent`
  // is; otherwise loaded and kept alive by `*hold`. Errors: those of Load; DataLoss if the child's level
  // is not one below its parent's.
  absl::StatusOr<const Node*> Child(const Node& parent, size_t i,
                                    NodeRef* hold);
  // The same, as a reference of its own.
  absl::StatusOr<NodeRef> LoadChild(const Node& parent, size_t i);
  // Calls `visit` on child i of `parent` (a leaf's parent: links are not
  // followed) without taking a reference to it when it is cached (under
  // the cache's lock: `visit` must be short and must not call into this
  // source). Errors: as Child.
  absl::Status VisitChild(const Node& parent, size_t i,
                          absl::FunctionRef<void(const Node&)> visit);
  absl::StatusOr<std::string> LoadBlob(uint64_t blob_id);
  // The bytes of a stored value: inline or held, or its blob loaded.
  absl::StatusOr<std::string> ReadValue(const StoredValue& v);


 private:
  // Loads child i of `parent` through the cache and checks its level.
  absl::StatusOr<NodeRef> LoadUnlinkedChild(const Node& parent, size_t i);
  // Loads from the store (a cache miss) and caches the node.
  absl::StatusOr<NodeRef> LoadFromStore(uint64_t page_id);

  PageStore* const store_;
  NodeCache* const cache_;
};

// Values for an iterator: inline ones as views into the node, blobs loaded
// on demand and kept until the next blob.
class ValueReader {
 public:
  explicit ValueReader(NodeSource* src) : src_(src) {}
  // The bytes of `v`, valid until the next call or the node's release. On
  // a blob read error returns an empty view and sets `*status`.
  std::string_view Read(const StoredValue& v, absl::Status* status);

 private:
  NodeSource* const src_;
  uint64_t blob_id_ = 0;
  std::string blob_;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_NODE_SOURCE_H_
