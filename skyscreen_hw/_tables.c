/* Byte-wise table lookups for the colour step, compiled: the one thing numpy cannot do at memory speed.
 *
 * numpy looks a byte up through a table only by widening every byte into an 8-byte index first; the
 * colour step works around that with a 128 KiB pair table (two bytes a lookup), which is quick on a warm
 * cache and slow on the cold one the daemon wakes up to every frame. Here the 256-byte table stays in
 * the L1 cache and each byte is read once and written once.
 *
 *     lookup(src, table, out)        out[i] = table[src[i]]
 *     lookup_total(src, table, out)  the same, and returns the sum of the bytes written
 *
 * src and out are C-contiguous buffers of the same length (out may be src), table is 256 bytes. The GIL
 * is released during the loop. skyscreen_hw.color uses this module when it was built, its numpy
 * lookups otherwise (the results are the same byte for byte).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TABLE_SIZE 256

/* Gets the three buffers and checks them; on failure releases what it got and sets an exception. */
static int get_buffers(PyObject *const *args, Py_ssize_t nargs, Py_buffer *src, Py_buffer *table, Py_buffer *out) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "expected (src, table, out)");
        return -1;
    }
    if (PyObject_GetBuffer(args[0], src, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (PyObject_GetBuffer(args[1], table, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(src);
        return -1;
    }
    if (PyObject_GetBuffer(args[2], out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(src);
        PyBuffer_Release(table);
        return -1;
    }
    if (table->len != TABLE_SIZE || src->len != out->len) {
        PyErr_Format(PyExc_ValueError, "table has %zd bytes (256 needed); src %zd bytes, out %zd", table->len,
                     src->len, out->len);
        PyBuffer_Release(src);
        PyBuffer_Release(table);
        PyBuffer_Release(out);
        return -1;
    }
    return 0;
}

static void release(Py_buffer *src, Py_buffer *table, Py_buffer *out) {
    PyBuffer_Release(src);
    PyBuffer_Release(table);
    PyBuffer_Release(out);
}

/* out[i] = table[src[i]] for n bytes, eight at a time; returns the sum of the bytes written. */
static uint64_t look_up(const uint8_t *src, const uint8_t *table, uint8_t *out, size_t n) {
    uint64_t total = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint8_t b[8];
        memcpy(b, src + i, 8); /* read before writing: out may be src */
        uint8_t o0 = table[b[0]], o1 = table[b[1]], o2 = table[b[2]], o3 = table[b[3]];
        uint8_t o4 = table[b[4]], o5 = table[b[5]], o6 = table[b[6]], o7 = table[b[7]];
        total += (uint64_t)o0 + o1 + o2 + o3 + o4 + o5 + o6 + o7;
        out[i] = o0, out[i + 1] = o1, out[i + 2] = o2, out[i + 3] = o3;
        out[i + 4] = o4, out[i + 5] = o5, out[i + 6] = o6, out[i + 7] = o7;
    }
    for (; i < n; i++) {
        out[i] = table[src[i]];
        total += out[i];
    }
    return total;
}

static PyObject *lookup_total(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Py_buffer src, table, out;
    if (get_buffers(args, nargs, &src, &table, &out) < 0)
        return NULL;
    uint64_t total;
    Py_BEGIN_ALLOW_THREADS
    total = look_up(src.buf, table.buf, out.buf, (size_t)src.len);
    Py_END_ALLOW_THREADS
    release(&src, &table, &out);
    return PyLong_FromUnsignedLongLong(total);
}

static PyObject *lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *total = lookup_total(self, args, nargs);
    if (total == NULL)
        return NULL;
    Py_DECREF(total);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"lookup", (PyCFunction)(void (*)(void))lookup, METH_FASTCALL, "lookup(src, table, out): out[i] = table[src[i]]"},
    {"lookup_total", (PyCFunction)(void (*)(void))lookup_total, METH_FASTCALL,
     "lookup_total(src, table, out) -> int: lookup, and the sum of the bytes written"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "skyscreen_hw._tables", "Byte-wise table lookups for the colour step.", -1, methods,
};

PyMODINIT_FUNC PyInit__tables(void) { return PyModule_Create(&module); }
