#include "engine/tree/checkpoint.h"

#include "engine/format/page.h"
#include "engine/util/coding.h"

namespace cowdb::internal {
namespace {

class Planner {
 public:
  Planner(uint64_t* next_id, CheckpointPlan* plan)
      : next_id_(next_id), plan_(plan) {}

  // The page id of the held node `n`, planning it (and its unwritten
  // children) if no checkpoint has.
  uint64_t Plan(const NodeRef& n) {
    if (uint64_t id = n->written_id.get()) return id;
    for (const ChildRef& c : n->children) {
      if (c.mem) Plan(c.mem);
    }
    std::vector<uint64_t> blob_ids;
    for (size_t i = 0; i < n->entries.size(); ++i) {
      const StoredValue& v = n->entries[i].value;
      if (v.is_blob() && v.blob_id == 0) {
        if (blob_ids.empty()) blob_ids.resize(n->entries.size());
        blob_ids[i] = (*next_id_)++;
        ++plan_->blobs;
      }
    }
    n->assigned_blob_ids = std::move(blob_ids);
    const uint64_t id = (*next_id_)++;
    n->written_id.set(id);
    plan_->nodes.push_back(n);
    plan_->bytes += n->ByteSize();
    return id;
  }

 private:
  uint64_t* const next_id_;
  CheckpointPlan* const plan_;
};

}  // namespace

CheckpointPlan PlanCheckpoint(const Root& root, uint64_t* next_id) {
  CheckpointPlan plan;
  plan.root = root;
  if (root.page_id == 0 && root.node != nullptr) {
    plan.root.page_id = Planner(next_id, &plan).Plan(root.node);
  }
  return plan;
}

void EncodeCheckpoint(const CheckpointPlan& plan, StoreBatch* batch) {
  for (const NodeRef& n : plan.nodes) {
    // The page form: children by page id, held blobs by blob id.
    Node page_form;
    page_form.level = n->level;
    page_form.birth = n->birth;
    page_form.keys = n->keys;
    page_form.children.reserve(n->children.size());
    for (const ChildRef& c : n->children) {
      ChildRef ref;
      ref.page_id = c.mem ? c.mem->written_id.get() : c.page_id;
      ref.count = c.count;
      ref.max_mod = c.max_mod;
      page_form.children.push_back(std::move(ref));
    }
    page_form.entries = n->entries;
    const std::vector<uint64_t>& assigned = n->assigned_blob_ids;
    for (size_t i = 0; i < page_form.entries.size(); ++i) {
      StoredValue& v = page_form.entries[i].value;
      if (!v.is_blob() || !v.in_memory()) continue;
      if (v.blob_id == 0) {
        v.blob_id = assigned[i];
        batch->Put(Space::kBlobs, BigEndianKey(v.blob_id),
                   EncodeBlob(v.data, v.blob_id));
      }
      v.data = {};
    }
    const uint64_t id = n->written_id.get();
    batch->Put(Space::kPages, BigEndianKey(id), EncodePage(page_form, id));
  }
}

}  // namespace cowdb::internal
