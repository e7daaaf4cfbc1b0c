/*
 * CRC-32 as zlib.crc32 computes it (the reflected polynomial 0xEDB88320, the
 * register inverted before and after), for the C extensions that need one:
 * _elfscan (the scan cache's seals, crc32()) and read/_xz (the check of a
 * .ko.xz block, which liblzma is told to skip: see _xz.c).  One copy of
 * moddeps/_crc32.c is built into each extension, its symbols hidden.
 */
#ifndef MODDEPS_CRC32_H
#define MODDEPS_CRC32_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MODDEPS_HIDDEN __attribute__((visibility("hidden")))
#else
#define MODDEPS_HIDDEN
#endif

/* zlib.crc32(p[0:n], crc): carry-less multiplication (PCLMULQDQ) where the
 * CPU has it, else eight tables (slicing-by-8).  Thread-safe once
 * moddeps_crc32_init() has returned. */
MODDEPS_HIDDEN uint32_t moddeps_crc32(uint32_t crc, const unsigned char *p, size_t n);

/* the same with the tables alone (what moddeps_crc32 does without PCLMULQDQ) */
MODDEPS_HIDDEN uint32_t moddeps_crc32_tables(uint32_t crc, const unsigned char *p, size_t n);

/* whether moddeps_crc32 multiplies (1) or looks up tables (0) */
MODDEPS_HIDDEN int moddeps_crc32_folds(void);

/* build the tables and look at the CPU; call once, with the GIL, before any use */
MODDEPS_HIDDEN void moddeps_crc32_init(void);

#endif
