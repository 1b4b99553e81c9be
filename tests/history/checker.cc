#include "tests/history/checker.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"

namespace cowdb::history {
namespace {

constexpr uint64_t kNoVersion = 0;
constexpr size_t kNoOp = std::numeric_limits<size_t>::max();

// A key's state in the model: absent, or a value written at `mod_version`.
struct State {
  bool present = false;
  std::string value;
  uint64_t mod_version = 0;
  size_t writer = kNoOp;  // index of the operation that wrote it

  bool Matches(const KeyRead& r) const {
    if (r.found != present) return false;
    return !present || (r.value == value && r.mod_version == mod_version);
  }
};

// What one version did to one key. Several write sets can share a version
// (group commit); if more than one wrote the key, any of them may be last,
// and the first read that tells which pins it. A slot made by a delete of
// unknown outcome is only known to have happened somewhere in
// [uncertain_from, version]; reads in between may see either state.
struct Slot {
  std::vector<State> candidates;
  int pinned = -1;
  uint64_t uncertain_from = kNoVersion;
};

std::string StateText(const State& s) {
  return s.present ? absl::StrCat("\"", s.value, "\"@", s.mod_version) : "<absent>";
}

std::string ReadText(const KeyRead& r) {
  return r.found ? absl::StrCat("\"", r.value, "\"@", r.mod_version) : "<absent>";
}

// The latest observed version among operations, looked up by time: for
// real-time order, what an operation invoked at time t must not go below.
class VersionClock {
 public:
  // Adds an operation that completed at `complete_ns` having observed `version`.
  void Add(int64_t complete_ns, uint64_t version, size_t op) {
    points_.push_back({complete_ns, version, op});
  }
  void Finish() {
    std::sort(points_.begin(), points_.end(),
              [](const Point& a, const Point& b) { return a.time < b.time; });
    for (size_t i = 1; i < points_.size(); ++i) {
      if (points_[i - 1].version > points_[i].version) {
        points_[i].version = points_[i - 1].version;
        points_[i].op = points_[i - 1].op;
      }
    }
  }
  // The highest version observed by an operation that completed strictly
  // before `time_ns`, and that operation (kNoOp if none).
  std::pair<uint64_t, size_t> Before(int64_t time_ns) const {
    auto it = std::lower_bound(points_.begin(), points_.end(), time_ns,
                               [](const Point& p, int64_t t) { return p.time < t; });
    if (it == points_.begin()) return {kNoVersion, kNoOp};
    --it;
    return {it->version, it->op};
  }

 private:
  struct Point {
    int64_t time;
    uint64_t version;
    size_t op;
  };
  std::vector<Point> points_;
};

class Checker {
 public:
  explicit Checker(const History& h) : h_(h), applied_(h.size(), kNoVersion) {}

  CheckResult Run() {
    CountOutcomes();
    IndexWrites();
    BuildClock();
    Resolve();
    BuildModel();
    CheckRealTime();
    CheckReads();
    CheckSerializable();
    CheckCompareAndSwap();
    CheckGroups();
    return std::move(result_);
  }

 private:
  void Violation(std::string message) { result_.violations.push_back(std::move(message)); }

  void CountOutcomes() {
    CheckStats& s = result_.stats;
    s.ops = h_.size();
    for (const Op& op : h_) {
      s.ok += op.outcome == Outcome::kOk;
      s.failed += op.outcome == Outcome::kFailed;
      s.unknown += op.outcome == Outcome::kUnknown;
    }
  }

  // Maps every value written to its write; values must be unique.
  void IndexWrites() {
    for (size_t i = 0; i < h_.size(); ++i) {
      const Op& op = h_[i];
      if (op.AckedWrites() && op.commit_version == kNoVersion) {
        Violation(absl::StrCat("acknowledged write without a version: ", Describe(op)));
      }
      for (const KeyWrite& w : op.writes) {
        if (!w.value) continue;
        auto [it, inserted] = writers_.emplace(*w.value, std::make_pair(i, w.key));
        if (!inserted) {
          Violation(absl::StrCat("bad history: value \"", *w.value, "\" is written by both ",
                                 Describe(h_[it->second.first]), " and ", Describe(op)));
        }
      }
    }
  }

  // The version an operation observed, if it tells a lower bound of the
  // latest version at its completion.
  std::optional<uint64_t> Observed(const Op& op) const {
    if (op.outcome != Outcome::kOk) return std::nullopt;
    if (op.AckedWrites()) return op.commit_version;
    if (op.read_version != kNoVersion) return op.read_version;
    return std::nullopt;
  }

  void BuildClock() {
    for (size_t i = 0; i < h_.size(); ++i) {
      if (std::optional<uint64_t> v = Observed(h_[i])) clock_.Add(h_[i].complete_ns, *v, i);
    }
    clock_.Finish();
  }

  // Calls `fn` for every key observation of `op`: its reads and the keys
  // its scans found.
  static void ForEachFound(const Op& op, const std::function<void(const KeyRead&)>& fn) {
    for (const KeyRead& r : op.reads) fn(r);
    for (const RangeRead& range : op.ranges) {
      for (const KeyRead& r : range.found) fn(r);
    }
  }

  // Attributes every value read to its write. Writes of unknown outcome
  // take the version they were read at.
  void Resolve() {
    for (const Op& op : h_) {
      ForEachFound(op, [&](const KeyRead& r) {
        if (r.found) Attribute(op, r);
      });
    }
    for (size_t i = 0; i < h_.size(); ++i) {
      if (h_[i].AckedWrites()) applied_[i] = h_[i].commit_version;
      if (h_[i].MaybeWrites() && applied_[i] != kNoVersion) {
        ++result_.stats.unknown_writes_applied;
      }
    }
  }

  void Attribute(const Op& reader, const KeyRead& r) {
    auto it = writers_.find(r.value);
    const std::string seen = absl::StrCat(Describe(reader), " read ", r.key, "=", ReadText(r));
    if (it == writers_.end() || it->second.second != r.key) {
      Violation(absl::StrCat("read of a value never written: ", seen));
      return;
    }
    const size_t w = it->second.first;
    const Op& writer = h_[w];
    if (writer.outcome == Outcome::kFailed) {
      Violation(absl::StrCat("read of a failed write: ", seen, "; written by ", Describe(writer)));
    } else if (writer.outcome == Outcome::kOk && !writer.AckedWrites()) {
      Violation(absl::StrCat("read of a write whose compare failed: ", seen, "; written by ",
                             Describe(writer)));
    } else if (writer.outcome == Outcome::kOk && writer.commit_version != r.mod_version) {
      Violation(absl::StrCat("wrong version: ", seen, ", but its write was acknowledged at version ",
                             writer.commit_version, ": ", Describe(writer)));
    } else if (writer.outcome == Outcome::kUnknown) {
      uint64_t& v = unknown_version_[w];
      if (v == kNoVersion) {
        v = r.mod_version;
        applied_[w] = r.mod_version;
      } else if (v != r.mod_version) {
        Violation(absl::StrCat("one write set at two versions (", v, " and ", r.mod_version,
                               "): ", seen, "; written by ", Describe(writer)));
      }
    }
  }

  // Replays every applied write into per-key timelines.
  void BuildModel() {
    std::set<uint64_t> versions;
    for (size_t i = 0; i < h_.size(); ++i) {
      const Op& op = h_[i];
      if (applied_[i] == kNoVersion) {
        if (op.MaybeWrites()) {
          for (const KeyWrite& w : op.writes) {
            if (!w.value) unresolved_deletes_[w.key].push_back(i);
          }
        }
        continue;
      }
      const uint64_t v = applied_[i];
      versions.insert(v);
      by_version_[v].push_back(i);
      for (const KeyWrite& w : op.writes) {
        State s;
        s.present = w.value.has_value();
        if (s.present) s.value = *w.value;
        s.mod_version = s.present ? v : 0;
        s.writer = i;
        model_[w.key][v].candidates.push_back(s);
      }
    }
    result_.stats.versions_written = versions.size();
    for (const auto& [v, ops] : by_version_) result_.stats.shared_versions += ops.size() > 1;
  }

  // The lowest version an operation invoked at `invoke_ns` may commit at.
  uint64_t LowestCommit(const Op& op) const { return clock_.Before(op.invoke_ns).first + 1; }

  void CheckRealTime() {
    for (size_t i = 0; i < h_.size(); ++i) {
      const Op& op = h_[i];
      auto [before, by] = clock_.Before(op.invoke_ns);
      if (by == kNoOp) continue;
      if (op.outcome == Outcome::kOk && !op.at_version && op.read_version != kNoVersion &&
          op.read_version < before) {
        Violation(absl::StrCat("stale read (real-time order): ", Describe(op), " read at version ",
                               op.read_version, ", but ", Describe(h_[by]),
                               " had completed at version ", before, " before it was invoked"));
      }
      if (applied_[i] != kNoVersion && applied_[i] <= before) {
        Violation(absl::StrCat("version not after an earlier operation (reused version or "
                               "real-time violation): ",
                               Describe(op), " wrote at version ", applied_[i], ", but ",
                               Describe(h_[by]), " had completed at version ", before,
                               " before it was invoked"));
      }
    }
  }

  // The slot that holds `key`'s state at `version`, or nullptr (absent);
  // `slot_version` receives the version of the slot.
  Slot* SlotAt(const std::string& key, uint64_t version, uint64_t* slot_version = nullptr) {
    auto m = model_.find(key);
    if (m == model_.end()) return nullptr;
    auto it = m->second.upper_bound(version);
    if (it == m->second.begin()) return nullptr;
    --it;
    if (slot_version != nullptr) *slot_version = it->first;
    return &it->second;
  }

  // Whether `r` is a possible state of `slot` (nullptr: absent).
  static bool SlotMatches(const Slot* slot, const KeyRead& r) {
    if (slot == nullptr) return !r.found;
    if (slot->pinned >= 0) return slot->candidates[slot->pinned].Matches(r);
    for (const State& s : slot->candidates) {
      if (s.Matches(r)) return true;
    }
    return false;
  }

  // Whether a delete of unknown outcome, known to be somewhere in a window
  // that contains `version`, explains reading `r` as absent.
  bool InUncertainWindow(const std::string& key, uint64_t version, const KeyRead& r) {
    if (r.found) return false;
    auto m = model_.find(key);
    if (m == model_.end()) return false;
    auto next = m->second.upper_bound(version);
    return next != m->second.end() && next->second.uncertain_from != kNoVersion &&
           next->second.uncertain_from <= version;
  }

  // Explains reading `key` absent at `version` (where the model has it) by
  // a delete of unknown outcome, and records that delete in the model.
  bool ExplainByUnknownDelete(const std::string& key, uint64_t version, uint64_t slot_version) {
    auto it = unresolved_deletes_.find(key);
    if (it == unresolved_deletes_.end()) return false;
    for (size_t u : it->second) {
      const uint64_t from = std::max(LowestCommit(h_[u]), slot_version + 1);
      if (from > version) continue;
      Slot& s = model_[key][version];
      State absent;
      absent.writer = u;
      s.candidates = {absent};
      s.pinned = -1;
      s.uncertain_from = from;
      return true;
    }
    return false;
  }

  // Checks one key observation of `op` at `version` against the model.
  // `context` prefixes the message of a violation.
  void CheckKey(const Op& op, const KeyRead& r, uint64_t version, const std::string& context) {
    ++result_.stats.key_reads_checked;
    uint64_t slot_version = kNoVersion;
    Slot* slot = SlotAt(r.key, version, &slot_version);
    if (SlotMatches(slot, r)) {
      if (slot != nullptr && slot->pinned < 0 && slot->candidates.size() > 1) {
        for (size_t c = 0; c < slot->candidates.size(); ++c) {
          if (slot->candidates[c].Matches(r)) slot->pinned = static_cast<int>(c);
        }
      }
      return;
    }
    if (InUncertainWindow(r.key, version, r)) return;
    if (slot != nullptr && !r.found && ExplainByUnknownDelete(r.key, version, slot_version)) {
      return;
    }
    Violation(absl::StrCat(context, Describe(op), " read ", r.key, "=", ReadText(r),
                           " at version ", version, ", but the model has ",
                           ExpectedText(slot, slot_version)));
  }

  std::string ExpectedText(const Slot* slot, uint64_t slot_version) const {
    if (slot == nullptr) return "<absent> (never written by then)";
    std::string s;
    for (size_t c = 0; c < slot->candidates.size(); ++c) {
      if (slot->pinned >= 0 && static_cast<int>(c) != slot->pinned) continue;
      const State& st = slot->candidates[c];
      const Op& w = h_[st.writer];
      absl::StrAppend(&s, s.empty() ? "" : " or ", StateText(st), " from version ",
                      slot_version, " by ", Describe(w));
      if (w.outcome == Outcome::kOk) {
        absl::StrAppend(&s, " [acknowledged: a lost write, or a read of an older state]");
      } else {
        absl::StrAppend(&s, " [unknown outcome, applied as its other values show: "
                            "a partial (fractured) write set?]");
      }
    }
    return s;
  }

  // The observations of `op` as a key -> read map over `range`: found keys
  // as read, every other key the model ever had in the range as absent.
  std::vector<KeyRead> RangeObservations(const RangeRead& range) const {
    std::map<std::string, KeyRead> seen;
    for (const auto& [key, timeline] : model_) {
      if (range.Contains(key)) seen[key] = KeyRead{key, false, "", 0};
    }
    for (const KeyRead& r : range.found) {
      if (!range.Contains(r.key)) continue;
      seen[r.key] = r;
    }
    std::vector<KeyRead> out;
    for (auto& [k, r] : seen) out.push_back(std::move(r));
    return out;
  }

  // Every observation of `op`, each checked at `version`.
  void CheckObservations(const Op& op, uint64_t version, const std::string& context) {
    for (const KeyRead& r : op.reads) CheckKey(op, r, version, context);
    for (const RangeRead& range : op.ranges) {
      for (const KeyRead& r : range.found) {
        if (!range.Contains(r.key)) {
          Violation(absl::StrCat(context, Describe(op), " scan returned ", r.key,
                                 ", outside its range"));
        }
      }
      for (const KeyRead& r : RangeObservations(range)) CheckKey(op, r, version, context);
    }
  }

  // Reads at their read version; a read whose version the server did not
  // say is checked against every version it could have read.
  void CheckReads() {
    for (size_t i = 0; i < h_.size(); ++i) {
      const Op& op = h_[i];
      if (op.reads.empty() && op.ranges.empty()) continue;
      if (op.read_version != kNoVersion) {
        CheckObservations(op, op.read_version, "wrong read: ");
      } else if (op.outcome == Outcome::kOk) {
        CheckUnversionedReads(op);
      }
    }
  }

  // A read at the latest version the server did not name: it holds at
  // some version from the latest one completed before it was invoked.
  void CheckUnversionedReads(const Op& op) {
    const uint64_t from = clock_.Before(op.invoke_ns).first;
    for (const KeyRead& r : op.reads) {
      ++result_.stats.key_reads_checked;
      bool possible = false;
      auto m = model_.find(r.key);
      if (m == model_.end()) {
        possible = !r.found;
      } else {
        possible = SlotMatches(SlotAt(r.key, from), r) || InUncertainWindow(r.key, from, r);
        for (auto it = m->second.upper_bound(from); !possible && it != m->second.end(); ++it) {
          possible = SlotMatches(&it->second, r);
        }
        if (!possible && !r.found) possible = unresolved_deletes_.count(r.key) != 0;
      }
      if (!possible) {
        Violation(absl::StrCat("wrong read: ", Describe(op), " read ", r.key, "=", ReadText(r),
                               ", which the model never has at version ", from, " or later"));
      }
    }
  }

  // A committed serializable transaction reads what still held just before
  // its commit version: nothing it read changed in between.
  void CheckSerializable() {
    for (size_t i = 0; i < h_.size(); ++i) {
      const Op& op = h_[i];
      if (!op.serializable || applied_[i] == kNoVersion) continue;
      const uint64_t v = applied_[i];
      if (op.read_version != kNoVersion && op.read_version >= v) {
        Violation(absl::StrCat("serializable commit at version ", v,
                               " not after its read version: ", Describe(op)));
      }
      CheckObservations(op, v - 1,
                        absl::StrCat("not serializable (what it read changed before its commit "
                                     "at version ", v, "): "));
    }
  }

  // A compare-and-swap took the branch that its compare, as read, called for.
  void CheckCompareAndSwap() {
    for (const Op& op : h_) {
      if (op.type != OpType::kCas || op.outcome != Outcome::kOk) continue;
      for (const KeyRead& r : op.reads) {
        if (r.key != op.cas_key) continue;
        const bool holds = (r.found ? r.mod_version : 0) == op.cas_expected_mod;
        if (holds != op.cas_succeeded) {
          Violation(absl::StrCat("compare-and-swap took the wrong branch: ", Describe(op)));
        }
      }
    }
  }

  // Whether `op` read `key` (a key read or a scanned range).
  static bool ReadsKey(const Op& op, const std::string& key) {
    for (const KeyRead& r : op.reads) {
      if (r.key == key) return true;
    }
    for (const RangeRead& range : op.ranges) {
      if (range.Contains(key)) return true;
    }
    return false;
  }

  // The write sets that share a version must have a serial order: a
  // serializable member comes before every member that wrote a key it read,
  // so these "must precede" edges may not form a cycle.
  void CheckGroups() {
    for (const auto& [v, members] : by_version_) {
      if (members.size() < 2) continue;
      std::map<size_t, std::vector<size_t>> before;  // a -> members a must precede
      for (size_t a : members) {
        if (!h_[a].serializable) continue;
        for (size_t b : members) {
          if (a == b) continue;
          for (const KeyWrite& w : h_[b].writes) {
            if (ReadsKey(h_[a], w.key)) {
              before[a].push_back(b);
              break;
            }
          }
        }
      }
      if (std::optional<std::pair<size_t, size_t>> cycle = FindCycle(members, before)) {
        Violation(absl::StrCat("no serial order inside version ", v, ": ",
                               Describe(h_[cycle->first]), " and ", Describe(h_[cycle->second]),
                               " each must come before the other (each wrote what the other "
                               "read: write skew inside one commit group)"));
      }
    }
  }

  // A cycle's closing edge (from, to) in `edges` over `nodes`, if any.
  static std::optional<std::pair<size_t, size_t>> FindCycle(
      const std::vector<size_t>& nodes, const std::map<size_t, std::vector<size_t>>& edges) {
    std::map<size_t, int> color;  // 0 new, 1 on the stack, 2 done
    std::optional<std::pair<size_t, size_t>> found;
    std::function<void(size_t)> visit = [&](size_t n) {
      color[n] = 1;
      auto it = edges.find(n);
      if (it != edges.end()) {
        for (size_t m : it->second) {
          if (found) return;
          if (color[m] == 1) {
            found = std::make_pair(n, m);
            return;
          }
          if (color[m] == 0) visit(m);
        }
      }
      color[n] = 2;
    };
    for (size_t n : nodes) {
      if (!found && color[n] == 0) visit(n);
    }
    return found;
  }

  const History& h_;
  CheckResult result_;
  // value -> (writing op, key)
  std::map<std::string, std::pair<size_t, std::string>> writers_;
  // Per op: the version its writes were applied at, or kNoVersion.
  std::vector<uint64_t> applied_;
  std::map<size_t, uint64_t> unknown_version_;
  std::map<uint64_t, std::vector<size_t>> by_version_;
  std::map<std::string, std::map<uint64_t, Slot>> model_;
  std::map<std::string, std::vector<size_t>> unresolved_deletes_;
  VersionClock clock_;
};

}  // namespace

CheckResult CheckHistory(const History& history) { return Checker(history).Run(); }

}  // namespace cowdb::history
