#include "proto/wire/wire.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace cowdb::wire {

absl::Status ToBounds(const v1::KeyRange& r, std::string* start, std::string* end) {
  if (!r.prefix().empty()) {
    if (!r.start().empty() || !r.end().empty()) {
      return absl::InvalidArgumentError("a range has a prefix or start/end, not both");
    }
    *start = r.prefix();
    // The smallest key after every key with the prefix ("" if none is).
    std::string next = r.prefix();
    while (!next.empty() && static_cast<uint8_t>(next.back()) == 0xff) next.pop_back();
    if (!next.empty()) next.back() = static_cast<char>(next.back() + 1);
    *end = next;
    return absl::OkStatus();
  }
  *start = r.start();
  *end = r.end();
  if (!end->empty() && *end < *start) {
    return absl::InvalidArgumentError("range end is before its start");
  }
  return absl::OkStatus();
}

v1::KeyRange ToProto(const client::Range& r) {
  v1::KeyRange out;
  out.set_start(r.start);
  out.set_end(r.end);
  out.set_prefix(r.prefix);
  return out;
}

namespace {

void ToProto(const client::TxnOp& op, v1::TxnOp* out) {
  switch (op.kind) {
    case client::TxnOp::Kind::kPut:
      out->mutable_mutation()->mutable_put()->set_key(op.key);
      out->mutable_mutation()->mutable_put()->set_value(op.value);
      break;
    case client::TxnOp::Kind::kDelete:
      out->mutable_mutation()->set_delete_key(op.key);
      break;
    case client::TxnOp::Kind::kGet:
      out->set_get_key(op.key);
      break;
  }
}

v1::Compare::Target ToProto(client::Compare::Target t) {
  switch (t) {
    case client::Compare::Target::kValue: return v1::Compare::VALUE;
    case client::Compare::Target::kModVersion: return v1::Compare::MOD_VERSION;
    case client::Compare::Target::kExists: return v1::Compare::EXISTS;
  }
  return v1::Compare::TARGET_UNSPECIFIED;
}

v1::Compare::Op ToProto(client::Compare::Op op) {
  switch (op) {
    case client::Compare::Op::kEqual: return v1::Compare::EQUAL;
    case client::Compare::Op::kNotEqual: return v1::Compare::NOT_EQUAL;
    case client::Compare::Op::kLess: return v1::Compare::LESS;
    case client::Compare::Op::kGreater: return v1::Compare::GREATER;
  }
  return v1::Compare::OP_UNSPECIFIED;
}

}  // namespace

v1::TxnRequest ToProto(const client::TxnRequest& r) {
  v1::TxnRequest out;
  for (const client::Compare& c : r.compares) {
    v1::Compare* pc = out.add_compares();
    pc->set_key(c.key);
    pc->set_target(ToProto(c.target));
    pc->set_op(ToProto(c.op));
    switch (c.target) {
      case client::Compare::Target::kValue: pc->set_value(c.value); break;
      case client::Compare::Target::kModVersion: pc->set_mod_version(c.mod_version); break;
      case client::Compare::Target::kExists: pc->set_exists(c.exists); break;
    }
  }
  for (const client::TxnOp& op : r.success) ToProto(op, out.add_success());
  for (const client::TxnOp& op : r.failure) ToProto(op, out.add_failure());
  out.set_branch(r.branch);
  return out;
}

client::KeyValue FromProto(const v1::KeyValue& kv) {
  return client::KeyValue{kv.key(), kv.value(), kv.mod_version()};
}

client::TxnResult FromProto(const v1::TxnResponse& r) {
  client::TxnResult out;
  out.succeeded = r.succeeded();
  out.version = r.version();
  for (const v1::KeyValue& kv : r.gets()) out.gets.push_back(FromProto(kv));
  return out;
}

client::Change FromProto(const v1::Change& c) {
  client::Change out;
  out.key = c.key();
  if (c.old_exists()) out.old_value = c.old_value();
  if (c.new_exists()) out.new_value = c.new_value();
  out.old_mod_version = c.old_mod_version();
  out.new_mod_version = c.new_mod_version();
  return out;
}

client::ServerStatus FromProto(const v1::StatusResponse& r) {
  client::ServerStatus s;
  s.latest_version = r.latest_version();
  s.oldest_version = r.oldest_version();
  s.entries = r.entries();
  s.disk_bytes = r.disk_bytes();
  s.cache_hits = r.cache_hits();
  s.cache_misses = r.cache_misses();
  s.open_transactions = r.open_transactions();
  s.commits = r.commits();
  s.syncs = r.syncs();
  s.pages_written = r.pages_written();
  s.bytes_written = r.bytes_written();
  s.cache_bytes = r.cache_bytes();
  s.log_bytes = r.log_bytes();
  s.checkpoints = r.checkpoints();
  s.checkpoint_version = r.checkpoint_version();
  s.unwritten_bytes = r.unwritten_bytes();
  s.release_floor = r.release_floor();
  s.replayed_commits = r.replayed_commits();
  s.recovery_micros = r.recovery_micros();
  s.cache_capacity = r.cache_capacity();
  s.disk_bytes_pages = r.disk_bytes_pages();
  s.disk_bytes_blobs = r.disk_bytes_blobs();
  s.disk_bytes_log = r.disk_bytes_log();
  s.disk_bytes_records = r.disk_bytes_records();
  return s;
}

client::VersionInfo FromProto(const v1::VersionInfo& v) {
  // A server from before branches sends no branch: its versions are main's.
  return client::VersionInfo{v.version(), v.commit_unix_micros(), v.entries(),
                             v.branch().empty() ? std::string("main") : v.branch()};
}

client::BranchInfo FromProto(const v1::BranchInfo& b) {
  return client::BranchInfo{b.name(), b.created(), b.source(), b.source_version(),
                            b.entries()};
}

v1::MergeRequest::Policy ToProto(client::MergePolicy p) {
  switch (p) {
    case client::MergePolicy::kFail: return v1::MergeRequest::FAIL;
    case client::MergePolicy::kOurs: return v1::MergeRequest::OURS;
    case client::MergePolicy::kTheirs: return v1::MergeRequest::THEIRS;
  }
  return v1::MergeRequest::FAIL;
}

client::MergeResult FromProto(const v1::MergeResponse& r) {
  client::MergeResult out;
  out.merged = r.merged();
  out.version = r.version();
  out.base_version = r.base_version();
  out.base_branch = r.base_branch();
  out.changes = r.changes();
  for (const v1::MergeConflict& c : r.conflicts()) {
    client::MergeConflict& o = out.conflicts.emplace_back();
    o.key = c.key();
    if (c.has_base()) o.base = c.base();
    if (c.has_ours()) o.ours = c.ours();
    if (c.has_theirs()) o.theirs = c.theirs();
  }
  out.conflict_count = r.conflict_count();
  return out;
}

v1::HistoryRequest ToProto(std::string_view key, const client::HistoryOptions& o) {
  v1::HistoryRequest r;
  r.set_key(std::string(key));
  r.set_from_version(o.from);
  r.set_to_version(o.to.value_or(0));
  r.set_limit(o.limit);
  return r;
}

void AppendFromProto(const v1::HistoryResponse& r, client::KeyHistory* h) {
  for (const v1::KeyChange& c : r.changes()) {
    client::KeyChange out;
    out.version = c.version();
    if (!c.deleted()) out.value = c.value();
    out.create_version = c.create_version();
    out.writes = c.writes();
    out.lease = c.lease();
    h->changes.push_back(std::move(out));
  }
  h->to = r.to_version();
  h->complete_from = r.complete_from();
  h->more = r.more();
}

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes, std::string_view what) {
  Hash h{};
  if (bytes.size() != h.size()) {
    return absl::DataLossError(absl::StrCat("verification failed: ", std::string(what),
                                            " is ", bytes.size(), " bytes, not 32"));
  }
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return h;
}

namespace {

// What both kinds of proof share: the version, its commit time and the
// previous digest; entries; an internal node's separators and child hashes.
template <typename Proof, typename Message>
void PutHeader(const Proof& p, Message* out) {
  out->set_version(p.version);
  out->set_commit_unix_micros(p.commit_micros);
  out->set_previous_digest(HashBytes(p.previous_digest));
}
template <typename Message, typename Proof>
absl::Status GetHeader(const Message& m, Proof* out) {
  out->version = m.version();
  out->commit_micros = m.commit_unix_micros();
  absl::StatusOr<Hash> previous = HashFromBytes(m.previous_digest(), "the previous digest");
  if (!previous.ok()) return previous.status();
  out->previous_digest = *previous;
  return absl::OkStatus();
}
void PutEntry(const ProofEntry& e, v1::ProofEntry* out) {
  out->set_key(e.key);
  out->set_blob(e.blob);
  out->set_value(e.value);
  out->set_mod_version(e.mod_version);
}
ProofEntry EntryOf(const v1::ProofEntry& pe) {
  return {pe.key(), pe.blob(), pe.value(), pe.mod_version()};
}
template <typename Node, typename Message>
void PutInternal(const Node& n, Message* out) {
  out->set_level(n.level);
  for (const std::string& s : n.separators) out->add_separators(s);
  for (const Hash& h : n.children) out->add_children(HashBytes(h));
}
template <typename Message, typename Node>
absl::Status GetInternal(const Message& m, Node* out) {
  out->level = m.level();
  out->separators.assign(m.separators().begin(), m.separators().end());
  for (const std::string& c : m.children()) {
    absl::StatusOr<Hash> h = HashFromBytes(c, "a child hash");
    if (!h.ok()) return h.status();
    out->children.push_back(*h);
  }
  return absl::OkStatus();
}

}  // namespace

void ToProto(const ReadProof& p, v1::ReadProof* out) {
  PutHeader(p, out);
  for (const ProofNode& n : p.path) PutInternal(n, out->add_path());
  for (const ProofEntry& e : p.leaf) PutEntry(e, out->add_leaf());
}

absl::StatusOr<ReadProof> FromProto(const v1::ReadProof& p) {
  ReadProof out;
  if (absl::Status s = GetHeader(p, &out); !s.ok()) return s;
  for (const v1::ProofNode& pn : p.path()) {
    if (absl::Status s = GetInternal(pn, &out.path.emplace_back()); !s.ok()) return s;
  }
  for (const v1::ProofEntry& pe : p.leaf()) out.leaf.push_back(EntryOf(pe));
  return out;
}

void ToProto(const RangeProof& p, v1::RangeProof* out) {
  PutHeader(p, out);
  for (const RangeProofNode& n : p.nodes) {
    v1::RangeProofNode* pn = out->add_nodes();
    PutInternal(n, pn);
    for (uint32_t e : n.expanded) pn->add_expanded(e);
    for (const ProofEntry& e : n.entries) PutEntry(e, pn->add_entries());
  }
}

absl::StatusOr<RangeProof> FromProto(const v1::RangeProof& p) {
  RangeProof out;
  if (absl::Status s = GetHeader(p, &out); !s.ok()) return s;
  for (const v1::RangeProofNode& pn : p.nodes()) {
    RangeProofNode& n = out.nodes.emplace_back();
    if (absl::Status s = GetInternal(pn, &n); !s.ok()) return s;
    n.expanded.assign(pn.expanded().begin(), pn.expanded().end());
    for (const v1::ProofEntry& pe : pn.entries()) n.entries.push_back(EntryOf(pe));
  }
  return out;
}

}  // namespace cowdb::wire
