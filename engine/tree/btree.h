// The copy-on-write B+tree: pure operations on roots.
//
// A published tree is identified by its Root: a stored root page, or a
// root node held in memory. Reading never modifies anything; writing goes
// through a TreeBuilder, which copies the path from each touched leaf to
// the root ("path copying") and leaves every published node untouched.
// Nodes the builder has created are private to it and are modified in
// place, so a batch of N writes copies each touched node once (LMDB's dirty
// pages). Finish seals them: they become immutable nodes held in memory,
// reached from their parents by pointer, until a checkpoint writes them as
// pages (tree/checkpoint.h). No page is written by a commit.
//
// Invariants (checked by VerifyTree):
//  - Keys are strictly ascending within a leaf, and every key of child i of
//    an internal node lies in [keys[i-1], keys[i]).
//  - Every leaf is at level 0 and every child is one level below its
//    parent, so all leaves have the same depth.
//  - A child reference's count equals the entries below it, and its max_mod
//    equals the child page's birth version (the last version that changed
//    anything below it).
//  - A node is at most page_size bytes unless it cannot be split (a leaf
//    of one entry, an internal node of fewer than four children); a non-root
//    node is at least page_size/4 bytes unless its entries are too large to
//    balance.
//  - Every leaf entry has 1 <= writes and create_version <= mod_version <=
//    the leaf's birth.
//  - A published node is never modified; stored pages and written nodes
//    replaced by a commit are reported as freed with their birth version.
//
// Thread safety: reads on committed roots are safe from any thread. A
// TreeBuilder is used by one thread.

#ifndef COWDB_ENGINE_TREE_BTREE_H_
#define COWDB_ENGINE_TREE_BTREE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/cache/node_cache.h"
#include "engine/format/node.h"
#include "engine/tree/node_source.h"
#include "engine/store/page_store.h"
#include "engine/util/arena.h"

namespace cowdb::internal {

// A leaf entry found by a lookup; `leaf` keeps `entry` alive.
struct Found {
  NodeRef leaf;
  const LeafEntry* entry = nullptr;
};

// Point lookup. O(depth).
absl::StatusOr<std::optional<Found>> TreeGet(NodeSource& src, const Root& root,
                                             std::string_view key);

// What TreeRead copies out of an entry besides its value.
struct EntryMeta {
  uint64_t mod_version = 0;
  uint64_t create_version = 0;
  uint64_t writes = 0;
  uint64_t lease = 0;
};

// Point lookup that copies the value into `*value` (loading it if it is a
// blob) and the key's metadata into `*meta` (if not null), instead of
// holding the leaf: a point read then writes no shared memory but the
// cache shard's lock. Returns false if `key` is absent. O(depth).
//
// `*since` (if not null) is set to a version from which on the key has
// been as found: its mod_version if present; if absent, the birth of the
// leaf where it would be (nothing in that leaf changed after it: a put of
// the key would have copied the leaf), or the root's max_mod for an empty
// tree (0 when unknown). Key history hops back through it.
absl::StatusOr<bool> TreeRead(NodeSource& src, const Root& root,
                              std::string_view key, std::string* value,
                              EntryMeta* meta = nullptr,
                              uint64_t* since = nullptr);

// A proof of what `root`'s tree holds at `key` (proof.h): fills
// proof->path and proof->leaf, and sets `*value` to the key's value
// (loading a blob), or nullopt if absent. The tree must be hashed. O(depth).
absl::Status TreeProve(NodeSource& src, const Root& root, std::string_view key,
                       ReadProof* proof, std::optional<std::string>* value);

// A range proof (proof.h) of the keys of `root`'s tree in [begin, end)
// (empty `end`: no bound): fills proof->nodes. The tree must be hashed.
// O(depth + the leaves the range spans).
absl::Status TreeProveRange(NodeSource& src, const Root& root, std::string_view begin,
                            std::string_view end, RangeProof* proof);

// Number of keys in [begin, end); an empty `end` means no upper bound.
// O(depth) through the per-child entry counts.
absl::StatusOr<uint64_t> TreeCount(NodeSource& src, const Root& root,
                                   std::string_view begin, std::string_view end);

// An ordered cursor over a committed tree. It holds its own path of nodes
// (no locks); the tree stays valid for as long as the cursor's nodes do.
class TreeCursor {
 public:
  TreeCursor(NodeSource* src, const Root& root) : src_(src), root_(root) {}

  bool Valid() const { return !path_.empty(); }
  absl::Status SeekToFirst();
  absl::Status SeekToLast();
  absl::Status Seek(std::string_view key);  // first key >= `key`
  // REQUIRES: Valid(). On error the cursor becomes invalid.
  absl::Status Next();
  absl::Status Prev();
  // REQUIRES: Valid().
  const LeafEntry& entry() const {
    return path_.back().first->entries[path_.back().second];
  }

 private:
  // Descends from path_.back()'s current child to the leftmost (or
  // rightmost) leaf.
  absl::Status Descend(bool leftmost);
  // Moves to the neighbouring leaf; clears the path at either end.
  absl::Status StepLeaf(bool forward);

  NodeSource* const src_;
  const Root root_;
  std::vector<std::pair<NodeRef, int>> path_;  // root first
};

// What a commit made unreachable, to be recorded as freed at its version.
struct FreedItem {
  enum Kind : uint8_t { kPage = 1, kBlob = 2 };  // persisted; DO NOT CHANGE
  Kind kind;
  uint64_t id;
  uint64_t birth;  // the version that created it; it dies at the commit
  // Where a tree that still reaches it has it (TreeReaches): a blob's
  // entry key; a page's level and a key inside it (its first entry's, or
  // its first separator). A blob's key is persisted (records.h); a page's
  // probe is known in memory only (probed = false: load the page).
  std::string key;
  int level = 0;
  bool probed = false;
};

// Whether the tree at `root` reaches the stored page or blob `item`: a
// B+tree holds a node at one place only, the node of its level on the
// path of any key inside it, so this is one descent, O(depth). A page
// without a probe is loaded for one. A blob without a key (written before
// format 5) is reported reached: its owner cannot be found in O(depth).
absl::StatusOr<bool> TreeReaches(NodeSource& src, const Root& root,
                                 const FreedItem& item);
// Sets `item`'s probe (level and key) from its page `n`.
void SetProbe(const Node& n, FreedItem* item);

// Builds the next version of a tree. Use once: Put/Delete any number of
// times, then Finish. Deterministic: the same base, version and operations
// give the same tree (recovery replays commits through it).
class TreeBuilder {
 public:
  // Values longer than `inline_limit` become blobs. With `hashed`, Finish
  // computes the new nodes' Merkle hashes and the root's (Root::hash), and
  // blobs get digests; `base` must then have its hash.
  TreeBuilder(NodeSource* src, const Root& base, uint64_t version,
              size_t page_size, size_t inline_limit, bool hashed);

  // Inserts or overwrites `key`; its mod_version becomes the new version
  // and its lease `lease`. Overwriting keeps the entry's create_version
  // and counts one more write; inserting an absent key (never written, or
  // deleted) starts over: create_version = the new version, writes = 1.
  // Each call counts, so a key put twice in one version has two more
  // writes.
  absl::Status Put(std::string_view key, std::string_view value,
                   uint64_t lease = 0);
  // Removes `key`. Writes nothing (copies no page) when the key is absent.
  absl::Status Delete(std::string_view key);

  // Seals the new nodes (immutable, self-contained, held in memory), hashes
  // them if hashed, and returns the new root. Nothing is written.
  Root Finish();

  // Stored pages and blobs (written by a checkpoint, or being written by
  // one) that the new version no longer reaches.
  const std::vector<FreedItem>& freed() const { return freed_; }
  std::vector<FreedItem> TakeFreed() { return std::move(freed_); }
  // Entries in the tree as built so far, and its root's max_mod.
  uint64_t count() const { return root_.count; }
  uint64_t max_mod() const { return root_.max_mod; }
  // Bytes of the nodes Finish sealed (ByteSize): memory not yet written.
  size_t sealed_bytes() const { return sealed_bytes_; }

 private:
  absl::StatusOr<Node*> Touch(ChildRef& ref);
  absl::StatusOr<const Node*> View(const ChildRef& ref, NodeRef* hold);
  absl::StatusOr<bool> Contains(std::string_view key);
  absl::Status InsertRec(ChildRef& ref, LeafEntry& entry);
  absl::Status EraseRec(ChildRef& ref, std::string_view key);
  absl::Status Rebalance(Node* parent, size_t i);
  void SplitInTwo(Node* parent, size_t i);
  void Refresh(ChildRef& ref);
  void Release(const LeafEntry& e);
  void FreePage(uint64_t id, const Node& n);
  void FixRoot();
  void SealRec(ChildRef& ref);
  bool IsEmpty(const ChildRef& ref) const {
    return ref.page_id == 0 && !ref.mem && !ref.dirty;
  }
  bool TooBig(const Node& n) const;
  bool TooSmall(const Node& n) const;

  NodeSource* const src_;
  const uint64_t version_;
  const size_t page_size_;
  const size_t inline_limit_;
  const bool hashed_;
  ChildRef root_;
  std::vector<FreedItem> freed_;
  size_t sealed_bytes_ = 0;
  // What the dirty nodes' views point into: the bytes put, the published
  // nodes they were copied from, and the held blobs' bytes.
  Arena arena_;
  std::vector<NodeRef> pinned_;
  BlobPool blob_pool_;
};

// Checks every invariant above for the tree at `root`; with `strict`, also
// the minimum fill (meaningful when entries are small against the page);
// with `hashed`, the Merkle hashes (TreeVerifier).
// Returns Internal describing the first violation, or a load error. (One
// TreeVerifier walk; see verify.h.)
absl::Status VerifyTree(NodeSource& src, const Root& root, size_t page_size,
                        bool strict, bool hashed = false);

}  // namespace cowdb::internal

#endif  // COWDB_ENGINE_TREE_BTREE_H_
