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

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_CHECKPOINT_H_
