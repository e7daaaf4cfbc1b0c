"""moddeps: Linux kernel module trees, understood from the binaries alone."""

__version__ = "0.1.0"
