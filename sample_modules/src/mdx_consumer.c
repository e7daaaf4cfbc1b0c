// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_consumer - uses all three exports of mdx_exporter.
 *
 * It imports the MDX_CORE namespace, as modpost requires for
 * mdx_ns_version, so depmod gives it "depends: mdx_exporter".
 *
 * The same source is also built a second time with -DMDX_CONSUMER_OLD
 * (an "older release" that only uses the plain export); that copy is
 * installed under updates/ to give the tree a duplicate module name.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/ktime.h>
#include "mdx_exporter.h"

static int __init mdx_consumer_init(void)
{
#ifdef MDX_CONSUMER_OLD
	pr_info("old consumer: 2+3=%d\n", mdx_plain_add(2, 3));
#else
	/* ktime_get is a GPL-only vmlinux export. */
	pr_info("2+3=%d 2*3=%d ns v%d t=%lld\n",
		mdx_plain_add(2, 3), mdx_gpl_mul(2, 3), mdx_ns_version(),
		ktime_to_ns(ktime_get()));
#endif
	return 0;
}

static void __exit mdx_consumer_exit(void)
{
	pr_info("unloaded\n");
}

module_init(mdx_consumer_init);
module_exit(mdx_consumer_exit);

#ifndef MDX_CONSUMER_OLD
MODULE_IMPORT_NS(MDX_CORE);
MODULE_VERSION("1.0");
MODULE_DESCRIPTION("Uses plain, GPL-only and namespaced exports of mdx_exporter");
#else
MODULE_VERSION("0.9");
MODULE_DESCRIPTION("Older mdx_consumer: uses only the plain export of mdx_exporter");
#endif

MODULE_ALIAS("mdx-consumer");
MODULE_ALIAS("mdx:consumer");
MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
