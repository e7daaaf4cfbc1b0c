// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_noexit - has module_init() but no module_exit().
 *
 * The kernel refuses to unload such a module (delete_module returns
 * -EBUSY unless forced), so once loaded it stays: a "permanent" module.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>

static int __init mdx_noexit_init(void)
{
	pr_info("loaded; cannot be unloaded\n");
	return 0;
}

module_init(mdx_noexit_init);
/* No module_exit() on purpose. */

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Module without an exit function");
