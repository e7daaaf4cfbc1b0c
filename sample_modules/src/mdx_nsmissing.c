// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_nsmissing - uses the namespaced export mdx_ns_version WITHOUT
 * MODULE_IMPORT_NS(MDX_CORE).
 *
 * modpost rejects this ("module mdx_nsmissing uses symbol mdx_ns_version
 * from namespace MDX_CORE, but does not import it"), and the kernel would
 * refuse to load it.  The Makefile builds it in its own Kbuild run with
 * KBUILD_NSDEPS=1 so modpost gets -N (allow missing namespace imports)
 * and the .ko is still produced; see README.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include "mdx_exporter.h"

static int __init mdx_nsmissing_init(void)
{
	pr_info("ns version %d\n", mdx_ns_version());
	return 0;
}

static void __exit mdx_nsmissing_exit(void)
{
}

module_init(mdx_nsmissing_init);
module_exit(mdx_nsmissing_exit);

/* Deliberately no MODULE_IMPORT_NS(MDX_CORE) here. */
MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Uses a namespaced symbol without importing its namespace");
