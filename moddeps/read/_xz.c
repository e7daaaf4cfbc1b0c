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
 * Decoder.load does a loader's whole work for one module file in one call that
 * holds the GIL only to start and to return: open (O_RDONLY|O_NONBLOCK|O_NOCTTY|
 * O_CLOEXEC, as moddeps/inputfiles.py opens), fstat (a regular file, within the
 * size bound and the memory the caller holds), read into a buffer kept by the
 * Decoder, close, the xz index read here for the declared size, and the decode
 * below; the region pool is then taken under a mutex of its own.  A file it does
 * not read comes back DECLINED, one it read but does not decode as its bytes, and
 * moddeps/read/compression.py goes on with it as before.
 *
 * Only the usual case is decoded here: one xz stream that ends exactly at
 * the end of the input, whose output is exactly the declared size, within
 * the memory limit and the deadline.  Anything else -- a corrupt or
 * truncated stream, padding or a second stream after it, an unsupported
 * check, more output than declared, the memory limit, the deadline, a block
 * whose check differs -- gives DECLINED, and moddeps/read/compression.py
 * decompresses the module again on its Python path, which gives kmod's
 * messages (see native.py's contract).
 *
 * The integrity check of a CRC32 stream (Kbuild's: xz --check=crc32) is not
 * left to liblzma: it is told to skip it (LZMA_IGNORE_CHECK) and each block's
 * CRC-32 is computed here over the block's output by moddeps/_crc32.c, which
 * folds with carry-less multiplication: liblzma 5.4's table-driven CRC was
 * ~8% of a Debian 13 tree's decoding time, this one is ~1%.  A block whose
 * stored check differs declines the module as liblzma's LZMA_DATA_ERROR did.
 */
#include "_native.h"

#include "_crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* the pool is touched under pool_lock (Decoder.load takes a region without the GIL) */
static Region pool[POOL_MAX];
static int pooled;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t region_cap(size_t n)
{
    size_t cap = REGION_MIN;
    while (cap < n)
        cap <<= 1;
    return cap;
}

/* a region of at least n bytes: the smallest pooled one that fits, else a new mapping;
 * -1 when none can be mapped (no Python error set: callable without the GIL) */
static int region_take_locked(size_t n, Region *out)
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
    if (p == MAP_FAILED)
        return -1;
    out->base = p;
    out->cap = cap;
    out->touched = 0;
    return 0;
}

static int region_take(size_t n, Region *out)
{
    pthread_mutex_lock(&pool_lock);
    int r = region_take_locked(n, out);
    pthread_mutex_unlock(&pool_lock);
    return r;
}

static void region_give_locked(Region r);

static void region_give(Region r)
{
    if (r.base == NULL)
        return;
    pthread_mutex_lock(&pool_lock);
    region_give_locked(r);
    pthread_mutex_unlock(&pool_lock);
}

static void region_give_locked(Region r)
{
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
    uint8_t *in; /* Decoder.load's file buffer, kept from module to module up to IN_KEEP bytes */
    size_t in_cap;
} Decoder;

#define IN_KEEP ((size_t)1 << 22)

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
    d->in = NULL;
    d->in_cap = 0;
    return (PyObject *)d;
}

static void decoder_dealloc(PyObject *self)
{
    Decoder *d = (Decoder *)self;
    lzma_end(&d->strm);
    free(d->in);
    Py_TYPE(self)->tp_free(self);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int stream_index(const uint8_t *b, size_t n, uint64_t limit, uint64_t *declared, const uint8_t *out);

/* the stream's check is CRC32 (xz file format 1.1.0, 2.1.1.2: Stream Flags) */
#define CHECK_CRC32(in) ((in)[6] == 0 && (in)[7] == 0x01)

/* decode the whole of in[0:in_len] into out[0:size]; 1 when it is one stream that
 * ends with the input and gives exactly size bytes, and each block's check holds,
 * else 0 (GIL released).  end: the deadline on now()'s clock, looked at between
 * pieces (< 0: none) */
static int decode_all(lzma_stream *s, const uint8_t *in, size_t in_len, uint8_t *out, size_t size, double end)
{
    /* a CRC32 check is computed here, after the decode (see the top of this file) */
    int crc32_here = in_len >= 12 && CHECK_CRC32(in);
    /* no LZMA_CONCATENATED: padding or a second stream is left in avail_in (and declined) */
    if (lzma_stream_decoder(s, DECODER_MEMLIMIT, LZMA_TELL_UNSUPPORTED_CHECK | (crc32_here ? LZMA_IGNORE_CHECK : 0)) !=
        LZMA_OK)
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
        if (ret == LZMA_STREAM_END) {
            uint64_t declared;
            if (s->avail_in != 0 || s->total_out != size)
                return 0;
            /* liblzma held the index to the blocks it decoded: where each one's check is */
            return !crc32_here || (stream_index(in, in_len, size, &declared, out) == 0 && declared == size);
        }
        if (ret != LZMA_OK || s->avail_out != 0 || given > size)
            return 0;
        if (end >= 0 && now() > end)
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
        return PyErr_NoMemory();
    }
    int ok;
    d->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    ok = decode_all(&d->strm, in.buf, (size_t)in.len, (uint8_t *)o->region.base, (size_t)size,
                    seconds >= 0 ? now() + seconds : -1.0);
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

/* ------------------------------------------------------------------------
 * Decoder.load: one module file, opened, read, decoded and closed in one call
 * ------------------------------------------------------------------------ */

static const uint8_t xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};

static int varint(const uint8_t *b, size_t *pos, size_t end, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 9; i++) {
        if (*pos >= end)
            return -1;
        uint8_t c = b[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << (7 * i);
        if (!(c & 0x80)) {
            if (i > 0 && c == 0)
                return -1;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* The uncompressed size the index of b[0:n] declares when b is one xz stream with
 * nothing after it (xz file format 1.1.0, sections 2.1.2, 3 and 4), at most limit;
 * else -1.  liblzma checks the index against the blocks it decodes.  With out (the
 * stream's output, decoded), a CRC32 stream's blocks are checked too: -1 when the
 * CRC-32 of a block's output is not the one stored at the end of the block. */
static int stream_index(const uint8_t *b, size_t n, uint64_t limit, uint64_t *declared, const uint8_t *out)
{
    if (n < 32 || memcmp(b, xz_magic, 6) != 0 || b[n - 2] != 'Y' || b[n - 1] != 'Z')
        return -1;
    const uint8_t *f = b + n - 8;
    uint64_t index_size = ((uint64_t)f[0] | (uint64_t)f[1] << 8 | (uint64_t)f[2] << 16 | (uint64_t)f[3] << 24) + 1;
    index_size *= 4;
    if (index_size + 24 > n)
        return -1;
    size_t index_start = n - 12 - (size_t)index_size, pos = index_start + 1, end = n - 12;
    if (b[index_start] != 0)
        return -1;
    uint64_t count, blocks = 0, total = 0;
    if (varint(b, &pos, end, &count) < 0)
        return -1;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t unpadded, size;
        if (varint(b, &pos, end, &unpadded) < 0 || varint(b, &pos, end, &size) < 0)
            return -1;
        if (unpadded > n || size > limit)
            return -1;
        uint64_t padded = (unpadded + 3) & ~(uint64_t)3;
        if (out != NULL) { /* the block's last four bytes, after its padding: its CRC32, little-endian */
            if (unpadded < 4 || 12 + blocks + padded > n || total + size > limit)
                return -1;
            const uint8_t *c = b + 12 + blocks + padded - 4;
            uint32_t stored = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
            if (moddeps_crc32(0, out + total, (size_t)size) != stored)
                return -1;
        }
        blocks += padded;
        total += size;
        if (blocks > n || total > limit)
            return -1;
    }
    if (blocks + 12 != index_start)
        return -1;
    *declared = total;
    return 0;
}

enum { LOAD_DECLINED, LOAD_RAW, LOAD_DONE };

/* open, fstat, read, close path; decode it into *region when it is the usual .ko.xz
 * (GIL released).  LOAD_DECLINED: not read (not a regular file, an error, bigger than
 * max_size or room, a size that changed while read); LOAD_RAW: d->in[0:*len] is the whole
 * file, not decoded here; LOAD_DONE: *region holds the *declared bytes of the module. */
static int load_file(Decoder *d, const char *path, size_t max_size, size_t room, double end,
                     size_t *len, Region *region, size_t *declared)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return LOAD_DECLINED;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > max_size ||
        (uint64_t)st.st_size > room) {
        close(fd);
        return LOAD_DECLINED;
    }
    size_t want = (size_t)st.st_size + 1; /* one byte more: a file that grew shows */
    if (want > d->in_cap) {
        size_t cap = want < REGION_MIN ? REGION_MIN : region_cap(want);
        uint8_t *p = malloc(cap);
        if (p == NULL) {
            close(fd);
            return LOAD_DECLINED;
        }
        free(d->in);
        d->in = p;
        d->in_cap = cap;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, d->in + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return LOAD_DECLINED;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size)
        return LOAD_DECLINED;
    *len = got;
    uint64_t size;
    if (stream_index(d->in, got, max_size < DEFAULT_MAX_SIZE ? max_size : DEFAULT_MAX_SIZE, &size, NULL) < 0 ||
        size == 0 || size > room - got)
        return LOAD_RAW;
    if (end >= 0 && now() > end)
        return LOAD_RAW;
    /* room for one byte more than declared (see decode_all) */
    if (region_take((size_t)size + 1, region) < 0)
        return LOAD_RAW;
    int ok = decode_all(&d->strm, d->in, got, (uint8_t *)region->base, (size_t)size, end);
    if ((size_t)size + 1 > region->touched)
        region->touched = (size_t)size + 1;
    if (!ok) {
        region_give(*region);
        region->base = NULL;
        return LOAD_RAW;
    }
    *declared = (size_t)size;
    return LOAD_DONE;
}

static PyObject *decoder_load(PyObject *self, PyObject *args)
{
    Decoder *d = (Decoder *)self;
    PyObject *path;
    Py_ssize_t max_size, room;
    double seconds;
    if (!PyArg_ParseTuple(args, "O&nnd:load", PyUnicode_FSConverter, &path, &max_size, &room, &seconds))
        return NULL;
    if (d->busy) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_RuntimeError, "Decoder.load: the decoder is in use by another thread");
        return NULL;
    }
    if (max_size < 0 || room < 0) {
        Py_DECREF(path);
        return Py_NewRef(declined);
    }
    size_t len = 0, declared = 0;
    Region region = {NULL, 0, 0};
    int status;
    d->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    status = load_file(d, PyBytes_AS_STRING(path), (size_t)max_size, (size_t)room, seconds >= 0 ? now() + seconds : -1.0,
                       &len, &region, &declared);
    Py_END_ALLOW_THREADS
    d->busy = 0;
    Py_DECREF(path);
    PyObject *result = NULL;
    if (status == LOAD_DECLINED) {
        result = Py_NewRef(declined);
    } else if (status == LOAD_RAW) {
        result = PyBytes_FromStringAndSize((const char *)d->in, (Py_ssize_t)len);
    } else {
        Output *o = PyObject_New(Output, &OutputType);
        if (o == NULL) {
            region_give(region);
        } else {
            o->region = region;
            o->len = (Py_ssize_t)declared;
            PyObject *view = PyMemoryView_FromObject((PyObject *)o);
            Py_DECREF(o);
            if (view != NULL) {
                result = Py_BuildValue("(Nn)", view, (Py_ssize_t)len);
            }
        }
    }
    if (d->in_cap > IN_KEEP) {
        free(d->in);
        d->in = NULL;
        d->in_cap = 0;
    }
    return result;
}

static PyMethodDef decoder_methods[] = {
    {"load", decoder_load, METH_VARARGS,
     "load(path, max_size, room, seconds) -> (memoryview, file size) | bytes | DECLINED\n\n"
     "The module file at path opened (O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC), read and\n"
     "closed in one call without the GIL, and decoded as decode() does when it is one xz\n"
     "stream whose file and declared size fit in room bytes (within seconds, < 0: no\n"
     "bound): (the module, the file's size).  The file's bytes when it was read but not\n"
     "decoded here; DECLINED when it was not read (not a regular file, an error, larger\n"
     "than max_size or room, a size that changed while it was read)."},
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
    pthread_mutex_lock(&pool_lock);
    while (pooled > 0) {
        Region r = pool[--pooled];
        munmap(r.base, r.cap);
    }
    pthread_mutex_unlock(&pool_lock);
    Py_RETURN_NONE;
}

static PyObject *xz_pooled(PyObject *self, PyObject *unused)
{
    size_t total = 0, touched = 0;
    pthread_mutex_lock(&pool_lock);
    int n = pooled;
    for (int i = 0; i < pooled; i++) {
        total += pool[i].cap;
        touched += pool[i].touched;
    }
    pthread_mutex_unlock(&pool_lock);
    return Py_BuildValue("(inn)", n, (Py_ssize_t)total, (Py_ssize_t)touched);
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
    moddeps_crc32_init();
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
