/*
 * moddeps._elfscan: the common case of moddeps.read.elfreader.parse_module in C.
 *
 * parse(data[, export_type, import_type]) decodes one in-memory (already
 * decompressed) kernel module and returns
 *
 *     (exports, imports, modinfo, has_init, has_exit, machine, elf_class, byte_order)
 *
 * in the wire form of moddeps.model.Module.to_wire(), or DECLINED (see
 * _native.h) when the input is anything but a plain, well-formed module.
 * DECLINED is not an error: the caller then runs the pure-Python reader,
 * which gives the record (every quirk of kmod's rules) or the precise error
 * message.  So this file only
 * implements the path real modules take, and gives up as soon as an input
 * leaves it.  The rules themselves (kmod 30, libkmod-elf.c) are restated in
 * moddeps/read/elfreader.py next to the Python code that this must agree with.
 *
 * With export_type / import_type (tuple subclasses such as the Export and
 * Import NamedTuples) the export and import records are created as instances
 * of those types instead of plain tuples, as tuple.__new__(Export, t) would.
 *
 * The input is untrusted: every offset and size read from it is checked
 * against the buffer with overflow-free arithmetic before use, every string
 * scan has an explicit bound (nothing relies on a NUL found earlier, so even a
 * buffer whose bytes change under us cannot make a read go out of bounds),
 * allocations are proportional to the input, and nothing recurses.
 *
 * The module also holds pack / unpack / unpack_many, the C side of the scan
 * cache's record codec, in _elfscan_codec.c; _elfscan.h is what the two
 * sources share.
 */

#include "_elfscan.h"

/* "= module:name": the Python value this must equal (tests/test_native_constants.py) */
#define MAX_NAME 4096 /* = moddeps.read.elfreader:MAX_NAME, the longest name the readers take */
#define SHN_UNDEF 0u /* = moddeps.read.elfreader:SHN_UNDEF */
#define SHN_ABS 0xFFF1u /* = moddeps.read.elfreader:SHN_ABS */
#define STB_WEAK 2u /* = moddeps.read.elfreader:STB_WEAK */
#define STT_SPARC_REGISTER 13u /* = moddeps.read.elfreader:STT_SPARC_REGISTER */
#define EM_SPARC 2u /* = moddeps.read.elfreader:EM_SPARC[0] */
#define EM_SPARCV9 43u /* = moddeps.read.elfreader:EM_SPARC[1] */
/* enum ksym_flags, include/linux/module_symbol.h (Linux 7.1+) */
#define KSYM_FLAG_GPL_ONLY 0x01u /* = moddeps.read.elfreader:KSYM_FLAG_GPL_ONLY */

/* ---------------------------------------------------------------------- */
/* Bounds                                                                   */

/* [off, off + sz) lies inside a buffer of `size` bytes (no overflow). */
static inline int in_file(uint64_t off, uint64_t sz, size_t size)
{
    return off <= (uint64_t)size && sz <= (uint64_t)size - off;
}

/* Length of the string at p: the index of the first NUL among the first
 * `limit` bytes, or `limit` when there is none. */
static inline size_t bounded_len(bp p, size_t limit)
{
    bp z = memchr(p, 0, limit);
    return z ? (size_t)(z - p) : limit;
}

/* ---------------------------------------------------------------------- */
/* A module file read in part (parse_file)                                  */
/*                                                                          */
/* parse_file does not read the whole file: the parser works on a buffer of */
/* the file's size (an anonymous mapping: pages never written are never     */
/* given memory) into which only the ranges it reads are copied, with       */
/* pread(), before it reads them (src_need).  Every access of the parser to */
/* the buffer is preceded by a src_need of its range, so it never sees a    */
/* byte that was not read from the file.  A read that fails or falls short   */
/* (the file shrank) gives up: the caller then reads the whole file.  No    */
/* file is mapped, so a file truncated meanwhile cannot raise SIGBUS.       */

#ifdef __GLIBC__
#include <malloc.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#define HAVE_PARTIAL_READ 1
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#endif

/* The read timeout of parse_files: each module may take `timeout` seconds
 * from its start (pool.py's Deadline), enforced as pool.py's _bounded does
 * with the SIGALRM timer, whose handler (installed by the caller) raises
 * `alarm`.  The timer is not set and cleared for each module (two system
 * calls a module) but once a call: it fires `timeout` seconds after the
 * first module's start, and again every `timeout` seconds.  When it fires
 * (the handler's exception, taken by timer_signals), the module being read
 * is given up if its own deadline has passed; else the timer is set again
 * to fire at that deadline.  As every deadline is later than the previous
 * one, the timer never fires later than the deadline of the module being
 * read, so a module is given up when its time runs out, as with a timer
 * of its own.  The handlers run (PyErr_CheckSignals) before each system
 * call that may block, after one is interrupted (EINTR), and after each
 * module: an expiry met while parsing is seen before the next read. */
typedef struct {
    double timeout;      /* seconds a module may take; 0: no bound, no timer */
    PyObject *alarm;     /* the exception class the SIGALRM handler raises */
    double start;        /* the module being read: when it started (CLOCK_MONOTONIC, as time.monotonic) */
    double deadline;     /* start + timeout */
    double elapsed;      /* of the module given up */
} Timer;

#define SRC_PAGE 4096u
#define SRC_MAX_RANGES 64
/* two ranges closer than this are read with one pread (the bytes between cost less than a call) */
#define SRC_GAP 8192u
/* a file up to this size is read whole, with its first read: Debian 12's amd64 tree has 2,846
 * such files (of 4,022), read in 8,156 preads copying 80.2 MB, or in 2,846 copying 80.1 MB */
#define SRC_WHOLE 65536u

typedef struct {
    int fd;
    unsigned char *buf;  /* size bytes; read from the file where `got` says */
    size_t size;
    size_t n;
    struct {
        size_t a, b;
    } got[SRC_MAX_RANGES];
    int exact;           /* tests: read exactly the ranges asked for (no pages, no slack, no merging) */
    int nogil;           /* read by parse_files' loader thread: no GIL to let go of, no handlers to run */
    int failed;          /* a read failed or fell short: give up */
    int raised;          /* a signal handler raised (the exception is set): give up, then return NULL */
    Timer *timer;        /* parse_files' read timeout, or NULL */
    int timed_out;       /* the module ran out of time (timer->elapsed): give up */
} Src;

#ifdef HAVE_PARTIAL_READ
static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void to_timeval(double seconds, struct timeval *tv)
{
    double whole = floor(seconds);
    long usec = (long)ceil((seconds - whole) * 1e6);
    tv->tv_sec = (time_t)whole;
    if (usec >= 1000000) {
        tv->tv_sec++;
        usec -= 1000000;
    }
    tv->tv_usec = usec;
    if (tv->tv_sec <= 0 && tv->tv_usec <= 0) { /* zero would clear the timer */
        tv->tv_sec = 0;
        tv->tv_usec = 1;
    }
}

/* Set the timer (first expiry in `first` seconds, then every `every`; both 0: cleared); -1 with OSError. */
static int timer_set(double first, double every)
{
    struct itimerval it;
    memset(&it, 0, sizeof(it));
    if (first > 0 || every > 0) {
        to_timeval(first, &it.it_value);
        to_timeval(every, &it.it_interval);
    }
    if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Run the pending signal handlers (as PEP 475 does after EINTR).  0: go on
 * (the timer fired before the module's deadline: set again for it); 1: the
 * module being read ran out of its time; -1: a handler raised something
 * else (or the timer could not be set): the exception is set. */
static int timer_signals(Timer *t)
{
    double now;
    if (PyErr_CheckSignals() == 0)
        return 0;
    if (t == NULL || t->timeout <= 0 || !PyErr_ExceptionMatches(t->alarm))
        return -1;
    PyErr_Clear();
    now = monotonic();
    if (now >= t->deadline) {
        t->elapsed = now - t->start;
        return 1;
    }
    return timer_set(t->deadline - now, t->timeout);
}

/* timer_signals for the file being read in part (flags set: give up) */
static int src_signals(Src *s)
{
    int r = timer_signals(s->timer);
    if (r < 0)
        s->raised = 1;
    else if (r > 0)
        s->timed_out = 1;
    return r == 0;
}

/* Copy [a, b) of the file into the buffer; 0 when that fails. */
static int src_read(Src *s, size_t a, size_t b)
{
    if (!s->nogil && s->timer != NULL && !src_signals(s))
        return 0;
    while (a < b) {
        ssize_t got;
        int err;
        if (s->nogil) { /* the loader thread (all signals blocked) */
            got = pread(s->fd, s->buf + a, b - a, (off_t)a);
            err = errno;
            if (got < 0 && err == EINTR)
                continue;
        } else {
            Py_BEGIN_ALLOW_THREADS
            got = pread(s->fd, s->buf + a, b - a, (off_t)a);
            err = errno;
            Py_END_ALLOW_THREADS
        }
        if (got > 0) {
            a += (size_t)got;
            continue;
        }
        if (got < 0 && err == EINTR) {
            /* PEP 475: run the handlers (the read timeout's SIGALRM raises), else retry */
            if (!src_signals(s))
                return 0;
            continue;
        }
        s->failed = 1; /* an error, or the end of the file before st_size */
        return 0;
    }
    return 1;
}
#endif

static inline int src_has(const Src *s, uint64_t off, uint64_t len)
{
    size_t i;
    for (i = 0; i < s->n; i++)
        if (s->got[i].a <= off && off + len <= s->got[i].b)
            return 1;
    return 0;
}

/* Make [off, off + len) of the file (inside it) readable in the buffer,
 * reading whole pages, widened by `slack` bytes on both sides; 0 to give up. */
static int src_need(Src *s, uint64_t off, uint64_t len, size_t slack)
{
#ifdef HAVE_PARTIAL_READ
    size_t a, b, i;
    if (s == NULL || len == 0)
        return 1;
    if (s->failed || s->raised || s->timed_out || off > s->size || len > s->size - off)
        return 0;
    if (src_has(s, off, len))
        return 1;
    a = (size_t)off;
    b = (size_t)(off + len);
    if (!s->exact && s->size <= SRC_WHOLE) {
        a = 0;
        b = s->size;
    } else if (!s->exact) {
        a = a > slack ? a - slack : 0;
        a &= ~(size_t)(SRC_PAGE - 1);
        b = s->size - b > slack ? b + slack : s->size;
        b = s->size - b > SRC_PAGE ? (b + SRC_PAGE - 1) & ~(size_t)(SRC_PAGE - 1) : s->size;
    }
    if (s->n == SRC_MAX_RANGES) { /* many scattered reads: the whole file */
        a = 0;
        b = s->size;
        s->n = 0;
    }
    if (!src_read(s, a, b))
        return 0;
    /* kept merged with the ranges it overlaps or touches, so that src_has finds a range
     * that spans two reads (else read again) */
    for (i = 0; i < s->n;) {
        if (s->got[i].a <= b && a <= s->got[i].b) {
            a = s->got[i].a < a ? s->got[i].a : a;
            b = s->got[i].b > b ? s->got[i].b : b;
            s->got[i] = s->got[--s->n];
        } else {
            i++;
        }
    }
    s->got[s->n].a = a;
    s->got[s->n].b = b;
    s->n++;
    return 1;
#else
    return s == NULL;
#endif
}

/* ---------------------------------------------------------------------- */
/* The ELF header and section table                                         */

typedef struct {
    bp d;
    size_t size;
    Src *src;            /* the file when it is read in part, else NULL */
    int big, is64;
    unsigned shnum, shent;
    bp sh;               /* the section header table (shnum * shent bytes, in the buffer) */
    bp shstr;            /* the section name table, non-empty, in the buffer */
    size_t shstr_size;
} Elf;

typedef struct {
    size_t off, size;
    int found;
} Loc;

static inline void sh_range(const Elf *e, unsigned idx, uint64_t *off, uint64_t *sz)
{
    bp h = e->sh + (size_t)idx * e->shent;
    if (e->is64) {
        *off = rd64(h + 24, e->big);
        *sz = rd64(h + 32, e->big);
    } else {
        *off = rd32(h + 16, e->big);
        *sz = rd32(h + 20, e->big);
    }
}

static inline uint32_t sh_name(const Elf *e, unsigned idx)
{
    return rd32(e->sh + (size_t)idx * e->shent, e->big);
}

/* _Elf.section_range: section idx exists (not 0) and lies inside the file. */
static int section_range(const Elf *e, unsigned idx, size_t *off, size_t *sz)
{
    uint64_t o, s;
    if (idx == 0 || idx >= e->shnum)
        return 0;
    sh_range(e, idx, &o, &s);
    if (!in_file(o, s, e->size))
        return 0;
    *off = (size_t)o;
    *sz = (size_t)s;
    return 1;
}

/* The C string at offset `name` of the section name table is `want`. */
static int shname_is(const Elf *e, uint32_t name, const char *want, size_t wlen)
{
    size_t rem;
    if (name >= e->shstr_size)
        return 0;
    rem = e->shstr_size - name;
    return rem > wlen && memcmp(e->shstr + name, want, wlen) == 0 && e->shstr[name + wlen] == 0;
}

/* _Elf.__init__: 1 if valid, 0 where the Python reader raises. */
static int elf_open(Elf *e, bp d, size_t size, Src *src)
{
    unsigned hdr, shent_ok, shstrndx;
    uint64_t shoff, str_off, str_size;

    e->d = d;
    e->size = size;
    e->src = src;
    if (size <= 16 || !src_need(src, 0, size < 64 ? size : 64, 0) || memcmp(d, "\x7f" "ELF", 4) != 0)
        return 0;
    if (d[4] == 1) {
        e->is64 = 0;
        hdr = 52;
        shent_ok = 40;
    } else if (d[4] == 2) {
        e->is64 = 1;
        hdr = 64;
        shent_ok = 64;
    } else {
        return 0;
    }
    if (size <= hdr)
        return 0;
    if (d[5] == 1)
        e->big = 0;
    else if (d[5] == 2)
        e->big = 1;
    else
        return 0;
    if (e->is64) {
        shoff = rd64(d + 40, e->big);
        e->shent = rd16(d + 58, e->big);
        e->shnum = rd16(d + 60, e->big);
        shstrndx = rd16(d + 62, e->big);
    } else {
        shoff = rd32(d + 32, e->big);
        e->shent = rd16(d + 46, e->big);
        e->shnum = rd16(d + 48, e->big);
        shstrndx = rd16(d + 50, e->big);
    }
    if (e->shent != shent_ok)
        return 0;
    /* shnum == 0 (the SHN_XINDEX escape of e_shnum) fails below: shstrndx >= shnum */
    if (!in_file(shoff, (uint64_t)e->shnum * e->shent, size))
        return 0;
    /* the table, and around it what usually lies there: the section names
     * before it, an appended signature after it */
    if (!src_need(src, shoff, (uint64_t)e->shnum * e->shent, SRC_GAP))
        return 0;
    e->sh = d + (size_t)shoff;
    if (shstrndx >= e->shnum)
        return 0;
    sh_range(e, shstrndx, &str_off, &str_size);
    if (str_size == 0 || !in_file(str_off, str_size, size) || !src_need(src, str_off, str_size, 0) ||
        d[str_off + str_size - 1] != 0)
        return 0;
    e->shstr = d + (size_t)str_off;
    e->shstr_size = (size_t)str_size;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* A small open-addressing hash table of byte strings (pointers into the   */
/* input), sized once for at most `cap` insertions.                         */

typedef struct {
    bp key;
    uint32_t len;
    uint32_t hash;
    bp ns;               /* __kstrtabns_ value (non-empty) or NULL */
    uint32_t nslen;
    uint32_t idx;        /* __versions: index of the first record of this name */
    uint8_t ksym, gpl, used;
} Ent;

typedef struct {
    uint32_t *slots;     /* 0: empty, else 1 + index into ents */
    size_t mask;
    Ent *ents;
    size_t n, cap;
} Tab;

static inline uint32_t hash_bytes(bp p, size_t n)
{
    /* eight bytes at a time (names are short; equal keys are compared in full) */
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15u, w;
    while (n >= 8) {
        memcpy(&w, p, 8);
        h = ((h << 5 | h >> 59) ^ w) * 0x517CC1B727220A95u;
        p += 8;
        n -= 8;
    }
    if (n) {
        w = 0;
        memcpy(&w, p, n);
        h = ((h << 5 | h >> 59) ^ w) * 0x517CC1B727220A95u;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static int tab_init(Tab *t, size_t cap)
{
    size_t nslots = 8;
    while (nslots < 2 * cap)
        nslots <<= 1;
    t->n = 0;
    t->cap = cap;
    t->mask = nslots - 1;
    t->slots = PyMem_Calloc(nslots, sizeof(uint32_t));
    t->ents = PyMem_Malloc(cap ? cap * sizeof(Ent) : 1);
    if (t->slots == NULL || t->ents == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void tab_free(Tab *t)
{
    PyMem_Free(t->slots);
    PyMem_Free(t->ents);
    t->slots = NULL;
    t->ents = NULL;
}

/* The entry for key, or NULL; with add, a new zeroed entry when absent. */
static Ent *tab_get(Tab *t, bp key, size_t len, uint32_t h, int add)
{
    size_t i = h & t->mask;
    for (;;) {
        uint32_t s = t->slots[i];
        Ent *e;
        if (s == 0) {
            if (!add || t->n >= t->cap) /* the table always keeps an empty slot */
                return NULL;
            e = &t->ents[t->n++];
            t->slots[i] = (uint32_t)t->n;
            memset(e, 0, sizeof(*e));
            e->key = key;
            e->len = (uint32_t)len;
            e->hash = h;
            return e;
        }
        e = &t->ents[s - 1];
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
        i = (i + 1) & t->mask;
    }
}

/* ---------------------------------------------------------------------- */
/* kmod's split of a string section (_split_strings)                        */

typedef struct {
    bp p;
    size_t n, pos;
} Split;

static void split_init(Split *s, bp blob, size_t n)
{
    size_t i = 0;
    while (i < n && blob[i] == 0)
        i++;
    s->pos = 0;
    /* all NUL: one byte is kept, and one byte or less gives no strings */
    if (n - i <= 1) {
        s->p = blob;
        s->n = 0;
        return;
    }
    s->p = blob + i;
    s->n = n - i;
}

static int split_next(Split *s, bp *piece, size_t *len)
{
    while (s->pos < s->n) {
        bp start = s->p + s->pos;
        size_t l = bounded_len(start, s->n - s->pos);
        s->pos += l + 1;
        if (l) {
            *piece = start;
            *len = l;
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Python objects                                                           */

static PyObject *str_little, *str_big;

static inline PyObject *decode(bp p, size_t n)
{
    /* ASCII (nearly every name and modinfo string): copied into a new str at once, which is
     * what the decoder makes of it after its own checks (~100 instructions a string less) */
    if (n > 1 && all_ascii(p, n)) {
        PyObject *str = PyUnicode_New((Py_ssize_t)n, 127);
        if (str != NULL)
            memcpy(PyUnicode_1BYTE_DATA(str), p, n);
        return str;
    }
    return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)n, "surrogateescape");
}

/* ---------------------------------------------------------------------- */
/* The scan                                                                 */

enum { K_CRC = 1, K_KSYM = 2, K_NS = 3 };

/* A symbol worth keeping: its index, the length of its name, what it is. */
typedef struct {
    uint32_t sym;
    uint32_t off;        /* name offset in .strtab, checked: off + len < strtab_size */
    uint16_t len;
    uint8_t kind;
} Ref;

/* The sections moddeps looks up by name (_WANTED_SECTIONS). */
enum { S_SYMTAB, S_STRTAB, S_MODINFO, S_VERSIONS, S_KSTRINGS, S_KFLAGS, S_EXTNAMES, S_EXTCRCS, S_COUNT };

static void find_sections(const Elf *e, Loc *loc)
{
    static const struct {
        const char *name;
        size_t len;
    } wanted[S_COUNT] = {
        {".symtab", 7}, {".strtab", 7}, {".modinfo", 8}, {"__versions", 10}, {"__ksymtab_strings", 17},
        {"__kflagstab", 11}, {"__version_ext_names", 19}, {"__version_ext_crcs", 18},
    };
    unsigned idx, k, left = S_COUNT;
    for (k = 0; k < S_COUNT; k++)
        loc[k].found = 0;
    /* kmod_elf_get_section: from index 1, the first section of that name
     * whose bytes lie inside the file */
    for (idx = 1; idx < e->shnum && left; idx++) {
        uint32_t name = sh_name(e, idx);
        unsigned first, last;
        if (name >= e->shstr_size)
            continue;
        if (e->shstr_size - name < 8)
            continue; /* shorter than any wanted name */
        /* dispatch on the first two characters */
        if (e->shstr[name] == '.' && e->shstr[name + 1] == 's') {
            first = S_SYMTAB;
            last = S_STRTAB;
        } else if (e->shstr[name] == '.' && e->shstr[name + 1] == 'm') {
            first = last = S_MODINFO;
        } else if (e->shstr[name] == '_' && e->shstr[name + 1] == '_') {
            first = S_VERSIONS;
            last = S_EXTCRCS;
        } else {
            continue;
        }
        for (k = first; k <= last; k++) {
            uint64_t off, sz;
            if (loc[k].found || !shname_is(e, name, wanted[k].name, wanted[k].len))
                continue;
            sh_range(e, idx, &off, &sz);
            if (in_file(off, sz, e->size)) {
                loc[k].off = (size_t)off;
                loc[k].size = (size_t)sz;
                loc[k].found = 1;
                left--;
            }
            break;
        }
    }
}

/* Section `sec` is __ksymtab_gpl or __ksymtab_gpl_future. */
static int gpl_section(const Elf *e, unsigned sec)
{
    uint32_t name;
    if (sec == 0 || sec >= e->shnum)
        return 0;
    name = sh_name(e, sec);
    return shname_is(e, name, "__ksymtab_gpl", 13) || shname_is(e, name, "__ksymtab_gpl_future", 20);
}

/* The __kflagstab byte of the __ksymtab entry at offset `value` of section
 * `sec`, 0 without one (elfreader._kflag): the entry size is
 * size(__ksymtab) / size(__kflagstab), which must divide exactly and be a
 * struct kernel_symbol's: 12 bytes, or 24 on 64-bit. */
static unsigned kflag(const Elf *e, const Loc *flags, unsigned sec, uint64_t value)
{
    size_t off, sz, entsize;
    uint64_t idx;
    if (!flags->found || flags->size == 0 || sec == 0 || sec >= e->shnum ||
        !shname_is(e, sh_name(e, sec), "__ksymtab", 9) || !section_range(e, sec, &off, &sz))
        return 0;
    if (sz % flags->size)
        return 0;
    entsize = sz / flags->size;
    if (!(entsize == 12 || (e->is64 && entsize == 24)) || value % entsize)
        return 0;
    idx = value / entsize;
    if (idx >= (uint64_t)flags->size)
        return 0;
    return e->d[flags->off + (size_t)idx]; /* flags lies inside the file */
}

typedef struct {
    Elf e;
    Loc loc[S_COUNT];
    bp symtab, strtab;
    size_t nsyms, strtab_size, entsize;
    Ref *und, *spec;
    size_t nund, nspec, ncrc;
    Tab info;            /* export name -> ksym / gpl / namespace */
    Tab nsvals;          /* namespace values (the fallback's pseudo exports) */
    Tab vers;            /* __versions name -> first record */
    uint8_t *vused;      /* per __versions record: matched by an undefined symbol */
    uint32_t *vmatch;    /* per undefined symbol: its record, or UINT32_MAX */
    Tab ext;             /* extended modversions name -> first record (idx); used: taken by a symbol or __versions */
    size_t next;         /* extended records paired with a CRC */
    uint32_t *ematch;    /* per undefined symbol: its extended record, or UINT32_MAX */
    int has_init, has_exit;
    PyTypeObject *etype, *itype;
    PyObject *memo; /* dict: equal import records become one object, or NULL */
} Scan;

static inline bp sym_at(const Scan *s, size_t i)
{
    return s->symtab + i * s->entsize;
}

static inline uint64_t sym_value(const Scan *s, bp sym)
{
    return s->e.is64 ? rd64(sym + 8, s->e.big) : rd32(sym + 4, s->e.big);
}

static inline unsigned sym_shndx(const Scan *s, bp sym)
{
    return rd16(sym + (s->e.is64 ? 6 : 14), s->e.big);
}

static inline unsigned sym_info(const Scan *s, bp sym)
{
    return sym[s->e.is64 ? 4 : 12];
}

static inline bp ref_name(const Scan *s, const Ref *r)
{
    return s->strtab + r->off;
}

/* One pass over .symtab.  Returns 1, or 0 to give up (the Python reader
 * would raise, or take a quirk branch that is left to it). */
static int scan_symbols(Scan *s)
{
    size_t i;
    unsigned machine = rd16(s->e.d + 18, s->e.big);
    int sparc = machine == EM_SPARC || machine == EM_SPARCV9;
    for (i = 1; i < s->nsyms; i++) {
        bp sym = sym_at(s, i);
        uint32_t off = rd32(sym, s->e.big);
        unsigned shndx;
        bp nm;
        size_t rem, len;
        if (off >= s->strtab_size)
            return 0; /* a name outside .strtab: kmod's fallbacks, left to Python */
        shndx = sym_shndx(s, sym);
        nm = s->strtab + off;
        rem = s->strtab_size - off;
        if (shndx == SHN_UNDEF && !(sparc && (sym_info(s, sym) & 0xF) == STT_SPARC_REGISTER)) {
            len = bounded_len(nm, rem < MAX_NAME + 1 ? rem : MAX_NAME + 1);
            if (len > MAX_NAME || len == rem)
                return 0; /* too long, or not terminated inside .strtab */
            if (len) {
                s->und[s->nund].sym = (uint32_t)i;
                s->und[s->nund].off = off;
                s->und[s->nund].len = (uint16_t)len;
                s->und[s->nund].kind = 0;
                s->nund++;
            }
        }
        if (nm[0] == '_') {
            int kind;
            size_t plen;
            if (rem < 6 || nm[1] != '_')
                continue;
            if (nm[2] == 'c' && memcmp(nm, "__crc_", 6) == 0)
                kind = K_CRC, plen = 6;
            else if (nm[2] != 'k' || rem < 10)
                continue;
            else if (memcmp(nm, "__ksymtab_", 10) == 0)
                kind = K_KSYM, plen = 10;
            else if (rem >= 12 && memcmp(nm, "__kstrtabns_", 12) == 0)
                kind = K_NS, plen = 12;
            else
                continue;
            len = bounded_len(nm, rem < MAX_NAME + 1 ? rem : MAX_NAME + 1);
            if (len > MAX_NAME || len == rem || len < plen)
                return 0; /* (shorter than its prefix: the bytes changed under us) */
            s->spec[s->nspec].sym = (uint32_t)i;
            s->spec[s->nspec].off = off;
            s->spec[s->nspec].len = (uint16_t)len;
            s->spec[s->nspec].kind = (uint8_t)kind;
            s->nspec++;
            if (kind == K_CRC)
                s->ncrc++;
        } else if (shndx != SHN_UNDEF) {
            if (nm[0] == 'i' && rem >= 12 && memcmp(nm, "init_module", 12) == 0)
                s->has_init = 1;
            else if (nm[0] == 'c' && rem >= 15 && memcmp(nm, "cleanup_module", 15) == 0)
                s->has_exit = 1;
        }
    }
    return 1;
}

/* __ksymtab_* and __kstrtabns_* symbols: GPL flags and namespaces by name. */
static int collect_export_info(Scan *s)
{
    size_t j;
    if (tab_init(&s->info, s->nspec - s->ncrc) < 0)
        return -1;
    for (j = 0; j < s->nspec; j++) {
        const Ref *r = &s->spec[j];
        bp sym = sym_at(s, r->sym);
        unsigned shndx = sym_shndx(s, sym);
        bp nm = ref_name(s, r);
        Ent *ent;
        if (r->kind == K_KSYM) {
            ent = tab_get(&s->info, nm + 10, r->len - 10u, hash_bytes(nm + 10, r->len - 10u), 1);
            if (ent == NULL)
                return 0;
            ent->ksym = 1;
            if (gpl_section(&s->e, shndx) ||
                (kflag(&s->e, &s->loc[S_KFLAGS], shndx, sym_value(s, sym)) & KSYM_FLAG_GPL_ONLY))
                ent->gpl = 1;
        } else if (r->kind == K_NS) {
            size_t off, sz, pos, limit, nslen;
            uint64_t value = sym_value(s, sym);
            if (!section_range(&s->e, shndx, &off, &sz) || value >= (uint64_t)sz)
                continue;
            pos = off + (size_t)value; /* < off + sz <= size */
            limit = s->e.size - pos;
            if (limit > MAX_NAME)
                limit = MAX_NAME;
            /* the rest of its section first (where the string usually ends), then up to the limit */
            if (!src_need(s->e.src, pos, off + sz - pos < limit ? off + sz - pos : limit, 0))
                return 0;
            nslen = bounded_len(s->e.d + pos, off + sz - pos < limit ? off + sz - pos : limit);
            if (nslen == off + sz - pos && nslen < limit) {
                if (!src_need(s->e.src, pos, limit, 0))
                    return 0;
                nslen = bounded_len(s->e.d + pos, limit);
            }
            if (nslen == 0)
                continue;
            ent = tab_get(&s->info, nm + 12, r->len - 12u, hash_bytes(nm + 12, r->len - 12u), 1);
            if (ent == NULL)
                return 0;
            ent->ns = s->e.d + pos;
            ent->nslen = (uint32_t)nslen;
        }
    }
    return 1;
}

/* make() of _exports: one export record. */
static PyObject *make_export(Scan *s, bp name, size_t len, PyObject *crc, int pseudo)
{
    PyObject *items[5];
    Ent *ent = tab_get(&s->info, name, len, hash_bytes(name, len), 0);
    items[0] = decode(name, len);
    items[1] = crc;
    items[2] = new_bool(ent != NULL && ent->gpl);
    items[3] = ent != NULL && ent->ns != NULL ? decode(ent->ns, ent->nslen) : new_none();
    items[4] = new_bool(pseudo);
    return record(s->etype, 5, items);
}

static PyObject *build_exports(Scan *s)
{
    PyObject *out;
    Py_ssize_t n = 0;
    size_t j;

    if (s->ncrc) {
        /* the __crc_* symbols, in symtab order */
        out = PyTuple_New((Py_ssize_t)s->ncrc);
        if (out == NULL)
            return NULL;
        for (j = 0; j < s->nspec; j++) {
            const Ref *r = &s->spec[j];
            bp sym;
            unsigned sec;
            uint64_t value, crc;
            PyObject *rec, *crcobj;
            if (r->kind != K_CRC)
                continue;
            sym = sym_at(s, r->sym);
            sec = sym_shndx(s, sym);
            value = sym_value(s, sym);
            if (sec == SHN_ABS || sec == SHN_UNDEF) {
                crc = value;
            } else {
                size_t off, sz;
                /* kmod: a bad section or st_value > size - 4 gives all ones */
                if (!section_range(&s->e, sec, &off, &sz) || sz < 4 || value > (uint64_t)(sz - 4)) {
                    crc = 0xFFFFFFFFu;
                } else {
                    /* the CRC tables are small: the whole one on its first use */
                    if (!src_need(s->e.src, off, sz <= 65536 ? sz : 4, 0) ||
                        !src_need(s->e.src, off + (size_t)value, 4, 0)) {
                        Py_DECREF(out);
                        return declined();
                    }
                    crc = rd32(s->e.d + off + (size_t)value, s->e.big);
                }
            }
            crcobj = PyLong_FromUnsignedLongLong((unsigned long long)crc);
            rec = make_export(s, ref_name(s, r) + 6, r->len - 6u, crcobj, 0);
            if (rec == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, n++, rec);
        }
        return out;
    }

    /* no __crc_ symbol: the strings of __ksymtab_strings (namespace names included) */
    {
        Split sp;
        bp piece;
        size_t plen, k, nns = 0;
        Loc *ks = &s->loc[S_KSTRINGS];
        if (!ks->found)
            return PyTuple_New(0);
        split_init(&sp, s->e.d + ks->off, ks->size);
        while (split_next(&sp, &piece, &plen))
            n++;
        if (n == 0)
            return PyTuple_New(0);
        for (k = 0; k < s->info.n; k++)
            nns += s->info.ents[k].ns != NULL;
        if (tab_init(&s->nsvals, nns) < 0)
            return NULL;
        for (k = 0; k < s->info.n; k++) {
            const Ent *ent = &s->info.ents[k];
            if (ent->ns != NULL)
                (void)tab_get(&s->nsvals, ent->ns, ent->nslen, hash_bytes(ent->ns, ent->nslen), 1);
        }
        out = PyTuple_New(n);
        if (out == NULL)
            return NULL;
        split_init(&sp, s->e.d + ks->off, ks->size);
        for (k = 0; k < (size_t)n && split_next(&sp, &piece, &plen); k++) {
            uint32_t h = hash_bytes(piece, plen);
            int pseudo = 0;
            PyObject *rec;
            if (tab_get(&s->nsvals, piece, plen, h, 0) != NULL) {
                Ent *ent = tab_get(&s->info, piece, plen, h, 0);
                pseudo = ent == NULL || !ent->ksym;
            }
            rec = make_export(s, piece, plen, new_none(), pseudo);
            if (rec == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(out, (Py_ssize_t)k, rec);
        }
        if ((Py_ssize_t)k != n) { /* the bytes changed under us */
            Py_DECREF(out);
            return declined();
        }
        return out;
    }
}

/* The import records of the memo, by the bytes they were made from.
 *
 * With a memo, an import equal to one made before is that one (see
 * import_record): finding it through the memo meant decoding the name and
 * building a record only to hash, compare and drop it, for nine imports in
 * ten (Debian's amd64 tree: 18,074 distinct of 188,599).  This table finds it
 * from the raw name, CRC and flags instead.  It belongs to one memo (and
 * record type) at a time: holding a reference to the memo keeps the memo's
 * address from being reused while the table is kept, and another memo (or
 * type) empties it first; release() empties it.  Each entry holds a
 * reference to its record, the memo's own (the one setdefault returned), so
 * a hit returns what the memo would.  Only records whose name is ASCII are
 * entered (their str holds the very bytes they were made from). */
typedef struct {
    uint64_t crc;
    PyObject *rec;       /* NULL: empty slot */
    uint32_t hash;
    uint32_t flags;      /* 1 has a CRC, 2 weak, 4 versions only, 8 extended CRC */
} IEnt;

static struct {
    PyObject *memo;
    PyTypeObject *itype;
    IEnt *slots;
    size_t mask, n;
} icache;

static void icache_clear(void)
{
    size_t i;
    IEnt *slots = icache.slots;
    PyObject *memo = icache.memo;
    size_t count = slots != NULL ? icache.mask + 1 : 0;
    icache.slots = NULL;
    icache.memo = NULL;
    icache.itype = NULL;
    icache.mask = icache.n = 0;
    for (i = 0; i < count; i++)
        Py_XDECREF(slots[i].rec);
    PyMem_Free(slots);
    Py_XDECREF(memo);
}

static inline uint32_t icache_hash(bp name, size_t len, uint64_t crc, uint32_t flags)
{
    /* MurmurHash3's 64-bit finalizer over the name's hash, the CRC and the flags */
    uint64_t h = ((uint64_t)hash_bytes(name, len) << 32 | flags) ^ (crc * 0x9E3779B97F4A7C15u);
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDu;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53u;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* The slot of (name, crc, flags): its entry, or the empty slot where it goes. */
static IEnt *icache_slot(bp name, size_t len, uint64_t crc, uint32_t flags, uint32_t h)
{
    size_t i = h & icache.mask;
    for (;;) {
        IEnt *e = &icache.slots[i];
        if (e->rec == NULL)
            return e;
        if (e->hash == h && e->flags == flags && e->crc == crc) {
            PyObject *nm = PyTuple_GET_ITEM(e->rec, 0);
            if ((size_t)PyUnicode_GET_LENGTH(nm) == len && memcmp(PyUnicode_DATA(nm), name, len) == 0)
                return e;
        }
        i = (i + 1) & icache.mask;
    }
}

/* Room for one more entry (the table kept at most half full); -1 on error. */
static int icache_room(void)
{
    size_t i, old = icache.slots != NULL ? icache.mask + 1 : 0;
    IEnt *was = icache.slots, *now;
    size_t size;
    if (2 * (icache.n + 1) <= old)
        return 0;
    size = old ? 2 * old : 1024;
    now = PyMem_Calloc(size, sizeof(IEnt));
    if (now == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    icache.slots = now;
    icache.mask = size - 1;
    for (i = 0; i < old; i++) {
        if (was[i].rec != NULL) {
            IEnt *e = &now[was[i].hash & icache.mask];
            while (e->rec != NULL)
                e = e == &now[icache.mask] ? now : e + 1;
            *e = was[i];
        }
    }
    PyMem_Free(was);
    return 0;
}

static int ascii_only(bp p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] & 0x80)
            return 0;
    return 1;
}

static PyObject *import_record(Scan *s, bp name, size_t len, int has_crc, uint64_t crcval, int weak,
                               int from_versions, int ext_crc)
{
    PyObject *items[5], *rec, *got;
    uint32_t flags = (has_crc ? 1u : 0u) | (weak ? 2u : 0u) | (from_versions ? 4u : 0u) | (ext_crc ? 8u : 0u), h = 0;
    IEnt *slot = NULL;
    if (!has_crc)
        crcval = 0;
    if (s->memo != NULL) {
        if (icache.memo != s->memo || icache.itype != s->itype) {
            icache_clear();
            icache.memo = Py_NewRef(s->memo);
            icache.itype = s->itype;
        }
        if (icache_room() < 0)
            return NULL;
        h = icache_hash(name, len, crcval, flags);
        slot = icache_slot(name, len, crcval, flags, h);
        if (slot->rec != NULL)
            return Py_NewRef(slot->rec);
    }
    items[0] = decode(name, len);
    items[1] = has_crc ? PyLong_FromUnsignedLongLong((unsigned long long)crcval) : new_none();
    items[2] = new_bool(weak);
    items[3] = new_bool(from_versions);
    items[4] = new_bool(ext_crc);
    rec = record(s->itype, 5, items);
    if (rec == NULL || s->memo == NULL)
        return rec;
    /* the record already in the memo, if an equal one is there */
    got = PyDict_SetDefault(s->memo, rec, rec);
    Py_XINCREF(got);
    Py_DECREF(rec);
    /* looked up again: making the record may have run a collection, and so any code */
    if (got != NULL && icache.memo == s->memo && icache.itype == s->itype && PyTuple_Check(got) &&
        PyTuple_GET_SIZE(got) == 5 && PyUnicode_Check(PyTuple_GET_ITEM(got, 0)) &&
        PyUnicode_IS_COMPACT_ASCII(PyTuple_GET_ITEM(got, 0)) && ascii_only(name, len)) {
        if (icache_room() < 0) {
            Py_DECREF(got);
            return NULL;
        }
        slot = icache_slot(name, len, crcval, flags, h);
        if (slot->rec != NULL)
            return got;
        slot->crc = crcval;
        slot->hash = h;
        slot->flags = flags;
        slot->rec = Py_NewRef(got);
        icache.n++;
    }
    return got;
}

/* The extended modversions (elfreader._version_ext): s->ext maps each
 * non-empty name to its first record among the s->next names that have a
 * CRC.  Returns 1, 0 to give up (a name longer than MAX_NAME), -1 on error. */
static int collect_ext(Scan *s)
{
    const Loc *nl = &s->loc[S_EXTNAMES], *cl = &s->loc[S_EXTCRCS];
    bp p, end;
    size_t ncrc, r;
    if (!nl->found || !cl->found || nl->size == 0 || cl->size < 4)
        return 1;
    ncrc = cl->size / 4;
    /* count the NUL-terminated names, up to one per CRC */
    p = s->e.d + nl->off;
    end = p + nl->size;
    for (r = 0; r < ncrc && p < end; r++) {
        bp z = memchr(p, 0, (size_t)(end - p));
        if (z == NULL)
            break;
        if ((size_t)(z - p) > MAX_NAME)
            return 0;
        p = z + 1;
    }
    s->next = r;
    if (r == 0)
        return 1;
    if (tab_init(&s->ext, r) < 0)
        return -1;
    p = s->e.d + nl->off;
    for (r = 0; r < s->next; r++) {
        size_t len = bounded_len(p, (size_t)(end - p)), before = s->ext.n;
        Ent *ent;
        if ((size_t)(end - p) == len)
            return 0; /* the bytes changed under us */
        if (len) {
            ent = tab_get(&s->ext, p, len, hash_bytes(p, len), 1);
            if (ent == NULL)
                return 0;
            if (s->ext.n != before)
                ent->idx = (uint32_t)r;
        }
        p += len + 1;
    }
    return 1;
}

/* The CRC of extended record r (r < s->next). */
static inline uint32_t ext_crc_at(const Scan *s, uint32_t r)
{
    return rd32(s->e.d + s->loc[S_EXTCRCS].off + (size_t)r * 4, s->e.big);
}

static PyObject *build_imports(Scan *s)
{
    const Loc *vl = &s->loc[S_VERSIONS];
    size_t nver = 0, width = s->e.is64 ? 8 : 4, r, j, total;
    bp vbase = NULL;
    PyObject *out;
    Py_ssize_t n = 0;
    int rc;

    if (vl->found && vl->size) {
        if (vl->size % 64)
            return declined(); /* kmod ignores such a table: left to Python */
        nver = vl->size / 64;
        vbase = s->e.d + vl->off;
    }
    rc = collect_ext(s);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        return declined();
    total = s->nund;
    if (nver) {
        /* name -> first record of that name (later duplicates stay unmatched, as in kmod) */
        if (tab_init(&s->vers, nver) < 0)
            return NULL;
        s->vused = PyMem_Calloc(nver, 1);
        s->vmatch = PyMem_Malloc(s->nund ? s->nund * sizeof(uint32_t) : 1);
        if (s->vused == NULL || s->vmatch == NULL)
            return PyErr_NoMemory();
        for (r = 0; r < nver; r++) {
            bp name = vbase + r * 64 + width;
            size_t len = bounded_len(name, 64 - width), before = s->vers.n;
            Ent *ent = tab_get(&s->vers, name, len, hash_bytes(name, len), 1);
            if (ent != NULL && s->vers.n != before)
                ent->idx = (uint32_t)r;
            if (s->next && len) { /* an extended record of a __versions name is not listed again */
                Ent *x = tab_get(&s->ext, name, len, hash_bytes(name, len), 0);
                if (x != NULL)
                    x->used = 1;
            }
        }
        total += nver;
        for (j = 0; j < s->nund; j++) {
            const Ref *u = &s->und[j];
            bp nm = ref_name(s, u);
            Ent *ent = tab_get(&s->vers, nm, u->len, hash_bytes(nm, u->len), 0);
            s->vmatch[j] = ent != NULL ? ent->idx : UINT32_MAX;
            if (ent != NULL && !s->vused[ent->idx]) {
                s->vused[ent->idx] = 1;
                total--;
            }
        }
    }
    if (s->next) {
        /* an undefined symbol without a __versions record takes its extended CRC */
        size_t left = s->ext.n;
        s->ematch = PyMem_Malloc(s->nund ? s->nund * sizeof(uint32_t) : 1);
        if (s->ematch == NULL)
            return PyErr_NoMemory();
        for (j = 0; j < s->nund; j++) {
            const Ref *u = &s->und[j];
            bp nm = ref_name(s, u);
            Ent *x = tab_get(&s->ext, nm, u->len, hash_bytes(nm, u->len), 0);
            s->ematch[j] = x != NULL && !(nver && s->vmatch[j] != UINT32_MAX) ? x->idx : UINT32_MAX;
            if (x != NULL)
                x->used = 1;
        }
        for (r = 0; r < s->ext.n; r++)
            left -= s->ext.ents[r].used;
        total += left;
    }

    /* the undefined symbols, then the __versions records no symbol matched,
     * then the extended records of no symbol and no __versions record */
    out = PyTuple_New((Py_ssize_t)total);
    if (out == NULL)
        return NULL;
    for (j = 0; j < s->nund; j++) {
        const Ref *u = &s->und[j];
        PyObject *rec;
        uint64_t crc = 0;
        int from_ext = 0, has_crc = 1;
        if (nver && s->vmatch[j] != UINT32_MAX) {
            bp at = vbase + (size_t)s->vmatch[j] * 64;
            crc = width == 8 ? rd64(at, s->e.big) : rd32(at, s->e.big);
        } else if (s->next && s->ematch[j] != UINT32_MAX) {
            crc = ext_crc_at(s, s->ematch[j]);
            from_ext = 1;
        } else {
            has_crc = 0;
        }
        rec = import_record(s, ref_name(s, u), u->len, has_crc, crc,
                            (sym_info(s, sym_at(s, u->sym)) >> 4) == STB_WEAK, 0, from_ext);
        if (rec == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, n++, rec);
    }
    for (r = 0; r < nver && (size_t)n < total; r++) {
        bp at = vbase + r * 64;
        PyObject *rec;
        if (s->vused[r])
            continue;
        rec = import_record(s, at + width, bounded_len(at + width, 64 - width), 1,
                            width == 8 ? rd64(at, s->e.big) : rd32(at, s->e.big), 0, 1, 0);
        if (rec == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, n++, rec);
    }
    if (s->next) {
        bp p = s->e.d + s->loc[S_EXTNAMES].off, end = p + s->loc[S_EXTNAMES].size;
        for (r = 0; r < s->next && (size_t)n < total && p < end; r++) {
            size_t len = bounded_len(p, (size_t)(end - p));
            Ent *x = len ? tab_get(&s->ext, p, len, hash_bytes(p, len), 0) : NULL;
            if (x != NULL && x->idx == r && !x->used) {
                PyObject *rec = import_record(s, p, len, 1, ext_crc_at(s, (uint32_t)r), 0, 1, 1);
                if (rec == NULL)
                    goto fail;
                PyTuple_SET_ITEM(out, n++, rec);
            }
            p += len + 1;
        }
    }
    if ((size_t)n != total) { /* the bytes changed under us */
        Py_DECREF(out);
        return declined();
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *build_modinfo(Scan *s)
{
    const Loc *ml = &s->loc[S_MODINFO];
    Split sp;
    bp piece;
    size_t plen;
    Py_ssize_t n = 0, k = 0;
    PyObject *out;

    if (!ml->found)
        return PyTuple_New(0);
    split_init(&sp, s->e.d + ml->off, ml->size);
    while (split_next(&sp, &piece, &plen))
        n++;
    out = PyTuple_New(n);
    if (out == NULL)
        return NULL;
    split_init(&sp, s->e.d + ml->off, ml->size);
    while (k < n && split_next(&sp, &piece, &plen)) {
        PyObject *items[2], *pair;
        bp eq = memchr(piece, '=', plen);
        if (eq != NULL) {
            items[0] = decode(piece, (size_t)(eq - piece));
            items[1] = decode(eq + 1, plen - (size_t)(eq - piece) - 1);
        } else {
            items[0] = decode(piece, plen);
            items[1] = decode(piece, 0);
        }
        pair = record(NULL, 2, items);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, k++, pair);
    }
    if (k != n) { /* the bytes changed under us */
        Py_DECREF(out);
        return declined();
    }
    return out;
}

/* Read the sections the scan reads (all of them, merged where close), for a file read in part. */
static int prefetch(const Elf *e, const Loc *loc)
{
    size_t r[S_COUNT][2], n = 0, i, j;
    if (e->src == NULL)
        return 1;
    for (i = 0; i < S_COUNT; i++) {
        if (!loc[i].found || loc[i].size == 0)
            continue;
        /* insertion by offset */
        for (j = n; j > 0 && r[j - 1][0] > loc[i].off; j--) {
            r[j][0] = r[j - 1][0];
            r[j][1] = r[j - 1][1];
        }
        r[j][0] = loc[i].off;
        r[j][1] = loc[i].off + loc[i].size;
        n++;
    }
    for (i = 0; i < n; i = j) {
        size_t a = r[i][0], b = r[i][1];
        for (j = i + 1; j < n && r[j][0] <= b + (e->src->exact ? 0 : SRC_GAP); j++)
            if (r[j][1] > b)
                b = r[j][1];
        if (!src_need(e->src, a, b - a, 0))
            return 0;
    }
    return 1;
}

/* parse()'s 8 fields of the module in d[0, size) into out[0..7] (new references): 1; 0: declined; -1: error. */
static int scan_fields(bp d, size_t size, PyTypeObject *etype, PyTypeObject *itype, PyObject *memo, Src *src,
                       PyObject **out)
{
    Scan s;
    PyObject *exports = NULL, *imports = NULL, *modinfo = NULL;
    int rc, result = -1;

    memset(&s, 0, sizeof(s));
    s.etype = etype;
    s.itype = itype;
    s.memo = memo;
    if (!elf_open(&s.e, d, size, src))
        goto bail;
    find_sections(&s.e, s.loc);
    if (!prefetch(&s.e, s.loc))
        goto bail;
    if (!s.loc[S_SYMTAB].found || !s.loc[S_STRTAB].found)
        goto bail; /* no symbol table: left to Python */
    s.entsize = s.e.is64 ? 24 : 16;
    if (s.loc[S_SYMTAB].size % s.entsize)
        goto bail;
    s.symtab = d + s.loc[S_SYMTAB].off;
    s.nsyms = s.loc[S_SYMTAB].size / s.entsize;
    s.strtab = d + s.loc[S_STRTAB].off;
    s.strtab_size = s.loc[S_STRTAB].size;
    if (s.strtab_size == 0 || s.strtab[s.strtab_size - 1] != 0)
        goto bail;
    if (s.nsyms > UINT32_MAX)
        goto bail;
    /* at most one Ref per symbol in each list: 16 bytes per 16- or 24-byte symbol */
    s.und = PyMem_Malloc(s.nsyms ? 2 * s.nsyms * sizeof(Ref) : 1);
    if (s.und == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    s.spec = s.und + s.nsyms;
    if (!scan_symbols(&s))
        goto bail;
    rc = collect_export_info(&s);
    if (rc < 0)
        goto done;
    if (rc == 0)
        goto bail;

    exports = build_exports(&s);
    if (exports == NULL || exports == elfscan_declined)
        goto done;
    modinfo = build_modinfo(&s);
    if (modinfo == NULL || modinfo == elfscan_declined)
        goto done;
    imports = build_imports(&s);
    if (imports == NULL || imports == elfscan_declined)
        goto done;
    out[0] = exports;
    out[1] = imports;
    out[2] = modinfo;
    out[3] = new_bool(s.has_init);
    out[4] = new_bool(s.has_exit);
    out[5] = PyLong_FromLong((long)rd16(d + 18, s.e.big));
    out[6] = PyLong_FromLong(s.e.is64 ? 64 : 32);
    out[7] = Py_NewRef(s.e.big ? str_big : str_little);
    exports = imports = modinfo = NULL; /* stolen */
    result = 1;
    if (out[5] == NULL || out[6] == NULL) {
        int i;
        for (i = 0; i < 8; i++)
            Py_CLEAR(out[i]);
        result = -1;
    }
    goto done;

bail:
    result = 0;
done:
    if (exports == elfscan_declined || modinfo == elfscan_declined || imports == elfscan_declined)
        result = 0;
    Py_XDECREF(exports);
    Py_XDECREF(imports);
    Py_XDECREF(modinfo);
    tab_free(&s.info);
    tab_free(&s.nsvals);
    tab_free(&s.vers);
    tab_free(&s.ext);
    PyMem_Free(s.vused);
    PyMem_Free(s.vmatch);
    PyMem_Free(s.ematch);
    PyMem_Free(s.und);
    return result;
}

static PyObject *scan(bp d, size_t size, PyTypeObject *etype, PyTypeObject *itype, PyObject *memo, Src *src)
{
    PyObject *items[8];
    int rc = scan_fields(d, size, etype, itype, memo, src, items);
    if (rc < 0)
        return NULL;
    if (rc == 0)
        return declined();
    return record(NULL, 8, items);
}

/* ---------------------------------------------------------------------- */
/* The appended signature: sig_facts(data)                                  */
/*                                                                          */
/* The C twin of moddeps.signature.scan_facts's common path: the trailer     */
/* ("~Module signature appended~\n" after a 12-byte struct module_signature, */
/* checked as read_trailer checks it), then the strict-DER walk of           */
/* walk_pkcs7 over the PKCS#7 SignedData.  Returns None without a valid      */
/* trailer, (id_type, signer, key_id, hash_algo) when the walk succeeds, and */
/* DECLINED for anything else (another id type, a shape the walker declines, */
/* a digest outside the table below): the Python code then decides.  Reads  */
/* are bounded by the element being walked; nothing recurses.               */

#define SIG_MAGIC "~Module signature appended~\n" /* = moddeps.signature:SIG_MAGIC */
#define SIG_MAGIC_LEN (sizeof SIG_MAGIC - 1)
/* struct module_signature's algo, hash and id_type index kmod's tables */
#define PKEY_ALGO_COUNT 2 /* = len(moddeps.signature:PKEY_ALGO) */
#define PKEY_HASH_COUNT 9 /* = len(moddeps.signature:PKEY_HASH_ALGO) */
#define PKEY_ID_COUNT 3 /* = len(moddeps.signature:PKEY_ID_TYPE) */
#define PKEY_ID_PKCS7 2 /* = moddeps.signature:PKEY_ID_PKCS7 */
/* 1.2.840.113549.1.7.2, as DER OID contents */
#define SIGNED_DATA_OID "\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02" /* = moddeps.signature:_SIGNED_DATA_OID */

typedef struct {
    bp d;
    int ok;
} Der;

/* The element at *pos (< end): its tag and content [*cs, *ce); 0 declines. */
static int der_tlv(Der *w, size_t pos, size_t end, unsigned *tag, size_t *cs, size_t *ce)
{
    size_t n, k, i;
    if (!w->ok || pos > end || end - pos < 2)
        return w->ok = 0;
    *tag = w->d[pos];
    if ((*tag & 0x1Fu) == 0x1Fu)
        return w->ok = 0;
    n = w->d[pos + 1];
    pos += 2;
    if (n & 0x80u) {
        k = n & 0x7Fu;
        if (k == 0 || k > 4 || end - pos < k || w->d[pos] == 0)
            return w->ok = 0;
        n = 0;
        for (i = 0; i < k; i++)
            n = n << 8 | w->d[pos + i];
        if (n < 0x80 || (k > 1 && n < ((size_t)1 << (8 * (k - 1)))))
            return w->ok = 0;
        pos += k;
    }
    if (end - pos < n)
        return w->ok = 0;
    *cs = pos;
    *ce = pos + n;
    return 1;
}

static int der_expect(Der *w, size_t pos, size_t end, unsigned want, size_t *cs, size_t *ce)
{
    unsigned tag;
    if (!der_tlv(w, pos, end, &tag, cs, ce))
        return 0;
    if (tag != want)
        return w->ok = 0;
    return 1;
}

static int bytes_eq(bp p, size_t n, const char *want, size_t wn)
{
    return n == wn && memcmp(p, want, n) == 0;
}

/* signature._NAME_ATTRS: 1 commonName, 2 another DirectoryString attribute, 3 emailAddress, 0 none */
static int name_attr(bp p, size_t n)
{
    if (bytes_eq(p, n, "\x55\x04\x03", 3))
        return 1;
    if (bytes_eq(p, n, "\x55\x04\x0a", 3) || bytes_eq(p, n, "\x55\x04\x0b", 3) || bytes_eq(p, n, "\x55\x04\x07", 3) ||
        bytes_eq(p, n, "\x55\x04\x08", 3))
        return 2;
    if (bytes_eq(p, n, "\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01", 9))
        return 3;
    return 0;
}

/* kmod's signer of the Name in [start, end): *vs, *vn (vn 0: empty) */
static int der_name(Der *w, size_t start, size_t end, size_t *vs, size_t *vn)
{
    size_t pos = start, rs, re, p, as, ae, os, oe, cs, ce;
    size_t chosen_s = 0, chosen_n = 0, last_s = 0, last_n = 0;
    int have_cn = 0, have_last = 0, kind;
    unsigned vtag;
    while (pos < end) {
        if (!der_expect(w, pos, end, 0x31, &rs, &re) || rs == re)
            return w->ok = 0;
        for (p = rs; p < re; p = ae) {
            if (!der_expect(w, p, re, 0x30, &as, &ae) || !der_expect(w, as, ae, 0x06, &os, &oe))
                return 0;
            kind = name_attr(w->d + os, oe - os);
            if (!der_tlv(w, oe, ae, &vtag, &cs, &ce))
                return 0;
            if (kind == 0 || ce != ae)
                return w->ok = 0;
            if (kind == 3 ? vtag != 0x16
                          : !(vtag == 0x14 || vtag == 0x13 || vtag == 0x1C || vtag == 0x0C || vtag == 0x1E))
                return w->ok = 0;
            last_s = cs;
            last_n = ce - cs;
            have_last = 1;
            if (kind == 1 && !have_cn) {
                chosen_s = cs;
                chosen_n = ce - cs;
                have_cn = 1;
            }
        }
        pos = re;
    }
    if (!have_cn) {
        chosen_s = last_s;
        chosen_n = have_last ? last_n : 0;
    }
    {
        const void *nul = chosen_n ? memchr(w->d + chosen_s, 0, chosen_n) : NULL;
        if (nul != NULL)
            chosen_n = (size_t)((bp)nul - (w->d + chosen_s));
    }
    *vs = chosen_s;
    *vn = chosen_n;
    return 1;
}

/* The digests of signature._OPENSSL_DIGEST_NAMES most modules name (DER OID
 * contents); any other OID declines (Python then names it). */
static const struct {
    const char *oid;
    size_t n;
    const char *name;
} digest_names[] = {
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x01", 9, "sha256"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x02", 9, "sha384"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x03", 9, "sha512"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x04", 9, "sha224"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x08", 9, "sha3-256"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x09", 9, "sha3-384"},
    {"\x60\x86\x48\x01\x65\x03\x04\x02\x0a", 9, "sha3-512"},
    {"\x2b\x0e\x03\x02\x1a", 5, "sha1"},
    {"\x2a\x86\x48\x86\xf7\x0d\x02\x05", 8, "md5"},
    {"\x2a\x86\x48\x86\xf7\x0d\x02\x04", 8, "md4"},
    {"\x2a\x81\x1c\xcf\x55\x01\x83\x11", 8, "sm3"},
};

static PyObject *key_id_text(bp p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    PyObject *s = PyUnicode_New(n ? (Py_ssize_t)(3 * n - 1) : 0, 127);
    Py_UCS1 *o;
    size_t i;
    if (s == NULL)
        return NULL;
    o = PyUnicode_1BYTE_DATA(s);
    for (i = 0; i < n; i++) {
        if (i)
            *o++ = ':';
        *o++ = (Py_UCS1)hex[p[i] >> 4];
        *o++ = (Py_UCS1)hex[p[i] & 15];
    }
    return s;
}

/* The walk of signature.walk_pkcs7 over der[0, n); NULL with no error set: declined. */
static PyObject *walk_pkcs7(bp der, size_t n, PyTypeObject *stype)
{
    Der w = {der, 1};
    size_t cs, ce, os, oe, xs, xe, ss, se, p, a, b, sis, sie, is, ie, q, sid_s, sid_e, ns, ne, sn_s, sn_e;
    size_t signer_s = 0, signer_n = 0, ds, de, o_s, o_e, key_s = 0, key_n = 0, k;
    const char *digest = NULL;
    unsigned tag;
    PyObject *items[4];

    if (!der_expect(&w, 0, n, 0x30, &cs, &ce) || ce != n)
        return NULL;
    if (!der_expect(&w, cs, ce, 0x06, &os, &oe) ||
        !bytes_eq(der + os, oe - os, SIGNED_DATA_OID, sizeof SIGNED_DATA_OID - 1))
        return NULL;
    if (!der_expect(&w, oe, ce, 0xA0, &xs, &xe) || xe != ce)
        return NULL;
    if (!der_expect(&w, xs, xe, 0x30, &ss, &se) || se != xe)
        return NULL;
    if (!der_expect(&w, ss, se, 0x02, &a, &p) || !der_expect(&w, p, se, 0x31, &a, &p) ||
        !der_expect(&w, p, se, 0x30, &a, &p))
        return NULL;
    if (!der_tlv(&w, p, se, &tag, &a, &b))
        return NULL;
    if (tag == 0xA0) { /* certificates */
        p = b;
        if (!der_tlv(&w, p, se, &tag, &a, &b))
            return NULL;
    }
    if (tag == 0xA1) /* crls */
        p = b;
    if (!der_expect(&w, p, se, 0x31, &sis, &sie) || sie != se)
        return NULL;
    if (!der_expect(&w, sis, sie, 0x30, &is, &ie))
        return NULL;
    for (q = ie; q < sie; q = b)
        if (!der_expect(&w, q, sie, 0x30, &a, &b))
            return NULL;
    if (!der_expect(&w, is, ie, 0x02, &a, &p) || !der_tlv(&w, p, ie, &tag, &sid_s, &sid_e))
        return NULL;
    if (tag == 0x30) {
        if (!der_expect(&w, sid_s, sid_e, 0x30, &ns, &ne) || !der_name(&w, ns, ne, &signer_s, &signer_n) ||
            !der_expect(&w, ne, sid_e, 0x02, &sn_s, &sn_e) || sn_e != sid_e || sn_s == sn_e)
            return NULL;
        if (sn_e - sn_s > 1 && ((der[sn_s] == 0 && der[sn_s + 1] < 0x80) || (der[sn_s] == 0xFF && der[sn_s + 1] >= 0x80)))
            return NULL;
        if (der[sn_s] & 0x80)
            return NULL; /* a negative serial: Python takes its absolute value */
        key_s = sn_s;
        key_n = sn_e - sn_s;
        while (key_n && der[key_s] == 0) { /* BN_bn2bin: no leading zero bytes */
            key_s++;
            key_n--;
        }
    } else if (tag != 0x80) {
        return NULL;
    }
    if (!der_expect(&w, sid_e, ie, 0x30, &ds, &de) || !der_expect(&w, ds, de, 0x06, &o_s, &o_e))
        return NULL;
    if (o_e != de) {
        if (!der_tlv(&w, o_e, de, &tag, &a, &b) || tag != 0x05 || b != de || b - o_e != 2)
            return NULL;
    }
    for (k = 0; k < sizeof(digest_names) / sizeof(digest_names[0]); k++)
        if (bytes_eq(der + o_s, o_e - o_s, digest_names[k].oid, digest_names[k].n))
            digest = digest_names[k].name;
    if (digest == NULL)
        return NULL;
    if (!der_tlv(&w, de, ie, &tag, &a, &p))
        return NULL;
    if (tag == 0xA0 && !der_tlv(&w, p, ie, &tag, &a, &p)) /* signedAttrs */
        return NULL;
    if (tag != 0x30 || !der_tlv(&w, p, ie, &tag, &a, &p) || tag != 0x04) /* signatureAlgorithm, signature */
        return NULL;
    if (p != ie && (!der_tlv(&w, p, ie, &tag, &a, &b) || tag != 0xA1 || b != ie))
        return NULL;
    items[0] = PyUnicode_FromString("PKCS#7");
    items[1] = PyUnicode_DecodeUTF8((const char *)der + signer_s, (Py_ssize_t)signer_n, "surrogateescape");
    items[2] = key_id_text(der + key_s, key_n);
    items[3] = PyUnicode_FromString(digest);
    return record(stype, 4, items);
}

/* stype: SignatureFacts (a tuple subclass), or NULL for a tuple */
static PyObject *sig_facts(bp d, size_t size, Src *src, PyTypeObject *stype)
{
    size_t s, sig_len, signer_len, key_id_len;
    bp h;
    PyObject *r;
    if (size < SIG_MAGIC_LEN)
        Py_RETURN_NONE;
    if (!src_need(src, size - (size < SIG_MAGIC_LEN + 12 ? SIG_MAGIC_LEN : SIG_MAGIC_LEN + 12),
                  size < SIG_MAGIC_LEN + 12 ? SIG_MAGIC_LEN : SIG_MAGIC_LEN + 12, 0))
        return declined();
    if (memcmp(d + size - SIG_MAGIC_LEN, SIG_MAGIC, SIG_MAGIC_LEN) != 0)
        Py_RETURN_NONE;
    s = size - SIG_MAGIC_LEN;
    if (s < 12)
        Py_RETURN_NONE;
    s -= 12;
    h = d + s; /* u8 algo, hash, id_type, signer_len, key_id_len, pad[3]; be32 sig_len */
    signer_len = h[3];
    key_id_len = h[4];
    sig_len = rd32(h + 8, 1);
    if (h[0] >= PKEY_ALGO_COUNT || h[1] >= PKEY_HASH_COUNT || h[2] >= PKEY_ID_COUNT || sig_len == 0 ||
        (uint64_t)s < (uint64_t)sig_len + signer_len + key_id_len)
        Py_RETURN_NONE;
    if (h[2] != PKEY_ID_PKCS7)
        return declined(); /* a pre-4.3 signature: read in Python */
    if (!src_need(src, s - sig_len, sig_len, 0))
        return declined();
    r = walk_pkcs7(d + s - sig_len, sig_len, stype);
    if (r == NULL && !PyErr_Occurred())
        return declined();
    return r;
}

static PyObject *elfscan_sig_facts(PyObject *self, PyObject *data)
{
    Py_buffer view;
    PyObject *r;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    r = sig_facts((bp)view.buf, (size_t)view.len, NULL, NULL);
    PyBuffer_Release(&view);
    return r;
}

/* ---------------------------------------------------------------------- */
/* The module                                                               */

static PyObject *elfscan_parse(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "export_type", "import_type", "memo", NULL};
    PyObject *data, *eo = NULL, *io = NULL, *memo = NULL, *result;
    PyTypeObject *etype, *itype;
    Py_buffer view;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOO:parse", kwlist, &data, &eo, &io, &memo))
        return NULL;
    if (record_type(eo, &etype, "export_type") < 0 || record_type(io, &itype, "import_type") < 0)
        return NULL;
    if (memo_arg(&memo) < 0)
        return NULL;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    result = scan((bp)view.buf, (size_t)view.len, etype, itype, memo, NULL);
    PyBuffer_Release(&view);
    return result;
}

#ifdef HAVE_PARTIAL_READ
/* The buffer of parse_file: one anonymous mapping reused from file to file,
 * so that the pages a file's parts are read into are given memory once, not
 * for every file (a fresh mapping per file faulted 37,000 pages in on
 * Debian's amd64 tree and cost more than reading the whole files).  Files
 * larger than ARENA_KEEP get a mapping of their own, unmapped after, so
 * that what the arena holds between files stays within a few MB.  The
 * arena is used by one call at a time (taken and given back with the GIL
 * held; a concurrent call maps its own), and release() gives its memory
 * back. */
#define ARENA_KEEP ((size_t)8 << 20)
static unsigned char *arena;
static size_t arena_size;
static int arena_busy;

static unsigned char *buffer_take(size_t size)
{
    void *map;
    if (!arena_busy && size <= ARENA_KEEP) {
        if (size > arena_size) {
            size_t want = (size_t)1 << 20;
            while (want < size)
                want <<= 1;
            if (arena != NULL)
                munmap(arena, arena_size);
            arena = NULL;
            arena_size = 0;
            map = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (map == MAP_FAILED)
                return NULL;
            arena = map;
            arena_size = want;
        }
        arena_busy = 1;
        return arena;
    }
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return map == MAP_FAILED ? NULL : map;
}

static void buffer_give_back(unsigned char *buf, size_t size)
{
    if (buf == arena)
        arena_busy = 0;
    else
        munmap(buf, size);
}
#endif

#ifdef HAVE_PARTIAL_READ
static void ahead_pool_release(void);
#endif

/* glibc's malloc_trim(0): the free pages of malloc's heaps given back to the system, the
 * middle of a heap included (MADV_DONTNEED); False elsewhere or when nothing was given back. */
static PyObject *elfscan_trim_heap(PyObject *self, PyObject *unused)
{
#ifdef __GLIBC__
    int given;
    Py_BEGIN_ALLOW_THREADS
    given = malloc_trim(0);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(given);
#else
    Py_RETURN_FALSE;
#endif
}

#if defined(__GLIBC__) && defined(MADV_HUGEPAGE)
/* Python's arenas (its small objects' memory) from malloc's heap instead of a mapping each: see
 * huge_heap.  Arenas made before keep the allocator that made them (freed by it, told apart here). */
static PyObjectArenaAllocator arenas_before;
static void **heap_arenas;
static size_t heap_arenas_n, heap_arenas_cap;

static void *heap_arena_alloc(void *ctx, size_t size)
{
    void *p;

    if (heap_arenas_n == heap_arenas_cap) {
        size_t cap = heap_arenas_cap ? 2 * heap_arenas_cap : 64;
        void **grown = realloc(heap_arenas, cap * sizeof(void *));
        if (grown == NULL)
            return arenas_before.alloc(arenas_before.ctx, size);
        heap_arenas = grown;
        heap_arenas_cap = cap;
    }
    p = malloc(size);
    if (p == NULL)
        return arenas_before.alloc(arenas_before.ctx, size);
    heap_arenas[heap_arenas_n++] = p;
    return p;
}

static void heap_arena_free(void *ctx, void *ptr, size_t size)
{
    size_t i;

    for (i = heap_arenas_n; i-- > 0;) {  /* (an arena is freed once empty: rarely) */
        if (heap_arenas[i] == ptr) {
            heap_arenas[i] = heap_arenas[--heap_arenas_n];
            free(ptr);
            return;
        }
    }
    arenas_before.free(arenas_before.ctx, ptr, size);
}
#endif

/* A heap that grows in big steps, advised for transparent huge pages, and Python's arenas taken
 * from it: see moddeps.process.quicker_heap.  glibc only; once a process (later calls give the
 * first one's answer). */
static PyObject *elfscan_huge_heap(PyObject *self, PyObject *args)
{
    Py_ssize_t pad, threshold;
    int objects = 0;

    if (!PyArg_ParseTuple(args, "nn|p:huge_heap", &pad, &threshold, &objects))
        return NULL;
    if (pad <= 0 || threshold <= 0 || pad > INT_MAX / 2 || threshold > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "huge_heap: sizes must be positive and pad at most INT_MAX / 2");
        return NULL;
    }
#if defined(__GLIBC__) && defined(MADV_HUGEPAGE)
    {
        static int done = -1;  /* -1: not tried; else the answer */
        char *before, *after, *start;
        void *grow;
        size_t top, page = (size_t)sysconf(_SC_PAGESIZE);
#if __GLIBC_PREREQ(2, 33)
        struct mallinfo2 mi;
#else
        struct mallinfo mi;
#endif

        if (done >= 0)
            return PyBool_FromLong(done);
        done = 0;
        /* blocks below threshold from the heap, not a mapping each (faulted in again after every
         * free); the heap grown pad beyond what is asked, and trimmed only past two pads free */
        if (!mallopt(M_MMAP_THRESHOLD, (int)threshold) || !mallopt(M_TOP_PAD, (int)pad)
                || !mallopt(M_TRIM_THRESHOLD, (int)(2 * pad)))
            Py_RETURN_FALSE;
#if __GLIBC_PREREQ(2, 33)
        mi = mallinfo2();
#else
        mi = mallinfo();
#endif
        top = (size_t)mi.keepcost;  /* the heap's free top */
        /* a block larger than all the free memory is served by none of it: the heap grows (by
         * pad more), unless the block is past threshold (its own mapping: then nothing is done) */
        if ((size_t)mi.fordblks + page >= (size_t)threshold)
            Py_RETURN_FALSE;
        before = sbrk(0);
        grow = malloc((size_t)mi.fordblks + page);
        after = sbrk(0);
        if (grow == NULL || before == (char *)-1 || after == (char *)-1 || after <= before) {
            free(grow);
            Py_RETURN_FALSE;
        }
        /* the new part and the free top before it, backed by huge pages as they are touched */
        start = (char *)((uintptr_t)(before - top) & ~(uintptr_t)(page - 1));
        if (madvise(start, (size_t)(after - start), MADV_HUGEPAGE) != 0) {
            free(grow);
            Py_RETURN_FALSE;
        }
        free(grow);
        if (objects) {
            PyObjectArenaAllocator ours = {NULL, heap_arena_alloc, heap_arena_free};
            PyObject_GetArenaAllocator(&arenas_before);
            PyObject_SetArenaAllocator(&ours);
        }
        done = 1;
        Py_RETURN_TRUE;
    }
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *elfscan_release(PyObject *self, PyObject *unused)
{
    icache_clear();
#ifdef HAVE_PARTIAL_READ
    ahead_pool_release();
    if (arena != NULL && !arena_busy) {
        munmap(arena, arena_size);
        arena = NULL;
        arena_size = 0;
    }
#endif
    Py_RETURN_NONE;
}

#ifdef HAVE_PARTIAL_READ
/* open(path) for reading without blocking, as moddeps.inputfiles.open_regular; -1 (errno
 * set) on failure, -2 with an exception from a signal handler, -3 when the timer says the
 * module's time ran out */
static int open_nonblocking(const char *path, Timer *timer)
{
    for (;;) {
        int fd, err, r;
        Py_BEGIN_ALLOW_THREADS
        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        err = errno;
        Py_END_ALLOW_THREADS
        if (fd >= 0 || err != EINTR)
            return fd;
        r = timer_signals(timer);
        if (r != 0)
            return r < 0 ? -2 : -3;
    }
}

/* What a file read in part is parsed into, and how. */
typedef struct {
    PyTypeObject *etype, *itype, *stype;
    PyObject *memo;
    unsigned long long max_size;
    int fill;            /* parse_file's fill, or -1 */
    Timer *timer;        /* parse_files' timeout, or NULL */
} Job;

/* scan_fields() and sig_facts() of the file of src (open, its buffer set up; what the
 * parser reads and src does not hold yet is read now): as read_in_part, without its
 * close, the buffer given back, or the flags of src looked at. */
static int parse_src(const Job *job, Src *src, PyObject **fields, PyObject **sig)
{
    int i, rc = scan_fields(src->buf, src->size, job->etype, job->itype, job->memo, src, fields);
    if (rc > 0) {
        PyObject *facts = sig_facts(src->buf, src->size, src, job->stype);
        if (facts == NULL) {
            rc = -1;
        } else if (facts == elfscan_declined || src->raised || src->timed_out) {
            Py_DECREF(facts);
            rc = 0;
        } else {
            *sig = facts;
        }
        if (rc <= 0)
            for (i = 0; i < 8; i++)
                Py_CLEAR(fields[i]);
    }
    return rc;
}

/* parse() and sig_facts() of the module file at `path`, read in part:
 * parse()'s 8 fields into fields[0..7] and sig_facts()'s result into *sig
 * (new references), and 1; 0: declined (with *timed_out set when the
 * module's time ran out); -1: an exception (a signal handler's). */
static int read_in_part(const Job *job, const char *path, PyObject **fields, PyObject **sig, int *timed_out)
{
    Src src;
    struct stat st;
    unsigned char *map;
    int fd, rc;

    *timed_out = 0;
    if (job->timer != NULL && (rc = timer_signals(job->timer)) != 0) {
        if (rc < 0)
            return -1;
        *timed_out = 1;
        return 0;
    }
    fd = open_nonblocking(path, job->timer);
    if (fd == -2)
        return -1;
    if (fd == -3) {
        *timed_out = 1;
        return 0;
    }
    if (fd < 0)
        return 0; /* the caller's full read names the error */
    memset(&src, 0, sizeof(src));
    src.fd = fd;
    src.timer = job->timer;
    /* only a regular file of a size the caller accepts, large enough to hold an ELF header */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 64 ||
        (unsigned long long)st.st_size > job->max_size || (unsigned long long)st.st_size > (size_t)PY_SSIZE_T_MAX) {
        close(fd);
        return 0;
    }
    src.size = (size_t)st.st_size;
    map = buffer_take(src.size);
    if (map == NULL) {
        close(fd);
        return 0;
    }
    src.buf = map;
    if (job->fill >= 0) { /* tests: what was not read from the file shows */
        memset(map, job->fill & 0xFF, src.size);
        src.exact = 1;
    }
    rc = parse_src(job, &src, fields, sig);
    buffer_give_back(map, src.size);
    close(fd);
    if (src.raised) /* a signal handler raised: its exception */
        return -1;
    if (src.timed_out)
        *timed_out = 1;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* parse_files' loader thread (ahead=1)                                     */
/*                                                                          */
/* On a machine with a core to spare, the copies of parse_file's reads (the */
/* kernel's time, half of a plain module's read) are done by a second       */
/* thread: a plain C thread that never touches a Python object and blocks   */
/* every signal.  It opens the run's files one after the other, in order,   */
/* into a ring of AHEAD_SLOTS slots, and reads into each slot's buffer what  */
/* the parser reads (ahead_load: the header, the section table and names,   */
/* the sections of find_sections, the CRC tables, the appended signature).  */
/* The main thread takes the slots in order and parses each as parse_file   */
/* does (parse_src): what the loader did not read is read then, so the      */
/* records are those of a serial read whatever the loader managed.  The     */
/* loader runs at the lowest priority: on a busy machine it gets little     */
/* time, and the main thread reads a file itself, as without the loader,    */
/* when the loader has not come to it yet (or has been on it for            */
/* AHEAD_TAKEOVER_US: preempted).  The                                      */
/* loader only reads: a file it cannot open or take is left for the main    */
/* thread's parse_file path to meet again (read_in_part), so every message  */
/* and decline is the serial one.  The main thread waits for a slot with    */
/* the GIL let go, running the signal handlers every AHEAD_WAIT_MS: the read */
/* timeout gives up the module as the serial reader does, and a loader      */
/* stuck in a read (a file system that does not answer) is left behind:    */
/* the loader and the call share a block freed by the last to let go.  The  */
/* slots' buffers are kept between calls (ahead_pool), as parse_file keeps  */
/* its own.                                                                 */

#include <pthread.h>
#include <signal.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#endif

/* 8 slots: with 16 the loader, far ahead of a first run's main thread (which also hands its
 * records to the scan cache), held up to 5 MB more at the peak (Debian 12 cloud: 33.4-38.9 MB,
 * 33.5 with no loader); with 8, 32.7 median and 36.0 at most over 7 runs, at the same speed */
#define AHEAD_SLOTS 8
/* a loader waiting for a free slot is woken when this many are free (one wake-up a file costs) */
#define AHEAD_WAKE 4
#define AHEAD_WAIT_MS 20
/* the main thread waits this long for a file the loader is reading, then reads it itself (the
 * loader thread may have been preempted by another process: the main thread does not wait for
 * a core to come back) */
#define AHEAD_TAKEOVER_US 500
/* a run shorter than this is read by the main thread alone (a thread costs more than it saves) */
#define AHEAD_MIN 32
/* a slot's buffer is kept for files up to this size (larger ones get a mapping of their own): 16
 * buffers of up to 8 MiB (ARENA_KEEP) kept 11 MB more in memory than the serial read on Debian
 * 12's amd64 tree, of 1 MiB 6.5 MB, with fewer page faults (13,600 -> 12,700: no buffer grown
 * and mapped again); of 256 KiB 1.7 MB, with 16,000 */
#define AHEAD_ARENA_KEEP ((size_t)1 << 20)

enum { SLOT_FREE, SLOT_LOADING, SLOT_LOADED };

typedef struct {
    unsigned char *p;
    size_t size;
} Arena;

typedef struct {
    int state;
    size_t index;        /* the file it holds (LOADING, LOADED) */
    int taken;           /* the file is open, src.buf set up (until the slot is loaded again) */
    int orphan;          /* LOADING: the main thread read the file itself, free the slot when done */
    Src src;
    Arena arena;         /* this slot's buffer for files up to AHEAD_ARENA_KEEP, reused */
} Slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t loaded;   /* a slot was loaded (the main thread waits) */
    pthread_cond_t freed;    /* a slot was given back, or stop (the loader waits) */
    int refs;                /* the loader and the call */
    int stop;
    int loader_waits, main_waits;
    size_t n, next_load;
    size_t stall;            /* tests: the loader waits before this file until stopped (a read that never ends) */
    unsigned long long max_size;
    char **paths;            /* n C strings */
    Slot ring[AHEAD_SLOTS];
} Ahead;

/* the slots' buffers between calls (taken whole by a call, given back by its last user) */
static pthread_mutex_t ahead_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static Arena ahead_pool[AHEAD_SLOTS];

static void ahead_pool_release(void)
{
    int k;
    pthread_mutex_lock(&ahead_pool_mu);
    for (k = 0; k < AHEAD_SLOTS; k++) {
        if (ahead_pool[k].p != NULL)
            munmap(ahead_pool[k].p, ahead_pool[k].size);
        ahead_pool[k].p = NULL;
        ahead_pool[k].size = 0;
    }
    pthread_mutex_unlock(&ahead_pool_mu);
}

/* A slot's file let go: closed, a buffer of its own unmapped. */
static void slot_drop(Slot *sl)
{
    if (!sl->taken)
        return;
    close(sl->src.fd);
    if (sl->src.buf != sl->arena.p)
        munmap(sl->src.buf, sl->src.size);
    sl->taken = 0;
}

static void ahead_unref(Ahead *ah)
{
    int last, k;
    pthread_mutex_lock(&ah->mu);
    last = --ah->refs == 0;
    pthread_mutex_unlock(&ah->mu);
    if (!last)
        return;
    pthread_mutex_lock(&ahead_pool_mu);
    for (k = 0; k < AHEAD_SLOTS; k++) {
        Slot *sl = &ah->ring[k];
        slot_drop(sl);
        if (sl->arena.p != NULL && ahead_pool[k].p == NULL) { /* kept for the next call */
            ahead_pool[k] = sl->arena;
        } else if (sl->arena.p != NULL) {
            munmap(sl->arena.p, sl->arena.size);
        }
    }
    pthread_mutex_unlock(&ahead_pool_mu);
    pthread_mutex_destroy(&ah->mu);
    pthread_cond_destroy(&ah->loaded);
    pthread_cond_destroy(&ah->freed);
    free(ah->paths);
    free(ah);
}

/* The loader's read of the appended signature (sig_facts reads the same, if valid). */
static void ahead_signature(Src *src)
{
    size_t size = src->size, s, sig_len;
    bp h;
    if (size < SIG_MAGIC_LEN + 12 || !src_need(src, size - SIG_MAGIC_LEN - 12, SIG_MAGIC_LEN + 12, 0))
        return;
    if (memcmp(src->buf + size - SIG_MAGIC_LEN, SIG_MAGIC, SIG_MAGIC_LEN) != 0)
        return;
    s = size - SIG_MAGIC_LEN - 12;
    h = src->buf + s;
    sig_len = rd32(h + 8, 1);
    if (sig_len != 0 && (uint64_t)s >= (uint64_t)sig_len + h[3] + h[4])
        (void)src_need(src, s - sig_len, sig_len, 0);
}

/* The loader's read of the CRC tables (__kcrctab*, as build_exports reads them). */
static void ahead_crcs(const Elf *e)
{
    unsigned idx;
    for (idx = 1; idx < e->shnum; idx++) {
        uint32_t name = sh_name(e, idx);
        size_t off, sz;
        if (name >= e->shstr_size || e->shstr_size - name <= 9 || memcmp(e->shstr + name, "__kcrctab", 9) != 0)
            continue;
        if (section_range(e, idx, &off, &sz) && sz > 0 && sz <= 65536 && !src_need(e->src, off, sz, 0))
            return;
    }
}

/* Open file `path` into slot `sl` and read what the parser reads (the loader thread: no GIL,
 * no Python), after letting go of the slot's previous file. */
static void ahead_load(Ahead *ah, Slot *sl, const char *path)
{
    struct stat st;
    Src *src = &sl->src;
    Elf e;
    Loc loc[S_COUNT];
    int fd;
    slot_drop(sl);
    memset(src, 0, sizeof(*src));
    do
        fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return;
    /* read_in_part's checks: a file that fails them is met again there */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 64 ||
        (unsigned long long)st.st_size > ah->max_size || (unsigned long long)st.st_size > (size_t)PY_SSIZE_T_MAX) {
        close(fd);
        return;
    }
    src->size = (size_t)st.st_size;
    if (src->size <= AHEAD_ARENA_KEEP) {
        if (src->size > sl->arena.size) {
            size_t want = (size_t)1 << 20;
            void *map;
            while (want < src->size)
                want <<= 1;
            if (sl->arena.p != NULL)
                munmap(sl->arena.p, sl->arena.size);
            sl->arena.p = NULL;
            sl->arena.size = 0;
            map = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (map != MAP_FAILED) {
                sl->arena.p = map;
                sl->arena.size = want;
            }
        }
        src->buf = sl->arena.p;
    } else {
        void *map = mmap(NULL, src->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        src->buf = map == MAP_FAILED ? NULL : map;
    }
    if (src->buf == NULL) {
        close(fd);
        return;
    }
    src->fd = fd;
    src->nogil = 1;
    if (elf_open(&e, src->buf, src->size, src)) {
        find_sections(&e, loc);
        if (prefetch(&e, loc))
            ahead_crcs(&e);
    }
    ahead_signature(src);
    /* a failed read is met again by the parser (fresh flags, the ranges read kept) */
    src->nogil = 0;
    src->failed = 0;
    sl->taken = 1;
}

static void *ahead_main(void *arg)
{
    Ahead *ah = arg;
#ifdef __linux__
    /* the lowest priority (of this thread alone): it runs on a core no one else wants, and
     * where it would share the main thread's core it gives way (the main thread then loads) */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
#endif
    for (;;) {
        Slot *sl;
        size_t i;
        pthread_mutex_lock(&ah->mu);
        for (;;) { /* the next file no one has taken (the main thread takes some), once its slot is free */
            i = ah->next_load;
            sl = &ah->ring[i % AHEAD_SLOTS];
            if (ah->stop || i >= ah->n || (sl->state == SLOT_FREE && i != ah->stall))
                break;
            ah->loader_waits = 1;
            pthread_cond_wait(&ah->freed, &ah->mu);
        }
        ah->loader_waits = 0;
        if (ah->stop || i >= ah->n) {
            pthread_mutex_unlock(&ah->mu);
            break;
        }
        sl->state = SLOT_LOADING;
        sl->index = i;
        ah->next_load = i + 1;
        pthread_mutex_unlock(&ah->mu);
        ahead_load(ah, sl, ah->paths[i]);
        pthread_mutex_lock(&ah->mu);
        sl->state = sl->orphan ? SLOT_FREE : SLOT_LOADED;
        sl->orphan = 0;
        if (ah->main_waits)
            pthread_cond_signal(&ah->loaded);
        pthread_mutex_unlock(&ah->mu);
    }
    ahead_unref(ah);
    return NULL;
}

/* A loader for the n files at paths (C strings, copied), or NULL (then the caller reads alone). */
static Ahead *ahead_start(char **paths, size_t n, unsigned long long max_size, size_t stall)
{
    Ahead *ah = calloc(1, sizeof(Ahead));
    pthread_t th;
    sigset_t all, was;
    int k, rc;
    if (ah == NULL)
        return NULL;
    if (pthread_mutex_init(&ah->mu, NULL) != 0) {
        free(ah);
        return NULL;
    }
    pthread_cond_init(&ah->loaded, NULL);
    pthread_cond_init(&ah->freed, NULL);
    ah->refs = 2;
    ah->n = n;
    ah->paths = paths;
    ah->max_size = max_size;
    ah->stall = stall;
    pthread_mutex_lock(&ahead_pool_mu);
    for (k = 0; k < AHEAD_SLOTS; k++) {
        ah->ring[k].arena = ahead_pool[k];
        ahead_pool[k].p = NULL;
        ahead_pool[k].size = 0;
    }
    pthread_mutex_unlock(&ahead_pool_mu);
    /* the thread starts with every signal blocked: they are the main thread's */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &was);
    rc = pthread_create(&th, NULL, ahead_main, ah);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    if (rc != 0) {
        ah->paths = NULL; /* the caller's */
        ah->refs = 1;
        ahead_unref(ah);
        return NULL;
    }
    pthread_detach(th);
    return ah;
}

/* The call lets go of its loader: it stops after the file it is reading. */
static void ahead_stop(Ahead *ah)
{
    pthread_mutex_lock(&ah->mu);
    ah->stop = 1;
    pthread_cond_signal(&ah->freed);
    pthread_mutex_unlock(&ah->mu);
    ahead_unref(ah);
}

/* Wait (the GIL let go) for file i's slot: the slot (*rc 3: taken from the loader, which had
 * not come to it: the caller reads the file itself, then gives the slot back), or NULL with
 * *rc -1 (an exception from a signal handler), 0 with *timed_out set (the module's time ran
 * out meanwhile), or 2: the loader is slow to read it, the caller reads it itself. */
static Slot *ahead_take(Ahead *ah, size_t i, Timer *timer, int *rc, int *timed_out)
{
    Slot *sl = &ah->ring[i % AHEAD_SLOTS];
    for (;;) {
        int ready;
        pthread_mutex_lock(&ah->mu);
        ready = sl->state == SLOT_LOADED && sl->index == i;
        pthread_mutex_unlock(&ah->mu);
        if (ready)
            return sl;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&ah->mu);
        /* the loader has not come to it (it runs only where a core is free): read it here */
        if (ah->next_load == i && i != ah->stall && sl->state == SLOT_FREE) {
            ah->next_load = i + 1;
            sl->state = SLOT_LOADING;
            sl->index = i;
            pthread_mutex_unlock(&ah->mu);
            slot_drop(sl);
            Py_BLOCK_THREADS
            *rc = 3;
            return sl;
        }
        if (!(sl->state == SLOT_LOADED && sl->index == i)) {
            struct timespec until;
            int busy = sl->state == SLOT_LOADING && sl->index == i;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += busy ? AHEAD_TAKEOVER_US * 1000L : AHEAD_WAIT_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            ah->main_waits = 1;
            pthread_cond_timedwait(&ah->loaded, &ah->mu, &until);
            ah->main_waits = 0;
            if (busy && sl->state == SLOT_LOADING && sl->index == i)
                sl->orphan = 1;
        }
        ready = sl->state == SLOT_LOADED && sl->index == i ? 1 : sl->orphan && sl->index == i ? 2 : 0;
        pthread_mutex_unlock(&ah->mu);
        Py_END_ALLOW_THREADS
        if (ready == 1)
            return sl;
        if (ready == 2) {
            *rc = 2;
            return NULL;
        }
        *rc = timer_signals(timer);
        if (*rc < 0)
            return NULL;
        if (*rc > 0) {
            *rc = 0;
            *timed_out = 1;
            return NULL;
        }
    }
}

/* File i's slot given back to the loader. */
static void ahead_give_back(Ahead *ah, Slot *sl)
{
    pthread_mutex_lock(&ah->mu);
    sl->state = SLOT_FREE;
    /* the slots of files up to sl->index are free, of those after it up to next_load taken */
    if (ah->loader_waits && sl->index + 1 + AHEAD_SLOTS >= ah->next_load + AHEAD_WAKE)
        pthread_cond_signal(&ah->freed);
    pthread_mutex_unlock(&ah->mu);
}
#endif

static PyObject *elfscan_parse_file(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", "max_size", "export_type", "import_type", "memo", "fill", NULL};
    PyObject *path = NULL, *eo = NULL, *io = NULL, *memo = NULL, *result = NULL;
    PyTypeObject *etype, *itype;
    unsigned long long max_size;
    int fill = -1;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&K|OOO$i:parse_file", kwlist, PyUnicode_FSConverter, &path,
                                     &max_size, &eo, &io, &memo, &fill))
        return NULL;
    if (record_type(eo, &etype, "export_type") < 0 || record_type(io, &itype, "import_type") < 0)
        goto out;
    if (memo_arg(&memo) < 0)
        goto out;
#ifdef HAVE_PARTIAL_READ
    {
        Job job = {etype, itype, NULL, memo, max_size, fill, NULL};
        PyObject *items[9];
        int timed_out, rc = read_in_part(&job, PyBytes_AS_STRING(path), items, items + 8, &timed_out);
        if (rc > 0)
            result = record(NULL, 9, items);
        else if (rc == 0)
            result = declined();
    }
#else
    result = declined();
#endif
out:
    Py_DECREF(path);
    return result;
}

static PyObject *str_dash, *str_underscore, *str_ko;

/* moddeps.model.modname_from_path(shown): the base name up to its first ".", "-" made "_" */
static PyObject *modname_of(PyObject *shown)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(shown), slash, dot, dash;
    PyObject *base, *name;
    slash = PyUnicode_FindChar(shown, '/', 0, n, -1);
    if (slash == -2)
        return NULL;
    slash = slash < 0 ? 0 : slash + 1;
    dot = PyUnicode_FindChar(shown, '.', slash, n, 1);
    if (dot == -2)
        return NULL;
    base = PyUnicode_Substring(shown, slash, dot < 0 ? n : dot);
    if (base == NULL)
        return NULL;
    dash = PyUnicode_FindChar(base, '-', 0, PyUnicode_GET_LENGTH(base), 1);
    if (dash == -1)
        return base;
    name = dash < 0 ? NULL : PyUnicode_Replace(base, str_dash, str_underscore, -1);
    Py_DECREF(base);
    return name;
}

#ifdef HAVE_PARTIAL_READ
/* How many of seq[start:stop] from start the loader can read: paths of str ending in ".ko". */
static size_t ahead_paths(PyObject *seq, Py_ssize_t start, Py_ssize_t stop)
{
    Py_ssize_t i, size = PySequence_Fast_GET_SIZE(seq);
    for (i = start; i < stop && i < size; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
            PyUnicode_Tailmatch(PyTuple_GET_ITEM(item, 0), str_ko, 0, PY_SSIZE_T_MAX, 1) != 1)
            break;
    }
    PyErr_Clear();
    return (size_t)(i - start);
}

/* The file system names of the paths of seq[start:start + n], in one malloc'd block; NULL with an
 * exception.  A name that does not encode, or holds a NUL, is given as "" (the loader cannot open
 * it; the main thread meets it as it would without the loader). */
static char **ahead_copy_paths(PyObject *seq, Py_ssize_t start, size_t n)
{
    size_t k, total = n * sizeof(char *), at;
    PyObject **enc = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    char **paths = NULL;
    if (enc == NULL)
        return (char **)PyErr_NoMemory();
    for (k = 0; k < n; k++) {
        PyObject *path = PyTuple_GET_ITEM(PySequence_Fast_GET_ITEM(seq, start + (Py_ssize_t)k), 0);
        enc[k] = PyUnicode_EncodeFSDefault(path);
        if (enc[k] == NULL)
            PyErr_Clear();
        total += (enc[k] != NULL ? (size_t)PyBytes_GET_SIZE(enc[k]) : 0) + 1;
    }
    paths = malloc(total);
    if (paths == NULL) {
        PyErr_NoMemory();
    } else {
        at = n * sizeof(char *);
        for (k = 0; k < n; k++) {
            char *to = (char *)paths + at;
            size_t len = 0;
            if (enc[k] != NULL && (size_t)PyBytes_GET_SIZE(enc[k]) == strlen(PyBytes_AS_STRING(enc[k])))
                len = (size_t)PyBytes_GET_SIZE(enc[k]);
            if (len)
                memcpy(to, PyBytes_AS_STRING(enc[k]), len);
            to[len] = 0;
            paths[k] = to;
            at += (enc[k] != NULL ? (size_t)PyBytes_GET_SIZE(enc[k]) : 0) + 1;
        }
    }
    for (k = 0; k < n; k++)
        Py_XDECREF(enc[k]);
    PyMem_Free(enc);
    return paths;
}

/* read_in_part of file k of the loader's run (at `path`), from its slot: parse()'s 8 fields
 * into vals[M_EXPORTS..] and the signature into vals[M_SIGNATURE]; as read_in_part returns. */
static int ahead_parse(Ahead *ah, size_t k, const Job *job, const char *path, PyObject **vals, int *timed_out)
{
    Slot *sl;
    int rc = 0;
    *timed_out = 0;
    if (job->timer != NULL && (rc = timer_signals(job->timer)) != 0) { /* as read_in_part */
        if (rc < 0)
            return -1;
        *timed_out = 1;
        return 0;
    }
    rc = 0;
    sl = ahead_take(ah, k, job->timer, &rc, timed_out);
    if (sl == NULL && rc == 2) /* the loader is late with it */
        return read_in_part(job, path, vals + M_EXPORTS, vals + M_SIGNATURE, timed_out);
    if (rc == 3) { /* the loader had not come to it */
        rc = read_in_part(job, path, vals + M_EXPORTS, vals + M_SIGNATURE, timed_out);
        ahead_give_back(ah, sl);
        return rc;
    }
    if (sl == NULL)
        return rc;
    if (!sl->taken) { /* the loader could not: met again here, as without it */
        ahead_give_back(ah, sl);
        return read_in_part(job, path, vals + M_EXPORTS, vals + M_SIGNATURE, timed_out);
    }
    sl->src.timer = job->timer;
    rc = parse_src(job, &sl->src, vals + M_EXPORTS, vals + M_SIGNATURE);
    if (sl->src.raised)
        rc = -1;
    else if (sl->src.timed_out)
        *timed_out = 1;
    ahead_give_back(ah, sl);
    return rc;
}
#endif

static PyObject *elfscan_parse_files(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"items", "start", "stop", "max_size", "module_type", "export_type", "import_type",
                             "signature_type", "memo", "timeout", "alarm", "stall", "ahead", "packed", NULL};
    PyObject *items, *mo, *eo, *io, *so, *memo, *alarm = Py_None, *seq = NULL, *made = NULL, *result = NULL;
    PyObject *packed = Py_None;
    PyObject *descr[M_FIELDS];
    PyTypeObject *etype, *itype, *stype;
    Py_ssize_t start, stop, stall = -1, i;
    unsigned long long max_size;
    double timeout = 0.0;
    int i_f, ahead = 0;

    for (i_f = 0; i_f < M_FIELDS; i_f++)
        descr[i_f] = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnKOOOOO|dO$npO:parse_files", kwlist, &items, &start, &stop,
                                     &max_size, &mo, &eo, &io, &so, &memo, &timeout, &alarm, &stall, &ahead,
                                     &packed))
        return NULL;
    if (packed != Py_None && !PyList_CheckExact(packed)) {
        PyErr_SetString(PyExc_TypeError, "packed must be a list or None");
        return NULL;
    }
    if (record_type(eo, &etype, "export_type") < 0 || record_type(io, &itype, "import_type") < 0 ||
        record_type(so, &stype, "signature_type") < 0)
        return NULL;
    if (memo_arg(&memo) < 0)
        return NULL;
    if (!(timeout >= 0.0 && timeout <= 1e9)) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a number of seconds from 0 to 1e9");
        return NULL;
    }
    if (timeout > 0 && !PyExceptionClass_Check(alarm)) {
        PyErr_SetString(PyExc_TypeError, "alarm must be an exception class when there is a timeout");
        return NULL;
    }
    if (start < 0 || stop < start) {
        PyErr_SetString(PyExc_ValueError, "parse_files needs 0 <= start <= stop");
        return NULL;
    }
    if (elfscan_module_type(mo, descr) < 0)
        return NULL;
    seq = PySequence_Fast(items, "items must be a sequence of (path, shown) pairs");
    if (seq == NULL)
        goto done;
    made = PyList_New(0);
    if (made == NULL)
        goto done;
#ifdef HAVE_PARTIAL_READ
    {
        Timer timer = {timeout, alarm, 0.0, 0.0, 0.0};
        Job job = {etype, itype, stype, memo, max_size, -1, timeout > 0 ? &timer : NULL};
        PyObject *item = NULL, *fspath = NULL, *vals[M_FIELDS], *m;
        int armed = 0, timed_out = 0, rc = 0;
        double started = 0.0;
        Ahead *ah = NULL;
        size_t ah_n = 0;

        if (ahead && (ah_n = ahead_paths(seq, start, stop)) >= AHEAD_MIN) {
            char **paths = ahead_copy_paths(seq, start, ah_n);
            if (paths == NULL) {
                rc = -1;
                goto finish;
            }
            /* stall (tests): the loader stalls there, in a read that never ends */
            ah = ahead_start(paths, ah_n, max_size,
                             stall >= start && timeout > 0 ? (size_t)(stall - start) : (size_t)-1);
            if (ah == NULL)
                free(paths);
        }

        for (i = start; i < stop && i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *path, *shown;
            Py_CLEAR(item);
            Py_CLEAR(fspath);
            item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
                !PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
                PyErr_SetString(PyExc_TypeError, "items must be (path, shown) pairs of str");
                rc = -1;
                break;
            }
            path = PyTuple_GET_ITEM(item, 0);
            shown = PyTuple_GET_ITEM(item, 1);
            started = timer.start = monotonic();
            timer.deadline = started + timeout;
            rc = PyUnicode_Tailmatch(path, str_ko, 0, PY_SSIZE_T_MAX, 1);
            if (rc <= 0) /* -1: error; 0: not a plain file's name */
                break;
            fspath = PyUnicode_EncodeFSDefault(path);
            if (fspath == NULL) {
                rc = -1;
                break;
            }
            if ((size_t)PyBytes_GET_SIZE(fspath) != strlen(PyBytes_AS_STRING(fspath))) {
                rc = 0; /* an embedded NUL: the caller's reader raises */
                break;
            }
            if (timeout > 0 && !armed) { /* at this module's deadline, then every `timeout` */
                if (timer_set(timer.deadline - monotonic(), timeout) < 0) {
                    rc = -1;
                    break;
                }
                armed = 1;
            }
            if (i == stall && timeout > 0 && ah == NULL) { /* tests: a file system that does not answer */
                for (;;) {
                    Py_BEGIN_ALLOW_THREADS
                    pause();
                    Py_END_ALLOW_THREADS
                    rc = timer_signals(&timer);
                    if (rc != 0)
                        break;
                }
                if (rc < 0)
                    break;
                timed_out = 1;
                rc = 0;
                break;
            }
            memset(vals, 0, sizeof(vals));
            if (ah != NULL && (size_t)(i - start) < ah_n)
                rc = ahead_parse(ah, (size_t)(i - start), &job, PyBytes_AS_STRING(fspath), vals, &timed_out);
            else
                rc = read_in_part(&job, PyBytes_AS_STRING(fspath), vals + M_EXPORTS, vals + M_SIGNATURE,
                                  &timed_out);
            if (rc <= 0)
                break;
            /* an expiry while parsing: the module took longer than its time (and, timer or
             * not, another handler's exception comes out here, not after the whole run) */
            rc = timer_signals(job.timer);
            if (rc != 0) {
                for (i_f = 0; i_f < M_FIELDS; i_f++)
                    Py_CLEAR(vals[i_f]);
                if (rc < 0)
                    break;
                timed_out = 1;
                rc = 0;
                break;
            }
            vals[M_NAME] = modname_of(shown);
            vals[M_PATH] = Py_NewRef(shown);
            vals[M_COMPRESSION] = new_none();
            vals[M_ERROR] = new_none();
            vals[M_KMOD_ERROR] = new_none();
            m = elfscan_module_new((PyTypeObject *)mo, descr, vals);
            if (m == NULL || PyList_Append(made, m) < 0) {
                Py_XDECREF(m);
                rc = -1;
                break;
            }
            if (packed != Py_None) {
                /* its scan-cache record, made while its objects are still in the CPU's caches (a
                 * first run: pack of 4,022 modules ~10 ms here, ~15 ms once all are read);
                 * None where pack refuses it (a value the format cannot hold: not cached) */
                PyObject *rec = elfscan_pack_module(m);
                if (rec == NULL && (PyErr_ExceptionMatches(PyExc_TypeError) ||
                                    PyErr_ExceptionMatches(PyExc_ValueError))) {
                    PyErr_Clear();
                    rec = Py_NewRef(Py_None);
                }
                if (rec == NULL || PyList_Append(packed, rec) < 0) {
                    Py_XDECREF(rec);
                    Py_DECREF(m);
                    rc = -1;
                    break;
                }
                Py_DECREF(rec);
            }
            Py_DECREF(m);
            rc = 1;
        }
        Py_CLEAR(item);
        Py_CLEAR(fspath);
        if (ah != NULL)
            ahead_stop(ah);
    finish:
        if (armed) { /* cleared, and an expiry not taken yet taken now */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            if (timer_set(0, 0) < 0 || PyErr_CheckSignals() < 0) {
                if (type == NULL && !PyErr_ExceptionMatches(alarm)) {
                    rc = -1;
                    PyErr_Fetch(&type, &value, &tb);
                }
                PyErr_Clear();
            }
            PyErr_Restore(type, value, tb);
        }
        if (rc < 0)
            goto done;
        if (rc > 0 || i >= stop || i >= PySequence_Fast_GET_SIZE(seq))
            result = Py_BuildValue("(OOO)", made, Py_None, Py_None);
        else if (timed_out)
            result = Py_BuildValue("(Odd)", made, started, timer.elapsed);
        else
            result = Py_BuildValue("(OdO)", made, started, Py_None);
    }
#else
    result = Py_BuildValue("(OOO)", made, Py_None, Py_None); /* none read here */
#endif
done:
    Py_XDECREF(seq);
    Py_XDECREF(made);
    for (i_f = 0; i_f < M_FIELDS; i_f++)
        Py_XDECREF(descr[i_f]);
    return result;
}

PyDoc_STRVAR(parse_files_doc,
"parse_files(items, start, stop, max_size, module_type, export_type, import_type, signature_type, memo,\n"
"            timeout=0.0, alarm=None, *, stall=-1, ahead=False, packed=None)\n"
"--\n"
"\n"
"The Modules of items[start:stop] ((path, shown) pairs of str), each file read\n"
"in part as parse_file reads it, made as moddeps.read.elfreader.parse_module\n"
"makes them from a PlainFile (instances of module_type, made without calling\n"
"__init__; signature facts as signature_type), until one is not read here.\n"
"\n"
"Returns (modules, started, elapsed): modules made for items[start:start + k];\n"
"when k < stop - start, items[start + k] was not read: its path does not end in\n"
"\".ko\" or parse_file would decline it (elapsed None; the caller reads it), or\n"
"it ran out of time (elapsed: the seconds it took); started is when its read\n"
"started (on time.monotonic's clock; None where files are not read in part).\n"
"Else started and elapsed are None.\n"
"\n"
"timeout > 0: each file may take that many seconds from its start, enforced by\n"
"the SIGALRM interval timer, which this sets (once a call, not once a file) and\n"
"clears before it returns; the caller holds a handler that raises alarm, in\n"
"the main thread.  Raises what any other signal handler raises.\n"
"\n"
"stall (tests): the read of items[stall] waits, as on a file system that does\n"
"not answer, until its time runs out (only with a timeout; with ahead, the\n"
"loader thread waits there until the call returns).\n"
"\n"
"ahead: a loader thread (no Python, signals blocked, lowest priority) opens the\n"
"files and reads their parts ahead while this thread parses; this thread reads\n"
"a file itself when the loader has not come to it.  Same results; for runs of\n"
"at least 32 .ko files.\n"
"\n"
"packed: a list, given each module's pack() record as the module is made (None\n"
"where pack raises TypeError or ValueError).");

PyDoc_STRVAR(parse_file_doc,
"parse_file(path, max_size, export_type=None, import_type=None, memo=None)\n"
"--\n"
"\n"
"parse() and sig_facts() of a plain module file, reading only the parts of\n"
"the file they read (pread into a buffer, never a mapping of the file).\n"
"\n"
"Returns parse()'s tuple with sig_facts()'s result as a ninth item, or\n"
"DECLINED (moddeps.native) when either declines, or when the file cannot be\n"
"opened, is not a regular file, is larger than max_size, or a read fails or\n"
"falls short: the caller then reads the whole file and decides.  Raises what\n"
"a signal handler raises during a read (the read timeout's SIGALRM).\n"
"\n"
"fill (tests): set every byte of the buffer to it first, and read exactly the\n"
"ranges the parser asks for, so that a byte it reads without having read it\n"
"from the file changes the result.");

PyDoc_STRVAR(trim_heap_doc,
"trim_heap()\n"
"--\n"
"\n"
"glibc's malloc_trim(0): the free pages of malloc's heaps back to the system;\n"
"whether any were (False without glibc).  For a process moddeps owns (the CLI).");

PyDoc_STRVAR(huge_heap_doc,
"huge_heap(pad, threshold, objects=False)\n"
"--\n"
"\n"
"glibc's malloc told to serve blocks below threshold bytes from its heap, to grow\n"
"it pad bytes beyond what is asked and to keep twice that when blocks are freed;\n"
"the heap grown now and its new part advised for transparent huge pages\n"
"(MADV_HUGEPAGE); with objects, Python's arenas taken from malloc from now on.\n"
"Once a process (later calls answer as the first).  False: not done (without\n"
"glibc or THP; malloc's thresholds may be set).  For a process moddeps owns (the CLI).");

PyDoc_STRVAR(release_doc,
"release()\n"
"--\n"
"\n"
"Give back what parse and parse_file keep from call to call: parse_file's\n"
"buffer, and the table that finds the memo's import records (with its\n"
"reference to the memo).");

PyDoc_STRVAR(parse_doc,
"parse(data, export_type=None, import_type=None, memo=None)\n"
"--\n"
"\n"
"Decode an in-memory kernel module (any bytes-like object).\n"
"\n"
"Returns (exports, imports, modinfo, has_init, has_exit, machine, elf_class,\n"
"byte_order) as moddeps.model.Module.to_wire() holds them, or DECLINED\n"
"(moddeps.native) when the input is not a plain, well-formed module (the\n"
"pure-Python reader then decides).  With export_type / import_type (tuple subclasses) the export and\n"
"import records are instances of those types instead of plain tuples.  With\n"
"memo (a dict shared by the modules of one scan) equal import records are one\n"
"object: the first one made, kept as memo[record].");

PyDoc_STRVAR(sig_facts_doc,
"sig_facts(data)\n"
"--\n"
"\n"
"The signature facts of an in-memory (decompressed) module, as\n"
"moddeps.signature.scan_facts gives them: None without a valid appended\n"
"signature, (id_type, signer, key_id, hash_algo) for a PKCS#7 signature of\n"
"the usual shape, DECLINED (moddeps.native) when the Python code must decide.");

static PyMethodDef elfscan_methods[] = {
    {"parse", (PyCFunction)(void (*)(void))elfscan_parse, METH_VARARGS | METH_KEYWORDS, parse_doc},
    {"parse_file", (PyCFunction)(void (*)(void))elfscan_parse_file, METH_VARARGS | METH_KEYWORDS, parse_file_doc},
    {"parse_files", (PyCFunction)(void (*)(void))elfscan_parse_files, METH_VARARGS | METH_KEYWORDS,
     parse_files_doc},
    {"release", elfscan_release, METH_NOARGS, release_doc},
    {"trim_heap", elfscan_trim_heap, METH_NOARGS, trim_heap_doc},
    {"huge_heap", elfscan_huge_heap, METH_VARARGS, huge_heap_doc},
    {"sig_facts", (PyCFunction)elfscan_sig_facts, METH_O, sig_facts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef elfscan_module = {
    PyModuleDef_HEAD_INIT,
    "moddeps._elfscan",
    "The common case of moddeps.read.elfreader.parse_module in C (see parse), and the scan cache's record codec.",
    -1,
    elfscan_methods,
    NULL, NULL, NULL, NULL,
};

PyObject *elfscan_declined;

PyMODINIT_FUNC PyInit__elfscan(void)
{
    PyObject *m;
    if (str_little == NULL) {
        str_little = PyUnicode_InternFromString("little");
        str_big = PyUnicode_InternFromString("big");
        str_dash = PyUnicode_InternFromString("-");
        str_underscore = PyUnicode_InternFromString("_");
        str_ko = PyUnicode_InternFromString(".ko");
        if (str_little == NULL || str_big == NULL || str_dash == NULL || str_underscore == NULL || str_ko == NULL)
            return NULL;
    }
    if (elfscan_codec_init() < 0)
        return NULL;
    m = PyModule_Create(&elfscan_module);
    if (m != NULL && (PyModule_AddFunctions(m, elfscan_codec_methods) < 0 ||
                      PyModule_AddFunctions(m, elfscan_walk_methods) < 0 || native_bind(m, &elfscan_declined) < 0))
        Py_CLEAR(m);
    return m;
}
