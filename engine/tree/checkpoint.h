// Writing a tree held in memory as pages: the tree half of a checkpoint.
//
// A commit publishes its new nodes in memory (TreeBuilder::Finish). A
// checkpoint later writes the nodes that the latest version reaches and
// that no earlier checkpoint wrote, each once, children before parents,
// with the blobs they hold. Nodes of versions in between that the latest
// no longer reaches are never written.
//
// It runs in two steps:
//  1. PlanCheckpoint, *between commits* (no TreeBuilder may run
//     meanwhile): gives each unwritten node its page id (Node::written_id)
//     and each held blob without one its blob id, so that a commit which
//     copies one of those nodes afterwards knows what its copy frees.
//  2. EncodeCheckpoint, concurrently with commits and readers: encodes
//     the planned nodes and blobs into a store batch. Nodes are immutable;
//     it only reads them.

#ifndef COWDB_ENGINE_TREE_CHECKPOINT_H_
#define COWDB_ENGINE_TREE_CHECKPOINT_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/cache/node_cache.h"
#include "engine/store/page_store.h"
#include "engine/tree/btree.h"

namespace cowdb::internal {

struct CheckpointPlan {
  Root root;                   // the tree, by its stored root page id
  std::vector<NodeRef> nodes;  // to write, children before parents
  uint64_t blobs = 0;          // blobs to write with them
  uint64_t bytes = 0;          // approximate bytes of the nodes (ByteSize)
};

// Plans the checkpoint of `root` (a published tree), taking ids from
// `*next_id`. A tree already stored plans nothing.
CheckpointPlan PlanCheckpoint(const Root& root, uint64_t* next_id);

// Adds the planned pages and blobs to `batch`.
void EncodeCheckpoint(const CheckpointPlan& plan, StoreBatch* batch);

// After a checkpoint is durable, lets go of what it wrote: gives the same
// trees with every node a checkpoint has written referenced by its page id
// instead of held by pointer, and puts those nodes (in page form) into the
// node cache, which evicts them like any page. Unwritten nodes on the way
// to them are copied. Without this, a held tree would keep every node it
// ever reached in memory, outside the cache's bound. Nodes shared between
// the trees are handled once. REQUIRES: no checkpoint is being written
// (every written_id set is durable).
class Releaser {
 public:
  explicit Releaser(NodeCache* cache) : cache_(cache) {}
  Root Release(const Root& root);

 private:
  // The reference a parent should keep to the held node `n`.
  ChildRef Ref(const NodeRef& n);
  // `n`, written, as the node a page read would give (children by id).
  NodeRef PageForm(const Node& n);

  NodeCache* const cache_;
  absl::flat_hash_map<const Node*, ChildRef> done_;
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_CHECKPOINT_H_
