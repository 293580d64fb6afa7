/* Byte-wise table lookups for the frame path, compiled: what numpy cannot do at memory speed.
 *
 * numpy looks a byte up through a table only by widening every byte into an 8-byte index first; the
 * numpy fallback in skyscreen_hw/color.py works around that with a 128 KiB pair table (two bytes a
 * lookup), quick on a warm cache and slow on the cold one the daemon wakes up to every frame. Here the
 * 256-byte table stays in the L1 cache and each byte is read once and written once.
 *
 *     lookup(src, table, out)                 out[i] = table[src[i]]
 *     gather_lookup(frame, runs, table, out[, drawn, colors]) -> int
 *                                             the LEDs in order, run after run (int32 first pixel, step,
 *                                             LEDs: the dome wired serpentine is 719 runs, not a 415 kB
 *                                             index to read every frame), each RGB pixel through the table,
 *                                             then LED drawn[j] = colors[j] (the canvas drawn over);
 *                                             returns the sum: the layout's gather, the colour table and
 *                                             the overlay in one pass
 *     gather_only(frame, runs, table, out[, drawn, colors])
 *                                             the same without the sum (quicker: no power limit to feed)
 *     total(src) -> int                       the sum of the bytes
 *     scale(src, s, out)                      out[i] = floor(src[i] * s), 0 <= s < 1: as a high-half
 *                                             16-bit multiply the compiler vectorizes wherever one gives
 *                                             the same 256 bytes (checked each call), else a lookup
 *
 * Buffers are C-contiguous bytes; out may be src for lookup and scale (no other overlap), the gathers' out
 * overlaps nothing; table is 256 bytes; drawn is distinct int32 LED numbers and colors three bytes each;
 * runs must stay inside the frame and drawn LEDs among the LEDs (all checked: ValueError). The GIL is
 * released during the loops. skyscreen_hw.color uses this module where it was built, numpy otherwise (the
 * same bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TABLE_SIZE 256
#define MAX_BUFFERS 6
#define SUM_BLOCK ((size_t)1 << 24) /* bytes whose sum fits 32 bits: (2**24) * 255 < 2**32 */

/* The buffers of one call, released together. */
typedef struct {
    Py_buffer view[MAX_BUFFERS];
    int count;
} Buffers;

static const uint8_t *get(Buffers *b, PyObject *obj, int writable) {
    Py_buffer *v = &b->view[b->count];
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return NULL;
    b->count++;
    return v->buf;
}

static Py_ssize_t length(const Buffers *b, int i) { return b->view[i].len; }

static void release(Buffers *b) {
    while (b->count > 0)
        PyBuffer_Release(&b->view[--b->count]);
}

/* out[i] = table[src[i]] for n bytes, eight at a time. */
static void look_up(const uint8_t *src, const uint8_t *table, uint8_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint8_t b[8];
        memcpy(b, src + i, 8); /* read before writing: out may be src */
        uint8_t o0 = table[b[0]], o1 = table[b[1]], o2 = table[b[2]], o3 = table[b[3]];
        uint8_t o4 = table[b[4]], o5 = table[b[5]], o6 = table[b[6]], o7 = table[b[7]];
        out[i] = o0, out[i + 1] = o1, out[i + 2] = o2, out[i + 3] = o3;
        out[i + 4] = o4, out[i + 5] = o5, out[i + 6] = o6, out[i + 7] = o7;
    }
    for (; i < n; i++)
        out[i] = table[src[i]];
}

/* The LEDs in order, run after run (a run: first pixel, step between pixels, LEDs), each through the
 * table, then the drawn LEDs painted (drawn may be NULL: nothing drawn); returns the sum of the bytes
 * written when summed, else 0. The runs were checked to stay inside the frame and to cover the LEDs, drawn
 * to name LEDs, and out not to overlap anything read (restrict: the compiler may then keep loads ahead of
 * stores). Inlined into the two callers below, each with a constant `summed`: the loop without the sum is
 * about 15% quicker, for a display with no power limit. */
static inline uint64_t gather_runs(const uint8_t *restrict frame, const int32_t *restrict runs, size_t count,
                                   const uint8_t *restrict table, uint8_t *restrict out,
                                   const int32_t *restrict drawn, const uint8_t *restrict colors,
                                   size_t drawn_count, const int summed) {
    uint64_t sum = 0;
    uint8_t *led = out;
    for (size_t r = 0; r < count; r++) {
        const uint8_t *px = frame + 3 * (ptrdiff_t)runs[3 * r];
        const ptrdiff_t step = 3 * (ptrdiff_t)runs[3 * r + 1];
        const int32_t n = runs[3 * r + 2];
        for (int32_t j = 0; j < n; j++, px += step, led += 3) {
            uint8_t red = table[px[0]], green = table[px[1]], blue = table[px[2]];
            led[0] = red, led[1] = green, led[2] = blue;
            if (summed)
                sum += (uint64_t)red + green + blue;
        }
    }
    for (size_t j = 0; j < drawn_count; j++) {
        uint8_t *painted = out + 3 * (size_t)drawn[j];
        const uint8_t *c = colors + 3 * j;
        if (summed) {
            sum += (uint64_t)c[0] + c[1] + c[2];
            sum -= (uint64_t)painted[0] + painted[1] + painted[2];
        }
        painted[0] = c[0], painted[1] = c[1], painted[2] = c[2];
    }
    return sum;
}

static uint64_t gather_summed(const uint8_t *frame, const int32_t *runs, size_t count, const uint8_t *table,
                              uint8_t *out, const int32_t *drawn, const uint8_t *colors, size_t drawn_count) {
    return gather_runs(frame, runs, count, table, out, drawn, colors, drawn_count, 1);
}

static void gather_plain(const uint8_t *frame, const int32_t *runs, size_t count, const uint8_t *table,
                         uint8_t *out, const int32_t *drawn, const uint8_t *colors, size_t drawn_count) {
    gather_runs(frame, runs, count, table, out, drawn, colors, drawn_count, 0);
}

/* 0 when every drawn LED is among the leds, else -1. */
static int drawn_inside(const int32_t *drawn, size_t count, Py_ssize_t leds) {
    for (size_t j = 0; j < count; j++)
        if (drawn[j] < 0 || drawn[j] >= leds)
            return -1;
    return 0;
}

/* The LEDs the runs cover, or -1 when a run reaches outside the frame's pixels (or has no LEDs). */
static Py_ssize_t run_leds(const int32_t *runs, size_t count, Py_ssize_t pixels) {
    Py_ssize_t leds = 0;
    for (size_t r = 0; r < count; r++) {
        int64_t first = runs[3 * r], step = runs[3 * r + 1], n = runs[3 * r + 2];
        int64_t last = first + step * (n - 1);
        if (n < 1 || first < 0 || first >= pixels || last < 0 || last >= pixels)
            return -1;
        leds += (Py_ssize_t)n;
    }
    return leds;
}

static PyObject *lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lookup(src, table, out)");
        return NULL;
    }
    Buffers b = {.count = 0};
    const uint8_t *src = get(&b, args[0], 0), *table = src ? get(&b, args[1], 0) : NULL;
    uint8_t *out = table ? (uint8_t *)get(&b, args[2], 1) : NULL;
    if (out == NULL) {
        release(&b);
        return NULL;
    }
    if (length(&b, 1) != TABLE_SIZE || length(&b, 0) != length(&b, 2)) {
        PyErr_Format(PyExc_ValueError, "table has %zd bytes (256 needed); src %zd bytes, out %zd", length(&b, 1),
                     length(&b, 0), length(&b, 2));
        release(&b);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    look_up(src, table, out, (size_t)length(&b, 0));
    Py_END_ALLOW_THREADS
    release(&b);
    Py_RETURN_NONE;
}

/* The arguments of gather_lookup and gather_only, checked; their buffers are held until release(&g->b). */
typedef struct {
    Buffers b;
    const uint8_t *frame, *table, *colors;
    const int32_t *runs, *drawn;
    uint8_t *out;
    size_t count, drawn_count;
} Gather;

/* 0 with g filled in, or -1 with the error set and nothing held. */
static int gather_args(Gather *g, PyObject *const *args, Py_ssize_t nargs, const char *usage) {
    g->b.count = 0;
    if (nargs != 4 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    Buffers *b = &g->b;
    const uint8_t *frame = get(b, args[0], 0), *runs = frame ? get(b, args[1], 0) : NULL;
    const uint8_t *table = runs ? get(b, args[2], 0) : NULL;
    uint8_t *out = table ? (uint8_t *)get(b, args[3], 1) : NULL;
    const uint8_t *drawn = NULL, *colors = NULL;
    if (out != NULL && nargs == 6) {
        drawn = get(b, args[4], 0);
        colors = drawn ? get(b, args[5], 0) : NULL;
    }
    if (out == NULL || (nargs == 6 && colors == NULL)) {
        release(b);
        return -1;
    }
    Py_ssize_t frame_len = length(b, 0), runs_len = length(b, 1), out_len = length(b, 3);
    size_t count = (size_t)runs_len / 12;
    Py_ssize_t leds = runs_len % 12 ? -1 : run_leds((const int32_t *)runs, count, frame_len / 3);
    Py_ssize_t drawn_len = nargs == 6 ? length(b, 4) : 0, colors_len = nargs == 6 ? length(b, 5) : 0;
    size_t drawn_count = (size_t)drawn_len / 4;
    if (length(b, 2) != TABLE_SIZE || frame_len % 3 || leds < 0 || out_len != leds * 3 || drawn_len % 4 ||
        colors_len != drawn_len / 4 * 3 || drawn_inside((const int32_t *)drawn, drawn_count, leds) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "table has %zd bytes (256 needed); frame %zd bytes (RGB pixels); runs %zd bytes (int32 first"
                     " pixel, step, LEDs; inside the frame: %s) for %zd LEDs; out %zd bytes (3 a LED); drawn"
                     " %zd bytes (int32 LED numbers below the LEDs), colors %zd (3 a drawn LED)",
                     length(b, 2), frame_len, runs_len, leds < 0 ? "no" : "yes", leds, out_len, drawn_len,
                     colors_len);
        release(b);
        return -1;
    }
    for (int i = 0; i < b->count; i++) {
        if (i == 3)
            continue;
        const uint8_t *start = b->view[i].buf, *stop = start + b->view[i].len;
        if (start < out + out_len && out < stop) {
            PyErr_SetString(PyExc_ValueError, "out overlaps what is read (frame, runs, table, drawn or colors)");
            release(b);
            return -1;
        }
    }
    g->frame = frame, g->runs = (const int32_t *)runs, g->count = count, g->table = table, g->out = out;
    g->drawn = (const int32_t *)drawn, g->colors = colors, g->drawn_count = drawn_count;
    return 0;
}

static PyObject *gather_lookup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Gather g;
    if (gather_args(&g, args, nargs, "gather_lookup(frame, runs, table, out[, drawn, colors])") < 0)
        return NULL;
    uint64_t sum;
    Py_BEGIN_ALLOW_THREADS
    sum = gather_summed(g.frame, g.runs, g.count, g.table, g.out, g.drawn, g.colors, g.drawn_count);
    Py_END_ALLOW_THREADS
    release(&g.b);
    return PyLong_FromUnsignedLongLong(sum);
}

static PyObject *gather_only(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    Gather g;
    if (gather_args(&g, args, nargs, "gather_only(frame, runs, table, out[, drawn, colors])") < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    gather_plain(g.frame, g.runs, g.count, g.table, g.out, g.drawn, g.colors, g.drawn_count);
    Py_END_ALLOW_THREADS
    release(&g.b);
    Py_RETURN_NONE;
}

/* The sum of n bytes, in blocks whose sums fit 32 bits: the compiler then adds many bytes at once in
 * 32-bit lanes (with a 64-bit sum it widens every byte to 64 bits first, at a third of the speed). */
static uint64_t sum_bytes(const uint8_t *src, size_t n) {
    uint64_t sum = 0;
    while (n > 0) {
        size_t block = n < SUM_BLOCK ? n : SUM_BLOCK;
        uint32_t part = 0;
        for (size_t i = 0; i < block; i++)
            part += src[i];
        sum += part;
        src += block;
        n -= block;
    }
    return sum;
}

static PyObject *total(PyObject *self, PyObject *arg) {
    (void)self;
    Buffers b = {.count = 0};
    const uint8_t *src = get(&b, arg, 0);
    if (src == NULL)
        return NULL;
    uint64_t sum = 0;
    size_t n = (size_t)length(&b, 0);
    Py_BEGIN_ALLOW_THREADS
    sum = sum_bytes(src, n);
    Py_END_ALLOW_THREADS
    release(&b);
    return PyLong_FromUnsignedLongLong(sum);
}

/* A 16-bit multiplier k near s * 2**16 with (v * k) >> 16 == table[v] for every byte v: a high-half
 * multiply the compiler vectorizes. -1 when neither candidate gives the table's 256 bytes. (Returned, not
 * written through a pointer: a variable whose address was taken may alias the output bytes, and the
 * compiler would then read it again for every byte instead of vectorizing.) */
static int32_t multiplier(const uint8_t *table, double s) {
    uint32_t first = (uint32_t)(s * 65536.0);
    for (uint32_t candidate = first; candidate <= first + 1 && candidate < 65536; candidate++) {
        uint32_t v = 0;
        while (v < TABLE_SIZE && ((v * candidate) >> 16) == table[v])
            v++;
        if (v == TABLE_SIZE)
            return (int32_t)candidate;
    }
    return -1;
}

/* out[i] = (src[i] * k) >> 16 for n bytes, as 16-bit high-half multiplies on many bytes at once (SSE2
 * pmulhuw; NEON's widening multiply). Not inlined: inside scale() gcc 12 vectorizes it with 32-bit
 * products instead, at a third of the speed. */
static void __attribute__((noinline)) multiply_high(const uint8_t *src, uint16_t k, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint16_t v = src[i];
        out[i] = (uint8_t)(((uint32_t)v * k) >> 16);
    }
}

static PyObject *scale(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scale(src, s, out)");
        return NULL;
    }
    double s = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (!(s >= 0.0 && s < 1.0)) {
        PyErr_Format(PyExc_ValueError, "scale %R: 0 <= s < 1 needed", args[1]);
        return NULL;
    }
    Buffers b = {.count = 0};
    const uint8_t *src = get(&b, args[0], 0);
    uint8_t *out = src ? (uint8_t *)get(&b, args[2], 1) : NULL;
    if (out == NULL) {
        release(&b);
        return NULL;
    }
    if (length(&b, 0) != length(&b, 1)) {
        PyErr_Format(PyExc_ValueError, "src %zd bytes, out %zd", length(&b, 0), length(&b, 1));
        release(&b);
        return NULL;
    }
    size_t n = (size_t)length(&b, 0);
    uint8_t table[TABLE_SIZE];
    for (int v = 0; v < TABLE_SIZE; v++)
        table[v] = (uint8_t)(v * s); /* floor: truncation of a non-negative value, as numpy's cast */
    int32_t k = multiplier(table, s);
    Py_BEGIN_ALLOW_THREADS
    if (k >= 0) {
        multiply_high(src, (uint16_t)k, out, n);
    } else {
        look_up(src, table, out, n);
    }
    Py_END_ALLOW_THREADS
    release(&b);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"lookup", (PyCFunction)(void (*)(void))lookup, METH_FASTCALL,
     "lookup(src, table, out): out[i] = table[src[i]]"},
    {"gather_lookup", (PyCFunction)(void (*)(void))gather_lookup, METH_FASTCALL,
     "gather_lookup(frame, runs, table, out[, drawn, colors]) -> int: the LEDs run after run (first pixel,\n"
     "step, LEDs) through table, then LED drawn[j] = colors[j]; the sum"},
    {"gather_only", (PyCFunction)(void (*)(void))gather_only, METH_FASTCALL,
     "gather_only(frame, runs, table, out[, drawn, colors]): gather_lookup without the sum"},
    {"total", total, METH_O, "total(src) -> int: the sum of the bytes"},
    {"scale", (PyCFunction)(void (*)(void))scale, METH_FASTCALL, "scale(src, s, out): out[i] = floor(src[i] * s)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "skyscreen_hw._tables",
    .m_doc = "Byte-wise table lookups for the frame path.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__tables(void) { return PyModule_Create(&module); }
