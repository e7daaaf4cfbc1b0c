/*
 * What the two sources of moddeps.depmod._trie share: _trie.c (the index
 * writer, kmod's hash, the writers' helpers and the module itself) and
 * _trie_resolve.c (symbol resolution).
 */

#ifndef MODDEPS_TRIE_H
#define MODDEPS_TRIE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_native.h"

/* moddeps.native.DECLINED (set by the module's init) */
extern PyObject *trie_declined;

/* A new reference to DECLINED: what a function returns for data it does not take. */
static inline PyObject *declined(void)
{
    return Py_NewRef(trie_declined);
}

/* The owner index of a symbol the kernel exports */
#define KERNEL (-1) /* = moddeps.resolve:KERNEL */

/* _trie_resolve.c: resolve_exports, resolve_imports */
extern PyMethodDef trie_resolve_methods[];

#endif
