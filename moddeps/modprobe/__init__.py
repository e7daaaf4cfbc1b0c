"""modprobe: load and unload plans and initramfs closures, as kmod's modprobe makes them."""
