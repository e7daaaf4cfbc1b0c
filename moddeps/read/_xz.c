/*
 * moddeps.read._xz: the happy path of an .ko.xz module's decompression.
 *
 * One Decoder per loader thread keeps its lzma_stream from module to
 * module: re-initialising the same stream for the same dictionary size
 * (Kbuild's and Debian's modules: 1 MiB) lets liblzma keep its dictionary
 * and its probability tables, where a fresh decoder per module allocated
 * (and the kernel faulted in) them again every time.  A module is decoded
 * with the GIL released, in pieces of PIECE bytes of output (the deadline is
 * looked at between them), straight into an output region of the size the
 * xz index declares.  Regions are anonymous mappings kept in a small pool
 * for the next modules (their pages fault in once); one is handed out as a
 * read-only memoryview of an Output object, and goes back to the pool when
 * the last view of it is gone.
 *
 * Only the usual case is decoded here: one xz stream that ends exactly at
 * the end of the input, whose output is exactly the declared size, within
 * the memory limit and the deadline.  Anything else -- a corrupt or
 * truncated stream, padding or a second stream after it, an unsupported
 * check, more output than declared, the memory limit, the deadline -- gives
 * DECLINED, and moddeps/read/compression.py decompresses the module again on
 * its Python path, which gives kmod's messages (see native.py's contract).
 */
#include "_native.h"

#include <lzma.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static PyObject *declined;

#define DECODER_MEMLIMIT 134217728u /* = moddeps.read.compression:DECODER_MEMLIMIT */
#define PIECE 8388608u /* = moddeps.read.compression:PIECE */
#define DEFAULT_MAX_SIZE 1073741824u /* = moddeps.read.compression:DEFAULT_MAX_SIZE */

/* ------------------------------------------------------------------------
 * Output regions
 * ------------------------------------------------------------------------ */

/* Regions kept for reuse: at most POOL_MAX, each up to KEEP_MAX bytes of address space (a
 * larger one is unmapped when freed), of which at most KEEP_RESIDENT stay resident: a region
 * given back after a bigger module has its pages past that returned to the kernel (madvise), so
 * the pool holds at most POOL_MAX * KEEP_RESIDENT of memory whatever modules went through it,
 * and the usual module (Debian 13: nine in ten are under 1 MiB decompressed) faults nothing in. */
#define POOL_MAX 3
#define KEEP_MAX ((size_t)1 << 26)
#define KEEP_RESIDENT 1048576u /* = moddeps.read.compression:XZ_KEEP_RESIDENT */
#define REGION_MIN ((size_t)1 << 16)

typedef struct {
    char *base;
    size_t cap;
    size_t touched; /* bytes from base that may be resident */
} Region;

/* the pool is only touched with the GIL held */
static Region pool[POOL_MAX];
static int pooled;

static size_t region_cap(size_t n)
{
    size_t cap = REGION_MIN;
    while (cap < n)
        cap <<= 1;
    return cap;
}

/* a region of at least n bytes: the smallest pooled one that fits, else a new mapping */
static int region_take(size_t n, Region *out)
{
    int best = -1;
    for (int i = 0; i < pooled; i++)
        if (pool[i].cap >= n && (best < 0 || pool[i].cap < pool[best].cap))
            best = i;
    if (best >= 0) {
        *out = pool[best];
        pool[best] = pool[--pooled];
        return 0;
    }
    /* none fits: the largest one kept is too small for what comes now, retire it */
    int largest = -1;
    for (int i = 0; i < pooled; i++)
        if (largest < 0 || pool[i].cap > pool[largest].cap)
            largest = i;
    if (largest >= 0) {
        munmap(pool[largest].base, pool[largest].cap);
        pool[largest] = pool[--pooled];
    }
    size_t cap = region_cap(n);
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        PyErr_NoMemory();
        return -1;
    }
    out->base = p;
    out->cap = cap;
    out->touched = 0;
    return 0;
}

static void region_give(Region r)
{
    if (r.base == NULL)
        return;
    if (r.cap <= KEEP_MAX && pooled < POOL_MAX) {
        if (r.touched > KEEP_RESIDENT) {
            /* (MADV_DONTNEED on a private anonymous mapping: zero pages when touched again) */
            if (madvise(r.base + KEEP_RESIDENT, r.touched - KEEP_RESIDENT, MADV_DONTNEED) == 0)
                r.touched = KEEP_RESIDENT;
        }
        if (r.touched <= KEEP_RESIDENT) {
            pool[pooled++] = r;
            return;
        }
    }
    munmap(r.base, r.cap);
}

/* ------------------------------------------------------------------------
 * Output: a region holding one module, exported read-only
 * ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    Region region;
    Py_ssize_t len;
} Output;

static int output_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    Output *o = (Output *)self;
    return PyBuffer_FillInfo(view, self, o->region.base, o->len, 1, flags);
}

static void output_dealloc(PyObject *self)
{
    Output *o = (Output *)self;
    region_give(o->region);
    o->region.base = NULL;
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs output_as_buffer = {output_getbuffer, NULL};

static PyTypeObject OutputType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "moddeps.read._xz.Output",
    .tp_basicsize = sizeof(Output),
    .tp_dealloc = output_dealloc,
    .tp_as_buffer = &output_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One decompressed module (read through a memoryview).",
};

/* ------------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    lzma_stream strm;
    int busy;
} Decoder;

static PyObject *decoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Decoder() takes no arguments");
        return NULL;
    }
    Decoder *d = (Decoder *)type->tp_alloc(type, 0);
    if (d == NULL)
        return NULL;
    lzma_stream init = LZMA_STREAM_INIT;
    d->strm = init;
    d->busy = 0;
    return (PyObject *)d;
}

static void decoder_dealloc(PyObject *self)
{
    Decoder *d = (Decoder *)self;
    lzma_end(&d->strm);
    Py_TYPE(self)->tp_free(self);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* decode the whole of in[0:in_len] into out[0:size]; 1 when it is one stream that
 * ends with the input and gives exactly size bytes, else 0 (GIL released) */
static int decode_all(lzma_stream *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t size, double seconds)
{
    double end = seconds >= 0 ? now() + seconds : 0;
    /* no LZMA_CONCATENATED: padding or a second stream is left in avail_in (and declined) */
    if (lzma_stream_decoder(s, DECODER_MEMLIMIT, LZMA_TELL_UNSUPPORTED_CHECK) != LZMA_OK)
        return 0;
    s->next_in = in;
    s->avail_in = in_len;
    s->next_out = out;
    s->avail_out = 0;
    size_t given = 0;
    for (;;) {
        /* one byte more than declared lets liblzma show output past the index */
        size_t piece = size + 1 - given < PIECE ? size + 1 - given : PIECE;
        s->avail_out += piece;
        given += piece;
        lzma_ret ret = lzma_code(s, LZMA_FINISH);
        if (ret == LZMA_STREAM_END)
            return s->avail_in == 0 && s->total_out == size;
        if (ret != LZMA_OK || s->avail_out != 0 || given > size)
            return 0;
        if (seconds >= 0 && now() > end)
            return 0;
    }
}

static PyObject *decoder_decode(PyObject *self, PyObject *args)
{
    Decoder *d = (Decoder *)self;
    Py_buffer in;
    Py_ssize_t size;
    double seconds;
    if (!PyArg_ParseTuple(args, "y*nd:decode", &in, &size, &seconds))
        return NULL;
    if (size <= 0 || (size_t)size > DEFAULT_MAX_SIZE || in.len < 32) {
        PyBuffer_Release(&in);
        return Py_NewRef(declined);
    }
    if (d->busy) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_RuntimeError, "Decoder.decode: the decoder is in use by another thread");
        return NULL;
    }
    Output *o = PyObject_New(Output, &OutputType);
    if (o == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    o->region.base = NULL;
    o->len = 0;
    /* room for one byte more than declared (see decode_all) */
    if (region_take((size_t)size + 1, &o->region) < 0) {
        Py_DECREF(o);
        PyBuffer_Release(&in);
        return NULL;
    }
    int ok;
    d->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    ok = decode_all(&d->strm, in.buf, (size_t)in.len, (uint8_t *)o->region.base, (size_t)size, seconds);
    Py_END_ALLOW_THREADS
    d->busy = 0;
    PyBuffer_Release(&in);
    if ((size_t)size + 1 > o->region.touched) /* (at most: a declined module may have written less) */
        o->region.touched = (size_t)size + 1;
    if (!ok) {
        Py_DECREF(o);
        return Py_NewRef(declined);
    }
    o->len = size;
    PyObject *view = PyMemoryView_FromObject((PyObject *)o);
    Py_DECREF(o);
    return view;
}

static PyMethodDef decoder_methods[] = {
    {"decode", decoder_decode, METH_VARARGS,
     "decode(data, size, seconds) -> memoryview | DECLINED\n\n"
     "The module that data (a whole .ko.xz file) holds, when it is one xz stream of\n"
     "exactly size bytes (its index's), decoded within seconds (< 0: no bound);\n"
     "DECLINED otherwise."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "moddeps.read._xz.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_new = decoder_new,
    .tp_dealloc = decoder_dealloc,
    .tp_methods = decoder_methods,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An xz decoder kept from module to module (one per thread).",
};

/* ------------------------------------------------------------------------
 * Module
 * ------------------------------------------------------------------------ */

static PyObject *xz_release(PyObject *self, PyObject *unused)
{
    while (pooled > 0) {
        Region r = pool[--pooled];
        munmap(r.base, r.cap);
    }
    Py_RETURN_NONE;
}

static PyObject *xz_pooled(PyObject *self, PyObject *unused)
{
    size_t total = 0, touched = 0;
    for (int i = 0; i < pooled; i++) {
        total += pool[i].cap;
        touched += pool[i].touched;
    }
    return Py_BuildValue("(inn)", pooled, (Py_ssize_t)total, (Py_ssize_t)touched);
}

static PyObject *xz_version(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(lzma_version_string());
}

static PyMethodDef xz_methods[] = {
    {"release", xz_release, METH_NOARGS, "Unmap the output regions kept for reuse."},
    {"pooled", xz_pooled, METH_NOARGS, "(regions, bytes mapped, bytes that may be resident) kept for reuse (for tests)."},
    {"liblzma_version", xz_version, METH_NOARGS, "The version of the liblzma in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef xz_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "moddeps.read._xz",
    .m_doc = "The happy path of .ko.xz decompression (see _xz.c).",
    .m_size = -1,
    .m_methods = xz_methods,
};

PyMODINIT_FUNC PyInit__xz(void)
{
    if (PyType_Ready(&OutputType) < 0 || PyType_Ready(&DecoderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&xz_module);
    if (m == NULL)
        return NULL;
    if (native_bind(m, &declined) < 0 || PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
