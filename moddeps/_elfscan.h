/*
 * What the two sources of moddeps._elfscan share: _elfscan.c (the module
 * reader, the signature walker and the module itself) and _elfscan_codec.c
 * (the scan cache's record codec).
 */

#ifndef MODDEPS_ELFSCAN_H
#define MODDEPS_ELFSCAN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_native.h"

typedef const unsigned char *bp;

/* moddeps.native.DECLINED (set by the module's init) */
extern PyObject *elfscan_declined;

/* A new reference to DECLINED: what the reader returns for input it does not take. */
static inline PyObject *declined(void)
{
    return Py_NewRef(elfscan_declined);
}

/* ---------------------------------------------------------------------- */
/* Reading words in the file's byte order                                   */

static inline uint16_t rd16(bp p, int big)
{
    return big ? (uint16_t)(((unsigned)p[0] << 8) | p[1]) : (uint16_t)(p[0] | ((unsigned)p[1] << 8));
}

static inline uint32_t rd32(bp p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t rd64(bp p, int big)
{
    uint64_t a = rd32(p, big), b = rd32(p + 4, big);
    return big ? (a << 32) | b : (b << 32) | a;
}

/* ---------------------------------------------------------------------- */
/* Python objects                                                           */

/* Whether n bytes are all 7-bit ASCII, 8 at a time. */
static inline int all_ascii(bp p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080u) == 0;
}

static inline PyObject *new_bool(int v)
{
    PyObject *b = v ? Py_True : Py_False;
    Py_INCREF(b);
    return b;
}

static inline PyObject *new_none(void)
{
    Py_INCREF(Py_None);
    return Py_None;
}

/* A tuple (or an instance of the tuple subclass `type`) of n NULL items. */
static inline PyObject *new_record(PyTypeObject *type, Py_ssize_t n)
{
    if (type == NULL)
        return PyTuple_New(n);
    return type->tp_alloc(type, n);
}

/* record(type, a, b, c, d[, e]): steals the references; NULL items mean an
 * error already set (the others are released). */
static inline PyObject *record(PyTypeObject *type, Py_ssize_t n, PyObject **items)
{
    Py_ssize_t i;
    PyObject *t = NULL;
    for (i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    t = new_record(type, n);
    if (t == NULL)
        goto fail;
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, items[i]);
    return t;
fail:
    for (i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* The optional memo argument of the parsers: a dict, or None or absent (then NULL).
 * -1 with a TypeError for anything else. */
static inline int memo_arg(PyObject **memo)
{
    if (*memo == Py_None)
        *memo = NULL;
    if (*memo != NULL && !PyDict_CheckExact(*memo)) {
        PyErr_SetString(PyExc_TypeError, "memo must be a dict or None");
        return -1;
    }
    return 0;
}

static inline int record_type(PyObject *o, PyTypeObject **out, const char *what)
{
    PyTypeObject *t;
    *out = NULL;
    if (o == NULL || o == Py_None)
        return 0;
    if (!PyType_Check(o) || !PyType_IsSubtype((PyTypeObject *)o, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a subclass of tuple or None", what);
        return -1;
    }
    t = (PyTypeObject *)o;
    if (t->tp_basicsize != PyTuple_Type.tp_basicsize || t->tp_itemsize != PyTuple_Type.tp_itemsize ||
        t->tp_alloc == NULL) {
        PyErr_Format(PyExc_TypeError, "%s must have the layout of tuple (no extra fields)", what);
        return -1;
    }
    *out = t == &PyTuple_Type ? NULL : t;
    return 0;
}

/* _elfscan_codec.c: pack, unpack, unpack_many; file_keys, pack_rows.  elfscan_pack_module is
 * pack(m) for parse_files' packed records (new reference, or NULL with an exception). */
extern PyMethodDef elfscan_codec_methods[];
int elfscan_codec_init(void);
PyObject *elfscan_pack_module(PyObject *m);

/* _elfscan_walk.c: walk, stat_many; and for file_keys, elfscan_identities: the identities of a
 * tuple of paths, stat'ed on two cores (see there) */
extern PyMethodDef elfscan_walk_methods[];
#ifdef __linux__
PyObject *elfscan_identities(PyObject *seq, int follow, int (*accept)(const char *, Py_ssize_t));
#endif

/* moddeps.model.Module's fields, in order (recordcodec._FIELDS, the codec's field_names) */
enum {
    M_NAME, M_PATH, M_EXPORTS, M_IMPORTS, M_MODINFO, M_HAS_INIT, M_HAS_EXIT, M_MACHINE, M_ELF_CLASS,
    M_BYTE_ORDER, M_COMPRESSION, M_ERROR, M_KMOD_ERROR, M_SIGNATURE, M_FIELDS
};

/* _elfscan_codec.c: records of a Module class made without its __init__.
 * elfscan_module_type checks that `mo` is a slots dataclass that can be made
 * so, and puts the member descriptors of its M_FIELDS fields in `descr` (new
 * references); 0, or -1 with TypeError.  elfscan_module_new makes one from
 * `vals` (M_FIELDS references, stolen; a NULL item: an error already set). */
int elfscan_module_type(PyObject *mo, PyObject **descr);
PyObject *elfscan_module_new(PyTypeObject *type, PyObject *const *descr, PyObject **vals);

#endif
