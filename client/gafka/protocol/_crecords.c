/* The record walk of a RecordBatch v2 in C: the per-record loops of gafka.protocol.record_batch.
 *
 * Two functions, each the exact counterpart of a pure-Python one (which stays the reference and the
 * fallback, and which a hypothesis test compares this with):
 *
 *   check_records(section, count)  -> None      (record_batch._py_check_records)
 *   decode_records(section, count, base_offset, base_timestamp, max_timestamp, log_append_time, record_type)
 *                                  -> list      (record_batch._py_decode_records)
 *
 * Damage raises ValueError with the same message the Python code gives. Inputs this code cannot represent
 * exactly (a 10th varint byte carrying bits past 64, sums past int64) raise OverflowError, and the caller
 * then runs the Python reference instead, so both always agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef enum { OK = 0, PAST_END, TOO_LONG, TOO_WIDE } varint_status;

/* Kafka's zig-zag varlong at buf[*pos], as gafka.protocol.varint.read_varint reads it. */
static varint_status read_varint(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, int64_t *value)
{
    Py_ssize_t p = *pos;
    if (p < 0 || p >= len)
        return PAST_END;
    unsigned char byte = buf[p++];
    uint64_t result = byte & 0x7F;
    if (byte >= 0x80) {
        int shift = 7;
        for (;;) {
            if (p >= len)
                return PAST_END;
            byte = buf[p++];
            if (shift == 63 && (byte & 0x7E))
                return TOO_WIDE; /* Python keeps those bits; a uint64 cannot */
            result |= (uint64_t)(byte & 0x7F) << shift;
            if (byte < 0x80)
                break;
            shift += 7;
            if (shift > 63)
                return TOO_LONG;
        }
    }
    *value = (int64_t)(result >> 1) ^ -(int64_t)(result & 1);
    *pos = p;
    return OK;
}

static PyObject *invalid(const char *message)
{
    PyErr_SetString(PyExc_ValueError, message);
    return NULL;
}

static PyObject *varint_error(varint_status status)
{
    if (status == TOO_WIDE) {
        PyErr_SetString(PyExc_OverflowError, "varint wider than 64 bits");
        return NULL;
    }
    return invalid(status == PAST_END ? "varint runs past the end of the buffer" : "varint is longer than 10 bytes");
}

#define READ(target)                                                    \
    do {                                                                \
        varint_status status_ = read_varint(buf, len, &cursor, &(target)); \
        if (status_ != OK) {                                            \
            varint_error(status_);                                      \
            goto fail;                                                  \
        }                                                               \
    } while (0)

static PyObject *check_records(PyObject *module, PyObject *args)
{
    Py_buffer view;
    long long count;
    if (!PyArg_ParseTuple(args, "y*L", &view, &count))
        return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t len = view.len, cursor = 0;
    for (long long expected = 0; expected < count; expected++) {
        int64_t length, timestamp_delta, offset_delta;
        READ(length);
        if (length <= 0 || length > len - cursor) {
            invalid("record length runs past the end of the batch");
            goto fail;
        }
        Py_ssize_t next = cursor + (Py_ssize_t)length;
        cursor += 1; /* attributes */
        READ(timestamp_delta);
        READ(offset_delta);
        if (offset_delta != expected) {
            PyErr_Format(PyExc_ValueError, "record offset delta %lld, expected %lld", (long long)offset_delta, expected);
            goto fail;
        }
        cursor = next;
    }
    PyBuffer_Release(&view);
    if (cursor != len) {
        PyErr_Format(PyExc_ValueError, "%zd stray bytes after %lld records", len - cursor, count);
        return NULL;
    }
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    return NULL;
}

/* key, value or header field: length varint, -1 (any negative) is null. */
static PyObject *read_bytes(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, int *is_null)
{
    int64_t length;
    varint_status status = read_varint(buf, len, pos, &length);
    if (status != OK)
        return varint_error(status);
    *is_null = length < 0;
    if (length < 0)
        Py_RETURN_NONE;
    if (length > len - *pos)
        return invalid("record field runs past the end of the batch");
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)buf + *pos, (Py_ssize_t)length);
    *pos += (Py_ssize_t)length;
    return bytes;
}

static PyObject *sum(int64_t a, int64_t b)
{
    int64_t total;
    if (__builtin_add_overflow(a, b, &total)) {
        PyErr_SetString(PyExc_OverflowError, "offset or timestamp past int64");
        return NULL;
    }
    return PyLong_FromLongLong(total);
}

static PyObject *decode_records(PyObject *module, PyObject *args)
{
    Py_buffer view;
    long long count, base_offset, base_timestamp, max_timestamp;
    int log_append_time;
    PyTypeObject *record_type;
    if (!PyArg_ParseTuple(args, "y*LLLLpO!", &view, &count, &base_offset, &base_timestamp, &max_timestamp,
                          &log_append_time, &PyType_Type, &record_type))
        return NULL;
    if (!PyType_IsSubtype(record_type, &PyTuple_Type)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "record_type must be a tuple subclass of five fields");
        return NULL;
    }
    const unsigned char *buf = view.buf;
    Py_ssize_t len = view.len, cursor = 0;
    PyObject *records = PyList_New(0);
    if (records == NULL)
        goto fail;
    for (long long index = 0; index < count; index++) {
        int64_t length, timestamp_delta, offset_delta, header_count;
        int is_null;
        READ(length);
        if (length < 0 || length > len - cursor) {
            invalid("record length runs past the end of the batch");
            goto fail;
        }
        Py_ssize_t record_end = cursor + (Py_ssize_t)length;
        cursor += 1; /* attributes */
        READ(timestamp_delta);
        READ(offset_delta);
        PyObject *key = read_bytes(buf, len, &cursor, &is_null);
        if (key == NULL)
            goto fail;
        PyObject *value = read_bytes(buf, len, &cursor, &is_null);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        PyObject *headers = NULL, *record = NULL, *offset = NULL, *timestamp = NULL;
        varint_status status = read_varint(buf, len, &cursor, &header_count);
        if (status != OK) {
            varint_error(status);
            goto fail_record;
        }
        if (header_count < 0) {
            invalid("negative header count");
            goto fail_record;
        }
        headers = PyList_New(0);
        if (headers == NULL)
            goto fail_record;
        for (int64_t h = 0; h < header_count; h++) {
            int64_t name_length;
            status = read_varint(buf, len, &cursor, &name_length);
            if (status != OK) {
                varint_error(status);
                goto fail_record;
            }
            if (name_length < 0) {
                invalid("null header key");
                goto fail_record;
            }
            if (name_length > len - cursor) {
                invalid("record field runs past the end of the batch");
                goto fail_record;
            }
            PyObject *name = PyUnicode_DecodeUTF8((const char *)buf + cursor, (Py_ssize_t)name_length, "replace");
            if (name == NULL)
                goto fail_record;
            cursor += (Py_ssize_t)name_length;
            PyObject *header_value = read_bytes(buf, len, &cursor, &is_null);
            if (header_value == NULL) {
                Py_DECREF(name);
                goto fail_record;
            }
            PyObject *pair = PyTuple_Pack(2, name, header_value);
            Py_DECREF(name);
            Py_DECREF(header_value);
            if (pair == NULL || PyList_Append(headers, pair) < 0) {
                Py_XDECREF(pair);
                goto fail_record;
            }
            Py_DECREF(pair);
        }
        if (cursor != record_end) {
            invalid("record length does not match its fields");
            goto fail_record;
        }
        offset = sum(base_offset, offset_delta);
        if (offset == NULL)
            goto fail_record;
        timestamp = log_append_time ? PyLong_FromLongLong(max_timestamp) : sum(base_timestamp, timestamp_delta);
        if (timestamp == NULL)
            goto fail_record;
        PyObject *header_tuple = PyList_AsTuple(headers);
        Py_CLEAR(headers);
        if (header_tuple == NULL)
            goto fail_record;
        record = record_type->tp_alloc(record_type, 5);
        if (record == NULL) {
            Py_DECREF(header_tuple);
            goto fail_record;
        }
        PyTuple_SET_ITEM(record, 0, offset);
        PyTuple_SET_ITEM(record, 1, timestamp);
        PyTuple_SET_ITEM(record, 2, key);
        PyTuple_SET_ITEM(record, 3, value);
        PyTuple_SET_ITEM(record, 4, header_tuple);
        if (PyList_Append(records, record) < 0) {
            Py_DECREF(record);
            goto fail;
        }
        Py_DECREF(record);
        continue;
    fail_record:
        Py_XDECREF(headers);
        Py_XDECREF(offset);
        Py_XDECREF(timestamp);
        Py_DECREF(key);
        Py_DECREF(value);
        goto fail;
    }
    if (cursor != len) {
        PyErr_Format(PyExc_ValueError, "%zd stray bytes after %lld records", len - cursor, count);
        goto fail;
    }
    PyBuffer_Release(&view);
    return records;
fail:
    Py_XDECREF(records);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"check_records", check_records, METH_VARARGS, "Walk the records of a batch: lengths and offset deltas."},
    {"decode_records", decode_records, METH_VARARGS, "Decode the records of a batch into record_type tuples."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "gafka.protocol._crecords", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__crecords(void)
{
    return PyModule_Create(&module);
}
