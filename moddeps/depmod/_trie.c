/*
 * moddeps.depmod._trie: C twins of the hot parts of depmod's resolution and
 * writers.  Each has a pure-Python reference, which tests/test_native_trie.py
 * compares it with:
 *
 *   build_index, build_index_columns   index/write.py py_build_index(_columns):
 *       the .bin index byte for byte (value grouping, tie order,
 *       non-ASCII branch dropping; kmod 30's post-order or kmod 34's
 *       pre-order nodes), same ValueError cases and messages
 *   kmod_hash, hash_order              kmodhash.py py_kmod_hash, py_hash_order
 *   select_modinfo, alias_keys, format_rows, dep_lines, symbol_order,
 *   starting_with, line_breaks,
 *   first_non_ascii                    helpers of depmod/outputs.py
 *   resolve_exports, resolve_imports   resolve.py _bind_py (in _trie_resolve.c)
 *   number                             resolve.py _numbering_py
 *
 * Data of a shape the C code does not take gives DECLINED (see _native.h and
 * moddeps/native.py): the callers then run the Python code.  Calls that do
 * not match the stub (_trie.pyi) raise TypeError.  Nothing here recurses, and
 * every buffer access is bounded by the sizes of the Python objects it came
 * from.
 */

#include "_trie.h"

#include <pthread.h>

/* The index format (docs/index-format.md).  "= module:name": the Python value
 * this must equal (tests/test_native_constants.py). */
#define INDEX_MAGIC 0xB007F457u /* = moddeps.index.format:INDEX_MAGIC */
#define INDEX_VERSION 0x00020001u /* = moddeps.index.format:INDEX_VERSION */
#define F_PREFIX 0x80000000u /* = moddeps.index.format:F_PREFIX */
#define F_VALUES 0x40000000u /* = moddeps.index.format:F_VALUES */
#define F_CHILDS 0x20000000u /* = moddeps.index.format:F_CHILDS */
#define OFFSET_MASK 0x0FFFFFFFu /* = moddeps.index.format:OFFSET_MASK */
#define HEADER_SIZE 12 /* = moddeps.index.format:HEADER_SIZE */
#define CHILD_MAX 128 /* = moddeps.index.format:CHILD_MAX */

/* Whether n items of a given size overflow an allocation. */
#define TOO_MANY(n, size) ((size_t)(n) > (size_t)PY_SSIZE_T_MAX / (size))

/* ------------------------------------------------------------------------ */
/* Growable byte buffer */

typedef struct {
    unsigned char *data;
    size_t len;
    size_t cap;
} Buf;

/*
 * The capacity a buffer of `cap` bytes holding `used` needs for `extra` more:
 * doubled from 4096 until it fits.  0: it fits already; (size_t)-1: no size can
 * hold it (no exception set: the index writer's pass may run without the GIL).
 */
static size_t grown_capacity(size_t used, size_t extra, size_t cap)
{
    size_t need;

    if (extra > (size_t)PY_SSIZE_T_MAX - used)
        return (size_t)-1;
    need = used + extra;
    if (need <= cap)
        return 0;
    cap = cap ? cap : 4096;
    while (cap < need) {
        if (cap > (size_t)PY_SSIZE_T_MAX / 2)
            return need;
        cap *= 2;
    }
    return cap;
}

/* Room for `extra` more bytes; -1 when there is none, with MemoryError set unless `quiet`
 * (the index writer's GIL-free pass: see Writer.nogil). */
static int buf_grow(Buf *b, size_t extra, int quiet)
{
    size_t cap = grown_capacity(b->len, extra, b->cap);
    unsigned char *p = NULL;

    if (cap == 0)
        return 0;
    if (cap != (size_t)-1)
        p = PyMem_RawRealloc(b->data, cap);
    if (p == NULL) {
        if (!quiet)
            PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Callers reserve first. */
static inline void put_u32(Buf *b, uint32_t v)
{
    unsigned char *p = b->data + b->len;
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    b->len += 4;
}

static inline void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline void put_bytes(Buf *b, const unsigned char *s, size_t n)
{
    if (n) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
    }
}

/* ------------------------------------------------------------------------ */
/* build_index */

typedef struct {
    const unsigned char *key;
    const unsigned char *val;
    Py_ssize_t klen;
    Py_ssize_t vlen;
    Py_ssize_t seq;      /* insertion position */
    PyObject *keyobj;    /* borrowed */
    uint32_t prio;
} Entry;

typedef struct {
    const unsigned char *key;
    Py_ssize_t len;
    Py_ssize_t lcp;      /* common prefix length with the previous key */
    Py_ssize_t first;    /* first entry (in the sorted order) */
    Py_ssize_t count;    /* number of entries */
    PyObject *keyobj;    /* borrowed */
} Key;

typedef struct {
    Py_ssize_t depth;    /* string depth of the node */
    Py_ssize_t rep;      /* a key below the node (index into keys), -1: the empty key */
    Py_ssize_t base;     /* where its children start on the child stack */
    Py_ssize_t vals;     /* key whose values live here, -1: none */
} Open;

typedef struct {
    uint32_t word;
    unsigned char byte;
} Child;

/* Equal keys: by priority, equal priorities newest first (kmod index_add_value). */
static int cmp_ties(const Entry *a, const Entry *b)
{
    if (a->prio != b->prio)
        return a->prio < b->prio ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq > b->seq ? -1 : 1;
    return 0;
}

static int cmp_ties_ptr(const void *pa, const void *pb)
{
    return cmp_ties(*(Entry *const *)pa, *(Entry *const *)pb);
}

/* Full order of two entries whose keys agree on their first d bytes. */
static int cmp_from(const Entry *a, const Entry *b, Py_ssize_t d)
{
    Py_ssize_t m = a->klen < b->klen ? a->klen : b->klen;
    int c = m > d ? memcmp(a->key + d, b->key + d, (size_t)(m - d)) : 0;

    if (c)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return cmp_ties(a, b);
}

static void insertion_sort(Entry **v, Py_ssize_t n, Py_ssize_t d)
{
    Py_ssize_t i, j;

    for (i = 1; i < n; i++) {
        Entry *x = v[i];
        for (j = i; j > 0 && cmp_from(v[j - 1], x, d) > 0; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
}

/* Byte d of a key, 1-based; 0 past its end. */
static inline int byte_at(const Entry *e, Py_ssize_t d)
{
    return d < e->klen ? (int)e->key[d] + 1 : 0;
}

typedef struct {
    Py_ssize_t lo, hi, depth;
} Range;

/*
 * Sort entry pointers by (key bytes, priority, newest first): a multikey
 * (three-way radix) quicksort, iterative.  Keys sharing long prefixes cost
 * one pass per shared byte instead of a memcmp per comparison.
 */
static int sort_entries(Entry **v, Py_ssize_t n)
{
    Range *stack;
    Py_ssize_t sp = 0, cap = 64;

    if (n < 2)
        return 0;
    stack = PyMem_RawMalloc((size_t)cap * sizeof(Range));
    if (stack == NULL)
        return -1;
    stack[sp].lo = 0;
    stack[sp].hi = n;
    stack[sp].depth = 0;
    sp++;
    while (sp > 0) {
        Range r = stack[--sp];
        Py_ssize_t lo = r.lo, hi = r.hi, d = r.depth, lt, gt, i, len = hi - lo;
        int pivot, a, b, c;

        if (len < 12) {
            insertion_sort(v + lo, len, d);
            continue;
        }
        a = byte_at(v[lo], d);
        b = byte_at(v[lo + len / 2], d);
        c = byte_at(v[hi - 1], d);
        pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        /* v[lo, lt) < pivot, v[lt, i) == pivot, v[gt, hi) > pivot */
        lt = lo;
        gt = hi;
        i = lo;
        while (i < gt) {
            int x = byte_at(v[i], d);
            if (x < pivot) {
                Entry *t = v[lt];
                v[lt++] = v[i];
                v[i++] = t;
            } else if (x > pivot) {
                Entry *t = v[--gt];
                v[gt] = v[i];
                v[i] = t;
            } else {
                i++;
            }
        }
        /* at most three ranges, disjoint from each other and from the rest:
         * the stack never holds more than n of them */
        if (sp + 3 > cap) {
            Range *p;
            cap *= 2;
            p = PyMem_RawRealloc(stack, (size_t)cap * sizeof(Range));
            if (p == NULL) {
                PyMem_RawFree(stack);
                return -1;
            }
            stack = p;
        }
        if (lt - lo > 1) {
            stack[sp].lo = lo;
            stack[sp].hi = lt;
            stack[sp].depth = d;
            sp++;
        }
        if (hi - gt > 1) {
            stack[sp].lo = gt;
            stack[sp].hi = hi;
            stack[sp].depth = d;
            sp++;
        }
        if (gt - lt > 1) {
            if (pivot == 0) {
                /* identical keys: the tie order */
                Py_ssize_t k, j, m = gt - lt;
                Entry **w = v + lt;
                if (m > 16) {
                    qsort(w, (size_t)m, sizeof(Entry *), cmp_ties_ptr);
                } else {
                    for (k = 1; k < m; k++) {
                        Entry *x = w[k];
                        for (j = k; j > 0 && cmp_ties(w[j - 1], x) > 0; j--)
                            w[j] = w[j - 1];
                        w[j] = x;
                    }
                }
            } else {
                stack[sp].lo = lt;
                stack[sp].hi = gt;
                stack[sp].depth = d + 1;
                sp++;
            }
        }
    }
    PyMem_RawFree(stack);
    return 0;
}

static Py_ssize_t common_prefix(const unsigned char *a, Py_ssize_t alen, const unsigned char *b, Py_ssize_t blen)
{
    Py_ssize_t m = alen < blen ? alen : blen, i = 0;

    while (i + 8 <= m) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
        i += 8;
    }
    while (i < m && a[i] == b[i])
        i++;
    return i;
}

static int has_high_byte(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t acc = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        acc |= x;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ull) != 0;
}

/* Mark every key that starts with keys[j][:plen] (they are contiguous around j). */
static void mark_prefix(const Key *keys, Py_ssize_t nk, Py_ssize_t j, Py_ssize_t plen, char *mark)
{
    const unsigned char *p = keys[j].key;
    Py_ssize_t t;

    for (t = j; t >= 0 && keys[t].len >= plen && memcmp(keys[t].key, p, (size_t)plen) == 0; t--)
        mark[t] = 1;
    for (t = j + 1; t < nk && keys[t].len >= plen && memcmp(keys[t].key, p, (size_t)plen) == 0; t++)
        mark[t] = 1;
}

/* index/write.py _drop_non_ascii_branches on the sorted distinct keys, in place. */
static int drop_non_ascii(Key *keys, Py_ssize_t *pnk, PyObject *dropped)
{
    Py_ssize_t nk = *pnk;
    char *mark;

    if (nk < 1)
        return 0;
    mark = PyMem_RawMalloc((size_t)nk);
    if (mark == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (;;) {
        Py_ssize_t i, kept = 0;
        int bad = 0;

        memset(mark, 0, (size_t)nk);
        /* the root has no prefix: every first byte indexes its child array */
        for (i = 0; i < nk; i++) {
            if (keys[i].len > 0 && keys[i].key[0] >= 0x80 && !mark[i]) {
                mark_prefix(keys, nk, i, 1, mark);
                bad = 1;
            }
        }
        for (i = 1; i < nk; i++) {
            Py_ssize_t c = common_prefix(keys[i - 1].key, keys[i - 1].len, keys[i].key, keys[i].len);
            if (c < keys[i - 1].len && keys[i - 1].key[c] >= 0x80) {
                mark_prefix(keys, nk, i - 1, c + 1, mark);
                bad = 1;
            }
            if (c < keys[i].len && keys[i].key[c] >= 0x80) {
                mark_prefix(keys, nk, i, c + 1, mark);
                bad = 1;
            }
        }
        if (!bad)
            break;
        for (i = 0; i < nk; i++) {
            if (mark[i]) {
                if (PyList_Append(dropped, keys[i].keyobj) < 0) {
                    PyMem_RawFree(mark);
                    *pnk = nk;
                    return -1;
                }
            } else {
                keys[kept++] = keys[i];
            }
        }
        nk = kept;
    }
    PyMem_RawFree(mark);
    *pnk = nk;
    return 0;
}

typedef struct {
    unsigned char *data;  /* the file after the header: data[cap - used, cap) */
    size_t cap;
    size_t used;
} Back;

typedef struct {
    Buf out;
    Entry *const *order;  /* the entries, sorted */
    const Key *keys;
    Child *kids;
    Py_ssize_t nkids;
    Py_ssize_t kidcap;
    uint32_t *slots;     /* scratch for one child table */
    /* pre-order only (see emit_pre) */
    Back back;
    size_t *fix;         /* where the child words are: distances from the end */
    Py_ssize_t nfix;
    Py_ssize_t fixcap;
    size_t first_size;   /* of the first node written: the last one in the file */
    /* the pass runs without the GIL (a PendingIndex's thread): an error returns -1 (or
     * NON_ASCII_BRANCH) with no exception set, and job_bytes runs the pass again holding the
     * GIL, which raises it */
    int nogil;
    /* pre-order: the root word and the file's size (set by lay_preorder, read by laid_out) */
    uint32_t root_word;
    size_t size;
} Writer;

/* Raise (the statement `raise`) unless the writer's pass runs without the GIL (see Writer.nogil). */
#define W_RAISE(w, raise) \
    do { \
        if (!(w)->nogil) { \
            raise; \
        } \
    } while (0)

static int push_child(Writer *w, unsigned char byte, uint32_t word)
{
    if (w->nkids == w->kidcap) {
        Py_ssize_t cap = w->kidcap ? w->kidcap * 2 : 256;
        Child *p;
        if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Child)) {
            W_RAISE(w, PyErr_NoMemory());
            return -1;
        }
        p = PyMem_RawRealloc(w->kids, (size_t)cap * sizeof(Child));
        if (p == NULL) {
            W_RAISE(w, PyErr_NoMemory());
            return -1;
        }
        w->kids = p;
        w->kidcap = cap;
    }
    w->kids[w->nkids].byte = byte;
    w->kids[w->nkids].word = word;
    w->nkids++;
    return 0;
}

static void raise_too_large(const Writer *w, size_t len)
{
    W_RAISE(w, PyErr_Format(PyExc_ValueError, "index of %zu+ bytes does not fit kmod's 28-bit node offsets", len));
}

/*
 * Append one node; its children are kids[node->base:nkids] (popped here).
 * parent_depth is -1 for the root.  Returns 0 and the word, or -1.
 */
static int emit(Writer *w, const Open *node, Py_ssize_t parent_depth, uint32_t *word_out)
{
    const unsigned char *key = NULL;
    Py_ssize_t klen = 0;
    Py_ssize_t nch = w->nkids - node->base;
    size_t start = w->out.len;
    uint32_t word;

    if (node->rep >= 0) {
        key = w->keys[node->rep].key;
        klen = w->keys[node->rep].len;
    }
    if ((uint64_t)start > 0xFFFFFFFFu) {  /* the Python twin fails here too (struct.error) */
        raise_too_large(w, start);
        return -1;
    }
    word = (uint32_t)start;
    if (node->depth - parent_depth > 1) {
        Py_ssize_t from = parent_depth + 1, n = node->depth - from;
        if (from < 0 || node->depth > klen) {
            W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: prefix out of range"));
            return -1;
        }
        if (buf_grow(&w->out, (size_t)n + 1, w->nogil) < 0)
            return -1;
        put_bytes(&w->out, key + from, (size_t)n);
        w->out.data[w->out.len++] = 0;
        word |= F_PREFIX;
    }
    if (nch > 0) {
        const Child *ch = w->kids + node->base;
        unsigned first = ch[0].byte, last = ch[nch - 1].byte, width, i;
        Py_ssize_t k;

        if (last >= CHILD_MAX) {
            Py_ssize_t cut = node->depth + 1 < klen ? node->depth + 1 : klen;
            PyObject *shown;
            char hex[8];
            if (w->nogil)
                return -1;
            shown = PyBytes_FromStringAndSize((const char *)key, cut);
            if (shown == NULL)
                return -1;
            snprintf(hex, sizeof hex, "%02x", last);
            PyErr_Format(PyExc_ValueError,
                         "index keys %R... branch on byte 0x%s: kmod 30 cannot index a non-ASCII byte at a branch",
                         shown, hex);
            Py_DECREF(shown);
            return -1;
        }
        width = last - first + 1;
        if (buf_grow(&w->out, 2 + 4 * (size_t)width, w->nogil) < 0)
            return -1;
        w->out.data[w->out.len++] = (unsigned char)first;
        w->out.data[w->out.len++] = (unsigned char)last;
        memset(w->slots, 0, width * sizeof(uint32_t));
        for (k = 0; k < nch; k++)
            w->slots[ch[k].byte - first] = ch[k].word;
        for (i = 0; i < width; i++)
            put_u32(&w->out, w->slots[i]);
        word |= F_CHILDS;
        w->nkids = node->base;
    }
    if (node->vals >= 0) {
        const Key *kv = &w->keys[node->vals];
        Py_ssize_t e;
        size_t size = 4;

        for (e = kv->first; e < kv->first + kv->count; e++)
            size += 5 + (size_t)w->order[e]->vlen;
        if (buf_grow(&w->out, size, w->nogil) < 0)
            return -1;
        put_u32(&w->out, (uint32_t)kv->count);
        for (e = kv->first; e < kv->first + kv->count; e++) {
            const Entry *en = w->order[e];
            put_u32(&w->out, en->prio);
            put_bytes(&w->out, en->val, (size_t)en->vlen);
            w->out.data[w->out.len++] = 0;
        }
        word |= F_VALUES;
    }
    *word_out = word;
    return 0;
}

/* Close the top node of the stack into its parent's child list. */
static int close_into(Writer *w, const Open *node, Py_ssize_t parent_depth)
{
    uint32_t word;
    const Key *k;

    if (emit(w, node, parent_depth, &word) < 0)
        return -1;
    if (node->rep < 0 || parent_depth < 0 || parent_depth >= w->keys[node->rep].len) {
        W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: edge byte out of range"));
        return -1;
    }
    k = &w->keys[node->rep];
    return push_child(w, k->key[parent_depth], word);
}

/*
 * kmod 34's pre-order layout (tools/depmod.c index_write__node @v34, commit
 * dada048cbf57): the same nodes, each written before its children.  The walk
 * runs over the keys in descending order, which completes the nodes in
 * post-order with children descending: the pre-order file read backwards.
 * So each completed node goes in front of the ones before it, in a buffer
 * that grows downwards, and its distance E from the end of the file is known
 * at once.  A child word is flags | (T - E) with T the file size, known only
 * at the end: it is stored as flags - E (mod 2**32), its place is noted, and
 * T is added to each noted word at the end.
 */
static int back_reserve(Back *b, size_t extra, int quiet)
{
    size_t cap = grown_capacity(b->used, extra, b->cap);
    unsigned char *p = NULL;

    if (cap == 0)
        return 0;
    if (cap != (size_t)-1)
        p = PyMem_RawMalloc(cap);
    if (p == NULL) {
        if (!quiet)
            PyErr_NoMemory();
        return -1;
    }
    if (b->used)
        memcpy(p + cap - b->used, b->data + b->cap - b->used, b->used);
    PyMem_RawFree(b->data);
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Returned by the pre-order emit for a branch on a byte >= 0x80, no exception set. */
#define NON_ASCII_BRANCH (-2)

/*
 * Put one node in front; its children are kids[node->base:nkids] in
 * descending byte order (popped here).  Returns 0 and the stored word
 * (flags - E), -1 with an exception, or NON_ASCII_BRANCH.
 */
static int emit_pre(Writer *w, const Open *node, Py_ssize_t parent_depth, uint32_t *word_out)
{
    const unsigned char *key = NULL;
    Py_ssize_t klen = 0, nch = w->nkids - node->base, from = parent_depth + 1, n = node->depth - from;
    size_t size = 0, e;
    unsigned first = 0, last = 0, width = 0;
    uint32_t flags = 0;
    unsigned char *p;

    if (node->rep >= 0) {
        key = w->keys[node->rep].key;
        klen = w->keys[node->rep].len;
    }
    if (n > 0) {
        if (from < 0 || node->depth > klen) {
            W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: prefix out of range"));
            return -1;
        }
        size += (size_t)n + 1;
        flags |= F_PREFIX;
    }
    if (nch > 0) {
        first = w->kids[w->nkids - 1].byte;
        last = w->kids[node->base].byte;
        if (last >= CHILD_MAX)
            return NON_ASCII_BRANCH;
        width = last - first + 1;
        size += 2 + 4 * (size_t)width;
        flags |= F_CHILDS;
        if (w->nfix + nch > w->fixcap) {
            W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: more child words than nodes"));
            return -1;
        }
    }
    if (node->vals >= 0) {
        const Key *kv = &w->keys[node->vals];
        Py_ssize_t x;
        size += 4;
        for (x = kv->first; x < kv->first + kv->count; x++)
            size += 5 + (size_t)w->order[x]->vlen;
        flags |= F_VALUES;
    }
    if (back_reserve(&w->back, size, w->nogil) < 0)
        return -1;
    e = w->back.used + size;
    p = w->back.data + w->back.cap - e;
    if (n > 0) {
        memcpy(p, key + from, (size_t)n);
        p += n;
        *p++ = 0;
    }
    if (nch > 0) {
        const Child *ch = w->kids + node->base;
        Py_ssize_t k;
        *p++ = (unsigned char)first;
        *p++ = (unsigned char)last;
        memset(p, 0, 4 * (size_t)width);
        for (k = 0; k < nch; k++) {
            unsigned char *q = p + 4 * (size_t)(ch[k].byte - first);
            be32(q, ch[k].word);
            /* its distance from the end of the file */
            w->fix[w->nfix++] = (size_t)(w->back.data + w->back.cap - q);
        }
        p += 4 * (size_t)width;
        w->nkids = node->base;
    }
    if (node->vals >= 0) {
        const Key *kv = &w->keys[node->vals];
        Py_ssize_t x;
        be32(p, (uint32_t)kv->count);
        p += 4;
        for (x = kv->first; x < kv->first + kv->count; x++) {
            const Entry *en = w->order[x];
            be32(p, en->prio);
            p += 4;
            if (en->vlen)
                memcpy(p, en->val, (size_t)en->vlen);
            p += en->vlen;
            *p++ = 0;
        }
    }
    if (w->back.used == 0)
        w->first_size = size;  /* the last node of the file: it has the largest offset */
    w->back.used = e;
    *word_out = flags - (uint32_t)e;  /* mod 2**32 */
    return 0;
}

static int close_pre(Writer *w, const Open *node, Py_ssize_t parent_depth)
{
    uint32_t word;
    int rc = emit_pre(w, node, parent_depth, &word);

    if (rc < 0)
        return rc;
    if (node->rep < 0 || parent_depth < 0 || parent_depth >= w->keys[node->rep].len) {
        W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: edge byte out of range"));
        return -1;
    }
    return push_child(w, w->keys[node->rep].key[parent_depth], word);
}

typedef int (*CloseFn)(Writer *w, const Open *node, Py_ssize_t parent_depth);

/*
 * The stack walk over the sorted distinct keys (index/write.py _write_postorder
 * explains it), ascending or descending; every node but the root (stack[0])
 * goes to close.  Returns 0, or what close returned.
 */
static int walk(Writer *w, Open *stack, Py_ssize_t maxlen, Py_ssize_t nk, int descending, CloseFn close)
{
    const Key *keys = w->keys;
    Py_ssize_t sp = 1, t;
    int rc;

    stack[0].depth = 0;
    stack[0].rep = -1;
    stack[0].base = 0;
    stack[0].vals = -1;
    for (t = 0; t < nk; t++) {
        Py_ssize_t i = descending ? nk - 1 - t : t;
        /* keys[i].lcp is the common prefix with keys[i - 1] */
        Py_ssize_t common = descending ? (i + 1 < nk ? keys[i + 1].lcp : 0) : keys[i].lcp;

        while (stack[sp - 1].depth > common) {
            Open top = stack[--sp];
            Py_ssize_t pd = stack[sp - 1].depth;
            if (pd < common) {
                /* the keys part inside this edge: a branching node there */
                stack[sp].depth = common;
                stack[sp].rep = top.rep;
                stack[sp].base = top.base;
                stack[sp].vals = -1;
                sp++;
                pd = common;
            }
            if ((rc = close(w, &top, pd)) < 0)
                return rc;
        }
        if (keys[i].len == stack[sp - 1].depth) {
            /* ascending: only the empty key, on the root; descending: a key
             * that is a prefix of the ones before it */
            stack[sp - 1].vals = i;
        } else {
            if (sp >= maxlen + 2) {
                W_RAISE(w, PyErr_SetString(PyExc_SystemError, "trie writer: stack overflow"));
                return -1;
            }
            stack[sp].depth = keys[i].len;
            stack[sp].rep = i;
            stack[sp].base = w->nkids;
            stack[sp].vals = i;
            sp++;
        }
    }
    while (sp > 1) {
        Open top = stack[--sp];
        if ((rc = close(w, &top, stack[sp - 1].depth)) < 0)
            return rc;
    }
    return 0;
}

/* kmod 30's post-order file, laid out in w->out (header included); guess: the buffer to
 * start with.  0, or -1 (an exception set unless w->nogil). */
static int lay_postorder(Writer *w, Open *stack, Py_ssize_t maxlen, Py_ssize_t nk, size_t guess)
{
    uint32_t root_word;
    size_t end;

    if (buf_grow(&w->out, guess, w->nogil) < 0)
        return -1;
    memset(w->out.data, 0, HEADER_SIZE);
    w->out.len = HEADER_SIZE;
    if (walk(w, stack, maxlen, nk, 0, close_into) < 0)
        return -1;
    /* the root is written last, so its offset is the largest */
    if (w->out.len > OFFSET_MASK) {
        raise_too_large(w, w->out.len);
        return -1;
    }
    if (emit(w, &stack[0], -1, &root_word) < 0)
        return -1;
    end = w->out.len;
    w->out.len = 0;
    put_u32(&w->out, INDEX_MAGIC);
    put_u32(&w->out, INDEX_VERSION);
    put_u32(&w->out, root_word);
    w->out.len = end;
    return 0;
}

/* kmod 34's pre-order file (see emit_pre), laid out backwards in w->back with its child
 * words final, its size in w->size and its root word in w->root_word; guess: the buffer to
 * start with.  0, -1 (an exception set unless w->nogil) or NON_ASCII_BRANCH. */
static int lay_preorder(Writer *w, Open *stack, Py_ssize_t maxlen, Py_ssize_t nk, size_t guess)
{
    uint32_t root_word;
    size_t size, last_offset = HEADER_SIZE, f;
    int rc;

    /* every node but the root is one child word: at most 2 * nk of them */
    if (w->fix == NULL) {
        if (TOO_MANY(2 * (size_t)nk + 1, sizeof(size_t))) {
            W_RAISE(w, PyErr_NoMemory());
            return -1;
        }
        w->fixcap = 2 * nk + 1;
        w->fix = PyMem_RawMalloc((size_t)w->fixcap * sizeof(size_t));
        if (w->fix == NULL) {
            W_RAISE(w, PyErr_NoMemory());
            return -1;
        }
    }
    if (back_reserve(&w->back, guess, w->nogil) < 0)
        return -1;
    rc = walk(w, stack, maxlen, nk, 1, close_pre);
    if (rc == 0)
        rc = emit_pre(w, &stack[0], -1, &root_word);
    if (rc != 0)
        return rc;
    size = HEADER_SIZE + w->back.used;
    if (w->back.used > w->first_size)
        last_offset = size - w->first_size;
    if (last_offset > OFFSET_MASK) {
        raise_too_large(w, last_offset);
        return -1;
    }
    /* each child word holds flags - E: T (the size) added, in place (a word's distance from
     * the end of the file is its distance from the end of the buffer) */
    for (f = 0; f < (size_t)w->nfix; f++) {
        unsigned char *q = w->back.data + w->back.cap - w->fix[f];
        be32(q, ((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]) + (uint32_t)size);
    }
    w->root_word = root_word + (uint32_t)size;  /* = flags | 12 */
    w->size = size;
    return 0;
}

/* The laid-out file of lay_postorder (preorder 0) or lay_preorder as bytes. */
static PyObject *laid_out(const Writer *w, int preorder)
{
    PyObject *result;
    unsigned char *r;

    if (!preorder)
        return PyBytes_FromStringAndSize((const char *)w->out.data, (Py_ssize_t)w->out.len);
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)w->size);
    if (result == NULL)
        return NULL;
    r = (unsigned char *)PyBytes_AS_STRING(result);
    be32(r, INDEX_MAGIC);
    be32(r + 4, INDEX_VERSION);
    be32(r + 8, w->root_word);
    if (w->back.used)
        memcpy(r + HEADER_SIZE, w->back.data + w->back.cap - w->back.used, w->back.used);
    return result;
}

/* Forget what a pass laid out (its buffers are kept), for the next pass. */
static void writer_reset(Writer *w)
{
    w->out.len = 0;
    w->back.used = 0;
    w->nkids = 0;
    w->nfix = 0;
    w->first_size = 0;
}

/* The file: lay_postorder or lay_preorder, then its bytes.  A pre-order walk that meets a
 * branch on a non-ASCII byte runs the post-order one for the error: the descending walk meets
 * the nodes in another order, and the post-order one names the node, so that both layouts
 * give one message. */
static PyObject *write_laid_out(Writer *w, Open *stack, Py_ssize_t maxlen, Py_ssize_t nk, size_t guess,
                                int preorder)
{
    int rc = preorder ? lay_preorder(w, stack, maxlen, nk, guess) : lay_postorder(w, stack, maxlen, nk, guess);

    if (rc == NON_ASCII_BRANCH) {
        writer_reset(w);
        if (lay_postorder(w, stack, maxlen, nk, guess) == 0)
            PyErr_SetString(PyExc_SystemError, "trie writer: the post-order walk found no non-ASCII branch");
        return NULL;
    }
    if (rc < 0)
        return NULL;
    return laid_out(w, preorder);
}

/*
 * The entries (ks[i], vs[i], ps[i]); ps == NULL: priority i.  1 (declined)
 * unless every one is (bytes, bytes, int); then the same checks, order and
 * messages as index/write.py _value_lists and _check_key (-1), or 0.
 */
static int check_entries(PyObject *const *ks, PyObject *const *vs, PyObject *const *ps, Py_ssize_t n, Entry *entries)
{
    PyObject *nul_key = NULL;
    Py_ssize_t i;

    for (i = 0; i < n; i++)
        if (!PyBytes_Check(ks[i]) || !PyBytes_Check(vs[i]) || (ps != NULL && !PyLong_Check(ps[i])))
            return 1;
    for (i = 0; i < n; i++) {
        PyObject *k = ks[i], *v = vs[i], *p = ps ? ps[i] : NULL;
        long long prio;
        int overflow = 0;

        entries[i].key = (const unsigned char *)PyBytes_AS_STRING(k);
        entries[i].klen = PyBytes_GET_SIZE(k);
        entries[i].val = (const unsigned char *)PyBytes_AS_STRING(v);
        entries[i].vlen = PyBytes_GET_SIZE(v);
        entries[i].seq = i;
        entries[i].keyobj = k;
        if (entries[i].vlen && memchr(entries[i].val, 0, (size_t)entries[i].vlen) != NULL) {
            PyErr_Format(PyExc_ValueError, "index value %R for key %R contains a NUL byte", v, k);
            return -1;
        }
        if (p != NULL) {
            prio = PyLong_AsLongLongAndOverflow(p, &overflow);
            if (prio == -1 && PyErr_Occurred())
                return -1;
        } else {
            prio = (long long)i;
        }
        if (overflow || prio < 0 || prio > 0xFFFFFFFFLL) {
            if (p != NULL)
                PyErr_Format(PyExc_ValueError, "index priority %S for key %R is not a u32", p, k);
            else
                PyErr_Format(PyExc_ValueError, "index priority %zd for key %R is not a u32", i, k);
            return -1;
        }
        entries[i].prio = (uint32_t)prio;
        if (nul_key == NULL && entries[i].klen && memchr(entries[i].key, 0, (size_t)entries[i].klen) != NULL)
            nul_key = k;
    }
    if (nul_key != NULL) {
        const char *str = PyBytes_AS_STRING(nul_key);
        const char *z = memchr(str, 0, (size_t)PyBytes_GET_SIZE(nul_key));
        PyErr_Format(PyExc_ValueError, "index key %R contains a NUL byte at position %zd", nul_key,
                     (Py_ssize_t)(z - str));
        return -1;
    }
    return 0;
}

/* One index to build: the entries, sorted, their distinct keys, and the writer. */
typedef struct {
    Entry *entries;
    Entry **order;       /* the entries, sorted */
    Key *keys;           /* the distinct keys, sorted: keys[0:nk] */
    Open *stack;         /* the open nodes of the walk (NULL: not planned yet) */
    Py_ssize_t n, nk, maxlen;
    size_t guess;        /* the first buffer size */
    Writer w;
    int preorder;
} Job;

/* The job's buffers for n entries; -1 with MemoryError set. */
static int job_init(Job *j, Py_ssize_t n, int preorder)
{
    memset(j, 0, sizeof *j);
    j->n = n;
    j->preorder = preorder;
    if (TOO_MANY(n, sizeof(Entry))) {
        PyErr_NoMemory();
        return -1;
    }
    j->entries = PyMem_RawMalloc(n ? (size_t)n * sizeof(Entry) : 1);
    j->order = PyMem_RawMalloc(n ? (size_t)n * sizeof(Entry *) : 1);
    j->keys = PyMem_RawMalloc(n ? (size_t)n * sizeof(Key) : 1);
    j->w.slots = PyMem_RawMalloc(CHILD_MAX * 2 * sizeof(uint32_t));
    if (j->entries == NULL || j->order == NULL || j->keys == NULL || j->w.slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void job_free(Job *j)
{
    PyMem_RawFree(j->entries);
    PyMem_RawFree(j->order);
    PyMem_RawFree(j->keys);
    PyMem_RawFree(j->stack);
    PyMem_RawFree(j->w.kids);
    PyMem_RawFree(j->w.slots);
    PyMem_RawFree(j->w.out.data);
    PyMem_RawFree(j->w.back.data);
    PyMem_RawFree(j->w.fix);
    memset(j, 0, sizeof *j);
}

/* Sort the entries and list the distinct keys with their common prefixes; *non_ascii:
 * whether a key holds a byte >= 0x80 past its common prefix (looked for only when `look`).
 * No Python object is touched: it runs with or without the GIL.  -1: out of memory, no
 * exception set. */
static int job_sort(Job *j, int look, int *non_ascii)
{
    Py_ssize_t nk = 0, i;
    Key *keys = j->keys;

    for (i = 0; i < j->n; i++)
        j->order[i] = &j->entries[i];
    if (sort_entries(j->order, j->n) < 0)
        return -1;
    for (i = 0; i < j->n; i++) {
        const Entry *e = j->order[i];
        Py_ssize_t lcp = 0;
        if (nk > 0) {
            lcp = common_prefix(keys[nk - 1].key, keys[nk - 1].len, e->key, e->klen);
            if (lcp == e->klen && lcp == keys[nk - 1].len) {
                keys[nk - 1].count++;
                continue;
            }
        }
        keys[nk].key = e->key;
        keys[nk].len = e->klen;
        keys[nk].lcp = lcp;
        keys[nk].first = i;
        keys[nk].count = 1;
        keys[nk].keyobj = e->keyobj;
        nk++;
        /* the first lcp bytes were checked with the previous key; without
         * dropped, a branch on such a byte is an error of the walk */
        if (look && !*non_ascii)
            *non_ascii = has_high_byte(e->key + lcp, e->klen - lcp);
    }
    j->nk = nk;
    return 0;
}

/* What the layout of the distinct keys needs: the open-node stack, the longest key and a
 * first buffer size; the writer told where the entries and keys are.  No Python object is
 * touched.  -1: out of memory, no exception set. */
static int job_plan(Job *j)
{
    Py_ssize_t i, longest = 0;
    size_t g = HEADER_SIZE;

    /* The open nodes' depths strictly increase: at most maxlen + 2 of them. */
    for (i = 0; i < j->nk; i++)
        if (j->keys[i].len > longest)
            longest = j->keys[i].len;
    if (longest > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(Open) - 2)
        return -1;
    j->stack = PyMem_RawMalloc((size_t)(longest + 2) * sizeof(Open));
    if (j->stack == NULL)
        return -1;
    for (i = 0; i < j->nk; i++)
        g += (size_t)j->keys[i].len / 2 + 16;
    for (i = 0; i < j->n; i++)
        g += (size_t)j->entries[i].vlen + 5;
    j->maxlen = longest;
    j->guess = g;
    j->w.order = j->order;
    j->w.keys = j->keys;
    return 0;
}

/* The layout pass (lay_preorder or lay_postorder) without exceptions: 0 when the file is
 * laid out, else non-zero (job_bytes runs the pass again, holding the GIL, to raise). */
static int job_lay_quietly(Job *j)
{
    int rc;

    j->w.nogil = 1;
    rc = j->preorder ? lay_preorder(&j->w, j->stack, j->maxlen, j->nk, j->guess)
                     : lay_postorder(&j->w, j->stack, j->maxlen, j->nk, j->guess);
    j->w.nogil = 0;
    return rc != 0;
}

/* The file of a planned job: the bytes laid out already (`laid`), or the layout run here,
 * holding the GIL, which raises what fails. */
static PyObject *job_bytes(Job *j, int laid)
{
    if (laid)
        return laid_out(&j->w, j->preorder);
    writer_reset(&j->w);
    return write_laid_out(&j->w, j->stack, j->maxlen, j->nk, j->guess, j->preorder);
}

/* The index of the entries (ks[i], vs[i], ps[i]), holding the GIL throughout. */
static PyObject *build(PyObject *const *ks, PyObject *const *vs, PyObject *const *ps, Py_ssize_t n,
                       PyObject *dropped, int preorder)
{
    Job j;
    PyObject *result = NULL;
    Py_ssize_t i;
    int non_ascii = 0;

    if (job_init(&j, n, preorder) < 0)
        goto done;
    switch (check_entries(ks, vs, ps, n, j.entries)) {
    case 0:
        break;
    case 1:
        result = declined();
        goto done;
    default:
        goto done;
    }
    if (job_sort(&j, dropped != NULL, &non_ascii) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (dropped != NULL && non_ascii) {
        if (drop_non_ascii(j.keys, &j.nk, dropped) < 0)
            goto done;
        for (i = 0; i < j.nk; i++)
            j.keys[i].lcp = i ? common_prefix(j.keys[i - 1].key, j.keys[i - 1].len, j.keys[i].key, j.keys[i].len) : 0;
    }
    if (job_plan(&j) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = write_laid_out(&j.w, j.stack, j.maxlen, j.nk, j.guess, preorder);
done:
    job_free(&j);
    return result;
}

/* ------------------------------------------------------------------------ */
/* An index built by a thread of its own (start_index, start_index_columns) */

/*
 * The thread sorts and lays the index out without the GIL and without a single Python
 * object: the entries point into keys and values this object holds.  result() waits for it
 * (letting go of the GIL), then makes the bytes; a layout that failed there runs again in
 * result(), holding the GIL, which raises what failed -- the exception build() raises.
 */
typedef struct {
    PyObject_HEAD
    Job job;
    PyObject **held;     /* the keys and values, held */
    Py_ssize_t nheld;
    pthread_t thread;
    int running;         /* the thread was started and is not joined yet */
    int joining;         /* a caller waits for it, the GIL let go of (another may not: one join a thread) */
    int rc;              /* the thread's: 0 laid out, 1 the layout failed, -1 out of memory */
    PyObject *result;    /* the bytes, once made */
} Pending;

static void *pending_run(void *arg)
{
    Pending *p = arg;
    int non_ascii = 0;

    if (job_sort(&p->job, 0, &non_ascii) < 0 || job_plan(&p->job) < 0)
        p->rc = -1;
    else
        p->rc = job_lay_quietly(&p->job);
    return NULL;
}

/* Wait for the thread; -1 with RuntimeError when another Python thread is waiting for it already. */
static int pending_join(Pending *p)
{
    if (p->joining) {
        PyErr_SetString(PyExc_RuntimeError, "the index is being waited for by another thread");
        return -1;
    }
    if (p->running) {
        p->joining = 1;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(p->thread, NULL);
        Py_END_ALLOW_THREADS
        p->joining = 0;
        p->running = 0;
    }
    return 0;
}

/* Free what the thread read, once it is done (the caller waited for it, or nobody else can). */
static void pending_release(Pending *p)
{
    Py_ssize_t i;

    job_free(&p->job);
    for (i = 0; i < p->nheld; i++)
        Py_DECREF(p->held[i]);
    PyMem_RawFree(p->held);
    p->held = NULL;
    p->nheld = 0;
}

static void pending_dealloc(Pending *p)
{
    pending_join(p);  /* (no other caller: it holds no reference) */
    pending_release(p);
    Py_XDECREF(p->result);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *pending_result(Pending *p, PyObject *unused)
{
    if (p->result == NULL) {
        if (p->held == NULL) {
            PyErr_SetString(PyExc_ValueError, "the index failed already");
            return NULL;
        }
        if (pending_join(p) < 0)
            return NULL;
        if (p->rc < 0)
            PyErr_NoMemory();
        else
            p->result = job_bytes(&p->job, p->rc == 0);
        pending_release(p);
        if (p->result == NULL)
            return NULL;
    }
    return Py_NewRef(p->result);
}

static PyMethodDef pending_methods[] = {
    {"result", (PyCFunction)pending_result, METH_NOARGS,
     PyDoc_STR("result() -> bytes\n\nThe index, once its thread is done (the GIL let go of while waiting),\n"
               "or the exception build_index raises; after a failure, ValueError.")},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PendingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "moddeps.depmod._trie.PendingIndex",
    .tp_basicsize = sizeof(Pending),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("An index being built by a thread of its own (start_index, start_index_columns)."),
    .tp_dealloc = (destructor)pending_dealloc,
    .tp_methods = pending_methods,
};

/* Whether a key of the n entries holds a byte >= 0x80 (kmod 30's drop may then apply). */
static int any_high_byte(const Entry *entries, Py_ssize_t n)
{
    Py_ssize_t i;

    for (i = 0; i < n; i++)
        if (has_high_byte(entries[i].key, entries[i].klen))
            return 1;
    return 0;
}

/* build(), its sort and layout in a thread of its own: a PendingIndex; or the bytes (or
 * DECLINED) at once when a key may have to be dropped (that takes the GIL) or no thread can
 * be started. */
static PyObject *start(PyObject *const *ks, PyObject *const *vs, PyObject *const *ps, Py_ssize_t n,
                       PyObject *dropped, int preorder)
{
    Pending *p;
    Py_ssize_t i;

    p = PyObject_New(Pending, &PendingType);
    if (p == NULL)
        return NULL;
    memset(&p->job, 0, sizeof p->job);
    p->held = NULL;
    p->nheld = 0;
    p->running = 0;
    p->joining = 0;
    p->rc = 0;
    p->result = NULL;
    if (job_init(&p->job, n, preorder) < 0)
        goto fail;
    switch (check_entries(ks, vs, ps, n, p->job.entries)) {
    case 0:
        break;
    case 1:
        Py_DECREF(p);
        return declined();
    default:
        goto fail;
    }
    if ((dropped != NULL && any_high_byte(p->job.entries, n)) || TOO_MANY(n, 2 * sizeof(PyObject *)))
        goto here;
    p->held = PyMem_RawMalloc(n ? 2 * (size_t)n * sizeof(PyObject *) : 1);
    if (p->held == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    /* what the entries point into stays alive whatever other code does with the lists */
    for (i = 0; i < n; i++) {
        p->held[p->nheld++] = Py_NewRef(ks[i]);
        p->held[p->nheld++] = Py_NewRef(vs[i]);
    }
    if (pthread_create(&p->thread, NULL, pending_run, p) != 0)
        goto here;
    p->running = 1;
    return (PyObject *)p;
here:
    Py_DECREF(p);
    return build(ks, vs, ps, n, dropped, preorder);
fail:
    Py_DECREF(p);
    return NULL;
}

PyDoc_STRVAR(build_index_doc,
"build_index(entries, dropped=None, preorder=False, /) -> bytes\n\n"
"The .bin index for (key, value, priority) entries, byte for byte as\n"
"moddeps.index.write.py_build_index writes it (same ValueError cases):\n"
"kmod 30's post-order layout, or kmod 34's pre-order one if preorder is true.\n"
"DECLINED unless entries are (bytes, bytes, int) tuples; dropped must be a\n"
"list or None.");

PyDoc_STRVAR(start_index_doc,
"start_index(entries, dropped=None, preorder=False, /) -> PendingIndex | bytes\n\n"
"build_index, sorted and laid out by a thread of its own, without the GIL:\n"
"its result() gives the bytes or raises what build_index raises.  The\n"
"entries are checked here (the same exceptions, the same DECLINED).  The\n"
"bytes at once when a key may be dropped or no thread can be started.");

/* The optional dropped (args[at]) and preorder (args[at + 1]) arguments. */
static int get_options(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t at, PyObject **dropped, int *preorder)
{
    *dropped = NULL;
    *preorder = 0;
    if (nargs > at && args[at] != Py_None) {
        if (!PyList_Check(args[at])) {
            PyErr_SetString(PyExc_TypeError, "dropped must be a list or None");
            return -1;
        }
        *dropped = args[at];
    }
    if (nargs > at + 1) {
        int truth = PyObject_IsTrue(args[at + 1]);
        if (truth < 0)
            return -1;
        *preorder = truth;
    }
    return 0;
}

typedef PyObject *(*BuildFn)(PyObject *const *ks, PyObject *const *vs, PyObject *const *ps, Py_ssize_t n,
                             PyObject *dropped, int preorder);

/* build_index and start_index: the entries as three columns, then `how`. */
static PyObject *index_of_entries(PyObject *const *args, Py_ssize_t nargs, const char *name, BuildFn how)
{
    PyObject *seq, *dropped, *result = NULL, **items, **cols = NULL;
    Py_ssize_t n, i;
    int preorder;

    if (nargs < 1 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "%s() takes 1 to 3 arguments", name);
        return NULL;
    }
    if (get_options(args, nargs, 1, &dropped, &preorder) < 0)
        return NULL;
    seq = PySequence_Fast(args[0], "build_index(): entries must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    if (n > PY_SSIZE_T_MAX / (3 * (Py_ssize_t)sizeof(PyObject *))) {
        PyErr_NoMemory();
        goto done;
    }
    cols = PyMem_RawMalloc(n ? 3 * (size_t)n * sizeof(PyObject *) : 1);
    if (cols == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *t = items[i];
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
            result = declined();
            goto done;
        }
        cols[i] = PyTuple_GET_ITEM(t, 0);
        cols[n + i] = PyTuple_GET_ITEM(t, 1);
        cols[2 * n + i] = PyTuple_GET_ITEM(t, 2);
    }
    result = how(cols, cols + n, cols + 2 * n, n, dropped, preorder);
done:
    PyMem_RawFree(cols);
    Py_DECREF(seq);
    return result;
}

static PyObject *py_build_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return index_of_entries(args, nargs, "build_index", build);
}

static PyObject *py_start_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return index_of_entries(args, nargs, "start_index", start);
}

PyDoc_STRVAR(build_index_columns_doc,
"build_index_columns(keys, values, priorities, dropped=None, preorder=False, /) -> bytes\n\n"
"build_index(zip(keys, values, priorities), dropped, preorder) without the tuples;\n"
"priorities None means 0, 1, 2, ...  The columns must be of one length\n"
"(ValueError); DECLINED unless they are lists.");

PyDoc_STRVAR(start_index_columns_doc,
"start_index_columns(keys, values, priorities, dropped=None, preorder=False, /) -> PendingIndex | bytes\n\n"
"start_index of the columns, as build_index_columns takes them.");

/* build_index_columns and start_index_columns: the columns checked, then `how`. */
static PyObject *index_of_columns(PyObject *const *args, Py_ssize_t nargs, const char *name, BuildFn how)
{
    PyObject *dropped;
    Py_ssize_t n;
    int preorder;

    if (nargs < 3 || nargs > 5) {
        PyErr_Format(PyExc_TypeError, "%s() takes 3 to 5 arguments", name);
        return NULL;
    }
    if (get_options(args, nargs, 3, &dropped, &preorder) < 0)
        return NULL;
    if (!PyList_Check(args[0]) || !PyList_Check(args[1]) || (args[2] != Py_None && !PyList_Check(args[2])))
        return declined();
    n = PyList_GET_SIZE(args[0]);
    if (PyList_GET_SIZE(args[1]) != n || (args[2] != Py_None && PyList_GET_SIZE(args[2]) != n)) {
        PyErr_Format(PyExc_ValueError, "%s(): columns of different lengths", name);
        return NULL;
    }
    /* the lists' items are read holding the GIL before any other code can run (start()
     * holds the keys and values before its thread reads them) */
    return how(((PyListObject *)args[0])->ob_item, ((PyListObject *)args[1])->ob_item,
               args[2] == Py_None ? NULL : ((PyListObject *)args[2])->ob_item, n, dropped, preorder);
}

static PyObject *py_build_index_columns(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return index_of_columns(args, nargs, "build_index_columns", build);
}

static PyObject *py_start_index_columns(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return index_of_columns(args, nargs, "start_index_columns", start);
}

/* ------------------------------------------------------------------------ */
/* kmod's hash (shared/hash.c, SuperFastHash), x86-64 flavour */

static uint32_t kmod_hash(const unsigned char *key, Py_ssize_t n)
{
    uint32_t h = (uint32_t)n, t;
    Py_ssize_t rem = n & 3, end = n - rem, i;

    for (i = 0; i < end; i += 4) {
        h += (uint32_t)key[i] | (uint32_t)key[i + 1] << 8;
        t = (((uint32_t)key[i + 2] | (uint32_t)key[i + 3] << 8) << 11) ^ h;
        h = (h << 16) ^ t;
        h += h >> 11;
    }
    switch (rem) {
    case 3:
        h += (uint32_t)key[end] | (uint32_t)key[end + 1] << 8;
        h ^= h << 16;
        h ^= (uint32_t)(int32_t)(signed char)key[end + 2] << 18;
        h += h >> 11;
        break;
    case 2:
        h += (uint32_t)key[end] | (uint32_t)key[end + 1] << 8;
        h ^= h << 11;
        h += h >> 17;
        break;
    case 1:
        h += (uint32_t)(int32_t)(signed char)key[end];
        h ^= h << 10;
        h += h >> 1;
        break;
    default:
        break;
    }
    h ^= h << 3;
    h += h >> 5;
    h ^= h << 4;
    h += h >> 17;
    h ^= h << 25;
    h += h >> 6;
    return h;
}

PyDoc_STRVAR(kmod_hash_doc,
"kmod_hash(key, /) -> int\n\n"
"The 32-bit kmod hash value of a bytes key (moddeps.kmodhash.py_kmod_hash);\n"
"DECLINED for any other key.");

static PyObject *py_kmod_hash(PyObject *self, PyObject *arg)
{
    if (!PyBytes_Check(arg))
        return declined();
    return PyLong_FromUnsignedLong(kmod_hash((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)));
}

typedef struct {
    int64_t bucket;
    Py_ssize_t pos;
    const unsigned char *key;
    Py_ssize_t len;
    PyObject *obj;       /* borrowed */
    PyObject *bytes;     /* symbol_order: the encoded name (owned), else NULL */
} Hashed;

static int cmp_hashed(const void *pa, const void *pb)
{
    const Hashed *a = pa, *b = pb;
    Py_ssize_t m;
    int c;

    if (a->bucket != b->bucket)
        return a->bucket < b->bucket ? -1 : 1;
    m = a->len < b->len ? a->len : b->len;
    c = m ? memcmp(a->key, b->key, (size_t)m) : 0;
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->pos < b->pos ? -1 : (a->pos > b->pos);
}

/*
 * Sort arr by (bucket, key bytes, length, position), as cmp_hashed: with a
 * bucket count up to 2**16 (kmod's tables have 512 and 2048), a counting sort
 * by bucket, then an insertion sort of each bucket's few entries; else qsort.
 * 0, or -1 with MemoryError.
 */
static int sort_hashed(Hashed *arr, Py_ssize_t n, int64_t mask)
{
    Py_ssize_t *start, b, i, j, nb;
    Hashed *tmp;

    if (n < 2)
        return 0;
    if (mask < 0 || mask >= 65536) {
        qsort(arr, (size_t)n, sizeof(Hashed), cmp_hashed);
        return 0;
    }
    nb = (Py_ssize_t)mask + 1;
    start = PyMem_RawCalloc((size_t)nb + 1, sizeof(Py_ssize_t));
    tmp = PyMem_RawMalloc((size_t)n * sizeof(Hashed));
    if (start == NULL || tmp == NULL) {
        PyMem_RawFree(start);
        PyMem_RawFree(tmp);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++)
        start[arr[i].bucket + 1]++;
    for (b = 0; b < nb; b++)
        start[b + 1] += start[b];
    /* stable: each bucket in array order */
    for (i = 0; i < n; i++)
        tmp[start[arr[i].bucket]++] = arr[i];
    memcpy(arr, tmp, (size_t)n * sizeof(Hashed));
    PyMem_RawFree(tmp);
    PyMem_RawFree(start);
    /* the buckets are runs now: sort each by the rest of the order */
    for (i = 0; i < n; i = j) {
        Py_ssize_t k;
        for (j = i + 1; j < n && arr[j].bucket == arr[i].bucket; j++)
            ;
        for (k = i + 1; k < j; k++) {
            Hashed x = arr[k];
            Py_ssize_t m = k;
            while (m > i && cmp_hashed(&arr[m - 1], &x) > 0) {
                arr[m] = arr[m - 1];
                m--;
            }
            arr[m] = x;
        }
    }
    return 0;
}

/* A buckets argument: 1 with *mask = buckets - 1; 0 (declined) for an int out
 * of the range handled here; -1 with an exception set for anything else. */
static int get_mask(PyObject *arg, int64_t *mask)
{
    int overflow = 0;
    long long buckets = PyLong_AsLongLongAndOverflow(arg, &overflow);

    if (buckets == -1 && PyErr_Occurred())
        return -1;
    if (overflow || buckets == LLONG_MIN)
        return 0;
    *mask = (int64_t)buckets - 1;
    return 1;
}

PyDoc_STRVAR(hash_order_doc,
"hash_order(keys, buckets, /) -> list\n\n"
"The bytes keys in the order a kmod hash table of that many buckets iterates\n"
"them (moddeps.kmodhash.py_hash_order); DECLINED for a key of another type.");

static PyObject *py_hash_order(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *seq, *result = NULL, **items;
    Hashed *arr = NULL;
    Py_ssize_t n, i;
    int64_t mask;
    int rc;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "hash_order() takes 2 arguments");
        return NULL;
    }
    if ((rc = get_mask(args[1], &mask)) <= 0)
        return rc < 0 ? NULL : declined();
    seq = PySequence_Fast(args[0], "hash_order(): keys must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    items = PySequence_Fast_ITEMS(seq);
    arr = TOO_MANY(n, sizeof(Hashed)) ? NULL : PyMem_RawMalloc(n ? (size_t)n * sizeof(Hashed) : 1);
    if (arr == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *k = items[i];
        if (!PyBytes_Check(k)) {
            result = declined();
            goto done;
        }
        arr[i].key = (const unsigned char *)PyBytes_AS_STRING(k);
        arr[i].len = PyBytes_GET_SIZE(k);
        arr[i].bucket = (int64_t)kmod_hash(arr[i].key, arr[i].len) & mask;
        arr[i].pos = i;
        arr[i].obj = k;
        arr[i].bytes = NULL;
    }
    if (sort_hashed(arr, n, mask) < 0)
        goto done;
    result = PyList_New(n);
    if (result == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        Py_INCREF(arr[i].obj);
        PyList_SET_ITEM(result, i, arr[i].obj);
    }
done:
    PyMem_RawFree(arr);
    Py_DECREF(seq);
    return result;
}

/* ------------------------------------------------------------------------ */
/* modinfo selection (moddeps.depmod.outputs) */

static int str_eq(PyObject *a, PyObject *b)
{
    Py_ssize_t n;

    if (a == b)
        return 1;
    if (!PyUnicode_Check(a))
        return 0;
    n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

PyDoc_STRVAR(select_modinfo_doc,
"select_modinfo(modules, keys, /) -> list[tuple[list[object], list[int]]]\n\n"
"For each str in ``keys`` (at most 8): the values of all modinfo pairs with that\n"
"key, in module order then modinfo order, and the index of each one's module.\n"
"One pass over the modules.  DECLINED when a modinfo is not a tuple of\n"
"(str, object) pairs, or for more than 8 keys or a key that is not a str.");

#define SELECT_MAX 8

static PyObject *py_select_modinfo(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *seq = NULL, *keys, *result = NULL, *attr = NULL, *idx = NULL;
    PyObject *vals[SELECT_MAX], *owners[SELECT_MAX];
    Py_ssize_t n, i, nkeys, q;
    int decline = 0;

    if (nargs != 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "select_modinfo(modules, keys: tuple[str, ...])");
        return NULL;
    }
    keys = args[1];
    nkeys = PyTuple_GET_SIZE(keys);
    if (nkeys > SELECT_MAX)
        return declined();
    for (q = 0; q < nkeys; q++)
        if (!PyUnicode_Check(PyTuple_GET_ITEM(keys, q)))
            return declined();
    seq = PySequence_Fast(args[0], "select_modinfo(): modules must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    attr = PyUnicode_InternFromString("modinfo");
    result = PyList_New(nkeys);
    if (attr == NULL || result == NULL)
        goto fail;
    for (q = 0; q < nkeys; q++) {
        PyObject *pair;
        vals[q] = PyList_New(0);
        owners[q] = PyList_New(0);
        pair = (vals[q] != NULL && owners[q] != NULL) ? PyTuple_Pack(2, vals[q], owners[q]) : NULL;
        Py_XDECREF(vals[q]);  /* the pair holds them (or they are gone) */
        Py_XDECREF(owners[q]);
        if (pair == NULL)
            goto fail;
        PyList_SET_ITEM(result, q, pair);
    }
    for (i = 0; i < n; i++) {
        PyObject *mi = PyObject_GetAttr(PySequence_Fast_GET_ITEM(seq, i), attr);
        Py_ssize_t j, m;

        if (mi == NULL)
            goto fail;
        if (!PyTuple_Check(mi)) {
            Py_DECREF(mi);
            decline = 1;
            goto fail;
        }
        m = PyTuple_GET_SIZE(mi);
        for (j = 0; j < m; j++) {
            PyObject *pair = PyTuple_GET_ITEM(mi, j), *k;
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
                Py_DECREF(mi);
                decline = 1;
                goto fail;
            }
            k = PyTuple_GET_ITEM(pair, 0);
            for (q = 0; q < nkeys; q++) {
                if (str_eq(k, PyTuple_GET_ITEM(keys, q))) {
                    if (idx == NULL && (idx = PyLong_FromSsize_t(i)) == NULL) {
                        Py_DECREF(mi);
                        goto fail;
                    }
                    if (PyList_Append(vals[q], PyTuple_GET_ITEM(pair, 1)) < 0 || PyList_Append(owners[q], idx) < 0) {
                        Py_DECREF(mi);
                        goto fail;
                    }
                    break;
                }
            }
        }
        Py_CLEAR(idx);
        Py_DECREF(mi);
    }
    Py_DECREF(attr);
    Py_DECREF(seq);
    return result;
fail:
    Py_XDECREF(idx);
    Py_XDECREF(attr);
    Py_XDECREF(result);
    Py_XDECREF(seq);
    return decline ? declined() : NULL;
}

PyDoc_STRVAR(starting_with_doc,
"starting_with(values, prefix, /) -> list[int]\n\n"
"The indexes of the str values that start with the str prefix, ascending.\n"
"DECLINED unless values is a list of str.");

/* list.append(i); -1 with an exception set on failure. */
static int append_index(PyObject *list, Py_ssize_t i)
{
    PyObject *k = PyLong_FromSsize_t(i);
    int rc = k == NULL ? -1 : PyList_Append(list, k);
    Py_XDECREF(k);
    return rc;
}

static PyObject *py_starting_with(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *values, *prefix, *result;
    Py_ssize_t n, i, plen;
    int pkind;

    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "starting_with(values, prefix: str)");
        return NULL;
    }
    if (!PyList_Check(args[0]))
        return declined();
    values = args[0];
    prefix = args[1];
    plen = PyUnicode_GET_LENGTH(prefix);
    pkind = PyUnicode_KIND(prefix);
    result = PyList_New(0);
    if (result == NULL)
        return NULL;
    n = PyList_GET_SIZE(values);
    for (i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        int hit;
        if (!PyUnicode_Check(v)) {
            Py_DECREF(result);
            return declined();
        }
        if (PyUnicode_GET_LENGTH(v) < plen)
            continue;
        if (PyUnicode_KIND(v) == pkind) {
            hit = memcmp(PyUnicode_DATA(v), PyUnicode_DATA(prefix), (size_t)plen * (size_t)pkind) == 0;
        } else {
            Py_ssize_t r = PyUnicode_Tailmatch(v, prefix, 0, plen, -1);
            if (r < 0) {
                Py_DECREF(result);
                return NULL;
            }
            hit = (int)r;
        }
        if (hit && append_index(result, i) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

PyDoc_STRVAR(line_breaks_doc,
"line_breaks(values, /) -> list[int]\n\n"
"The indexes of the values (str or bytes) holding a line break of\n"
"safety.LINE_BREAKS (a newline, carriage return, vertical tab or form feed),\n"
"ascending.  DECLINED unless values is a list of str and bytes.");

/* Whether one of the n bytes at p is a character of safety.LINE_BREAKS. */
static int has_line_break(const unsigned char *p, size_t n)
{
    size_t i = 0, j;

    /* eight bytes at a time: only a word holding a byte below 14 is looked at
     * byte by byte (a text's bytes are rarely below a blank) */
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if (((x - 0x0E0E0E0E0E0E0E0Eull) & ~x & 0x8080808080808080ull) != 0)
            for (j = i; j < i + 8; j++)
                if ((unsigned)(p[j] - 10) < 4)
                    return 1;
    }
    for (; i < n; i++)
        /* '\n' 10, '\v' 11, '\f' 12, '\r' 13 */
        if ((unsigned)(p[i] - 10) < 4)
            return 1;
    return 0;
}

static PyObject *py_line_breaks(PyObject *self, PyObject *arg)
{
    PyObject *result;
    Py_ssize_t n, i;

    if (!PyList_Check(arg))
        return declined();
    result = PyList_New(0);
    if (result == NULL)
        return NULL;
    n = PyList_GET_SIZE(arg);
    for (i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(arg, i);
        int hit = 0;
        if (PyBytes_Check(v)) {
            hit = has_line_break((const unsigned char *)PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v));
        } else if (PyUnicode_Check(v)) {
            /* in every str kind, only the code points 10 to 13 match */
            Py_ssize_t len = PyUnicode_GET_LENGTH(v);
            if (PyUnicode_KIND(v) == PyUnicode_1BYTE_KIND) {
                hit = has_line_break((const unsigned char *)PyUnicode_DATA(v), (size_t)len);
            } else {
                Py_ssize_t j;
                int kind = PyUnicode_KIND(v);
                const void *data = PyUnicode_DATA(v);
                for (j = 0; j < len && !hit; j++)
                    hit = PyUnicode_READ(kind, data, j) - 10u < 4u;
            }
        } else {
            Py_DECREF(result);
            return declined();
        }
        if (hit && append_index(result, i) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

PyDoc_STRVAR(first_non_ascii_doc,
"first_non_ascii(values, /) -> int\n\n"
"The index of the first bytes value holding a byte >= 0x80, or -1\n"
"(outputs._first_non_ascii_py).  DECLINED unless values is a list of bytes.");

static PyObject *py_first_non_ascii(PyObject *self, PyObject *arg)
{
    Py_ssize_t n, i;

    if (!PyList_Check(arg))
        return declined();
    n = PyList_GET_SIZE(arg);
    for (i = 0; i < n; i++)
        if (!PyBytes_Check(PyList_GET_ITEM(arg, i)))
            return declined();
    for (i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(arg, i);
        if (has_high_byte((const unsigned char *)PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)))
            return PyLong_FromSsize_t(i);
    }
    return PyLong_FromLong(-1);
}

/* ------------------------------------------------------------------------ */
/* Text helpers of the writers (moddeps.depmod.outputs) */

/*
 * The bytes of a str (UTF-8, surrogateescape: model.fsencode) or of a bytes
 * object: 0, and *tmp receives a new reference to keep alive (or NULL); 1
 * (declined) for another type; -1 with an exception set.
 */
static int as_bytes(PyObject *o, const unsigned char **p, Py_ssize_t *n, PyObject **tmp)
{
    *tmp = NULL;
    if (PyBytes_Check(o)) {
        *p = (const unsigned char *)PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (!PyUnicode_Check(o))
        return 1;
    if (PyUnicode_IS_ASCII(o)) {
        *p = (const unsigned char *)PyUnicode_DATA(o);
        *n = PyUnicode_GET_LENGTH(o);
        return 0;
    }
    *tmp = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
    if (*tmp == NULL)
        return -1;
    *p = (const unsigned char *)PyBytes_AS_STRING(*tmp);
    *n = PyBytes_GET_SIZE(*tmp);
    return 0;
}

#define PATH_MAX_ 4096 /* = moddeps.kmodnames:PATH_MAX */

/* index/keys.py alias_normalize; new reference, Py_None for an unmatched bracket. */
static PyObject *alias_normalize(const unsigned char *s, Py_ssize_t n)
{
    const unsigned char *nul = n ? memchr(s, 0, (size_t)n) : NULL;
    Py_ssize_t limit = PATH_MAX_ - 1, i, len = 0;
    PyObject *out;
    unsigned char *o;

    if (nul != NULL)
        n = nul - s;
    if ((n == 0 || memchr(s, '[', (size_t)n) == NULL) && (n == 0 || memchr(s, ']', (size_t)n) == NULL)) {
        Py_ssize_t m = n < limit ? n : limit;
        out = PyBytes_FromStringAndSize(NULL, m);
        if (out == NULL)
            return NULL;
        o = (unsigned char *)PyBytes_AS_STRING(out);
        for (i = 0; i < m; i++)
            o[i] = s[i] == '-' ? '_' : s[i];
        return out;
    }
    /* The output is never longer than the input. */
    out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL)
        return NULL;
    o = (unsigned char *)PyBytes_AS_STRING(out);
    for (i = 0; i < limit && i < n; i++) {
        unsigned char c = s[i];
        if (c == '-') {
            o[len++] = '_';
        } else if (c == ']') {
            Py_DECREF(out);
            Py_RETURN_NONE;
        } else if (c == '[') {
            const unsigned char *close = memchr(s + i, ']', (size_t)(n - i));
            Py_ssize_t upto;
            if (close == NULL) {
                Py_DECREF(out);
                Py_RETURN_NONE;
            }
            upto = close - s;  /* copy s[i..upto] */
            memcpy(o + len, s + i, (size_t)(upto - i + 1));
            len += upto - i + 1;
            i = upto;
        } else {
            o[len++] = c;
        }
    }
    if (len != n && _PyBytes_Resize(&out, len) < 0)
        return NULL;
    return out;
}

PyDoc_STRVAR(alias_keys_doc,
"alias_keys(aliases, /) -> list[bytes | None]\n\n"
"index.alias_normalize(model.fsencode(a)) for each str (or bytes) alias;\n"
"DECLINED unless aliases is a list of str and bytes.");

static PyObject *py_alias_keys(PyObject *self, PyObject *arg)
{
    PyObject *result;
    Py_ssize_t n, i;

    if (!PyList_Check(arg))
        return declined();
    n = PyList_GET_SIZE(arg);
    result = PyList_New(n);
    if (result == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        const unsigned char *p;
        Py_ssize_t len;
        PyObject *tmp, *key;
        int rc = as_bytes(PyList_GET_ITEM(arg, i), &p, &len, &tmp);

        if (rc != 0) {
            Py_DECREF(result);
            return rc < 0 ? NULL : declined();
        }
        key = alias_normalize(p, len);
        Py_XDECREF(tmp);
        if (key == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, key);
    }
    return result;
}

/* An int in [0, n) given as o, or -1 for anything else (no exception set). */
static Py_ssize_t index_in(PyObject *o, Py_ssize_t n)
{
    int overflow = 0;
    long long k;

    if (!PyLong_Check(o))
        return -1;
    k = PyLong_AsLongLongAndOverflow(o, &overflow);
    return overflow || k < 0 || k >= (long long)n ? -1 : (Py_ssize_t)k;
}

PyDoc_STRVAR(format_rows_doc,
"format_rows(head, firsts, mid, owners, seconds, tail, /) -> bytes\n\n"
"b''.join(head + fsencode(firsts[i]) + mid + seconds[owners[i]] + tail for each i):\n"
"firsts str or bytes, seconds bytes, owners valid non-negative indexes into seconds,\n"
"the three of them lists of which firsts and owners have one length (DECLINED\n"
"otherwise).");

static PyObject *py_format_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *head, *firsts, *mid, *owners, *seconds, *tail, *result = NULL, **tmps = NULL;
    const unsigned char **ptrs = NULL;
    Py_ssize_t *lens = NULL, *idx = NULL;
    Py_ssize_t n, nsec, i, fixed;
    size_t total = 0;
    unsigned char *o;
    int decline = 0;

    if (nargs != 6 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[2]) || !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "format_rows(head: bytes, firsts, mid: bytes, owners, seconds, tail: bytes)");
        return NULL;
    }
    if (!PyList_Check(args[1]) || !PyList_Check(args[3]) || !PyList_Check(args[4]))
        return declined();
    head = args[0];
    firsts = args[1];
    mid = args[2];
    owners = args[3];
    seconds = args[4];
    tail = args[5];
    n = PyList_GET_SIZE(firsts);
    nsec = PyList_GET_SIZE(seconds);
    if (PyList_GET_SIZE(owners) != n)
        return declined();
    fixed = PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(mid) + PyBytes_GET_SIZE(tail);
    tmps = PyMem_RawCalloc(n ? (size_t)n : 1, sizeof(PyObject *));
    ptrs = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(*ptrs));
    lens = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    idx = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    if (tmps == NULL || ptrs == NULL || lens == NULL || idx == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *sec;
        Py_ssize_t k = index_in(PyList_GET_ITEM(owners, i), nsec);
        int rc;
        if (k < 0 || !PyBytes_Check(sec = PyList_GET_ITEM(seconds, k))) {
            decline = 1;
            goto done;
        }
        idx[i] = k;
        if ((rc = as_bytes(PyList_GET_ITEM(firsts, i), &ptrs[i], &lens[i], &tmps[i])) != 0) {
            decline = rc > 0;
            goto done;
        }
        total += (size_t)fixed + (size_t)lens[i] + (size_t)PyBytes_GET_SIZE(sec);
        if (total > (size_t)PY_SSIZE_T_MAX) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (result == NULL)
        goto done;
    o = (unsigned char *)PyBytes_AS_STRING(result);
    for (i = 0; i < n; i++) {
        PyObject *sec = PyList_GET_ITEM(seconds, idx[i]);
        memcpy(o, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head));
        o += PyBytes_GET_SIZE(head);
        memcpy(o, ptrs[i], (size_t)lens[i]);
        o += lens[i];
        memcpy(o, PyBytes_AS_STRING(mid), (size_t)PyBytes_GET_SIZE(mid));
        o += PyBytes_GET_SIZE(mid);
        memcpy(o, PyBytes_AS_STRING(sec), (size_t)PyBytes_GET_SIZE(sec));
        o += PyBytes_GET_SIZE(sec);
        memcpy(o, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
        o += PyBytes_GET_SIZE(tail);
    }
done:
    if (tmps != NULL) {
        for (i = 0; i < n; i++)
            Py_XDECREF(tmps[i]);
        PyMem_RawFree(tmps);
    }
    PyMem_RawFree(ptrs);
    PyMem_RawFree(lens);
    PyMem_RawFree(idx);
    return decline ? declined() : result;
}

static int cmp_ssize(const void *pa, const void *pb)
{
    Py_ssize_t a = *(const Py_ssize_t *)pa, b = *(const Py_ssize_t *)pb;
    return a < b ? -1 : a > b;
}

PyDoc_STRVAR(dep_lines_doc,
"dep_lines(deps, topo, shown, /) -> list[bytes]\n\n"
"The modules.dep lines: per module, shown[m] + b':' and, if it has any, b' ' and\n"
"its transitive dependencies' shown names joined by b' ', ordered by topo number\n"
"(outputs.dependency_lists).  DECLINED unless deps is a tuple of tuples of\n"
"valid indexes, topo a tuple holding a permutation of range(len(deps)) and\n"
"shown a list of as many bytes.");

static PyObject *py_dep_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *deps, *topo, *shown, *result = NULL;
    Py_ssize_t n, i, t, *topo_of = NULL, *by_topo = NULL, *stamp = NULL, *scratch = NULL;
    Py_ssize_t **closure = NULL, *clen = NULL;
    int decline = 0;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "dep_lines() takes 3 arguments");
        return NULL;
    }
    deps = args[0];
    topo = args[1];
    shown = args[2];
    if (!PyTuple_Check(deps) || !PyTuple_Check(topo) || !PyList_Check(shown))
        return declined();
    n = PyTuple_GET_SIZE(deps);
    if (PyTuple_GET_SIZE(topo) != n || PyList_GET_SIZE(shown) != n)
        return declined();
    topo_of = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    by_topo = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    stamp = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    scratch = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    closure = PyMem_RawCalloc(n ? (size_t)n : 1, sizeof(Py_ssize_t *));
    clen = PyMem_RawCalloc(n ? (size_t)n : 1, sizeof(Py_ssize_t));
    if (topo_of == NULL || by_topo == NULL || stamp == NULL || scratch == NULL || closure == NULL || clen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        by_topo[i] = -1;
        stamp[i] = -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *ds = PyTuple_GET_ITEM(deps, i);
        Py_ssize_t j;
        /* topo: a permutation; deps: tuples of indexes; shown: bytes */
        if ((t = index_in(PyTuple_GET_ITEM(topo, i), n)) < 0 || by_topo[t] >= 0 || !PyTuple_Check(ds) ||
            !PyBytes_Check(PyList_GET_ITEM(shown, i))) {
            decline = 1;
            goto done;
        }
        by_topo[t] = i;
        topo_of[i] = t;
        for (j = 0; j < PyTuple_GET_SIZE(ds); j++) {
            if (index_in(PyTuple_GET_ITEM(ds, j), n) < 0) {
                decline = 1;
                goto done;
            }
        }
    }
    /* A dependency has a larger number than its user: fill from the end. */
    for (t = n - 1; t >= 0; t--) {
        Py_ssize_t m = by_topo[t], cnt = 0, j, x;
        PyObject *ds = PyTuple_GET_ITEM(deps, m);
        for (j = 0; j < PyTuple_GET_SIZE(ds); j++) {
            Py_ssize_t d = PyLong_AsSsize_t(PyTuple_GET_ITEM(ds, j));
            if (stamp[d] != m) {
                stamp[d] = m;
                scratch[cnt++] = topo_of[d];
            }
            /* a closure not computed yet (no valid numbering) adds nothing, as in Python */
            for (x = 0; x < clen[d]; x++) {
                Py_ssize_t e = by_topo[closure[d][x]];
                if (stamp[e] != m) {
                    stamp[e] = m;
                    scratch[cnt++] = closure[d][x];
                }
            }
        }
        if (cnt == 0)
            continue;
        qsort(scratch, (size_t)cnt, sizeof(Py_ssize_t), cmp_ssize);
        closure[m] = PyMem_RawMalloc((size_t)cnt * sizeof(Py_ssize_t));
        if (closure[m] == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(closure[m], scratch, (size_t)cnt * sizeof(Py_ssize_t));
        clen[m] = cnt;
    }
    result = PyList_New(n);
    if (result == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *own = PyList_GET_ITEM(shown, i), *line;
        Py_ssize_t size = PyBytes_GET_SIZE(own) + 1, x;
        char *o;
        for (x = 0; x < clen[i]; x++)
            size += 1 + PyBytes_GET_SIZE(PyList_GET_ITEM(shown, by_topo[closure[i][x]]));
        line = PyBytes_FromStringAndSize(NULL, size);
        if (line == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        o = PyBytes_AS_STRING(line);
        memcpy(o, PyBytes_AS_STRING(own), (size_t)PyBytes_GET_SIZE(own));
        o += PyBytes_GET_SIZE(own);
        *o++ = ':';
        for (x = 0; x < clen[i]; x++) {
            PyObject *dep = PyList_GET_ITEM(shown, by_topo[closure[i][x]]);
            *o++ = ' ';
            memcpy(o, PyBytes_AS_STRING(dep), (size_t)PyBytes_GET_SIZE(dep));
            o += PyBytes_GET_SIZE(dep);
        }
        PyList_SET_ITEM(result, i, line);
    }
done:
    if (closure != NULL) {
        for (i = 0; i < n; i++)
            PyMem_RawFree(closure[i]);
        PyMem_RawFree(closure);
    }
    PyMem_RawFree(clen);
    PyMem_RawFree(topo_of);
    PyMem_RawFree(by_topo);
    PyMem_RawFree(stamp);
    PyMem_RawFree(scratch);
    return decline ? declined() : result;
}

PyDoc_STRVAR(number_doc,
"number(deps, /) -> tuple[int, ...] | None\n\n"
"kmod's topological number of each module (resolve._numbering_py: LIFO Kahn,\n"
"seeded in array order, dependencies in first-reference order), None when\n"
"cycles leave modules unnumbered.  DECLINED unless deps is a list or tuple of\n"
"tuples of indexes in range.");

static PyObject *py_number(PyObject *self, PyObject *arg)
{
    PyObject *seq, *result = NULL;
    Py_ssize_t n, i, j, *users = NULL, *stack = NULL, *topo = NULL, sp = 0, next = 0;
    int decline = 0;

    if (!PyList_Check(arg) && !PyTuple_Check(arg))
        return declined();
    seq = PySequence_Fast(arg, "number(): deps must be a sequence");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    users = PyMem_RawCalloc(n ? (size_t)n : 1, sizeof(Py_ssize_t));
    stack = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    topo = PyMem_RawMalloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    if (users == NULL || stack == NULL || topo == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *ds = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(ds)) {
            decline = 1;
            goto done;
        }
        for (j = 0; j < PyTuple_GET_SIZE(ds); j++) {
            Py_ssize_t d = index_in(PyTuple_GET_ITEM(ds, j), n);
            if (d < 0) {
                decline = 1;
                goto done;
            }
            users[d]++;
        }
    }
    /* every module is pushed at most once: when its count reaches 0 */
    for (i = 0; i < n; i++)
        if (users[i] == 0)
            stack[sp++] = i;
    while (sp > 0) {
        Py_ssize_t s = stack[--sp];
        PyObject *ds = PySequence_Fast_GET_ITEM(seq, s);
        topo[s] = next++;
        for (j = 0; j < PyTuple_GET_SIZE(ds); j++) {
            Py_ssize_t d = PyLong_AsSsize_t(PyTuple_GET_ITEM(ds, j));
            if (--users[d] == 0)
                stack[sp++] = d;
        }
    }
    if (next < n) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyTuple_New(n);
    if (result == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(topo[i]);
        if (v == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, i, v);
    }
done:
    PyMem_RawFree(users);
    PyMem_RawFree(stack);
    PyMem_RawFree(topo);
    Py_DECREF(seq);
    return decline ? declined() : result;
}

PyDoc_STRVAR(symbol_order_doc,
"symbol_order(owners, buckets, prefix, /) -> tuple[list[bytes], list[int]]\n\n"
"For every owners entry whose owner is not -1, in the order of a kmod hash\n"
"table with that many buckets (of the names): prefix + fsencode(name), and\n"
"the owner, as two lists (outputs._module_symbols_py).  DECLINED unless owners\n"
"is a dict of str to (int, ...) and prefix bytes, or for a bucket count past\n"
"64 bits.");

static PyObject *py_symbol_order(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *owners, *result = NULL, *keys = NULL, *objs = NULL, *k, *v;
    Hashed *arr = NULL;
    Py_ssize_t n, cnt = 0, pos = 0, i, plen;
    const char *pfx;
    int64_t mask;
    int rc, decline = 0;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "symbol_order() takes 3 arguments");
        return NULL;
    }
    if ((rc = get_mask(args[1], &mask)) <= 0)
        return rc < 0 ? NULL : declined();
    owners = args[0];
    if (!PyDict_Check(owners) || !PyBytes_Check(args[2]))
        return declined();
    pfx = PyBytes_AS_STRING(args[2]);
    plen = PyBytes_GET_SIZE(args[2]);
    n = PyDict_GET_SIZE(owners);
    arr = PyMem_RawCalloc(n ? (size_t)n : 1, sizeof(Hashed));
    if (arr == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    /* Only C code runs in this loop, so owners cannot change under it. */
    while (PyDict_Next(owners, &pos, &k, &v)) {
        PyObject *owner, *b;
        long long o;
        int overflow = 0;

        if (!PyUnicode_Check(k) || !PyTuple_Check(v) || PyTuple_GET_SIZE(v) < 1 ||
            !PyLong_Check(PyTuple_GET_ITEM(v, 0))) {
            decline = 1;
            goto done;
        }
        owner = PyTuple_GET_ITEM(v, 0);
        o = PyLong_AsLongLongAndOverflow(owner, &overflow);
        if (o == -1 && PyErr_Occurred())
            goto done;
        if (o == KERNEL && !overflow)
            continue;
        if (cnt >= n) {
            PyErr_SetString(PyExc_RuntimeError, "symbol_order(): owners changed size");
            goto done;
        }
        /* prefix + the name's bytes; the name is what is hashed and sorted */
        if (PyUnicode_IS_ASCII(k)) {
            Py_ssize_t len = PyUnicode_GET_LENGTH(k);
            if (len > PY_SSIZE_T_MAX - plen) {
                PyErr_NoMemory();
                goto done;
            }
            b = PyBytes_FromStringAndSize(NULL, plen + len);
            if (b == NULL)
                goto done;
            memcpy(PyBytes_AS_STRING(b), pfx, (size_t)plen);
            memcpy(PyBytes_AS_STRING(b) + plen, PyUnicode_DATA(k), (size_t)len);
        } else {
            PyObject *enc = PyUnicode_AsEncodedString(k, "utf-8", "surrogateescape");
            if (enc == NULL)
                goto done;
            b = plen ? PyBytes_FromStringAndSize(NULL, plen + PyBytes_GET_SIZE(enc)) : (Py_INCREF(enc), enc);
            if (b != NULL && plen) {
                memcpy(PyBytes_AS_STRING(b), pfx, (size_t)plen);
                memcpy(PyBytes_AS_STRING(b) + plen, PyBytes_AS_STRING(enc), (size_t)PyBytes_GET_SIZE(enc));
            }
            Py_DECREF(enc);
            if (b == NULL)
                goto done;
        }
        arr[cnt].bytes = b;
        arr[cnt].obj = owner;
        arr[cnt].pos = cnt;
        arr[cnt].key = (const unsigned char *)PyBytes_AS_STRING(b) + plen;
        arr[cnt].len = PyBytes_GET_SIZE(b) - plen;
        arr[cnt].bucket = (int64_t)kmod_hash(arr[cnt].key, arr[cnt].len) & mask;
        cnt++;
    }
    if (sort_hashed(arr, cnt, mask) < 0)
        goto done;
    keys = PyList_New(cnt);
    objs = PyList_New(cnt);
    if (keys == NULL || objs == NULL)
        goto done;
    for (i = 0; i < cnt; i++) {
        /* the list takes the reference the array held */
        PyList_SET_ITEM(keys, i, arr[i].bytes);
        arr[i].bytes = NULL;
        Py_INCREF(arr[i].obj);
        PyList_SET_ITEM(objs, i, arr[i].obj);
    }
    result = PyTuple_Pack(2, keys, objs);
done:
    Py_XDECREF(keys);
    Py_XDECREF(objs);
    for (i = 0; i < cnt; i++)
        Py_XDECREF(arr[i].bytes);
    PyMem_RawFree(arr);
    return decline ? declined() : result;
}

/* ------------------------------------------------------------------------ */
/* joined_names: the names of many tuples, each once, as one string between NULs */

/* Rehash the open-addressed table of names into one of new_cap slots (a power of two). */
static int names_grow(PyObject ***table, Py_hash_t **hashes, size_t *cap, size_t new_cap)
{
    PyObject **t = PyMem_RawCalloc(new_cap, sizeof(PyObject *));
    Py_hash_t *h = PyMem_RawMalloc(new_cap * sizeof(Py_hash_t));
    size_t i;
    if (t == NULL || h == NULL) {
        PyMem_RawFree(t);
        PyMem_RawFree(h);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < *cap; i++) {
        if ((*table)[i] != NULL) {
            size_t at = (size_t)(*hashes)[i] & (new_cap - 1);
            while (t[at] != NULL)
                at = (at + 1) & (new_cap - 1);
            t[at] = (*table)[i];
            h[at] = (*hashes)[i];
        }
    }
    PyMem_RawFree(*table);
    PyMem_RawFree(*hashes);
    *table = t;
    *hashes = h;
    *cap = new_cap;
    return 0;
}

static PyObject *py_joined_names(PyObject *self, PyObject *arg)
{
    PyObject *groups, *order = NULL, *result = NULL, *empty = NULL, *sep = NULL;
    PyObject **table = NULL;
    Py_hash_t *hashes = NULL;
    size_t cap = 0, used = 0;
    Py_ssize_t i, j, ng;
    int decline = 0;

    if ((groups = PySequence_Fast(arg, "joined_names() takes a sequence")) == NULL)
        return NULL;
    ng = PySequence_Fast_GET_SIZE(groups);
    if ((order = PyList_New(0)) == NULL || names_grow(&table, &hashes, &cap, 1024) < 0)
        goto done;
    /* the tuples and their names are held by groups: no Python code runs below (exact str) */
    for (i = 0; i < ng && !decline; i++) {
        PyObject *g = PySequence_Fast_GET_ITEM(groups, i);
        if (!PyTuple_CheckExact(g)) {
            decline = 1;
            break;
        }
        for (j = 0; j < PyTuple_GET_SIZE(g); j++) {
            PyObject *name = PyTuple_GET_ITEM(g, j);
            Py_hash_t h;
            size_t at;
            int found = 0;
            if (!PyUnicode_CheckExact(name)) {
                decline = 1;
                break;
            }
            if ((h = PyObject_Hash(name)) == -1)
                goto done;
            for (at = (size_t)h & (cap - 1); table[at] != NULL; at = (at + 1) & (cap - 1)) {
                if (table[at] == name || (hashes[at] == h && PyUnicode_Compare(table[at], name) == 0)) {
                    found = 1;
                    break;
                }
            }
            if (found)
                continue;
            table[at] = name;
            hashes[at] = h;
            if (PyList_Append(order, name) < 0)
                goto done;
            if (++used * 2 > cap && names_grow(&table, &hashes, &cap, cap * 2) < 0)
                goto done;
        }
    }
    if (decline) {
        result = declined();
        goto done;
    }
    if (used == 0) {
        result = PyUnicode_New(0, 0);
        goto done;
    }
    if ((empty = PyUnicode_New(0, 0)) == NULL || PyList_Insert(order, 0, empty) < 0 ||
        PyList_Append(order, empty) < 0 || (sep = PyUnicode_FromStringAndSize("\0", 1)) == NULL)
        goto done;
    result = PyUnicode_Join(sep, order);
done:
    Py_DECREF(groups);
    Py_XDECREF(order);
    Py_XDECREF(empty);
    Py_XDECREF(sep);
    PyMem_RawFree(table);
    PyMem_RawFree(hashes);
    return result;
}

PyDoc_STRVAR(joined_names_doc,
"joined_names(tuples, /) -> str\n\n"
"The str names of the tuples, each once in the order first met, each between\n"
"NULs (\"\\0a\\0b\\0\"; \"\" for none): moddeps.depmod.incremental's unbound part,\n"
"as _name_list(itertools.chain.from_iterable(tuples)) makes it, without a dict\n"
"of every name.  DECLINED unless tuples holds exact tuples of exact str.");

/* ------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"build_index", (PyCFunction)(void (*)(void))py_build_index, METH_FASTCALL, build_index_doc},
    {"build_index_columns", (PyCFunction)(void (*)(void))py_build_index_columns, METH_FASTCALL,
     build_index_columns_doc},
    {"start_index", (PyCFunction)(void (*)(void))py_start_index, METH_FASTCALL, start_index_doc},
    {"start_index_columns", (PyCFunction)(void (*)(void))py_start_index_columns, METH_FASTCALL,
     start_index_columns_doc},
    {"kmod_hash", py_kmod_hash, METH_O, kmod_hash_doc},
    {"hash_order", (PyCFunction)(void (*)(void))py_hash_order, METH_FASTCALL, hash_order_doc},
    {"alias_keys", py_alias_keys, METH_O, alias_keys_doc},
    {"joined_names", py_joined_names, METH_O, joined_names_doc},
    {"format_rows", (PyCFunction)(void (*)(void))py_format_rows, METH_FASTCALL, format_rows_doc},
    {"dep_lines", (PyCFunction)(void (*)(void))py_dep_lines, METH_FASTCALL, dep_lines_doc},
    {"symbol_order", (PyCFunction)(void (*)(void))py_symbol_order, METH_FASTCALL, symbol_order_doc},
    {"line_breaks", py_line_breaks, METH_O, line_breaks_doc},
    {"first_non_ascii", py_first_non_ascii, METH_O, first_non_ascii_doc},
    {"number", py_number, METH_O, number_doc},
    {"starting_with", (PyCFunction)(void (*)(void))py_starting_with, METH_FASTCALL, starting_with_doc},
    {"select_modinfo", (PyCFunction)(void (*)(void))py_select_modinfo, METH_FASTCALL, select_modinfo_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "moddeps.depmod._trie",
    "C twins of moddeps' depmod writers (index trie, kmod hash).",
    0,
    methods,
    NULL, NULL, NULL, NULL,
};

PyObject *trie_declined;

PyMODINIT_FUNC PyInit__trie(void)
{
    PyObject *m;

    if (PyType_Ready(&PendingType) < 0)
        return NULL;
    m = PyModule_Create(&moduledef);
    if (m != NULL && (PyModule_AddFunctions(m, trie_resolve_methods) < 0 || native_bind(m, &trie_declined) < 0 ||
                      PyModule_AddObjectRef(m, "PendingIndex", (PyObject *)&PendingType) < 0))
        Py_CLEAR(m);
    return m;
}
