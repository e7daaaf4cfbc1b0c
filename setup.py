"""Build the optional C accelerators; all metadata lives in pyproject.toml.

Both extensions are ``optional``: without a C compiler the install still
succeeds and moddeps runs on its pure-Python paths (same results, slower).
Each is built from several sources, one per job; ``depends`` (the shared
headers) makes a header change rebuild them.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "moddeps._elfscan",
            ["moddeps/_elfscan.c", "moddeps/_elfscan_codec.c"],
            depends=["moddeps/_elfscan.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
        Extension(
            "moddeps.depmod._trie",
            ["moddeps/depmod/_trie.c", "moddeps/depmod/_trie_resolve.c"],
            depends=["moddeps/depmod/_trie.h"],
            extra_compile_args=FLAGS,
            optional=True,
        ),
    ],
)
