// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_proprietary - declares a non-GPL license and still uses the GPL-only
 * export mdx_gpl_mul (plus the plain mdx_plain_add).
 *
 * modpost refuses this ("GPL-incompatible module mdx_proprietary.ko uses
 * GPL-only symbol 'mdx_gpl_mul'") and the kernel would taint itself (P)
 * and then refuse the GPL-only symbol at load time.  See README.md for
 * how the Makefile still produces the .ko.
 *
 * (The source itself is GPL like the rest of the samples; only the
 * MODULE_LICENSE string is the point of the exercise.)
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include "mdx_exporter.h"

static int __init mdx_proprietary_init(void)
{
	pr_info("%d %d\n", mdx_plain_add(1, 2), mdx_gpl_mul(3, 4));
	return 0;
}

static void __exit mdx_proprietary_exit(void)
{
}

module_init(mdx_proprietary_init);
module_exit(mdx_proprietary_exit);

MODULE_LICENSE("Proprietary");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Non-GPL module using a GPL-only symbol");
