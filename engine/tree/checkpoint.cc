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
      ref.hash = c.hash;
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

NodeRef Releaser::PageForm(const Node& n) {
  auto page = std::make_shared<Node>(n);  // views into n's shared buffers
  page->DropIndex();
  for (ChildRef& c : page->children) {
    if (c.mem) {
      c.page_id = c.mem->written_id.get();  // written before its parent
      c.mem = nullptr;
    }
  }
  const std::vector<uint64_t>& ids = n.assigned_blob_ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != 0) page->entries[i].value.blob_id = ids[i];
  }
  page->assigned_blob_ids.clear();
  page->BuildIndex();
  return page;
}

ChildRef Releaser::Ref(const NodeRef& n) {
  auto it = done_.find(n.get());
  if (it != done_.end()) return it->second;
  ChildRef ref;
  if (uint64_t id = n->written_id.get()) {
    // Its written children first (they were written with it): each goes
    // into the cache, not only the topmost written node of a path.
    for (const ChildRef& c : n->children) {
      if (c.mem) Ref(c.mem);
    }
    cache_->Insert(id, PageForm(*n));
    ref.page_id = id;
  } else {
    bool changed = false;
    std::vector<ChildRef> children = n->children;
    for (ChildRef& c : children) {
      if (!c.mem) continue;
      ChildRef r = Ref(c.mem);
      changed |= r.mem != c.mem;
      c.page_id = r.page_id;
      c.mem = std::move(r.mem);
    }
    if (changed) {
      auto copy = std::make_shared<Node>(*n);
      copy->children = std::move(children);
      copy->assigned_blob_ids.clear();
      // Links of its own: they cache the children it reaches by id now.
      if (copy->links) copy->links = std::make_shared<ChildLinks>(copy->children.size());
      ref.mem = std::move(copy);
    } else {
      ref.mem = n;
    }
  }
  done_.emplace(n.get(), ref);
  return ref;
}

Root Releaser::Release(const Root& root) {
  if (root.page_id != 0 || root.node == nullptr) return root;
  ChildRef r = Ref(root.node);
  Root out{r.page_id, root.count, root.max_mod, root.hash, r.mem};
  if (r.page_id != 0) out.node = cache_->Lookup(r.page_id);  // page form
  return out;
}

}  // namespace cowdb::internal
