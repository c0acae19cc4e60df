#include "kubetrain/collective/types.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::collective {

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return 4;
    case DataType::kBFloat16:
      return 2;
    case DataType::kFloat16:
      return 2;
    case DataType::kFloat64:
      return 8;
    case DataType::kInt32:
      return 4;
    case DataType::kInt64:
      return 8;
  }
  return 1;
}

absl::string_view DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat16:
      return "float16";
    case DataType::kFloat64:
      return "float64";
    case DataType::kInt32:
      return "int32";
    case DataType::kInt64:
      return "int64";
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
  return absl::InvalidArgumentError(
      absl::StrCat("unknown data type '", name,
                   "'; expected float32, bfloat16, float16, float64, int32, int64"));
}

absl::string_view ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
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

float Float16ToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exp = (bits >> 10) & 0x1fu;
  uint32_t mant = bits & 0x3ffu;
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
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // overflow (>= 65520) -> inf
  if (abs < 0x38800000u) {                        // subnormal or zero in half
    if (abs < 0x33000000u) return sign;           // < 2^-25 rounds to zero
    uint32_t exp = abs >> 23;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;  // 14..24
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1u))) ++half_mant;
    return sign | static_cast<uint16_t>(half_mant);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return sign | static_cast<uint16_t>(r >> 13);
}

namespace {

struct SumOp {
  template <typename T>
  T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  template <typename T>
  T operator()(T a, T b) const {
    return b > a ? b : a;
  }
};
struct MinOp {
  template <typename T>
  T operator()(T a, T b) const {
    return b < a ? b : a;
  }
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

// Block conversions between 2-byte floats and float32. bfloat16 is branch-free bit work that
// GCC vectorizes; float16 uses the F16C instructions when the CPU has them.
void BF16ToFloatBlock(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(&dst[i], &u, 4);
  }
}

void FloatToBF16Block(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &src[i], 4);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x40u;
    dst[i] = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx,f16c"))) void F16ToFloatBlockF16C(const uint16_t* src, float* dst,
                                                             size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = Float16ToFloat(src[i]);
}

__attribute__((target("avx,f16c"))) void FloatToF16BlockF16C(const float* src, uint16_t* dst,
                                                             size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = FloatToFloat16(src[i]);
}

bool HaveF16C() {
  static const bool has = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
  return has;
}
#endif

void F16ToFloatBlock(const uint16_t* src, float* dst, size_t n) {
#if defined(__x86_64__)
  if (HaveF16C()) return F16ToFloatBlockF16C(src, dst, n);
#endif
  for (size_t i = 0; i < n; ++i) dst[i] = Float16ToFloat(src[i]);
}

void FloatToF16Block(const float* src, uint16_t* dst, size_t n) {
#if defined(__x86_64__)
  if (HaveF16C()) return FloatToF16BlockF16C(src, dst, n);
#endif
  for (size_t i = 0; i < n; ++i) dst[i] = FloatToFloat16(src[i]);
}

template <void (*Load)(const uint16_t*, float*, size_t),
          void (*Store)(const float*, uint16_t*, size_t), typename Op>
void ReduceHalf(void* dst_v, const void* const* srcs, int nsrc, size_t count, int divisor) {
  uint16_t* dst = static_cast<uint16_t*>(dst_v);
  constexpr size_t kBlock = 2048;
  float acc[kBlock], tmp[kBlock];
  for (size_t off = 0; off < count; off += kBlock) {
    const size_t n = std::min(kBlock, count - off);
    Load(static_cast<const uint16_t*>(srcs[0]) + off, acc, n);
    for (int s = 1; s < nsrc; ++s) {
      Load(static_cast<const uint16_t*>(srcs[s]) + off, tmp, n);
      Combine<float, Op>(acc, acc, tmp, n);
    }
    if (divisor > 0) Divide<float>(acc, n, divisor);
    Store(acc, dst + off, n);
  }
}

template <void (*Load)(const uint16_t*, float*, size_t),
          void (*Store)(const float*, uint16_t*, size_t)>
void ReduceHalfOp(ReduceOp op, void* dst, const void* const* srcs, int nsrc, size_t count,
                  int avg_divisor) {
  switch (op) {
    case ReduceOp::kSum:
      return ReduceHalf<Load, Store, SumOp>(dst, srcs, nsrc, count, 0);
    case ReduceOp::kAvg:
      return ReduceHalf<Load, Store, SumOp>(dst, srcs, nsrc, count, avg_divisor);
    case ReduceOp::kMax:
      return ReduceHalf<Load, Store, MaxOp>(dst, srcs, nsrc, count, 0);
    case ReduceOp::kMin:
      return ReduceHalf<Load, Store, MinOp>(dst, srcs, nsrc, count, 0);
  }
}

template <typename T>
void ReduceNativeOp(ReduceOp op, void* dst, const void* const* srcs, int nsrc, size_t count,
                    int avg_divisor) {
  switch (op) {
    case ReduceOp::kSum:
      return ReduceNative<T, SumOp>(dst, srcs, nsrc, count);
    case ReduceOp::kAvg:
      ReduceNative<T, SumOp>(dst, srcs, nsrc, count);
      if (avg_divisor > 0) Divide<T>(static_cast<T*>(dst), count, avg_divisor);
      return;
    case ReduceOp::kMax:
      return ReduceNative<T, MaxOp>(dst, srcs, nsrc, count);
    case ReduceOp::kMin:
      return ReduceNative<T, MinOp>(dst, srcs, nsrc, count);
  }
}

}  // namespace

void ReduceHost(DataType type, ReduceOp op, void* dst, const void* const* srcs, int nsrc,
                size_t count, int avg_divisor) {
  if (count == 0 || nsrc <= 0) return;
  switch (type) {
    case DataType::kFloat32:
      return ReduceNativeOp<float>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kFloat64:
      return ReduceNativeOp<double>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kInt32:
      return ReduceNativeOp<int32_t>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kInt64:
      return ReduceNativeOp<int64_t>(op, dst, srcs, nsrc, count, avg_divisor);
    case DataType::kBFloat16:
      return ReduceHalfOp<BF16ToFloatBlock, FloatToBF16Block>(op, dst, srcs, nsrc, count,
                                                              avg_divisor);
    case DataType::kFloat16:
      return ReduceHalfOp<F16ToFloatBlock, FloatToF16Block>(op, dst, srcs, nsrc, count,
                                                            avg_divisor);
  }
}

void DivideHost(DataType type, void* data, size_t count, int divisor) {
  if (divisor <= 1) return;
  switch (type) {
    case DataType::kFloat32:
      return Divide(static_cast<float*>(data), count, divisor);
    case DataType::kFloat64:
      return Divide(static_cast<double*>(data), count, divisor);
    case DataType::kInt32:
      return Divide(static_cast<int32_t*>(data), count, divisor);
    case DataType::kInt64:
      return Divide(static_cast<int64_t*>(data), count, divisor);
    case DataType::kBFloat16:
    case DataType::kFloat16: {
      const void* src[1] = {data};
      ReduceHost(type, ReduceOp::kAvg, data, src, 1, count, divisor);
      return;
    }
  }
}

}  // namespace kubetrain::collective
