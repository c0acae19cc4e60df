#include "kubetrain/collective/types.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::collective {

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32: return 4;
    case DataType::kBFloat16: return 2;
    case DataType::kFloat16: return 2;
    case DataType::kFloat64: return 8;
    case DataType::kInt32: return 4;
    case DataType::kInt64: return 8;
  }
  return 1;
}

absl::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32: return "float32";
    case DataType::kBFloat16: return "bfloat16";
    case DataType::kFloat16: return "float16";
    case DataType::kFloat64: return "float64";
    case DataType::kInt32: return "int32";
    case DataType::kInt64: return "int64";
  }
  return "unknown";
}

absl::StatusOr<DataType> ParseDataType(absl::string_view name) {
  for (DataType t : kAllDataTypes) {
    if (DataTypeName(t) == name) return t;
  }
  if (name == "float" || name == "fp32") return DataType::kFloat32;
  if (name == "bf16") return DataType::kBFloat16;
  if (name == "half" || name == "fp16") return DataType::kFloat16;
  if (name == "double" || name == "fp64") return DataType::kFloat64;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown data type '", name, "'; expected float32, bfloat16, float16, float64, int32, int64"));
}

absl::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMin: return "min";
  }
  return "unknown";
}

absl::StatusOr<ReduceOp> ParseReduceOp(absl::string_view name) {
  for (ReduceOp op : kAllReduceOps) {
    if (ReduceOpName(op) == name) return op;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown reduce op '", name, "'; expected sum, avg, max, min"));
}

float BFloat16ToFloat(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t FloatToBFloat16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float Float16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {  // subnormal: normalize
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    u = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t FloatToFloat16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;         // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;        // overflow (>= 65520) -> inf
  if (abs < 0x38800000u) {                               // subnormal or zero in half
    if (abs < 0x33000000u) return sign;                  // < 2^-25 rounds to zero
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;                          // 14..24
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return sign | static_cast<uint16_t>(half_mant);
  }
  uint32_t r = abs - 0x38000000u;                        // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return sign | static_cast<uint16_t>(r >> 13);
}

namespace {

struct SumOp {
  template <typename T> T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <typename T> T operator()(T a, T b) const { return b > a ? b : a; }
};
struct MinOp {
  template <typename T> T operator()(T a, T b) const { return b < a ? b : a; }
};

template <typename T, typename Op>
void Combine(T* dst, const T* a, const T* b, size_t n) {
  Op op;
  for (size_t i = 0; i < n; ++i) dst[i] = op(a[i], b[i]);
}

template <typename T>
void Divide(T* data, size_t n, int divisor) {
  if constexpr (std::is_floating_point_v<T>) {
    const T d = static_cast<T>(divisor);
    for (size_t i = 0; i < n; ++i) data[i] /= d;
  } else {
    const T d = static_cast<T>(divisor);
    for (size_t i = 0; i < n; ++i) data[i] /= d;
  }
}

template <typename T, typename Op>
void ReduceNative(void* dst_v, const void* const* srcs, int nsrc, size_t count) {
  T* dst = static_cast<T*>(dst_v);
  if (nsrc == 1) {
    if (dst != srcs[0]) std::memmove(dst, srcs[0], count * sizeof(T));
    return;
  }
  // Blocked so the partial result stays in L1 while the remaining sources stream through.
  constexpr size_t kBlock = 4096 / sizeof(T) * 4;
  for (size_t off = 0; off < count; off += kBlock) {
    size_t n = std::min(kBlock, count - off);
    Combine<T, Op>(dst + off, static_cast<const T*>(srcs[0]) + off,
                   static_cast<const T*>(srcs[1]) + off, n);
    for (int s = 2; s < nsrc; ++s) {
      Combine<T, Op>(dst + off, dst + off, static_cast<const T*>(srcs[s]) + off, n);
    }
  }
}

template <float (*Load)(uint16_t), uint16_t (*Store)(float), typename Op>
void ReduceHalf(void* dst_v, const void* const* srcs, int nsrc, size_t count, int divisor) {
  uint16_t* dst = static_cast<uint16_t*>(dst_v);
  constexpr size_t kBlock = 1024;
  float acc[kBlock];
  Op op;
  for (size_t off = 0; off < count; off += kBlock) {
    size_t n = std::min(kBlock, count - off);
    const uint16_t* s0 = static_cast<const uint16_t*>(srcs[0]) + off;
    for (size_t i = 0; i < n; ++i) acc[i] = Load(s0[i]);
    for (int s = 1; s < nsrc; ++s) {
      const uint16_t* sp = static_cast<const uint16_t*>(srcs[s]) + off;
      for (size_t i = 0; i < n; ++i) acc[i] = op(acc[i], Load(sp[i]));
    }
    if (divisor > 0) {
      for (size_t i = 0; i < n; ++i) acc[i] /= static_cast<float>(divisor);
    }
    for (size_t i = 0; i < n; ++i) dst[off + i] = Store(acc[i]);
  }
}

template <float (*Load)(uint16_t), uint16_t (*Store)(float)>
void ReduceHalfOp(ReduceOp op, void* dst, const void* const* srcs, int nsrc, size_t count,
                  int avg_divisor) {
  switch (op) {
    case ReduceOp::kSum: return ReduceHalf<Load, Store, SumOp>(dst, srcs, nsrc, count, 0);
    case ReduceOp::kAvg:
      return ReduceHalf<Load, Store, SumOp>(dst, srcs, nsrc, count, avg_divisor);
    case ReduceOp::kMax: return ReduceHalf<Load, Store, MaxOp>(dst, srcs, nsrc, count, 0);
    case ReduceOp::kMin: return ReduceHalf<Load, Store, MinOp>(dst, srcs, nsrc, count, 0);
  }
}

template <typename T>
void ReduceNativeOp(ReduceOp op, void* dst, const void* const* srcs, int nsrc, size_t count,
                    int avg_divisor) {
  switch (op) {
    case ReduceOp::kSum: return ReduceNative<T, SumOp>(dst, srcs, nsrc, count);
    case ReduceOp::kAvg:
      ReduceNative<T, SumOp>(dst, srcs, nsrc, count);
      if (avg_divisor > 0) Divide<T>(static_cast<T*>(dst), count, avg_divisor);
      return;
    case ReduceOp::kMax: return ReduceNative<T, MaxOp>(dst, srcs, nsrc, count);
    case ReduceOp::kMin: return ReduceNative<T, MinOp>(dst, srcs, nsrc, count);
  }
}

}  // namespace

void ReduceHost(DataType type, ReduceOp op, void* dst, const void* const* srcs, int nsrc,
                size_t count, int avg_divisor) {
  if (count == 0 || nsrc <= 0) return;
  switch (type) {
    case DataType::kFloat32: return ReduceNativeOp<float>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kFloat64:
      return ReduceNativeOp<double>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kInt32: return ReduceNativeOp<int32_t>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kInt64: return ReduceNativeOp<int64_t>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kBFloat16:
      return ReduceHalfOp<BFloat16ToFloat, FloatToBFloat16>(op, dst, srcs, nsrc, count,
                                                            avg_divisor);
    case DataType::kFloat16:
      return ReduceHalfOp<Float16ToFloat, FloatToFloat16>(op, dst, srcs, nsrc, count,
                                                          avg_divisor);
  }
}

void DivideHost(DataType type, void* data, size_t count, int divisor) {
  if (divisor <= 1) return;
  switch (type) {
    case DataType::kFloat32: return Divide(static_cast<float*>(data), count, divisor);
    case DataType::kFloat64: return Divide(static_cast<double*>(data), count, divisor);
    case DataType::kInt32: return Divide(static_cast<int32_t*>(data), count, divisor);
    case DataType::kInt64: return Divide(static_cast<int64_t*>(data), count, divisor);
    case DataType::kBFloat16:
    case DataType::kFloat16: {
      const void* src[1] = {data};
      ReduceHost(type, ReduceOp::kAvg, data, src, 1, count, divisor);
      return;
    }
  }
}

}  // namespace kubetrain::collective
