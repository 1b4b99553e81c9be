// Status propagation helpers. This Abseil release has no public macros for
// this, so cowdb carries its own.
//
//   RETURN_IF_ERROR(store->Commit(batch, sync));
//   ASSIGN_OR_RETURN(NodeRef node, source.Load(page_id));

#ifndef COWDB_ENGINE_UTIL_STATUS_MACROS_H_
#define COWDB_ENGINE_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define COWDB_CONCAT_INNER_(a, b) a##b
#define COWDB_CONCAT_(a, b) COWDB_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// when it is not OK.
#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    ::absl::Status cowdb_status_ = (expr);            \
    if (!cowdb_status_.ok()) return cowdb_status_;    \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(COWDB_CONCAT_(cowdb_statusor_, __LINE__), lhs, rexpr)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                           \
  if (!tmp.ok()) return tmp.status();           \
  lhs = std::move(tmp).value()

#endif  // COWDB_ENGINE_UTIL_STATUS_MACROS_H_
