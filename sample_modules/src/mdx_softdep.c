// SPDX-License-Identifier: GPL-2.0
/*
 * mdx_softdep - exercises most of the .modinfo keys depmod turns into
 * modules.softdep, modules.weakdep, modules.alias and modules.devname.
 *
 * It links against nothing from the other sample modules: its only ties
 * to them are the soft and weak dependencies below.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mod_devicetable.h>
#include <linux/device.h>		/* MODULE_ALIAS_CHARDEV */

static int verbose = 1;
module_param(verbose, int, 0444);
MODULE_PARM_DESC(verbose, "Log level of the sample (0 = silent, default 1)");

/*
 * A device table: modpost turns it into a "pci:v...d...sv*sd*bc*sc*i*"
 * alias (vendor 0x1234 / device 0xd0d0, a made-up id) in .modinfo.
 */
static const struct pci_device_id mdx_softdep_pci_ids[] = {
	{ .vendor = 0x1234, .device = 0xd0d0,
	  .subvendor = PCI_ANY_ID, .subdevice = PCI_ANY_ID },
	{ }
};
MODULE_DEVICE_TABLE(pci, mdx_softdep_pci_ids);

static int __init mdx_softdep_init(void)
{
	if (verbose)
		pr_info("loaded (verbose=%d)\n", verbose);
	return 0;
}

static void __exit mdx_softdep_exit(void)
{
}

module_init(mdx_softdep_init);
module_exit(mdx_softdep_exit);

/* modprobe loads mdx_exporter before and mdx_consumer after this module. */
MODULE_SOFTDEP("pre: mdx_exporter post: mdx_consumer");
/* Linux 6.1 has no MODULE_WEAKDEP() yet; this is what it expands to. */
MODULE_INFO(weakdep, "mdx_consumer");

/* Hand-written aliases, two of them with wildcards. */
MODULE_ALIAS("mdx-softdep");
MODULE_ALIAS("pci:v00001234d0000D0D1sv*sd*bc*sc*i*");
MODULE_ALIAS("usb:v1234pD0D0d*dc*dsc*dp*ic*isc*ip*in*");
/* A char-major + devname pair: depmod writes "mdx_softdep mdx0 c240:0"
 * to modules.devname (240-254 are majors for local/experimental use). */
MODULE_ALIAS_CHARDEV(240, 0);
MODULE_ALIAS("devname:mdx0");

MODULE_FIRMWARE("mdx/firmware.bin");
MODULE_LICENSE("GPL");
MODULE_AUTHOR("moddeps sample modules");
MODULE_DESCRIPTION("Soft/weak dependencies, aliases, devname, firmware, parameter");
MODULE_VERSION("1.0");
