"""Build the optional C accelerators; all metadata lives in pyproject.toml.

Every extension is ``optional``: without a C compiler the install still
succeeds and moddeps runs on its pure-Python paths (same results, slower).
Each is built from several sources, one per job; ``depends`` (the headers)
makes a header change rebuild them.  ``moddeps/_native.h`` is the C side of
the contract in moddeps/native.py, shared by both.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"]
SHARED = {"include_dirs": ["moddeps"], "extra_compile_args": FLAGS, "optional": True}

setup(
    ext_modules=[
        Extension(
            "moddeps._elfscan",
            ["moddeps/_elfscan.c", "moddeps/_elfscan_codec.c", "moddeps/_elfscan_walk.c", "moddeps/_crc32.c"],
            depends=["moddeps/_elfscan.h", "moddeps/_native.h", "moddeps/_crc32.h"],
            **SHARED,
        ),
        Extension(
            "moddeps.depmod._trie",
            ["moddeps/depmod/_trie.c", "moddeps/depmod/_trie_resolve.c"],
            depends=["moddeps/depmod/_trie.h", "moddeps/_native.h"],
            **SHARED,
        ),
        # liblzma's happy path for .ko.xz (needs lzma.h: without it, compression.py's Python path alone)
        Extension(
            "moddeps.read._xz",
            ["moddeps/read/_xz.c", "moddeps/_crc32.c"],
            depends=["moddeps/_native.h", "moddeps/_crc32.h"],
            libraries=["lzma"],
            **SHARED,
        ),
    ],
)
