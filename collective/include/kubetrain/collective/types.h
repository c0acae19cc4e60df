// Element types and reduction operators shared by every collective backend.
//
// A buffer handed to a Communicator is described by a pointer, an element count and a DataType;
// the library never owns user buffers. bfloat16 and float16 are 2-byte storage types; host
// backends reduce them in float32 and round once (round-to-nearest-even).
//
// Thread-safety: free functions only; all are thread-safe.
#ifndef KUBETRAIN_COLLECTIVE_TYPES_H_
#define KUBETRAIN_COLLECTIVE_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::collective {

enum class DataType : int { kFloat32, kBFloat16, kFloat16, kFloat64, kInt32, kInt64 };
inline constexpr DataType kAllDataTypes[] = {DataType::kFloat32, DataType::kBFloat16,
                                             DataType::kFloat16, DataType::kFloat64,
                                             DataType::kInt32,   DataType::kInt64};

// kAvg is the sum divided by the world size (integer division for integer types).
enum class ReduceOp : int { kSum, kAvg, kMax, kMin };
inline constexpr ReduceOp kAllReduceOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax,
                                             ReduceOp::kMin};

// Size of one element in bytes.
size_t DataTypeSize(DataType type);
// "float32", "bfloat16", "float16", "float64", "int32", "int64".
absl::string_view DataTypeName(DataType type);
absl::StatusOr<DataType> ParseDataType(absl::string_view name);
// "sum", "avg", "max", "min".
absl::string_view ReduceOpName(ReduceOp op);
absl::StatusOr<ReduceOp> ParseReduceOp(absl::string_view name);

// Conversions used by host reductions and tests.
float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);  // round-to-nearest-even, NaN stays NaN
float Float16ToFloat(uint16_t bits);
uint16_t FloatToFloat16(float value);  // round-to-nearest-even, overflow to inf

// Host-memory reduction: dst[i] = op(srcs[0][i], ..., srcs[nsrc-1][i]) for i < count. `dst` may
// alias srcs[0] (and no other source). For ReduceOp::kAvg the sum is divided by `avg_divisor`
// (normally the world size, which may differ from nsrc when partial sums are combined; pass 0 to
// skip the division).
void ReduceHost(DataType type, ReduceOp op, void* dst, const void* const* srcs, int nsrc,
                size_t count, int avg_divisor);
// In-place division of a sum by `divisor` (the finishing step of kAvg).
void DivideHost(DataType type, void* data, size_t count, int divisor);

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_TYPES_H_
