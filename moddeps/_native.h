/*
 * The C side of moddeps/native.py's contract, shared by both accelerators.
 *
 * A function returns a new reference to moddeps.native.DECLINED when the
 * data it was given has a shape it does not handle (the Python twin then
 * decides), and raises for anything else; it never turns an exception into
 * DECLINED.  native_bind, called once from the module's init, fetches the
 * sentinel and publishes it as the module's DECLINED attribute, which
 * native.load checks to tell a build that keeps this contract.
 */

#ifndef MODDEPS_NATIVE_H
#define MODDEPS_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* *declined = moddeps.native.DECLINED (a strong reference kept for the
 * process), also set as module.DECLINED; 0, or -1 with an exception set. */
static inline int native_bind(PyObject *module, PyObject **declined)
{
    if (*declined == NULL) {
        PyObject *native = PyImport_ImportModule("moddeps.native");
        if (native == NULL)
            return -1;
        *declined = PyObject_GetAttrString(native, "DECLINED");
        Py_DECREF(native);
        if (*declined == NULL)
            return -1;
    }
    return PyModule_AddObjectRef(module, "DECLINED", *declined);
}

#endif
