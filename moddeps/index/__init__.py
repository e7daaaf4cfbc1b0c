"""kmod's binary index files (``modules.*.bin``): format, writer, reader, builtin parsers."""
