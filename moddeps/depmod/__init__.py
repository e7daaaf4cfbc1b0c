"""depmod: kmod-identical output files."""
