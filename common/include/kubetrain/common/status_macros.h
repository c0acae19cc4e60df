// Status propagation helpers used across components.
//
// KT_RETURN_IF_ERROR(expr)       returns the absl::Status of `expr` from the enclosing function
// when
//                                it is not OK.
// KT_ASSIGN_OR_RETURN(lhs, expr) evaluates an absl::StatusOr<T>; on error returns its status, else
//                                moves the value into `lhs` (which may be a declaration).
//
// Thread-safety: macros only; no state.
#ifndef KUBETRAIN_COMMON_STATUS_MACROS_H_
#define KUBETRAIN_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KT_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status kt_status_ = (expr);      \
    if (!kt_status_.ok()) return kt_status_; \
  } while (false)

#define KT_STATUS_CONCAT_INNER_(a, b) a##b
#define KT_STATUS_CONCAT_(a, b) KT_STATUS_CONCAT_INNER_(a, b)

#define KT_ASSIGN_OR_RETURN(lhs, expr) \
  KT_ASSIGN_OR_RETURN_IMPL_(KT_STATUS_CONCAT_(kt_statusor_, __LINE__), lhs, expr)

// `statusor` names a variable and `lhs` is a declaration: neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KT_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)     \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // KUBETRAIN_COMMON_STATUS_MACROS_H_
