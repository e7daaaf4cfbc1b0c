/* SPDX-License-Identifier: GPL-2.0 */
/* mdx_dup.h - the symbol both mdx_dup_a and mdx_dup_b export (same CRC). */
#ifndef MDX_DUP_H
#define MDX_DUP_H

const char *mdx_dup_hello(void);

#endif /* MDX_DUP_H */
