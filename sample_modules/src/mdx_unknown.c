// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_unknown - uses mdx_does_not_exist, which neither the kernel nor any
 * module provides, next to a real kernel export (_printk via pr_info).
 *
 * modpost reports '"mdx_does_not_exist" [mdx_unknown.ko] undefined!';
 * the Makefile builds it in its own Kbuild run with KBUILD_MODPOST_WARN=1
 * so that is only a warning.  "depmod -e" flags the unknown symbol.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>

extern void mdx_does_not_exist(void);

static int __init mdx_unknown_init(void)
{
	pr_info("calling a symbol nobody exports\n");
	mdx_does_not_exist();
	return 0;
}

static void __exit mdx_unknown_exit(void)
{
}

module_init(mdx_unknown_init);
module_exit(mdx_unknown_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Uses a symbol that nothing exports");
