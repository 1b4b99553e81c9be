#include "engine/tree/node_source.h"

#include "absl/strings/str_cat.h"
#include "engine/format/page.h"
#include "engine/util/coding.h"
#include "engine/util/status_macros.h"

namespace cowdb::internal {

absl::StatusOr<NodeRef> NodeSource::Load(uint64_t page_id) {
  if (NodeRef n = cache_->Lookup(page_id)) return n;
  return LoadFromStore(page_id);
}

namespace {

absl::Status CheckChildLevel(const Node& parent, size_t i, const Node& child) {
  if (child.level + 1 == parent.level) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "page ", parent.children[i].page_id, " is at level ", child.level,
      " where its parent (level ", parent.level, ") needs level ",
      parent.level - 1));
}

}  // namespace

absl::StatusOr<NodeRef> NodeSource::LoadUnlinkedChild(const Node& parent,
                                                       size_t i) {
  ASSIGN_OR_RETURN(NodeRef child, Load(parent.children[i].page_id));
  RETURN_IF_ERROR(CheckChildLevel(parent, i, *child));
  return child;
}

absl::Status NodeSource::VisitChild(
    const Node& parent, size_t i, absl::FunctionRef<void(const Node&)> visit) {
  if (const Node* held = parent.children[i].mem.get()) {
    visit(*held);
    return absl::OkStatus();
  }
  absl::Status level = absl::OkStatus();
  bool cached = cache_->Visit(parent.children[i].page_id, [&](const Node& c) {
    level = CheckChildLevel(parent, i, c);
    if (level.ok()) visit(c);
  });
  if (cached) return level;
  ASSIGN_OR_RETURN(NodeRef child, LoadUnlinkedChild(parent, i));
  visit(*child);
  return absl::OkStatus();
}

absl::StatusOr<const Node*> NodeSource::Child(const Node& parent, size_t i,
                                              NodeRef* hold) {
  if (const Node* held = parent.children[i].mem.get()) return held;
  ChildLinks* links = parent.links.get();
  if (links != nullptr) {
    if (const Node* linked = links->Get(i)) return linked;
  }
  ASSIGN_OR_RETURN(NodeRef child, LoadUnlinkedChild(parent, i));
  if (links != nullptr) return links->Link(i, std::move(child));
  *hold = std::move(child);  // may release `parent`: not used below
  return hold->get();
}

absl::StatusOr<NodeRef> NodeSource::LoadChild(const Node& parent, size_t i) {
  if (const NodeRef& held = parent.children[i].mem) return held;
  ChildLinks* links = parent.links.get();
  if (links != nullptr) {
    if (NodeRef linked = links->GetRef(i)) return linked;
  }
  ASSIGN_OR_RETURN(NodeRef child, LoadUnlinkedChild(parent, i));
  if (links != nullptr) links->Link(i, child);
  return child;
}

absl::StatusOr<NodeRef> NodeSource::LoadFromStore(uint64_t page_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   store_->Get(Space::kPages, BigEndianKey(page_id)));
  if (!bytes) {
    return absl::DataLossError(absl::StrCat("missing page ", page_id));
  }
  ASSIGN_OR_RETURN(NodeRef n, DecodePage(*std::move(bytes), page_id));
  cache_->Insert(page_id, n);
  return n;
}

absl::StatusOr<NodeRef> NodeSource::LoadRoot(const Root& root) {
  if (root.node != nullptr) return root.node;
  return Load(root.page_id);
}

absl::StatusOr<std::string> NodeSource::LoadBlob(uint64_t blob_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                   store_->Get(Space::kBlobs, BigEndianKey(blob_id)));
  if (!bytes) {
    return absl::DataLossError(absl::StrCat("missing blob ", blob_id));
  }
  return DecodeBlob(*bytes, blob_id);
}

absl::StatusOr<std::string> NodeSource::ReadValue(const StoredValue& v) {
  if (!v.in_memory()) return LoadBlob(v.blob_id);
  return std::string(v.data);
}

std::string_view ValueReader::Read(const StoredValue& v, absl::Status* status) {
  if (v.in_memory()) return v.data;
  if (blob_id_ != v.blob_id) {
    absl::StatusOr<std::string> blob = src_->LoadBlob(v.blob_id);
    if (!blob.ok()) {
      *status = blob.status();
      return {};
    }
    blob_ = *std::move(blob);
    blob_id_ = v.blob_id;
  }
  return blob_;
}

}  // namespace cowdb::internal
