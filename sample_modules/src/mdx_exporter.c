// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_exporter - provides symbols to the other moddeps sample modules.
 *
 * Demonstrates the three kinds of exports modpost and depmod know about:
 *   mdx_plain_add   EXPORT_SYMBOL          -> __ksymtab
 *   mdx_gpl_mul     EXPORT_SYMBOL_GPL      -> __ksymtab_gpl
 *   mdx_ns_version  EXPORT_SYMBOL_NS_GPL   -> __ksymtab_gpl, namespace MDX_CORE
 * With CONFIG_MODVERSIONS each export also gets a CRC (__crc_<sym>).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/jiffies.h>
#include "mdx_exporter.h"

int mdx_plain_add(int a, int b)
{
	return a + b;
}
EXPORT_SYMBOL(mdx_plain_add);

int mdx_gpl_mul(int a, int b)
{
	return a * b;
}
EXPORT_SYMBOL_GPL(mdx_gpl_mul);

int mdx_ns_version(void)
{
	return 1;
}
EXPORT_SYMBOL_NS_GPL(mdx_ns_version, MDX_CORE);

static int __init mdx_exporter_init(void)
{
	/* jiffies and _printk (behind pr_info) are real vmlinux exports. */
	pr_info("loaded at jiffies=%lu\n", jiffies);
	return 0;
}

static void __exit mdx_exporter_exit(void)
{
	pr_info("unloaded\n");
}

module_init(mdx_exporter_init);
module_exit(mdx_exporter_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Exports a plain, a GPL-only and a namespaced symbol");
MODULE_VERSION("1.0");
