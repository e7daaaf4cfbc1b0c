/*
 * moddeps._elfscan.walk: the common case of moddeps.read.walk's walk of a
 * module directory (_walk_exact, the Python twin and the reference), in C;
 * the identities of many files at once (elfscan_identities: the scan cache's keys) and
 * stat_changed, which of many files no longer have the identity a stamp holds; their
 * system calls run on two cores.
 *
 * kmod's order (tools/depmod.c:depmod_modules_search_dir@v34.2): entries in raw
 * readdir order, a subdirectory descended as soon as it is met, the skipped
 * names ignored at every depth, a module file recognised by its name alone.
 * Only what needs no decision of the twin's is done here: every entry must be
 * a directory or a regular file by its d_type.  A symlink, an entry of unknown
 * or another type, a directory that cannot be listed, a loop, a module path
 * that modules.dep cannot hold: DECLINED, and the twin walks that directory
 * tree again from its top (nothing of this walk is kept), saying what it finds.
 */

#include "_elfscan.h"

#ifdef __linux__
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deeper than this: left to the twin (it has no limit; a real tree is < 10 deep). */
#define WALK_MAX_DEPTH 64

typedef struct {
    char *name;
    size_t len;
    unsigned char type;
} WEnt;

typedef struct {
    PyObject *dirs;  /* [(path, (size, mtime_ns, ctime_ns, inode, device))], or NULL: not recorded */
    PyObject *files; /* [(modname, path, relpath or None)] */
    PyObject *skip;  /* tuple of bytes: names never entered nor registered */
    int declined;
    dev_t dev[WALK_MAX_DEPTH];
    ino_t ino[WALK_MAX_DEPTH];
    char *buf; /* the path being walked (the top, "/", the relpath from rel_at) */
    size_t cap;
    size_t rel_at; /* where the relpath starts in buf, or (size_t)-1: no relpath (an external directory) */
} Walk;

static int walk_grow(Walk *w, size_t need)
{
    if (need <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need)
        cap *= 2;
    char *b = PyMem_Realloc(w->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

static int skipped(Walk *w, const char *name, size_t len)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(w->skip);
    for (i = 0; i < n; i++) {
        PyObject *s = PyTuple_GET_ITEM(w->skip, i);
        if ((size_t)PyBytes_GET_SIZE(s) == len && memcmp(PyBytes_AS_STRING(s), name, len) == 0)
            return 1;
    }
    return 0;
}

/* moddeps.kmodnames.MODULE_SUFFIXES, and moddeps.read.walk.is_module_filename's rule:
 * a name longer than the suffix it ends in. */
static int module_name(const char *name, size_t len)
{
    static const char *const suffixes[] = {".ko", ".ko.gz", ".ko.xz", ".ko.zst"};
    size_t i;
    for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && memcmp(name + len - n, suffixes[i], n) == 0)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Many stats at once                                                       */

typedef struct {
    const char *const *paths;
    struct stat *st;
    unsigned char *ok;
    size_t from, to;
    int follow;
} StatRun;

static void stat_run(StatRun *r)
{
    size_t i;
    for (i = r->from; i < r->to; i++)
        r->ok[i] = (r->follow ? stat(r->paths[i], &r->st[i]) : lstat(r->paths[i], &r->st[i])) == 0;
}

static void *stat_thread(void *arg)
{
    stat_run((StatRun *)arg);
    return NULL;
}

/* Below this many paths one thread does them all (a thread costs ~50 us). */
#define STAT_SPLIT 512

/* stat (follow) or lstat each of paths[0:n] into st[i], ok[i] = whether it succeeded; called
 * without the GIL.  With a second core in the process's affinity, a thread of its own (every
 * signal blocked: they are the main thread's) takes the second half: a stat is ~3.5 us of
 * system call here, 4,022 of them 14 ms. */
static void elfscan_stat_all(const char *const *paths, size_t n, struct stat *st, unsigned char *ok, int follow)
{
    StatRun first = {paths, st, ok, 0, n, follow}, second = first;
    cpu_set_t cpus;
    pthread_t th;
    sigset_t all, was;
    int rc = -1;
    if (n >= STAT_SPLIT && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1) {
        first.to = second.from = n / 2;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &was);
        rc = pthread_create(&th, NULL, stat_thread, &second);
        pthread_sigmask(SIG_SETMASK, &was, NULL);
        if (rc != 0)
            first.to = n;
    }
    stat_run(&first);
    if (rc == 0)
        pthread_join(th, NULL);
}

/* The file system encodings of paths (a sequence of str) into *enc (a tuple of bytes, new)
 * and their char pointers into *ptrs (PyMem); 1, 0 when one is not a str or holds a NUL
 * (the twin's: os.stat raises), -1 with an exception. */
static int elfscan_fs_paths(PyObject *seq, PyObject **enc, const char ***ptrs)
{
    Py_ssize_t i, n = PyTuple_GET_SIZE(seq);
    *enc = PyTuple_New(n);
    *ptrs = PyMem_Malloc(n ? (size_t)n * sizeof(char *) : 1);
    if (*enc == NULL || *ptrs == NULL) {
        Py_CLEAR(*enc);
        PyMem_Free(*ptrs);
        *ptrs = NULL;
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(seq, i), *b;
        if (!PyUnicode_Check(p))
            goto declined;
        b = PyUnicode_EncodeFSDefault(p);
        if (b == NULL) {
            Py_CLEAR(*enc);
            PyMem_Free(*ptrs);
            *ptrs = NULL;
            return -1;
        }
        PyTuple_SET_ITEM(*enc, i, b);
        if (strlen(PyBytes_AS_STRING(b)) != (size_t)PyBytes_GET_SIZE(b))
            goto declined;
        (*ptrs)[i] = PyBytes_AS_STRING(b);
    }
    return 1;
declined:
    Py_CLEAR(*enc);
    PyMem_Free(*ptrs);
    *ptrs = NULL;
    return 0;
}

/* The five numbers of st's identity (moddeps.read.fileid.identity) in now; 0, or -1 when a time
 * does not fit 64 bits of nanoseconds. */
static int identity_numbers(const struct stat *st, long long now[5])
{
    long long sec_m = (long long)st->st_mtim.tv_sec, sec_c = (long long)st->st_ctim.tv_sec;
    if (sec_m > LLONG_MAX / 1000000000LL - 1 || sec_m < LLONG_MIN / 1000000000LL + 1 ||
        sec_c > LLONG_MAX / 1000000000LL - 1 || sec_c < LLONG_MIN / 1000000000LL + 1)
        return -1;
    now[0] = (long long)st->st_size;
    now[1] = sec_m * 1000000000LL + (long long)st->st_mtim.tv_nsec;
    now[2] = sec_c * 1000000000LL + (long long)st->st_ctim.tv_nsec;
    /* as the signed 64-bit number of their bits (moddeps.read.fileid.identity) */
    now[3] = (long long)(uint64_t)st->st_ino;
    now[4] = (long long)(uint64_t)st->st_dev;
    return 0;
}

static PyObject *elfscan_identity(const struct stat *st)
{
    long long now[5];
    PyObject *items[5];
    int k;
    if (identity_numbers(st, now) < 0)
        return declined();
    for (k = 0; k < 5; k++)
        items[k] = PyLong_FromLongLong(now[k]);
    return record(NULL, 5, items);
}

/* Walk the directory whose path is w->buf[:len], opened relative to the directory `at`
 * (its last name: the path walk of a full path costs ~3 us a call here); 0 (w->declined
 * may be set), -1 with an exception. */
static int walk_dir(Walk *w, int at, size_t len, size_t name_at, int depth)
{
    struct stat st;
    DIR *d = NULL;
    struct dirent *e;
    WEnt *ents = NULL;
    size_t n = 0, cap = 0, i;
    int rc = -1, k, fd;

    if (depth >= WALK_MAX_DEPTH) {
        w->declined = 1;
        return 0;
    }
    w->buf[len] = '\0';
    /* its identity from the open directory, before it is listed (the twin: os.stat, then scandir) */
    fd = openat(at, w->buf + name_at, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        w->declined = 1;
        return 0;
    }
    if (fstat(fd, &st) != 0 || (d = fdopendir(fd)) == NULL) {
        close(fd);
        w->declined = 1;
        return 0;
    }
    for (k = 0; k < depth; k++)
        if (w->dev[k] == st.st_dev && w->ino[k] == st.st_ino) {
            w->declined = 1; /* a directory that contains itself: the twin says so */
            closedir(d);
            return 0;
        }
    w->dev[depth] = st.st_dev;
    w->ino[depth] = st.st_ino;
    if (w->dirs != NULL) {
        PyObject *ident = elfscan_identity(&st), *path, *pair;
        if (ident == NULL)
            goto done;
        if (ident == elfscan_declined) {
            Py_DECREF(ident);
            w->declined = 1;
            rc = 0;
            goto done;
        }
        path = PyUnicode_DecodeFSDefaultAndSize(w->buf, (Py_ssize_t)len);
        pair = path ? PyTuple_Pack(2, path, ident) : NULL;
        Py_XDECREF(path);
        Py_DECREF(ident);
        if (pair == NULL || PyList_Append(w->dirs, pair) < 0) {
            Py_XDECREF(pair);
            goto done;
        }
        Py_DECREF(pair);
    }
    /* the whole listing first (as the twin's list(scandir)); the directory stays open for its subdirectories */
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                w->declined = 1;
            break;
        }
        size_t nl = strlen(e->d_name);
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            WEnt *g = PyMem_Realloc(ents, nc * sizeof(WEnt));
            if (g == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            ents = g;
            cap = nc;
        }
        ents[n].name = PyMem_Malloc(nl + 1);
        if (ents[n].name == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(ents[n].name, e->d_name, nl + 1);
        ents[n].len = nl;
        ents[n].type = e->d_type;
        n++;
    }
    for (i = 0; i < n && !w->declined; i++) {
        const char *name = ents[i].name;
        size_t nl = ents[i].len, end = len + 1 + nl;
        if (skipped(w, name, nl))
            continue;
        if (ents[i].type == DT_DIR) {
            if (walk_grow(w, end + 1) < 0)
                goto done;
            w->buf[len] = '/';
            memcpy(w->buf + len + 1, name, nl);
            if (walk_dir(w, dirfd(d), end, len + 1, depth + 1) < 0)
                goto done;
            continue;
        }
        if (ents[i].type != DT_REG) {
            w->declined = 1; /* a symlink, an unknown type, a device...: the twin decides */
            break;
        }
        if (!module_name(name, nl))
            continue;
        if (walk_grow(w, end + 1) < 0)
            goto done;
        w->buf[len] = '/';
        memcpy(w->buf + len + 1, name, nl);
        {
            /* the shown path (relpath, or the path of an external module) must be one modules.dep can hold */
            size_t from = w->rel_at == (size_t)-1 ? 0 : w->rel_at, j;
            for (j = from; j < end; j++) {
                char c = w->buf[j];
                if (c == '\n' || c == ' ' || c == '\t' || c == ':' || c == '\r')
                    break;
            }
            if (j < end) {
                w->declined = 1;
                break;
            }
        }
        {
            /* kmod's module name (moddeps.model.modname_from_path): up to the first '.', '-' -> '_' */
            size_t m = 0, j;
            while (m < nl && name[m] != '.')
                m++;
            PyObject *modname = PyUnicode_DecodeFSDefaultAndSize(name, (Py_ssize_t)m), *path, *rel, *t;
            if (modname != NULL && memchr(name, '-', m) != NULL) {
                char *copy = PyMem_Malloc(m + 1);
                Py_CLEAR(modname);
                if (copy == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                for (j = 0; j < m; j++)
                    copy[j] = name[j] == '-' ? '_' : name[j];
                modname = PyUnicode_DecodeFSDefaultAndSize(copy, (Py_ssize_t)m);
                PyMem_Free(copy);
            }
            path = PyUnicode_DecodeFSDefaultAndSize(w->buf, (Py_ssize_t)end);
            if (w->rel_at == (size_t)-1) {
                rel = Py_None;
                Py_INCREF(rel);
            } else {
                rel = PyUnicode_DecodeFSDefaultAndSize(w->buf + w->rel_at, (Py_ssize_t)(end - w->rel_at));
            }
            PyObject *items[3] = {modname, path, rel};
            t = record(NULL, 3, items);
            if (t == NULL || PyList_Append(w->files, t) < 0) {
                Py_XDECREF(t);
                goto done;
            }
            Py_DECREF(t);
        }
    }
    rc = 0;
done:
    if (d != NULL)
        closedir(d);
    for (i = 0; i < n; i++)
        PyMem_Free(ents[i].name);
    PyMem_Free(ents);
    return rc;
}

static PyObject *elfscan_walk(PyObject *self, PyObject *args)
{
    PyObject *top, *rel, *skip, *top_b = NULL, *rel_b = NULL, *out = NULL;
    int record_dirs;
    Walk w;
    Py_ssize_t i;
    memset(&w, 0, sizeof(w));
    if (!PyArg_ParseTuple(args, "UOO!p:walk", &top, &rel, &PyTuple_Type, &skip, &record_dirs))
        return NULL;
    for (i = 0; i < PyTuple_GET_SIZE(skip); i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(skip, i))) {
            PyErr_SetString(PyExc_TypeError, "skip must be a tuple of bytes");
            return NULL;
        }
    if (rel != Py_None && !PyUnicode_Check(rel)) {
        PyErr_SetString(PyExc_TypeError, "rel must be a str or None");
        return NULL;
    }
    top_b = PyUnicode_EncodeFSDefault(top);
    if (top_b == NULL)
        return NULL;
    if (rel != Py_None && (rel_b = PyUnicode_EncodeFSDefault(rel)) == NULL)
        goto done;
    if (strlen(PyBytes_AS_STRING(top_b)) != (size_t)PyBytes_GET_SIZE(top_b) || PyBytes_GET_SIZE(top_b) == 0 ||
        (rel_b != NULL && PyBytes_GET_SIZE(rel_b) != 0)) {
        out = declined(); /* a NUL (os.stat's ValueError), an empty top, a walk from within the tree: the twin's */
        goto done;
    }
    w.skip = skip;
    w.rel_at = rel_b == NULL ? (size_t)-1 : (size_t)PyBytes_GET_SIZE(top_b) + 1;
    if ((w.files = PyList_New(0)) == NULL || (record_dirs && (w.dirs = PyList_New(0)) == NULL))
        goto done;
    if (walk_grow(&w, (size_t)PyBytes_GET_SIZE(top_b) + 1) < 0)
        goto done;
    memcpy(w.buf, PyBytes_AS_STRING(top_b), (size_t)PyBytes_GET_SIZE(top_b));
    if (walk_dir(&w, AT_FDCWD, (size_t)PyBytes_GET_SIZE(top_b), 0, 0) < 0)
        goto done;
    if (w.declined)
        out = declined();
    else
        out = PyTuple_Pack(2, w.dirs != NULL ? w.dirs : Py_None, w.files);
done:
    Py_XDECREF(top_b);
    Py_XDECREF(rel_b);
    Py_XDECREF(w.dirs);
    Py_XDECREF(w.files);
    PyMem_Free(w.buf);
    return out;
}

/* The stat of each of the n paths (follow) or their lstat, on two threads without the GIL (elfscan_stat_all),
 * into *st, whether it succeeded into *ok (both PyMem_Malloc'ed, the caller's to free); -1 with MemoryError. */
static int stat_paths(const char **ptrs, Py_ssize_t n, int follow, struct stat **st, unsigned char **ok)
{
    *st = PyMem_Malloc(n ? (size_t)n * sizeof(struct stat) : 1);
    *ok = PyMem_Malloc(n ? (size_t)n : 1);
    if (*st == NULL || *ok == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    elfscan_stat_all(ptrs, (size_t)n, *st, *ok, follow);
    Py_END_ALLOW_THREADS
    return 0;
}

/* [identity or None] of the paths of seq (a tuple of str), stat'ed (follow) or lstat'ed on two
 * threads (elfscan_stat_all); DECLINED when a path is not a str or holds a NUL, when accept(path,
 * length) says no for one (NULL: all accepted), or a time does not fit 64 bits of nanoseconds. */
PyObject *elfscan_identities(PyObject *seq, int follow, int (*accept)(const char *, Py_ssize_t))
{
    PyObject *enc = NULL, *out = NULL;
    const char **ptrs = NULL;
    struct stat *st = NULL;
    unsigned char *ok = NULL;
    Py_ssize_t i, n = PyTuple_GET_SIZE(seq);
    int rc = elfscan_fs_paths(seq, &enc, &ptrs);
    if (rc <= 0)
        return rc < 0 ? NULL : declined();
    for (i = 0; accept != NULL && i < n; i++)
        if (!accept(ptrs[i], PyBytes_GET_SIZE(PyTuple_GET_ITEM(enc, i)))) {
            out = declined();
            goto done;
        }
    if (stat_paths(ptrs, n, follow, &st, &ok) < 0)
        goto done;
    if ((out = PyList_New(n)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *ident;
        if (!ok[i]) {
            PyList_SET_ITEM(out, i, Py_NewRef(Py_None));
            continue;
        }
        ident = elfscan_identity(&st[i]);
        if (ident == NULL || ident == elfscan_declined) {
            Py_CLEAR(out);
            out = ident; /* NULL, or DECLINED: a time past 64 bits of nanoseconds */
            goto done;
        }
        PyList_SET_ITEM(out, i, ident);
    }
done:
    Py_XDECREF(enc);
    PyMem_Free(ptrs);
    PyMem_Free(st);
    PyMem_Free(ok);
    return out;
}

/* Whether want (from a stamp) is the identity of st: compared as numbers when want is a tuple of
 * five ints (what a stamp holds), else as Python compares the identity made of st with want;
 * -1 with an exception, -2 DECLINED (a time past 64 bits of nanoseconds). */
static int same_identity(const struct stat *st, PyObject *want)
{
    long long now[5];
    Py_ssize_t k;
    if (identity_numbers(st, now) < 0)
        return -2;
    if (PyTuple_CheckExact(want) && PyTuple_GET_SIZE(want) == 5) {
        for (k = 0; k < 5; k++) {
            PyObject *v = PyTuple_GET_ITEM(want, k);
            int overflow = 0;
            long long x;
            if (!PyLong_CheckExact(v))
                break;
            x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (x == -1 && PyErr_Occurred())
                return -1;
            if (overflow || x != now[k])
                return 0;
        }
        if (k == 5)
            return 1;
    }
    {
        PyObject *ident = elfscan_identity(st);
        int eq;
        if (ident == NULL)
            return -1;
        eq = PyObject_RichCompareBool(ident, want, Py_EQ);
        Py_DECREF(ident);
        return eq;
    }
}

/* The indexes i of paths (a tuple of str) whose identity now (stat'ed or lstat'ed, on two
 * threads) is not wants[i]: None, a path that cannot be stat'ed, an identity that changed.
 * DECLINED as elfscan_identities. */
static PyObject *elfscan_stat_changed(PyObject *self, PyObject *args)
{
    PyObject *paths, *wants, *seq = NULL, *wseq = NULL, *enc = NULL, *out = NULL;
    const char **ptrs = NULL;
    struct stat *st = NULL;
    unsigned char *ok = NULL;
    Py_ssize_t i, n;
    int follow, rc;
    if (!PyArg_ParseTuple(args, "OOp:stat_changed", &paths, &wants, &follow))
        return NULL;
    if ((seq = PySequence_Tuple(paths)) == NULL || (wseq = PySequence_Tuple(wants)) == NULL)
        goto done;
    n = PyTuple_GET_SIZE(seq);
    if (PyTuple_GET_SIZE(wseq) != n) {
        PyErr_SetString(PyExc_ValueError, "stat_changed(): paths and wants of different lengths");
        goto done;
    }
    rc = elfscan_fs_paths(seq, &enc, &ptrs);
    if (rc <= 0) {
        out = rc < 0 ? NULL : declined();
        goto done;
    }
    if (stat_paths(ptrs, n, follow, &st, &ok) < 0)
        goto done;
    if ((out = PyList_New(0)) == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *want = PyTuple_GET_ITEM(wseq, i), *index;
        int same = 0;
        if (ok[i] && want != Py_None) {
            same = same_identity(&st[i], want);
            if (same == -1 || same == -2) {
                Py_CLEAR(out);
                if (same == -2)
                    out = declined();
                goto done;
            }
        }
        if (same)
            continue;
        if ((index = PyLong_FromSsize_t(i)) == NULL || PyList_Append(out, index) < 0) {
            Py_XDECREF(index);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(index);
    }
done:
    Py_XDECREF(seq);
    Py_XDECREF(wseq);
    Py_XDECREF(enc);
    PyMem_Free(ptrs);
    PyMem_Free(st);
    PyMem_Free(ok);
    return out;
}

#else /* not Linux: the twins do it all */

static PyObject *elfscan_walk(PyObject *self, PyObject *args)
{
    return declined();
}

static PyObject *elfscan_stat_changed(PyObject *self, PyObject *args)
{
    return declined();
}

#endif

PyDoc_STRVAR(stat_changed_doc,
"stat_changed(paths, wants, follow)\n"
"--\n"
"\n"
"[i for i, (p, want) in enumerate(zip(paths, wants)) if want is None or\n"
"identity(os.stat(p) if follow else os.lstat(p)) != want, None where that\n"
"raises OSError]: the paths whose identity (moddeps.read.fileid.identity) is\n"
"not the one wanted, without making the identities of the others; the\n"
"system calls made on two cores when the process may use two.  DECLINED when\n"
"a path is not a str or holds a NUL, or a time does not fit 64 bits of\n"
"nanoseconds.");

PyDoc_STRVAR(walk_doc,
"walk(top, rel, skip, record)\n"
"--\n"
"\n"
"moddeps.read.walk's walk of the tree at top (rel: \"\" for the module\n"
"directory, whose module files get a relpath, None for an external directory):\n"
"(dirs, files), dirs the (path, identity) of each directory entered, taken\n"
"before it was listed, when record is true (else None), files the (name,\n"
"path, relpath) of each module file in kmod's order.  skip: names (bytes)\n"
"never entered nor registered.  DECLINED for anything the twin decides: an\n"
"entry that is not a directory or a regular file by its type, a directory\n"
"that cannot be listed, a loop, a module path with a character modules.dep\n"
"cannot hold, a tree deeper than 64.");

PyMethodDef elfscan_walk_methods[] = {
    {"walk", elfscan_walk, METH_VARARGS, walk_doc},
    {"stat_changed", elfscan_stat_changed, METH_VARARGS, stat_changed_doc},
    {NULL, NULL, 0, NULL},
};
