"""Build the optional C accelerators; all metadata lives in pyproject.toml.

Both extensions are ``optional``: without a C compiler the install still
succeeds and moddeps runs on its pure-Python paths (same results, slower).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension("moddeps._elfscan", ["moddeps/_elfscan.c"], extra_compile_args=FLAGS, optional=True),
        Extension("moddeps.depmod._trie", ["moddeps/depmod/_trie.c"], extra_compile_args=FLAGS, optional=True),
    ],
)
