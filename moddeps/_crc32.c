/*
 * zlib's CRC-32, fast: see _crc32.h.
 *
 * The folding (x86-64 with PCLMULQDQ) follows the method of Gopal et al.,
 * "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ Instruction"
 * (Intel, 2009), worked out here for this layout.  In the reflected CRC a
 * 16-byte lane loaded little-endian holds the message polynomial with its
 * first bit as the highest power; writing a lane as H x^64 + L (H: its low
 * quadword), moving it D bits further down the message multiplies it by x^D,
 * and modulo the CRC polynomial P
 *
 *     (H x^64 + L) x^D  ==  H (x^(64+D) mod P) + L (x^D mod P)
 *
 * two carry-less products of at most 96 bits, which fit a lane.  A carry-less
 * product of two bit-reflected quadwords is the reflected product shifted by
 * one bit, hence the constants x^(63+D) and x^(D-1) below, each mod P and
 * bit-reflected over 64 bits (tests/test_crc32.py derives them again).  Four
 * lanes are folded 64 bytes ahead (D = 512) while 64 bytes are left, then
 * into one (D = 128).  What is left -- that lane, congruent to everything
 * before it, and the last 0-15 bytes -- goes through the tables: the CRC of
 * a message depends on its polynomial modulo P only.  The initial register
 * (~crc) is the first four bytes' XOR, as zlib's inversion is.
 */
#include "_crc32.h"


static uint32_t tab[8][256];
static int folds;

MODDEPS_HIDDEN uint32_t moddeps_crc32_tables(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = tab[7][lo & 0xFF] ^ tab[6][(lo >> 8) & 0xFF] ^ tab[5][(lo >> 16) & 0xFF] ^ tab[4][lo >> 24] ^
              tab[3][hi & 0xFF] ^ tab[2][(hi >> 8) & 0xFF] ^ tab[1][(hi >> 16) & 0xFF] ^ tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MODDEPS_CRC32_FOLD 1
#include <emmintrin.h>
#include <wmmintrin.h>

/* x^(63+D) mod P and x^(D-1) mod P, bit-reflected over 64 bits (see above) */
#define K512_LO 0x653d982200000000ull /* D = 512 */
#define K512_HI 0xcad38e8f00000000ull
#define K128_LO 0x65673b4600000000ull /* D = 128 */
#define K128_HI 0x9ba54c6f00000000ull

__attribute__((target("pclmul"))) static inline __m128i fold(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* n >= 64 */
__attribute__((target("pclmul"))) static uint32_t crc32_fold(uint32_t crc, const unsigned char *p, size_t n)
{
    const __m128i k512 = _mm_set_epi64x((long long)K512_HI, (long long)K512_LO);
    const __m128i k128 = _mm_set_epi64x((long long)K128_HI, (long long)K128_LO);
    __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)~crc));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
    p += 64;
    n -= 64;
    while (n >= 64) {
        x0 = _mm_xor_si128(fold(x0, k512), _mm_loadu_si128((const __m128i *)p));
        x1 = _mm_xor_si128(fold(x1, k512), _mm_loadu_si128((const __m128i *)(p + 16)));
        x2 = _mm_xor_si128(fold(x2, k512), _mm_loadu_si128((const __m128i *)(p + 32)));
        x3 = _mm_xor_si128(fold(x3, k512), _mm_loadu_si128((const __m128i *)(p + 48)));
        p += 64;
        n -= 64;
    }
    x0 = _mm_xor_si128(fold(x0, k128), x1);
    x0 = _mm_xor_si128(fold(x0, k128), x2);
    x0 = _mm_xor_si128(fold(x0, k128), x3);
    while (n >= 16) {
        x0 = _mm_xor_si128(fold(x0, k128), _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    unsigned char lane[16];
    _mm_storeu_si128((__m128i *)lane, x0);
    /* the register starts at 0 for the lane: zlib's crc argument ~0 */
    return moddeps_crc32_tables(moddeps_crc32_tables(0xFFFFFFFFu, lane, 16), p, n);
}
#endif

MODDEPS_HIDDEN uint32_t moddeps_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
#ifdef MODDEPS_CRC32_FOLD
    if (folds && n >= 64)
        return crc32_fold(crc, p, n);
#endif
    return moddeps_crc32_tables(crc, p, n);
}

MODDEPS_HIDDEN int moddeps_crc32_folds(void)
{
    return folds;
}

MODDEPS_HIDDEN void moddeps_crc32_init(void)
{
    uint32_t i, c;
    int k;
    if (tab[0][1] != 0)
        return;
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        tab[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++)
            tab[k][i] = (tab[k - 1][i] >> 8) ^ tab[0][tab[k - 1][i] & 0xFF];
#ifdef MODDEPS_CRC32_FOLD
    __builtin_cpu_init();
    folds = __builtin_cpu_supports("pclmul") != 0;
#endif
}
