// One walker for the tree invariants of btree.h, shared by VerifyTree and
// DB::Check.
//
// It verifies each node once: a stored subtree verified before (in this
// walk or an earlier one of the same verifier) is checked again under a
// new parent only through its summary (entry count, key range including
// separators, level, birth, size), as bbolt's and LMDB's checkers do. Held
// (in-memory) nodes are verified on every walk.
//
// Thread safety: a TreeVerifier is used by one thread.

#ifndef COWDB_ENGINE_TREE_VERIFY_H_
#define COWDB_ENGINE_TREE_VERIFY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tree/btree.h"

namespace cowdb::internal {

class TreeVerifier {
 public:
  struct Hooks {
    // Called each time a stored page is reached, also when its subtree was
    // verified before (e.g. to check that no tree reaching it should no
    // longer). An error stops the walk.
    std::function<absl::Status(uint64_t page_id)> on_reach;
    // Called once per stored node when it is first verified (e.g. to check
    // its blobs).
    std::function<absl::Status(uint64_t page_id, const Node& node)> on_node;
  };

  // With `strict`, non-root nodes must also be at least a quarter full.
  // With `hashed`, every node's Merkle hash must be the one its parent
  // holds (the root's: Root::hash), which catches a page altered behind a
  // valid checksum.
  TreeVerifier(NodeSource& src, size_t page_size, bool strict,
               Hooks hooks = {}, bool hashed = false)
      : src_(src), page_size_(page_size), strict_(strict),
        hashed_(hashed), hooks_(std::move(hooks)) {}

  // Verifies the tree at `root`. Returns Internal naming the page and the
  // first violated invariant, or a load error (DataLoss for a damaged page).
  absl::Status Verify(const Root& root);

  // Distinct stored pages verified so far, and whether `page_id` is one.
  size_t stored_pages() const { return summaries_.size(); }
  bool Verified(uint64_t page_id) const { return summaries_.count(page_id) != 0; }

 private:
  struct Summary {
    uint64_t count = 0;
    bool has_keys = false;
    std::string min_key, max_key;  // keys and separators in the subtree
    uint8_t level = 0;
    uint64_t birth = 0;
    size_t bytes = 0;  // ByteSize of the node
    size_t size = 0;   // its entries or children
    Hash hash{};       // when hashed
  };

  absl::StatusOr<Summary> Visit(const ChildRef& ref);
  absl::StatusOr<Summary> VisitNode(uint64_t id, const Node& n);
  // The checks that depend on where a node sits: under a parent or as
  // the root.
  absl::Status CheckPlacement(uint64_t id, const Summary& s, bool is_root);

  NodeSource& src_;
  const size_t page_size_;
  const bool strict_;
  const bool hashed_;
  const Hooks hooks_;
  absl::flat_hash_map<uint64_t, Summary> summaries_;  // stored pages
};

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_VERIFY_H_
