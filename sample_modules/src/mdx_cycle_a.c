// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_cycle_a - exports mdx_cycle_a_value and uses mdx_cycle_b_value
 * from mdx_cycle_b, which in turn uses this module's export.
 *
 * modpost accepts the pair (both are built in the same Kbuild run), but
 * the two modules depend on each other: depmod reports a cycle and
 * modprobe can load neither.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>

int mdx_cycle_b_value(void);

int mdx_cycle_a_value(void)
{
	return 'a';
}
EXPORT_SYMBOL_GPL(mdx_cycle_a_value);

static int __init mdx_cycle_a_init(void)
{
	pr_info("peer says %c\n", mdx_cycle_b_value());
	return 0;
}

static void __exit mdx_cycle_a_exit(void)
{
}

module_init(mdx_cycle_a_init);
module_exit(mdx_cycle_a_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Half of a dependency cycle (with mdx_cycle_b)");
