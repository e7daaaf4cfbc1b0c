// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_dup_b - exports mdx_dup_hello, a symbol that mdx_dup_a exports too.
 *
 * modpost refuses two exports of one name in a single run ("exported
 * twice"), so mdx_dup_a and mdx_dup_b are built in separate Kbuild runs.
 * mdx_dup_b.ko is installed under extra/, so the tree has two providers
 * of one symbol and depmod has to pick one for mdx_dup_user.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include "mdx_dup.h"

const char *mdx_dup_hello(void)
{
	return KBUILD_MODNAME;
}
EXPORT_SYMBOL(mdx_dup_hello);

static int __init mdx_dup_b_init(void)
{
	pr_info("provides mdx_dup_hello\n");
	return 0;
}

static void __exit mdx_dup_b_exit(void)
{
}

module_init(mdx_dup_b_init);
module_exit(mdx_dup_b_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("One of two modules exporting mdx_dup_hello");
