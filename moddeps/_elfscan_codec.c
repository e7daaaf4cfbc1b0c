/*
 * moddeps._elfscan's pack / unpack / unpack_many: the C side of the scan
 * cache's record codec, moddeps/read/recordcodec.py, which describes the format
 * and holds the pure-Python twin; and file_keys / pack_rows, the cache's keys
 * and sealed rows (twins in moddeps/read/cache.py).  unpack treats its input as hostile in the
 * same way as the module reader (_elfscan.c).
 */

#include "_elfscan.h"
#include "_crc32.h"

#include "marshal.h"

/* ---------------------------------------------------------------------- */
/* The scan cache's record of a Module: pack / unpack / unpack_many         */
/*                                                                          */
/* The format is described (and implemented again in pure Python, byte for  */
/* byte) in moddeps/read/recordcodec.py.  unpack treats a blob as hostile:  */
/* every count and length is checked against the blob before it sizes      */
/* anything, in 64-bit arithmetic that cannot overflow, and every string    */
/* read is bounded again where it happens; anything malformed raises        */
/* ValueError.                                                              */

/* "= module:name": the Python value this must equal (tests/test_native_constants.py);
 * "= module:*": each name of the enum equals the same name there */
#define RC_FORMAT 1 /* = moddeps.read.recordcodec:FORMAT */
/* format 1 and the signature's 4 strings after the modinfo */
#define RC_FORMAT_SIGNED 2 /* = moddeps.read.recordcodec:FORMAT_SIGNED */
#define RC_HEADER 17 /* = moddeps.read.recordcodec:HEADER_SIZE */
#define RC_FIELDS 14 /* = len(moddeps.read.recordcodec:_FIELDS) */

enum {
    F_INIT = 1, F_EXIT = 2, F_COMPRESSION = 4, F_ERROR = 8, F_KMOD_ERROR = 16, F_CRC64 = 32
}; /* = moddeps.read.recordcodec:* */
enum { E_GPL = 1, E_PSEUDO = 2, E_NS = 4, E_CRC = 8 }; /* = moddeps.read.recordcodec:* */
enum { I_WEAK = 1, I_VERSIONS_ONLY = 2, I_CRC = 4, I_EXT_CRC = 8 }; /* = moddeps.read.recordcodec:* */
/* Module's fields, in order (recordcodec._FIELDS): the M_* of _elfscan.h */
typedef char rc_fields_are_m_fields[RC_FIELDS == M_FIELDS ? 1 : -1];

static const char *const field_names[RC_FIELDS] = {
    "name", "path", "exports", "imports", "modinfo", "has_init", "has_exit", "machine", "elf_class",
    "byte_order", "compression", "error", "kmod_error", "signature",
};
static PyObject *field_str[RC_FIELDS]; /* the names, interned */

static inline void wr16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void wr64(unsigned char *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---- pack ---- */

typedef struct {
    const char *p;
    size_t n;
} Piece;

typedef struct {
    Piece *s;            /* the strings, in record order */
    size_t ns, scap;
    uint64_t *crc;       /* the CRCs, in record order */
    size_t ncrc, crccap;
    PyObject *keep;      /* list: the UTF-8 of non-ASCII strings, alive until written */
    size_t total, longest;
    int crc64;
} Packer;

static int pk_str(Packer *k, PyObject *o)
{
    const char *p;
    Py_ssize_t n;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected str, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(o) < 0)
        return -1;
#endif
    if (PyUnicode_IS_ASCII(o)) {
        p = (const char *)PyUnicode_DATA(o);
        n = PyUnicode_GET_LENGTH(o);
    } else {
        /* every str has bytes this way (lone surrogates included), and they decode back to it */
        PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        int rc;
        if (b == NULL)
            return -1;
        if (k->keep == NULL && (k->keep = PyList_New(0)) == NULL) {
            Py_DECREF(b);
            return -1;
        }
        rc = PyList_Append(k->keep, b);
        Py_DECREF(b);
        if (rc < 0)
            return -1;
        p = PyBytes_AS_STRING(b); /* alive in k->keep */
        n = PyBytes_GET_SIZE(b);
    }
    if (k->ns >= k->scap) { /* cannot happen: scap counts every string */
        PyErr_SetString(PyExc_SystemError, "pack: string count");
        return -1;
    }
    k->s[k->ns].p = p;
    k->s[k->ns].n = (size_t)n;
    k->ns++;
    k->total += (size_t)n;
    if ((size_t)n > k->longest)
        k->longest = (size_t)n;
    return 0;
}

/* An optional string: returns 1 if a string was added, 0 for None, -1 on error. */
static int pk_opt_str(Packer *k, PyObject *o)
{
    if (o == Py_None)
        return 0;
    return pk_str(k, o) < 0 ? -1 : 1;
}

/* A CRC: returns 1 if a number was added, 0 for None, -1 on error. */
static int pk_crc(Packer *k, PyObject *o)
{
    unsigned long long v;
    if (o == Py_None)
        return 0;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "a CRC must be an int or None, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
#if ULONG_MAX >= 0xFFFFFFFFFFFFFFFFu
    v = PyLong_AsUnsignedLong(o); /* (in 3.11, faster than the long long one) */
#else
    v = PyLong_AsUnsignedLongLong(o);
#endif
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "CRC %R does not fit in 64 bits", o);
        return -1;
    }
    if (k->ncrc >= k->crccap) {
        PyErr_SetString(PyExc_SystemError, "pack: CRC count");
        return -1;
    }
    k->crc[k->ncrc++] = (uint64_t)v;
    if (v > 0xFFFFFFFFu)
        k->crc64 = 1;
    return 1;
}

static int pk_small(PyObject *o, long limit, const char *what, long *out)
{
    long v;
    int overflow;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    v = PyLong_AsLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < 0 || v > limit) {
        PyErr_Format(PyExc_ValueError, "%s %R out of range 0..%ld", what, o, limit);
        return -1;
    }
    *out = v;
    return 0;
}

static int pk_tuple(PyObject *o, const char *what)
{
    if (PyTuple_Check(o))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s must be a tuple, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
}

/* Item i of `records` (a tuple) is a tuple of `size`. */
static PyObject *pk_record(PyObject *records, Py_ssize_t i, Py_ssize_t size, const char *what)
{
    PyObject *r = PyTuple_GET_ITEM(records, i);
    if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == size)
        return r;
    PyErr_Format(PyExc_TypeError, "each of %s must be a tuple of %zd", what, size);
    return NULL;
}

static int truth(PyObject *o, int bit)
{
    int t;
    if (o == Py_True)
        return bit;
    if (o == Py_False)
        return 0;
    t = PyObject_IsTrue(o);
    return t < 0 ? -1 : (t ? bit : 0);
}

static PyObject *elfscan_pack(PyObject *self, PyObject *m);

PyObject *elfscan_pack_module(PyObject *m)
{
    return elfscan_pack(NULL, m);
}

static PyObject *elfscan_pack(PyObject *self, PyObject *m)
{
    PyObject *f[RC_FIELDS] = {NULL}, *out = NULL;
    Packer k;
    Py_ssize_t i, n_exp, n_imp, n_info;
    size_t width, crc_size, size, j;
    long machine, elf_class;
    int flags = 0, t, code, signed_ = 0;
    unsigned char *w, *eflags = NULL, *iflags;

    memset(&k, 0, sizeof(k));
    for (i = 0; i < RC_FIELDS; i++)
        if ((f[i] = PyObject_GetAttr(m, field_str[i])) == NULL)
            goto done;
    if (pk_tuple(f[M_EXPORTS], "exports") < 0 || pk_tuple(f[M_IMPORTS], "imports") < 0 ||
        pk_tuple(f[M_MODINFO], "modinfo") < 0)
        goto done;
    n_exp = PyTuple_GET_SIZE(f[M_EXPORTS]);
    n_imp = PyTuple_GET_SIZE(f[M_IMPORTS]);
    n_info = PyTuple_GET_SIZE(f[M_MODINFO]);
    if ((uint64_t)n_exp > UINT32_MAX || (uint64_t)n_imp > UINT32_MAX || (uint64_t)n_info > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many records for one module");
        goto done;
    }
    k.scap = 10 + 2 * (size_t)n_exp + (size_t)n_imp + 2 * (size_t)n_info;
    k.crccap = (size_t)n_exp + (size_t)n_imp;
    k.s = PyMem_Malloc(k.scap * sizeof(Piece));
    k.crc = PyMem_Malloc(k.crccap ? k.crccap * sizeof(uint64_t) : 1);
    eflags = PyMem_Malloc((size_t)n_exp + (size_t)n_imp + 1);
    iflags = eflags ? eflags + n_exp : NULL;
    if (k.s == NULL || k.crc == NULL || eflags == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    if ((t = truth(f[M_HAS_INIT], F_INIT)) < 0)
        goto done;
    flags |= t;
    if ((t = truth(f[M_HAS_EXIT], F_EXIT)) < 0)
        goto done;
    flags |= t;
    if (pk_small(f[M_ELF_CLASS], 0xFF, "elf_class", &elf_class) < 0 ||
        pk_small(f[M_MACHINE], 0xFFFF, "machine", &machine) < 0)
        goto done;
    if (pk_str(&k, f[M_NAME]) < 0 || pk_str(&k, f[M_PATH]) < 0 || pk_str(&k, f[M_BYTE_ORDER]) < 0)
        goto done;
    if ((t = pk_opt_str(&k, f[M_COMPRESSION])) < 0)
        goto done;
    flags |= t ? F_COMPRESSION : 0;
    if ((t = pk_opt_str(&k, f[M_ERROR])) < 0)
        goto done;
    flags |= t ? F_ERROR : 0;
    if ((t = pk_opt_str(&k, f[M_KMOD_ERROR])) < 0)
        goto done;
    flags |= t ? F_KMOD_ERROR : 0;
    for (i = 0; i < n_exp; i++) {
        PyObject *e = pk_record(f[M_EXPORTS], i, 5, "exports");
        int ef = 0;
        if (e == NULL)
            goto done;
        if ((t = truth(PyTuple_GET_ITEM(e, 2), E_GPL)) < 0)
            goto done;
        ef |= t;
        if ((t = truth(PyTuple_GET_ITEM(e, 4), E_PSEUDO)) < 0)
            goto done;
        ef |= t;
        if (pk_str(&k, PyTuple_GET_ITEM(e, 0)) < 0)
            goto done;
        if ((t = pk_opt_str(&k, PyTuple_GET_ITEM(e, 3))) < 0)
            goto done;
        ef |= t ? E_NS : 0;
        if ((t = pk_crc(&k, PyTuple_GET_ITEM(e, 1))) < 0)
            goto done;
        ef |= t ? E_CRC : 0;
        eflags[i] = (unsigned char)ef;
    }
    for (i = 0; i < n_imp; i++) {
        PyObject *r = pk_record(f[M_IMPORTS], i, 5, "imports");
        int fl = 0;
        if (r == NULL)
            goto done;
        if ((t = truth(PyTuple_GET_ITEM(r, 2), I_WEAK)) < 0)
            goto done;
        fl |= t;
        if ((t = truth(PyTuple_GET_ITEM(r, 3), I_VERSIONS_ONLY)) < 0)
            goto done;
        fl |= t;
        if ((t = truth(PyTuple_GET_ITEM(r, 4), I_EXT_CRC)) < 0)
            goto done;
        fl |= t;
        if (pk_str(&k, PyTuple_GET_ITEM(r, 0)) < 0)
            goto done;
        if ((t = pk_crc(&k, PyTuple_GET_ITEM(r, 1))) < 0)
            goto done;
        fl |= t ? I_CRC : 0;
        iflags[i] = (unsigned char)fl;
    }
    for (i = 0; i < n_info; i++) {
        PyObject *pair = pk_record(f[M_MODINFO], i, 2, "modinfo");
        if (pair == NULL || pk_str(&k, PyTuple_GET_ITEM(pair, 0)) < 0 || pk_str(&k, PyTuple_GET_ITEM(pair, 1)) < 0)
            goto done;
    }
    if (f[M_SIGNATURE] != Py_None) {
        if (!PyTuple_Check(f[M_SIGNATURE]) || PyTuple_GET_SIZE(f[M_SIGNATURE]) != 4) {
            PyErr_SetString(PyExc_TypeError, "signature must be a tuple of 4 or None");
            goto done;
        }
        for (i = 0; i < 4; i++)
            if (pk_str(&k, PyTuple_GET_ITEM(f[M_SIGNATURE], i)) < 0)
                goto done;
        signed_ = 1;
    }

    if (k.longest < (1u << 8))
        code = 0;
    else if (k.longest < (1u << 16))
        code = 1;
    else if ((uint64_t)k.longest < ((uint64_t)1 << 32))
        code = 2;
    else {
        PyErr_SetString(PyExc_ValueError, "a string of 4 GiB or more");
        goto done;
    }
    width = (size_t)1 << code;
    flags |= code << 6;
    if (k.crc64)
        flags |= F_CRC64;
    crc_size = k.crc64 ? 8 : 4;
    size = RC_HEADER + (size_t)n_exp + (size_t)n_imp + k.ns * width + k.ncrc * crc_size + k.total;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL)
        goto done;
    w = (unsigned char *)PyBytes_AS_STRING(out);
    w[0] = signed_ ? RC_FORMAT_SIGNED : RC_FORMAT;
    w[1] = (unsigned char)flags;
    w[2] = (unsigned char)elf_class;
    wr16(w + 3, (uint32_t)machine);
    wr32(w + 5, (uint32_t)n_exp);
    wr32(w + 9, (uint32_t)n_imp);
    wr32(w + 13, (uint32_t)n_info);
    w += RC_HEADER;
    if (n_exp + n_imp)
        memcpy(w, eflags, (size_t)n_exp + (size_t)n_imp);
    w += n_exp + n_imp;
    for (j = 0; j < k.ns; j++, w += width) {
        if (width == 1)
            w[0] = (unsigned char)k.s[j].n;
        else if (width == 2)
            wr16(w, (uint32_t)k.s[j].n);
        else
            wr32(w, (uint32_t)k.s[j].n);
    }
    for (j = 0; j < k.ncrc; j++, w += crc_size) {
        if (crc_size == 4)
            wr32(w, (uint32_t)k.crc[j]);
        else
            wr64(w, k.crc[j]);
    }
    for (j = 0; j < k.ns; j++) {
        if (k.s[j].n)
            memcpy(w, k.s[j].p, k.s[j].n);
        w += k.s[j].n;
    }
done:
    PyMem_Free(eflags);
    for (i = 0; i < RC_FIELDS; i++)
        Py_XDECREF(f[i]);
    Py_XDECREF(k.keep);
    PyMem_Free(k.s);
    PyMem_Free(k.crc);
    if (PyErr_Occurred())
        Py_CLEAR(out);
    return out;
}

/* ---- unpack ---- */

/* What one unpack / unpack_many call made, by the bytes it was made from,
 * so that equal records become one object: imports (by flags, CRC and name
 * bytes) and a few short strings (modinfo keys, namespaces, byte orders,
 * compressions).  An entry holds a copy of its key bytes, next to its
 * header in one arena: a lookup reads the slot, then one or two cache lines. */
enum { K_STR = 16 }; /* kinds 0..15: an import, by its flags */

typedef struct {
    PyObject *obj;       /* strong reference */
    uint64_t crc;
    uint32_t len, kind;  /* then len key bytes, padded to 8 */
} IHead;

typedef struct {
    uint64_t *slots;     /* 0: empty, else hash << 32 | (offset of the entry in arena) / 8 + 1 */
    size_t mask, n;      /* slots: mask + 1, a power of two, over 4/3 of n */
    unsigned char *arena;
    size_t used, cap;
} Interner;

typedef struct {
    PyTypeObject *mtype, *etype, *itype, *stype;
    PyObject *descr[RC_FIELDS]; /* the slots of mtype (strong references), when mtype */
    PyObject *memo;      /* dict or NULL */
    Interner in;
} Dec;

static void in_free(Interner *t)
{
    size_t off = 0;
    while (off < t->used) {
        IHead *e = (IHead *)(t->arena + off);
        Py_DECREF(e->obj);
        off += sizeof(IHead) + ((e->len + 7u) & ~(size_t)7);
    }
    PyMem_Free(t->arena);
    PyMem_Free(t->slots);
    memset(t, 0, sizeof(*t));
}

static int in_init(Interner *t, size_t nslots)
{
    memset(t, 0, sizeof(*t));
    t->slots = PyMem_Calloc(nslots, sizeof(uint64_t));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = nslots - 1;
    return 0;
}

/* A hash of n bytes at p, reading them in (possibly overlapping) 8-byte words. */
static inline uint32_t rc_hash(bp p, size_t n, uint64_t seed)
{
    const uint64_t k = 0x517CC1B727220A95u;
    uint64_t h = (n + seed) * 0x9E3779B97F4A7C15u, w;
    if (n >= 8) {
        size_t i;
        for (i = 0; i + 8 < n; i += 8) {
            memcpy(&w, p + i, 8);
            h = ((h << 5 | h >> 59) ^ w) * k;
        }
        memcpy(&w, p + n - 8, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else {
        w = n ? (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16 : 0;
    }
    h = ((h << 5 | h >> 59) ^ w) * k;
    return (uint32_t)(h ^ h >> 32);
}

static inline uint32_t in_hash(unsigned kind, uint64_t crc, bp p, size_t n)
{
    return rc_hash(p, n, (crc * 0x9E3779B97F4A7C15u) ^ kind);
}

static PyObject *in_get(const Interner *t, uint32_t h, unsigned kind, uint64_t crc, bp p, size_t n)
{
    size_t at = h & t->mask;
    uint64_t s;
    while ((s = t->slots[at]) != 0) {
        if ((uint32_t)(s >> 32) == h) {
            const IHead *e = (const IHead *)(t->arena + ((size_t)(uint32_t)s - 1) * 8);
            if (e->kind == kind && e->crc == crc && e->len == n && memcmp(e + 1, p, n) == 0) {
                Py_INCREF(e->obj);
                return e->obj;
            }
        }
        at = (at + 1) & t->mask;
    }
    return NULL;
}

/* Remember obj as made from (kind, crc, the n bytes at p). */
static int in_put(Interner *t, uint32_t h, unsigned kind, uint64_t crc, bp p, size_t n, PyObject *obj)
{
    size_t at, need = sizeof(IHead) + ((n + 7) & ~(size_t)7);
    IHead *e;
    if (n > UINT32_MAX || t->used / 8 + 1 > UINT32_MAX)
        return 0; /* (never: no blob is that big) */
    if (4 * (t->n + 1) > 3 * (t->mask + 1)) {
        size_t nslots = 2 * (t->mask + 1), i;
        uint64_t *slots = PyMem_Calloc(nslots, sizeof(uint64_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (i = 0; i <= t->mask; i++) {
            uint64_t s = t->slots[i];
            if (s == 0)
                continue;
            at = (uint32_t)(s >> 32) & (nslots - 1);
            while (slots[at] != 0)
                at = (at + 1) & (nslots - 1);
            slots[at] = s;
        }
        PyMem_Free(t->slots);
        t->slots = slots;
        t->mask = nslots - 1;
    }
    if (need > t->cap - t->used) {
        size_t cap = t->cap ? t->cap : 4096;
        unsigned char *arena;
        while (need > cap - t->used)
            cap *= 2;
        arena = PyMem_Realloc(t->arena, cap);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->arena = arena;
        t->cap = cap;
    }
    e = (IHead *)(t->arena + t->used);
    e->crc = crc;
    e->len = (uint32_t)n;
    e->kind = kind;
    Py_INCREF(obj);
    e->obj = obj;
    if (n)
        memcpy(e + 1, p, n);
    at = h & t->mask;
    while (t->slots[at] != 0)
        at = (at + 1) & t->mask;
    t->slots[at] = (uint64_t)h << 32 | (uint64_t)(t->used / 8 + 1);
    t->used += need;
    t->n++;
    return 0;
}

static PyObject *rc_bad(const char *why)
{
    PyErr_Format(PyExc_ValueError, "damaged module record: %s", why);
    return NULL;
}

/* Reading the strings and CRCs of a record in order, each bounded again. */
typedef struct {
    bp lens, crcs, data, end;
    size_t width, crc_size, si, ci, nstr, ncrc;
    int ascii;           /* all the string bytes are ASCII (checked once: only for bytes, which cannot change) */
} Cur;

static int cur_piece(Cur *c, bp *p, size_t *n)
{
    size_t len;
    bp l;
    if (c->si >= c->nstr) {
        rc_bad("string count");
        return -1;
    }
    l = c->lens + c->si++ * c->width;
    len = c->width == 1 ? l[0] : c->width == 2 ? rd16(l, 0) : rd32(l, 0);
    if (len > (size_t)(c->end - c->data)) {
        rc_bad("string beyond the end");
        return -1;
    }
    *p = c->data;
    *n = len;
    c->data += len;
    return 0;
}

static PyObject *cur_make(const Cur *c, bp p, size_t n)
{
    if (c->ascii && n > 1) { /* (0 and 1 character: the decoder's shared strings) */
        PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
        if (s != NULL)
            memcpy(PyUnicode_DATA(s), p, n);
        return s;
    }
    return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)n, "surrogatepass");
}

static PyObject *cur_str(Cur *c)
{
    bp p;
    size_t n;
    if (cur_piece(c, &p, &n) < 0)
        return NULL;
    return cur_make(c, p, n);
}

/* The string of the n bytes at p, shared with equal ones of the call. */
static PyObject *in_str_of(Dec *d, const Cur *c, bp p, size_t n)
{
    uint32_t h = in_hash(K_STR, 0, p, n);
    PyObject *s = in_get(&d->in, h, K_STR, 0, p, n);
    if (s != NULL)
        return s;
    s = cur_make(c, p, n);
    if (s != NULL && in_put(&d->in, h, K_STR, 0, p, n, s) < 0)
        Py_CLEAR(s);
    return s;
}

static PyObject *cur_shared_str(Dec *d, Cur *c)
{
    bp p;
    size_t n;
    if (cur_piece(c, &p, &n) < 0)
        return NULL;
    return in_str_of(d, c, p, n);
}

static int cur_crc(Cur *c, uint64_t *v)
{
    bp p;
    if (c->ci >= c->ncrc) {
        rc_bad("CRC count");
        return -1;
    }
    p = c->crcs + c->ci++ * c->crc_size;
    *v = c->crc_size == 4 ? rd32(p, 0) : rd64(p, 0);
    return 0;
}

static PyObject *dec_import(Dec *d, Cur *c, unsigned fl)
{
    PyObject *items[5], *rec, *got;
    uint64_t crc = 0;
    uint32_t h;
    bp p;
    size_t n;

    if ((fl & I_CRC) && cur_crc(c, &crc) < 0)
        return NULL;
    if (cur_piece(c, &p, &n) < 0)
        return NULL;
    h = in_hash(fl, crc, p, n);
    if ((rec = in_get(&d->in, h, fl, crc, p, n)) != NULL)
        return rec;
    items[0] = cur_make(c, p, n);
    items[1] = (fl & I_CRC) ? PyLong_FromUnsignedLongLong((unsigned long long)crc) : new_none();
    items[2] = new_bool(fl & I_WEAK);
    items[3] = new_bool(fl & I_VERSIONS_ONLY);
    items[4] = new_bool(fl & I_EXT_CRC);
    rec = record(d->itype, 5, items);
    if (rec == NULL)
        return NULL;
    if (d->memo != NULL) { /* an equal record made before this call, if the memo has one */
        got = PyDict_SetDefault(d->memo, rec, rec);
        Py_XINCREF(got);
        Py_DECREF(rec);
        if (got == NULL)
            return NULL;
        rec = got;
    }
    if (in_put(&d->in, h, fl, crc, p, n, rec) < 0)
        Py_CLEAR(rec);
    return rec;
}

static PyObject *dec_pair(Dec *d, Cur *c)
{
    PyObject *items[2];
    bp kp, vp;
    size_t kn, vn;
    if (cur_piece(c, &kp, &kn) < 0 || cur_piece(c, &vp, &vn) < 0)
        return NULL;
    items[0] = in_str_of(d, c, kp, kn);
    items[1] = items[0] ? cur_make(c, vp, vn) : NULL;
    return record(NULL, 2, items);
}

/* A Module (or, without mtype, the tuple of its fields) from `vals`, whose references are stolen. */
static PyObject *dec_module(Dec *d, PyObject **vals)
{
    if (d->mtype == NULL) {
        int i;
        for (i = 0; i < RC_FIELDS; i++)
            if (vals[i] == NULL) {
                for (i = 0; i < RC_FIELDS; i++)
                    Py_XDECREF(vals[i]);
                return NULL;
            }
        return record(NULL, RC_FIELDS, vals);
    }
    return elfscan_module_new(d->mtype, d->descr, vals);
}

PyObject *elfscan_module_new(PyTypeObject *type, PyObject *const *descr, PyObject **vals)
{
    PyObject *obj = NULL;
    int i;
    for (i = 0; i < RC_FIELDS; i++)
        if (vals[i] == NULL)
            goto fail;
    obj = type->tp_alloc(type, 0);
    if (obj == NULL)
        goto fail;
    for (i = 0; i < RC_FIELDS; i++) {
        if (Py_TYPE(descr[i])->tp_descr_set(descr[i], obj, vals[i]) < 0)
            goto fail;
    }
    for (i = 0; i < RC_FIELDS; i++)
        Py_DECREF(vals[i]);
    return obj;
fail:
    Py_XDECREF(obj);
    for (i = 0; i < RC_FIELDS; i++)
        Py_XDECREF(vals[i]);
    return NULL;
}


/* The record of `size` bytes at b; `fixed`: they cannot change while it is read. */
static PyObject *dec_one(Dec *d, bp b, size_t size, int fixed)
{
    PyObject *vals[RC_FIELDS] = {NULL}, *exports = NULL, *imports = NULL, *modinfo = NULL;
    uint32_t n_exp, n_imp, n_info, i;
    uint64_t n_ns = 0, n_crc = 0, n_str, need, sum = 0;
    unsigned flags;
    bp ef, imf;
    Cur c;
    size_t pos, k;

    if (size < RC_HEADER)
        return rc_bad("too short");
    if (b[0] != RC_FORMAT && b[0] != RC_FORMAT_SIGNED)
        return rc_bad("unknown format");
    flags = b[1];
    if ((flags >> 6) == 3)
        return rc_bad("bad length width");
    c.width = (size_t)1 << (flags >> 6);
    c.crc_size = (flags & F_CRC64) ? 8 : 4;
    n_exp = rd32(b + 5, 0);
    n_imp = rd32(b + 9, 0);
    n_info = rd32(b + 13, 0);
    pos = RC_HEADER;
    if ((uint64_t)n_exp + n_imp > (uint64_t)(size - pos))
        return rc_bad("counts beyond the end");
    ef = b + pos;
    imf = ef + n_exp;
    pos += (size_t)n_exp + n_imp;
    for (i = 0; i < n_exp; i++) {
        if (ef[i] & ~15u)
            return rc_bad("unknown flag bits");
        n_ns += (ef[i] & E_NS) != 0;
        n_crc += (ef[i] & E_CRC) != 0;
    }
    for (i = 0; i < n_imp; i++) {
        if (imf[i] & ~15u)
            return rc_bad("unknown flag bits");
        n_crc += (imf[i] & I_CRC) != 0;
    }
    n_str = 3 + ((flags & F_COMPRESSION) != 0) + ((flags & F_ERROR) != 0) + ((flags & F_KMOD_ERROR) != 0) +
            (uint64_t)n_exp + n_ns + n_imp + 2 * (uint64_t)n_info + (b[0] == RC_FORMAT_SIGNED ? 4 : 0); /* < 2**36 */
    need = n_str * c.width + n_crc * c.crc_size;
    if (need > (uint64_t)(size - pos))
        return rc_bad("columns beyond the end");
    c.lens = b + pos;
    c.nstr = (size_t)n_str;
    pos += (size_t)n_str * c.width;
    c.crcs = b + pos;
    c.ncrc = (size_t)n_crc;
    pos += (size_t)n_crc * c.crc_size;
    for (k = 0; k < c.nstr; k++) {
        bp l = c.lens + k * c.width;
        sum += c.width == 1 ? l[0] : c.width == 2 ? rd16(l, 0) : rd32(l, 0);
    }
    if (sum != (uint64_t)(size - pos))
        return rc_bad("string lengths do not add up to the record");
    c.data = b + pos;
    c.end = b + size;
    c.si = c.ci = 0;
    c.ascii = fixed && all_ascii(c.data, size - pos);

    vals[M_NAME] = cur_str(&c);
    vals[M_PATH] = vals[M_NAME] ? cur_str(&c) : NULL;
    vals[M_BYTE_ORDER] = vals[M_PATH] ? cur_shared_str(d, &c) : NULL;
    if (vals[M_BYTE_ORDER] == NULL)
        goto fail;
    vals[M_COMPRESSION] = (flags & F_COMPRESSION) ? cur_shared_str(d, &c) : new_none();
    if (vals[M_COMPRESSION] == NULL)
        goto fail;
    vals[M_ERROR] = (flags & F_ERROR) ? cur_str(&c) : new_none();
    if (vals[M_ERROR] == NULL)
        goto fail;
    vals[M_KMOD_ERROR] = (flags & F_KMOD_ERROR) ? cur_str(&c) : new_none();
    if (vals[M_KMOD_ERROR] == NULL)
        goto fail;

    exports = PyTuple_New((Py_ssize_t)n_exp);
    if (exports == NULL)
        goto fail;
    for (i = 0; i < n_exp; i++) {
        PyObject *items[5] = {NULL}, *rec;
        uint64_t crc;
        unsigned fl = ef[i] & 15u;
        /* in record order: the name, the namespace, the CRC; a NULL item
         * stops the others (record() releases what was made) */
        items[0] = cur_str(&c);
        if (items[0] != NULL)
            items[3] = (fl & E_NS) ? cur_shared_str(d, &c) : new_none();
        if (items[3] != NULL && !(fl & E_CRC))
            items[1] = new_none();
        else if (items[3] != NULL && cur_crc(&c, &crc) == 0)
            items[1] = PyLong_FromUnsignedLongLong((unsigned long long)crc);
        items[2] = new_bool(fl & E_GPL);
        items[4] = new_bool(fl & E_PSEUDO);
        rec = record(d->etype, 5, items);
        if (rec == NULL)
            goto fail;
        PyTuple_SET_ITEM(exports, i, rec);
    }
    imports = PyTuple_New((Py_ssize_t)n_imp);
    if (imports == NULL)
        goto fail;
    for (i = 0; i < n_imp; i++) {
        PyObject *rec = dec_import(d, &c, imf[i] & 15u);
        if (rec == NULL)
            goto fail;
        PyTuple_SET_ITEM(imports, i, rec);
    }
    modinfo = PyTuple_New((Py_ssize_t)n_info);
    if (modinfo == NULL)
        goto fail;
    for (i = 0; i < n_info; i++) {
        PyObject *pair = dec_pair(d, &c);
        if (pair == NULL)
            goto fail;
        PyTuple_SET_ITEM(modinfo, i, pair);
    }
    if (b[0] == RC_FORMAT_SIGNED) {
        /* id_type, signer, key_id, hash_algo: the same few values all over a tree */
        PyObject *items[4] = {NULL};
        for (i = 0; i < 4; i++)
            if ((items[i] = cur_shared_str(d, &c)) == NULL)
                break;
        if ((vals[M_SIGNATURE] = record(d->stype, 4, items)) == NULL)
            goto fail;
    } else {
        vals[M_SIGNATURE] = new_none();
    }
    if (c.si != c.nstr || c.ci != c.ncrc || c.data != c.end) { /* cannot happen: counted above */
        rc_bad("inconsistent");
        goto fail;
    }
    vals[M_EXPORTS] = exports;
    vals[M_IMPORTS] = imports;
    vals[M_MODINFO] = modinfo;
    vals[M_HAS_INIT] = new_bool(flags & F_INIT);
    vals[M_HAS_EXIT] = new_bool(flags & F_EXIT);
    vals[M_MACHINE] = PyLong_FromLong((long)rd16(b + 3, 0));
    vals[M_ELF_CLASS] = PyLong_FromLong((long)b[2]);
    return dec_module(d, vals); /* steals vals */
fail:
    Py_XDECREF(exports);
    Py_XDECREF(imports);
    Py_XDECREF(modinfo);
    for (i = 0; i < RC_FIELDS; i++)
        if (i != M_EXPORTS && i != M_IMPORTS && i != M_MODINFO)
            Py_XDECREF(vals[i]);
    return NULL;
}

static void dec_free(Dec *d)
{
    size_t i;
    for (i = 0; i < RC_FIELDS; i++)
        Py_CLEAR(d->descr[i]);
    in_free(&d->in);
}

int elfscan_module_type(PyObject *mo, PyObject **descr)
{
    PyTypeObject *type;
    int i;
    if (!PyType_Check(mo)) {
        PyErr_SetString(PyExc_TypeError, "module_type must be a class or None");
        return -1;
    }
    type = (PyTypeObject *)mo;
    /* made without __init__ (which only stores the fields): only for a
     * class made by object.__new__, without __post_init__, whose fields
     * are all slots (member descriptors: they check the instance's type) */
    if (PyObject_HasAttrString(mo, "__post_init__") || type->tp_alloc == NULL ||
        type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "module_type must be a slots dataclass without __post_init__");
        return -1;
    }
    for (i = 0; i < RC_FIELDS; i++)
        descr[i] = NULL;
    for (i = 0; i < RC_FIELDS; i++) {
        PyObject *d = PyObject_GetAttr(mo, field_str[i]);
        if (d == NULL && !PyErr_ExceptionMatches(PyExc_AttributeError))
            goto fail;
        PyErr_Clear();
        descr[i] = d;
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) || Py_TYPE(d)->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "module_type.%s is not a slot", field_names[i]);
            goto fail;
        }
    }
    return 0;
fail:
    for (i = 0; i < RC_FIELDS; i++)
        Py_CLEAR(descr[i]);
    return -1;
}

/* Dec for (module_type, export_type, import_type, memo), its table of `slots` to begin with. */
static int dec_init(Dec *d, PyObject *mo, PyObject *eo, PyObject *io, PyObject *so, PyObject *memo, size_t slots)
{
    memset(d, 0, sizeof(*d));
    if (record_type(eo, &d->etype, "export_type") < 0 || record_type(io, &d->itype, "import_type") < 0 ||
        record_type(so, &d->stype, "signature_type") < 0)
        return -1;
    if (memo_arg(&memo) < 0)
        return -1;
    d->memo = memo;
    if (mo != NULL && mo != Py_None) {
        if (elfscan_module_type(mo, d->descr) < 0)
            return -1;
        d->mtype = (PyTypeObject *)mo;
    }
    return in_init(&d->in, slots);
}

static PyObject *dec_blob(Dec *d, PyObject *blob)
{
    Py_buffer view;
    PyObject *r;
    if (PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    r = dec_one(d, (bp)view.buf, (size_t)view.len, PyBytes_CheckExact(blob));
    PyBuffer_Release(&view);
    return r;
}

static PyObject *elfscan_unpack(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"blob", "module_type", "export_type", "import_type", "memo", "signature_type", NULL};
    PyObject *blob, *mo = NULL, *eo = NULL, *io = NULL, *memo = NULL, *so = NULL, *r = NULL;
    Dec d;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOOO:unpack", kwlist, &blob, &mo, &eo, &io, &memo, &so))
        return NULL;
    if (dec_init(&d, mo, eo, io, so, memo, 64) == 0)
        r = dec_blob(&d, blob);
    dec_free(&d);
    return r;
}

static PyObject *elfscan_unpack_many(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"blobs", "module_type", "export_type", "import_type", "memo", "signature_type", NULL};
    PyObject *blobs, *mo = NULL, *eo = NULL, *io = NULL, *memo = NULL, *so = NULL, *seq = NULL, *out = NULL;
    Py_ssize_t i, n;
    Dec d;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOOO:unpack_many", kwlist, &blobs, &mo, &eo, &io, &memo,
                                     &so))
        return NULL;
    if (dec_init(&d, mo, eo, io, so, memo, 1024) < 0)
        goto done;
    seq = PySequence_Tuple(blobs); /* a copy nothing can change under us */
    if (seq == NULL)
        goto done;
    n = PyTuple_GET_SIZE(seq);
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *m = dec_blob(&d, PyTuple_GET_ITEM(seq, i));
        if (m == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, m);
    }
done:
    Py_XDECREF(seq);
    dec_free(&d);
    return out;
}

/* ---------------------------------------------------------------------- */
/* The scan cache's keys and rows: file_keys / pack_rows                    */
/*                                                                          */
/* The twins are moddeps/read/cache.py's file_key loop and ScanCache.put_many's */
/* loop: a first run calls them once a module, 4,000 times, on its critical */
/* path (a stat and a Key; a record, its key marshalled and a CRC-32 seal). */

/* Whether a path is absolute and normal as cache._absolute takes it as it is:
 * starts with "/", holds no "//" and no "/.", does not end with "/". */
static int plain_absolute(const char *p, Py_ssize_t n)
{
    Py_ssize_t i;
    if (n < 1 || p[0] != '/' || p[n - 1] == '/')
        return 0;
    for (i = 0; i + 1 < n; i++)
        if (p[i] == '/' && (p[i + 1] == '/' || p[i + 1] == '.'))
            return 0;
    return 1;
}

static PyObject *elfscan_file_keys(PyObject *self, PyObject *args)
{
    PyObject *paths, *kt, *seq, *out = NULL;
    PyTypeObject *key_type;
    Py_ssize_t i, n;
    if (!PyArg_ParseTuple(args, "OO:file_keys", &paths, &kt))
        return NULL;
    if (record_type(kt, &key_type, "key_type") < 0)
        return NULL;
    if ((seq = PySequence_Tuple(paths)) == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
#ifdef __linux__
    {
        /* a path to make absolute first (cache._absolute): DECLINED, the twin's */
        PyObject *ids = elfscan_identities(seq, 1, plain_absolute);
        if (ids == NULL || ids == elfscan_declined) {
            out = ids;
            goto done;
        }
        if ((out = PyList_New(n)) == NULL) {
            Py_DECREF(ids);
            goto done;
        }
        for (i = 0; i < n; i++) {
            PyObject *ident = PyList_GET_ITEM(ids, i), *key;
            Py_ssize_t j;
            if (ident == Py_None) {
                PyList_SET_ITEM(out, i, Py_NewRef(Py_None));
                continue;
            }
            key = new_record(key_type, 6);
            if (key == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyTuple_SET_ITEM(key, 0, Py_NewRef(PyTuple_GET_ITEM(seq, i)));
            for (j = 0; j < 5; j++)
                PyTuple_SET_ITEM(key, j + 1, Py_NewRef(PyTuple_GET_ITEM(ident, j)));
            PyList_SET_ITEM(out, i, key);
        }
        Py_DECREF(ids);
    }
#else
    out = declined();
    goto done;
#endif
done:
    Py_DECREF(seq);
    return out;
}

/* Whether SQLite can store s (cache._bindable): ASCII, or UTF-8 encodable. */
static int bindable(PyObject *s)
{
    if (PyUnicode_IS_ASCII(s))
        return 1;
    if (PyUnicode_AsUTF8AndSize(s, NULL) != NULL)
        return 1;
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear();
    return 0;
}

static PyObject *elfscan_pack_rows(PyObject *self, PyObject *args)
{
    PyObject *entries, *schema, *seq = NULL, *out = NULL;
    Py_ssize_t i, n, j;
    if (!PyArg_ParseTuple(args, "OO!:pack_rows", &entries, &PyLong_Type, &schema))
        return NULL;
    seq = PySequence_Tuple(entries);
    if (seq == NULL)
        return NULL;
    n = PyTuple_GET_SIZE(seq);
    out = PyList_New(0);
    if (out == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(seq, i), *key, *shown, *record, *ident, *marshalled, *row, *seal;
        uint32_t crc;
        int b;
        if (!PyTuple_Check(e) || (PyTuple_GET_SIZE(e) != 3 && PyTuple_GET_SIZE(e) != 4)) {
            PyErr_SetString(PyExc_TypeError, "each entry must be a tuple (key, shown, module[, record])");
            goto fail;
        }
        key = PyTuple_GET_ITEM(e, 0);
        shown = PyTuple_GET_ITEM(e, 1);
        if (key == Py_None)
            continue;
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 6 || !PyUnicode_Check(PyTuple_GET_ITEM(key, 0)) ||
            !PyUnicode_Check(shown)) {
            Py_DECREF(seq);
            Py_DECREF(out);
            return declined();
        }
        if ((b = bindable(PyTuple_GET_ITEM(key, 0))) < 0)
            goto fail;
        if (b == 0)
            continue;
        if ((b = bindable(shown)) < 0)
            goto fail;
        if (b == 0)
            continue;
        if (PyTuple_GET_SIZE(e) == 4) { /* its record made already (parse_files' packed), or None: none */
            record = PyTuple_GET_ITEM(e, 3);
            if (record == Py_None)
                continue;
            if (!PyBytes_CheckExact(record)) {
                Py_DECREF(seq);
                Py_DECREF(out);
                return declined();
            }
            Py_INCREF(record);
        } else
            record = elfscan_pack(self, PyTuple_GET_ITEM(e, 2));
        if (record == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError))
                goto fail;
            PyErr_Clear(); /* a value the format cannot hold: that module is not cached (as the twin) */
            continue;
        }
        /* the seal: CRC-32 of the record, started from that of marshal format 2 of
         * (path, size, mtime_ns, ctime_ns, inode, device, schema, shown) (cache.record_seal) */
        row = PyTuple_New(10);
        if (row == NULL) {
            Py_DECREF(record);
            goto fail;
        }
        for (j = 0; j < 6; j++) {
            PyObject *v = PyTuple_GET_ITEM(key, j);
            Py_INCREF(v);
            PyTuple_SET_ITEM(row, j, v);
        }
        Py_INCREF(schema);
        PyTuple_SET_ITEM(row, 6, schema);
        Py_INCREF(shown);
        PyTuple_SET_ITEM(row, 7, shown);
        {
            /* bound as a bytearray: the sqlite3 module binds one as it is, but passes bytes through
             * its adapters first (~3,000 instructions a row, in the writer thread, holding the GIL) */
            PyObject *blob = PyByteArray_FromStringAndSize(PyBytes_AS_STRING(record), PyBytes_GET_SIZE(record));
            if (blob == NULL) {
                Py_DECREF(record);
                Py_DECREF(row);
                goto fail;
            }
            PyTuple_SET_ITEM(row, 9, blob);
        }
        ident = PyTuple_GetSlice(row, 0, 8);
        marshalled = ident ? PyMarshal_WriteObjectToString(ident, 2) : NULL;
        Py_XDECREF(ident);
        if (marshalled == NULL) {
            Py_DECREF(record);
            Py_DECREF(row);
            goto fail;
        }
        crc = moddeps_crc32(0, (const unsigned char *)PyBytes_AS_STRING(marshalled), (size_t)PyBytes_GET_SIZE(marshalled));
        Py_DECREF(marshalled);
        crc = moddeps_crc32(crc, (const unsigned char *)PyBytes_AS_STRING(record), (size_t)PyBytes_GET_SIZE(record));
        Py_DECREF(record);
        seal = PyLong_FromUnsignedLong(crc);
        if (seal == NULL) {
            Py_DECREF(row);
            goto fail;
        }
        PyTuple_SET_ITEM(row, 8, seal);
        if (PyList_Append(out, row) < 0) {
            Py_DECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    Py_DECREF(seq);
    return out;
}

PyDoc_STRVAR(file_keys_doc,
"file_keys(paths, key_type)\n"
"--\n"
"\n"
"[moddeps.read.cache.file_key(p) for p in paths]: each path's identity (stat,\n"
"following symlinks) as a key_type (a tuple subclass of 6: path, size,\n"
"mtime_ns, ctime_ns, inode, device; inode and device as signed 64-bit\n"
"numbers), None where it cannot be stat'ed.  DECLINED when a path is not\n"
"absolute and normal already, holds a NUL, or a time does not fit 64 bits.");

PyDoc_STRVAR(pack_rows_doc,
"pack_rows(entries, schema)\n"
"--\n"
"\n"
"The scan cache's rows of (key, shown, module[, record]) entries (record: the\n"
"module's pack() made already, None where it cannot be), as\n"
"moddeps.read.cache.ScanCache.put_many makes them: (*key, schema, shown, seal,\n"
"bytearray(pack(module))), leaving out an entry whose key is None, whose path or shown\n"
"path SQLite cannot store, or whose module pack refuses.  DECLINED for a key\n"
"that is not a tuple of 6 with a str path, a shown path that is not a str, or\n"
"a record that is not bytes.");

static PyObject *elfscan_crc32(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "value", "tables", NULL};
    Py_buffer data;
    unsigned int value = 0;
    int tables = 0;
    uint32_t crc;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|Ip:crc32", kwlist, &data, &value, &tables))
        return NULL;
    if (data.len >= 65536) { /* (as zlib.crc32, which lets go of the GIL past 5 kB) */
        Py_BEGIN_ALLOW_THREADS
        crc = tables ? moddeps_crc32_tables(value, data.buf, (size_t)data.len)
                     : moddeps_crc32(value, data.buf, (size_t)data.len);
        Py_END_ALLOW_THREADS
    } else {
        crc = tables ? moddeps_crc32_tables(value, data.buf, (size_t)data.len)
                     : moddeps_crc32(value, data.buf, (size_t)data.len);
    }
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(crc);
}

static PyObject *elfscan_crc32_folds(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(moddeps_crc32_folds());
}

PyDoc_STRVAR(crc32_doc,
"crc32(data, value=0, tables=False)\n"
"--\n"
"\n"
"zlib.crc32(data, value), several times faster where the CPU multiplies\n"
"without carries (x86-64 PCLMULQDQ, see crc32_folds); tables=True: the\n"
"table-driven way it takes elsewhere (for the tests).");

PyDoc_STRVAR(crc32_folds_doc,
"crc32_folds()\n"
"--\n"
"\n"
"Whether crc32 multiplies (True) or looks up tables (False) on this CPU.");

PyDoc_STRVAR(pack_doc,
"pack(module)\n"
"--\n"
"\n"
"The scan-cache record of a moddeps.model.Module (format: moddeps/read/recordcodec.py).\n"
"TypeError for a field of the wrong type, ValueError for a value the format\n"
"cannot hold.");

PyDoc_STRVAR(unpack_doc,
"unpack(blob, module_type=None, export_type=None, import_type=None, memo=None, signature_type=None)\n"
"--\n"
"\n"
"The Module of a record made by pack (an instance of module_type, made\n"
"without calling __init__, or the tuple of its 14 fields); exports, imports\n"
"and the signature are instances of export_type / import_type /\n"
"signature_type (tuple subclasses), equal imports one object through memo\n"
"(as in parse).  ValueError for any malformed blob.");

PyDoc_STRVAR(unpack_many_doc,
"unpack_many(blobs, module_type=None, export_type=None, import_type=None, memo=None, signature_type=None)\n"
"--\n"
"\n"
"[unpack(b, ...) for b in blobs], faster: equal imports of all the blobs are\n"
"made once.  ValueError if any blob is malformed.");

PyMethodDef elfscan_codec_methods[] = {
    {"pack", (PyCFunction)elfscan_pack, METH_O, pack_doc},
    {"file_keys", elfscan_file_keys, METH_VARARGS, file_keys_doc},
    {"pack_rows", elfscan_pack_rows, METH_VARARGS, pack_rows_doc},
    {"crc32", (PyCFunction)(void (*)(void))elfscan_crc32, METH_VARARGS | METH_KEYWORDS, crc32_doc},
    {"crc32_folds", elfscan_crc32_folds, METH_NOARGS, crc32_folds_doc},
    {"unpack", (PyCFunction)(void (*)(void))elfscan_unpack, METH_VARARGS | METH_KEYWORDS, unpack_doc},
    {"unpack_many", (PyCFunction)(void (*)(void))elfscan_unpack_many, METH_VARARGS | METH_KEYWORDS,
     unpack_many_doc},
    {NULL, NULL, 0, NULL},
};

/* Interns the field names; 0, or -1 with an exception set. */
int elfscan_codec_init(void)
{
    moddeps_crc32_init();
    if (field_str[0] == NULL) {
        int i;
        for (i = 0; i < RC_FIELDS; i++)
            if ((field_str[i] = PyUnicode_InternFromString(field_names[i])) == NULL)
                return -1;
    }
    return 0;
}
