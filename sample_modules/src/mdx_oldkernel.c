// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_oldkernel - an ordinary user of mdx_plain_add, but built against the
 * headers of another kernel (6.1.0-50-amd64 instead of the tree's
 * 6.1.0-50-cloud-amd64), so its vermagic does not match the release of
 * the tree it is installed in.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <generated/utsrelease.h>
#include "mdx_exporter.h"

static int __init mdx_oldkernel_init(void)
{
	pr_info("built for " UTS_RELEASE ": %d\n", mdx_plain_add(40, 2));
	return 0;
}

static void __exit mdx_oldkernel_exit(void)
{
}

module_init(mdx_oldkernel_init);
module_exit(mdx_oldkernel_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Built against another kernel release (vermagic mismatch)");
