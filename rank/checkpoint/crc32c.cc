// crc32c (Castagnoli, reflected polynomial 0x82f63b78). The SSE4.2 path runs three independent
// crc32 instruction streams over adjacent blocks and combines them with GF(2) multiplication
// (after Mark Adler's crc32c.c), reaching several GB/s per core; the fallback is a byte table.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kubetrain/rank/checkpoint.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace kubetrain::checkpoint {
namespace {

constexpr uint32_t kPoly = 0x82f63b78u;

struct Tables {
  uint32_t byte[256];
  uint32_t x2n[32];  // x^(2^n) mod p
  Tables() {
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      byte[n] = c;
    }
  }
};

// a * b mod p (bit-reflected).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

const Tables& GetTables() {
  static const Tables* tables = [] {
    auto* t = new Tables();
    uint32_t p = 1u << 30;  // x^1
    t->x2n[0] = p;
    for (int n = 1; n < 32; ++n) t->x2n[n] = p = MultModP(p, p);
    return t;
  }();
  return *tables;
}

// x^(8 * len) mod p: multiplying a crc register by it appends `len` zero bytes.
uint32_t ZerosOperator(size_t len) {
  const Tables& t = GetTables();
  uint32_t p = 1u << 31;  // x^0
  unsigned k = 3;
  while (len) {
    if (len & 1) p = MultModP(t.x2n[k & 31], p);
    len >>= 1;
    ++k;
  }
  return p;
}

uint32_t Crc32cTable(uint32_t crc, const uint8_t* p, size_t n) {
  const Tables& t = GetTables();
  while (n--) crc = t.byte[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
constexpr size_t kLong = 8192;
constexpr size_t kShort = 256;

// Consumes 3 * `block` bytes at a time from (p, n) with three interleaved crc streams; `op` is
// ZerosOperator(block).
__attribute__((target("sse4.2"))) uint64_t Run3(uint64_t c0, const uint8_t*& p, size_t& n,
                                                size_t block, uint32_t op) {
  while (n >= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    const uint8_t* end = p + block;
    do {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p, 8);
      std::memcpy(&w1, p + block, 8);
      std::memcpy(&w2, p + 2 * block, 8);
      c0 = _mm_crc32_u64(c0, w0);
      c1 = _mm_crc32_u64(c1, w1);
      c2 = _mm_crc32_u64(c2, w2);
      p += 8;
    } while (p < end);
    c0 = MultModP(op, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c0 = MultModP(op, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c2);
    p += 2 * block;
    n -= 3 * block;
  }
  return c0;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t crc, const uint8_t* p, size_t n) {
  static const uint32_t long_op = ZerosOperator(kLong);
  static const uint32_t short_op = ZerosOperator(kShort);
  uint64_t c0 = crc;
  while (n && (reinterpret_cast<uintptr_t>(p) & 7)) {
    c0 = _mm_crc32_u8(static_cast<uint32_t>(c0), *p++);
    --n;
  }
  c0 = Run3(c0, p, n, kLong, long_op);
  c0 = Run3(c0, p, n, kShort, short_op);
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c0 = _mm_crc32_u64(c0, w);
    p += 8;
    n -= 8;
  }
  while (n--) c0 = _mm_crc32_u8(static_cast<uint32_t>(c0), *p++);
  return static_cast<uint32_t>(c0);
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (HaveSse42()) return ~Crc32cSse42(c, p, size);
#endif
  return ~Crc32cTable(c, p, size);
}

}  // namespace kubetrain::checkpoint
