/*
 * moddeps.depmod._trie's resolve_exports / resolve_imports: the C twins of
 * the export and import loops of moddeps/resolve.py (_bind_py, the
 * reference), which tests/test_native_trie.py compares them with.
 */

#include "_trie.h"

/* name[1:] when name starts with ch0 (a one-character test), else name; new reference. */
static PyObject *strip_first(PyObject *name)
{
    return PyUnicode_Substring(name, 1, PyUnicode_GET_LENGTH(name));
}

/* resolve.py _lookup_name; new reference. */
static PyObject *lookup_name(PyObject *name, PyObject *prefix)
{
    PyObject *cur = name, *next;
    Py_ssize_t r;

    Py_INCREF(cur);
    if (PyUnicode_GET_LENGTH(cur) > 0 && PyUnicode_READ_CHAR(cur, 0) == '.') {
        next = strip_first(cur);
        Py_DECREF(cur);
        if (next == NULL)
            return NULL;
        cur = next;
    }
    if (prefix != NULL) {
        r = PyUnicode_Tailmatch(cur, prefix, 0, PY_SSIZE_T_MAX, -1);
        if (r < 0) {
            Py_DECREF(cur);
            return NULL;
        }
        if (r) {
            next = strip_first(cur);
            Py_DECREF(cur);
            return next;
        }
    }
    return cur;
}

/* prefix argument: None or "" -> NULL (no prefix), a str -> itself. */
static int get_prefix(PyObject *arg, PyObject **out)
{
    *out = NULL;
    if (arg == Py_None)
        return 0;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "prefix must be a str or None");
        return -1;
    }
    if (PyUnicode_GET_LENGTH(arg) > 0)
        *out = arg;
    return 0;
}

PyDoc_STRVAR(resolve_exports_doc,
"resolve_exports(modules, export_type, prefix, owners, /) -> dict[str, tuple[int, ...]]\n\n"
"The export loop of moddeps.resolve.resolve: sets owners[name] = (index, crc or 0)\n"
"for every export in array order and returns the exporters of each name.\n"
"DECLINED (owners untouched) unless every module's exports is a tuple of\n"
"export_type instances.");

static PyObject *py_resolve_exports(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *seq = NULL, *owners, *exporters = NULL, *prefix, *zero = NULL, *attr = NULL, *etype;
    PyObject **exps = NULL;
    Py_ssize_t n, i, pos, shared = 0;
    PyObject *k, *v;
    int decline = 0;

    if (nargs != 4 || !PyType_Check(args[1]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "resolve_exports(modules, export_type, prefix, owners: dict)");
        return NULL;
    }
    etype = args[1];
    owners = args[3];
    if (get_prefix(args[2], &prefix) < 0)
        return NULL;
    seq = PySequence_Fast(args[0], "resolve_exports(): modules must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    attr = PyUnicode_InternFromString("exports");
    zero = PyLong_FromLong(0);
    exporters = PyDict_New();
    exps = PyMem_Calloc(n ? (size_t)n : 1, sizeof(PyObject *));
    if (attr == NULL || zero == NULL || exporters == NULL || exps == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto fail;
    }
    /* Pass 1: every record must be an export_type instance, so that owners
     * stays untouched when the Python loop has to take over. */
    for (i = 0; i < n; i++) {
        Py_ssize_t j;
        exps[i] = PyObject_GetAttr(PySequence_Fast_GET_ITEM(seq, i), attr);
        if (exps[i] == NULL)
            goto fail;
        if (!PyTuple_Check(exps[i])) {
            decline = 1;
            goto fail;
        }
        for (j = 0; j < PyTuple_GET_SIZE(exps[i]); j++) {
            PyObject *e = PyTuple_GET_ITEM(exps[i], j);
            if (Py_TYPE(e) != (PyTypeObject *)etype || PyTuple_GET_SIZE(e) < 2 ||
                !PyUnicode_Check(PyTuple_GET_ITEM(e, 0))) {
                decline = 1;
                goto fail;
            }
        }
    }
    /* Pass 2: owners[name] = (i, crc or 0); exporters[name] gets i appended
     * (a 1-tuple while a name has one exporter, a list from the second on). */
    for (i = 0; i < n; i++) {
        Py_ssize_t j, m = PyTuple_GET_SIZE(exps[i]);
        PyObject *idx;

        if (m == 0)
            continue;
        idx = PyLong_FromSsize_t(i);
        if (idx == NULL)
            goto fail;
        for (j = 0; j < m; j++) {
            PyObject *e = PyTuple_GET_ITEM(exps[i], j), *name, *crc, *val, *prev;
            int truth, r, bad;

            name = PyTuple_GET_ITEM(e, 0);
            crc = PyTuple_GET_ITEM(e, 1);
            if (prefix != NULL) {
                r = PyUnicode_Tailmatch(name, prefix, 0, PY_SSIZE_T_MAX, -1);
                if (r < 0) {
                    Py_DECREF(idx);
                    goto fail;
                }
                name = r ? strip_first(name) : (Py_INCREF(name), name);
                if (name == NULL) {
                    Py_DECREF(idx);
                    goto fail;
                }
            } else {
                Py_INCREF(name);
            }
            truth = PyObject_IsTrue(crc);
            val = truth < 0 ? NULL : PyTuple_Pack(2, idx, truth ? crc : zero);
            bad = val == NULL || PyDict_SetItem(owners, name, val) < 0;
            Py_XDECREF(val);
            if (!bad) {
                prev = PyDict_GetItemWithError(exporters, name);
                if (prev == NULL) {
                    PyObject *one = PyErr_Occurred() ? NULL : PyTuple_Pack(1, idx);
                    bad = one == NULL || PyDict_SetItem(exporters, name, one) < 0;
                    Py_XDECREF(one);
                } else if (PyList_CheckExact(prev)) {
                    bad = PyList_Append(prev, idx) < 0;
                } else {
                    PyObject *list = PyList_New(2);
                    bad = list == NULL;
                    if (!bad) {
                        PyObject *first = PyTuple_GET_ITEM(prev, 0);
                        Py_INCREF(first);
                        PyList_SET_ITEM(list, 0, first);
                        Py_INCREF(idx);
                        PyList_SET_ITEM(list, 1, idx);
                        bad = PyDict_SetItem(exporters, name, list) < 0;
                        Py_DECREF(list);
                        shared++;
                    }
                }
            }
            Py_DECREF(name);
            if (bad) {
                Py_DECREF(idx);
                goto fail;
            }
        }
        Py_DECREF(idx);
    }
    pos = 0;
    while (shared > 0 && PyDict_Next(exporters, &pos, &k, &v)) {
        PyObject *t;
        if (!PyList_CheckExact(v))
            continue;
        t = PyList_AsTuple(v);
        if (t == NULL)
            goto fail;
        /* replacing the value of an existing key during iteration is allowed */
        if (PyDict_SetItem(exporters, k, t) < 0) {
            Py_DECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    }
    for (i = 0; i < n; i++)
        Py_XDECREF(exps[i]);
    PyMem_Free(exps);
    Py_DECREF(attr);
    Py_DECREF(zero);
    Py_DECREF(seq);
    return exporters;
fail:
    if (exps != NULL) {
        for (i = 0; i < n; i++)
            Py_XDECREF(exps[i]);
        PyMem_Free(exps);
    }
    Py_XDECREF(attr);
    Py_XDECREF(zero);
    Py_XDECREF(exporters);
    Py_XDECREF(seq);
    return decline ? declined() : NULL;
}

typedef struct {
    Py_ssize_t owner;
    PyObject *names;     /* list of symbol names bound to owner */
} Bound;

/* kmod's warnings about an import: %S the module's path, %U the symbol's name
 * ("= module:name": the Python text this must equal, with {} for each %; see
 * tests/test_native_constants.py) */
#define MSG_UNKNOWN_SYMBOL "WARNING: %S needs unknown symbol %U" /* = moddeps.resolve:UNKNOWN_SYMBOL */
#define MSG_DISAGREES "WARNING: %S disagrees about version of symbol %U" /* = moddeps.resolve:DISAGREES */

PyDoc_STRVAR(resolve_imports_doc,
"resolve_imports(modules, import_type, owners, prefix, check, warn, paths, /)\n"
"    -> (deps, edges, unresolved, mismatched, messages, unbound)\n\n"
"The import loop of moddeps.resolve.resolve (_bind_py), same results in the same\n"
"order: the imports taken as kmod reads them (resolve.kmod_view), the unknown\n"
"symbols as one tuple of names a module; unbound: a tuple a module of the lookup\n"
"names of its imports that no module exports (unknown, weak or the kernel's; the\n"
"module's unknown tuple itself where the two are the same).  DECLINED unless every module's imports\n"
"is a tuple of import_type instances and each owners value found is (module\n"
"index in range or KERNEL, crc).");

/* Append (module index, symbol name) to `to` (NULL: nothing) and, with warn, kmod's message
 * `fmt` (a %S for the module's path, a %U for the name) to messages.  *idx is
 * the module index as an int object, made on first use and owned by the caller. */
static int note_symbol(PyObject *to, PyObject **idx, Py_ssize_t i, PyObject *name, int warn,
                       PyObject *paths, PyObject *messages, const char *fmt)
{
    PyObject *pair, *path, *msg;

    if (to != NULL) {
        if (*idx == NULL && (*idx = PyLong_FromSsize_t(i)) == NULL)
            return -1;
        pair = PyTuple_Pack(2, *idx, name);
        if (pair == NULL || PyList_Append(to, pair) < 0) {
            Py_XDECREF(pair);
            return -1;
        }
        Py_DECREF(pair);
    }
    if (!warn)
        return 0;
    path = PySequence_GetItem(paths, i);
    if (path == NULL)
        return -1;
    msg = PyUnicode_FromFormat(fmt, path, name);
    Py_DECREF(path);
    if (msg == NULL || PyList_Append(messages, msg) < 0) {
        Py_XDECREF(msg);
        return -1;
    }
    Py_DECREF(msg);
    return 0;
}

/* Move *key (owned) to the end of the array *loose (a module's lookup names that no module
 * exports, kept for moddeps.depmod.incremental), growing it; *key is then NULL. */
static int keep_loose(PyObject ***loose, Py_ssize_t *n, Py_ssize_t *cap, PyObject **key)
{
    if (*n == *cap) {
        Py_ssize_t more = *cap ? *cap * 2 : 64;
        PyObject **p = PyMem_Realloc(*loose, (size_t)more * sizeof(PyObject *));
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *loose = p;
        *cap = more;
    }
    (*loose)[(*n)++] = *key;
    *key = NULL;
    return 0;
}

static PyObject *py_resolve_imports(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *seq = NULL, *owners, *prefix, *itype, *paths, *attr = NULL, *zero = NULL;
    PyObject *deps = NULL, *edges = NULL, *unknown = NULL, *mismatched = NULL, *messages = NULL, *unbound = NULL;
    PyObject *result = NULL;
    Py_ssize_t *slot = NULL, *stamp = NULL;
    Bound *bound = NULL;
    PyObject **missing = NULL;  /* this module's unknown names (borrowed from its imports) */
    PyObject **loose = NULL;  /* this module's lookup names that no module exports (owned) */
    Py_ssize_t n, i, nbound = 0, boundcap = 0, nmissing = 0, missingcap = 0, nloose = 0, loosecap = 0;
    int check, warn, decline = 0;

    if (nargs != 7 || !PyType_Check(args[1]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "resolve_imports(modules, import_type, owners: dict, prefix, check, warn, paths)");
        return NULL;
    }
    itype = args[1];
    owners = args[2];
    if (get_prefix(args[3], &prefix) < 0)
        return NULL;
    check = PyObject_IsTrue(args[4]);
    warn = PyObject_IsTrue(args[5]);
    if (check < 0 || warn < 0)
        return NULL;
    paths = args[6];
    seq = PySequence_Fast(args[0], "resolve_imports(): modules must be iterable");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    attr = PyUnicode_InternFromString("imports");
    zero = PyLong_FromLong(0);
    deps = PyList_New(n);
    edges = PyList_New(n);
    unknown = PyList_New(n);
    unbound = PyList_New(n);
    mismatched = PyList_New(0);
    messages = PyList_New(0);
    slot = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    stamp = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(Py_ssize_t));
    if (attr == NULL || zero == NULL || deps == NULL || edges == NULL || unknown == NULL || unbound == NULL ||
        mismatched == NULL ||
        messages == NULL || slot == NULL || stamp == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++)
        stamp[i] = -1;

    for (i = 0; i < n; i++) {
        PyObject *imps = PyObject_GetAttr(PySequence_Fast_GET_ITEM(seq, i), attr), *idx = NULL, *key = NULL;
        PyObject *dtuple, *edict;
        Py_ssize_t j, m, b;

        if (imps == NULL)
            goto done;
        if (!PyTuple_Check(imps)) {
            Py_DECREF(imps);
            decline = 1;
            goto done;
        }
        nbound = 0;
        nmissing = 0;
        nloose = 0;
        m = PyTuple_GET_SIZE(imps);
        for (j = 0; j < m; j++) {
            PyObject *imp = PyTuple_GET_ITEM(imps, j), *name, *found, *ocrc, *icrc;
            Py_ssize_t owner;
            int weak;

            if (Py_TYPE(imp) != (PyTypeObject *)itype || PyTuple_GET_SIZE(imp) < 5 ||
                !PyUnicode_Check(PyTuple_GET_ITEM(imp, 0))) {
                decline = 1;
                goto fail_m;
            }
            name = PyTuple_GET_ITEM(imp, 0);
            icrc = PyTuple_GET_ITEM(imp, 1);
            /* as kmod reads it (resolve.py _kmod_import): a CRC of the extended
             * modversions tables is no CRC, and a record found only there no import */
            {
                int ext = PyObject_IsTrue(PyTuple_GET_ITEM(imp, 4));
                if (ext < 0)
                    goto fail_m;
                if (ext) {
                    int vonly = PyObject_IsTrue(PyTuple_GET_ITEM(imp, 3));
                    if (vonly < 0)
                        goto fail_m;
                    if (vonly)
                        continue;
                    icrc = Py_None;
                }
            }
            if (prefix != NULL ||
                (PyUnicode_GET_LENGTH(name) > 0 && PyUnicode_READ_CHAR(name, 0) == '.')) {
                key = lookup_name(name, prefix);
                if (key == NULL)
                    goto fail_m;
            } else {
                key = name;
                Py_INCREF(key);
            }
            found = PyDict_GetItemWithError(owners, key);
            if (found == NULL && PyErr_Occurred())
                goto fail_m;
            weak = PyObject_IsTrue(PyTuple_GET_ITEM(imp, 2));
            if (weak < 0)
                goto fail_m;
            if (found == NULL) {
                if (keep_loose(&loose, &nloose, &loosecap, &key) < 0)
                    goto fail_m;
                if (weak)
                    continue;
                if (nmissing == missingcap) {
                    Py_ssize_t cap = missingcap ? missingcap * 2 : 64;
                    PyObject **p = PyMem_Realloc(missing, (size_t)cap * sizeof(PyObject *));
                    if (p == NULL) {
                        PyErr_NoMemory();
                        goto fail_m;
                    }
                    missing = p;
                    missingcap = cap;
                }
                missing[nmissing++] = name;
                if (warn && note_symbol(NULL, &idx, i, name, warn, paths, messages, MSG_UNKNOWN_SYMBOL) < 0)
                    goto fail_m;
                continue;
            }
            /* (index of a module or KERNEL, crc) */
            if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2 || !PyLong_Check(PyTuple_GET_ITEM(found, 0))) {
                decline = 1;
                goto fail_m;
            }
            {
                int overflow = 0;
                long long o = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(found, 0), &overflow);
                if (overflow || o < KERNEL || o >= (long long)n) {
                    decline = 1;
                    goto fail_m;
                }
                owner = (Py_ssize_t)o;
            }
            if (check && !weak) {
                int truth = PyObject_IsTrue(icrc), ne;
                if (truth < 0)
                    goto fail_m;
                ocrc = PyTuple_GET_ITEM(found, 1);
                ne = PyObject_RichCompareBool(ocrc, truth ? icrc : zero, Py_NE);
                if (ne < 0)
                    goto fail_m;
                if (ne && note_symbol(mismatched, &idx, i, name, warn, paths, messages,
                                      MSG_DISAGREES) < 0)
                    goto fail_m;
            }
            if (owner == KERNEL) {
                if (keep_loose(&loose, &nloose, &loosecap, &key) < 0)
                    goto fail_m;
                continue;
            }
            Py_CLEAR(key);
            if (stamp[owner] == i) {
                if (PyList_Append(bound[slot[owner]].names, name) < 0)
                    goto fail_m;
                continue;
            }
            if (nbound == boundcap) {
                Py_ssize_t cap = boundcap ? boundcap * 2 : 16;
                Bound *p = PyMem_Realloc(bound, (size_t)cap * sizeof(Bound));
                if (p == NULL) {
                    PyErr_NoMemory();
                    goto fail_m;
                }
                bound = p;
                boundcap = cap;
            }
            bound[nbound].owner = owner;
            bound[nbound].names = PyList_New(1);
            if (bound[nbound].names == NULL)
                goto fail_m;
            Py_INCREF(name);
            PyList_SET_ITEM(bound[nbound].names, 0, name);
            stamp[owner] = i;
            slot[owner] = nbound;
            nbound++;
        }
        dtuple = PyTuple_New(nbound);
        edict = PyDict_New();
        if (dtuple == NULL || edict == NULL) {
            Py_XDECREF(dtuple);
            Py_XDECREF(edict);
            goto fail_m;
        }
        PyList_SET_ITEM(deps, i, dtuple);
        PyList_SET_ITEM(edges, i, edict);
        {
            PyObject *names = PyTuple_New(nmissing);
            Py_ssize_t q;
            if (names == NULL)
                goto fail_m;
            for (q = 0; q < nmissing; q++) {
                Py_INCREF(missing[q]);
                PyTuple_SET_ITEM(names, q, missing[q]);
            }
            PyList_SET_ITEM(unknown, i, names);
            if (nloose == nmissing) {  /* the same names (the usual case without a kernel table): one tuple */
                Py_ssize_t q2 = 0;
                while (q2 < nloose && loose[q2] == missing[q2])
                    q2++;
                if (q2 == nloose) {
                    for (q2 = 0; q2 < nloose; q2++)
                        Py_DECREF(loose[q2]);
                    nloose = 0;
                    Py_INCREF(names);
                    PyList_SET_ITEM(unbound, i, names);
                    names = NULL;
                }
            }
            if (names != NULL) {
                PyObject *lt = PyTuple_New(nloose);
                if (lt == NULL)
                    goto fail_m;
                for (q = 0; q < nloose; q++)
                    PyTuple_SET_ITEM(lt, q, loose[q]);  /* (steals) */
                nloose = 0;
                PyList_SET_ITEM(unbound, i, lt);
            }
        }
        for (b = 0; b < nbound; b++) {
            PyObject *o = PyLong_FromSsize_t(bound[b].owner), *t;
            if (o == NULL)
                goto fail_m;
            PyTuple_SET_ITEM(dtuple, b, o);
            t = PyList_AsTuple(bound[b].names);
            if (t == NULL || PyDict_SetItem(edict, o, t) < 0) {
                Py_XDECREF(t);
                goto fail_m;
            }
            Py_DECREF(t);
        }
        for (b = 0; b < nbound; b++)
            Py_CLEAR(bound[b].names);
        nbound = 0;
        Py_XDECREF(idx);
        Py_DECREF(imps);
        continue;
    fail_m:
        Py_XDECREF(key);
        Py_XDECREF(idx);
        Py_DECREF(imps);
        goto done;
    }
    result = PyTuple_Pack(6, deps, edges, unknown, mismatched, messages, unbound);

done:
    if (bound != NULL) {
        Py_ssize_t b;
        for (b = 0; b < nbound; b++)
            Py_XDECREF(bound[b].names);
        PyMem_Free(bound);
    }
    PyMem_Free(slot);
    PyMem_Free(stamp);
    PyMem_Free(missing);
    if (loose != NULL) {
        Py_ssize_t q;
        for (q = 0; q < nloose; q++)
            Py_DECREF(loose[q]);
        PyMem_Free(loose);
    }
    Py_XDECREF(attr);
    Py_XDECREF(zero);
    Py_XDECREF(deps);
    Py_XDECREF(edges);
    Py_XDECREF(unknown);
    Py_XDECREF(unbound);
    Py_XDECREF(mismatched);
    Py_XDECREF(messages);
    Py_XDECREF(seq);
    return decline ? declined() : result;
}

PyMethodDef trie_resolve_methods[] = {
    {"resolve_exports", (PyCFunction)(void (*)(void))py_resolve_exports, METH_FASTCALL, resolve_exports_doc},
    {"resolve_imports", (PyCFunction)(void (*)(void))py_resolve_imports, METH_FASTCALL, resolve_imports_doc},
    {NULL, NULL, 0, NULL},
};
