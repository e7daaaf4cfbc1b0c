// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_dup_user - uses mdx_dup_hello, which both mdx_dup_a and mdx_dup_b
 * export.  Which one it ends up depending on is depmod's choice
 * (built against mdx_dup_a; the CRC is identical for both).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include "mdx_dup.h"

static int __init mdx_dup_user_init(void)
{
	pr_info("hello from %s\n", mdx_dup_hello());
	return 0;
}

static void __exit mdx_dup_user_exit(void)
{
}

module_init(mdx_dup_user_init);
module_exit(mdx_dup_user_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Uses a symbol exported by two modules");
