/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mdx_exporter.h - the interface mdx_exporter.ko provides to the other
 * sample modules.  Shared so that every user sees the same prototypes
 * (and therefore genksyms computes the same CRCs on both sides).
 */
#ifndef MDX_EXPORTER_H
#define MDX_EXPORTER_H

/* EXPORT_SYMBOL: usable by any module, whatever its license. */
int mdx_plain_add(int a, int b);

/* EXPORT_SYMBOL_GPL: only GPL-compatible modules may link against it. */
int mdx_gpl_mul(int a, int b);

/* EXPORT_SYMBOL_NS_GPL(..., MDX_CORE): users must MODULE_IMPORT_NS(MDX_CORE). */
int mdx_ns_version(void);

#endif /* MDX_EXPORTER_H */
