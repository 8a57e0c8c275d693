/*
 * A SQLite connection for the ledger's commit that runs each statement batch without the GIL.
 *
 * Why: Python's sqlite3 module binds every row of an executemany with the GIL held and gives
 * the GIL up and takes it back around each row's sqlite3_step. The ledger commits 8,190 rows a
 * batch; done that way the commit cannot overlap the engine's work on the other core, and every
 * row pays a GIL hand-over. Here all values of a batch are read from their Python objects first
 * (with the GIL), then every row is bound and stepped in C with the GIL released, and so is the
 * COMMIT with its fsync. The SQL, the file and its format are exactly those of SQLiteStore; only
 * the connection that writes them differs (see formicary/ledger/native.py).
 *
 * Values may be int (int64), bytes, str, float or None, as with sqlite3. Errors raise the
 * sqlite3 module's own exception classes (IntegrityError for constraint violations,
 * OperationalError otherwise; OverflowError for an int beyond int64), so callers handle one set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>
#include <structmember.h>

static PyObject *IntegrityError, *OperationalError;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} Writer;

typedef struct {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_BLOB, SQLITE_TEXT, SQLITE_NULL */
    sqlite3_int64 i;
    double d;
    const void *p;
    Py_ssize_t len;
    unsigned char u128[16]; /* the BLOB of an unsigned field beyond int64 (see to_u128) */
} Value;

static void raise_sqlite(int code, const char *message) {
    PyObject *type = (code & 0xff) == SQLITE_CONSTRAINT ? IntegrityError : OperationalError;
    PyErr_SetString(type, message);
}

static int check_open(Writer *self) {
    if (self->db == NULL) {
        PyErr_SetString(OperationalError, "cannot operate on a closed connection");
        return -1;
    }
    return 0;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"path", "busy_timeout_ms", NULL};
    const char *path;
    int busy_ms = 10000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s|i", kwlist, &path, &busy_ms)) return -1;
    if (self->db != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the connection is already open");
        return -1;
    }
    sqlite3 *db = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(db, busy_ms);
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        raise_sqlite(rc, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return -1;
    }
    self->db = db;
    return 0;
}

static void Writer_dealloc(Writer *self) {
    if (self->db != NULL) sqlite3_close_v2(self->db);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Writer_close(Writer *self, PyObject *unused) {
    if (self->db != NULL) {
        int rc = sqlite3_close_v2(self->db);
        self->db = NULL;
        if (rc != SQLITE_OK) {
            raise_sqlite(rc, sqlite3_errstr(rc));
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* One Python value -> Value; the object must stay alive until the value is used. */
static int to_value(PyObject *obj, Value *v) {
    if (PyLong_Check(obj)) {
        int overflow;
        v->i = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to SQLite INTEGER");
            return -1;
        }
        if (v->i == -1 && PyErr_Occurred()) return -1;
        v->type = SQLITE_INTEGER;
    } else if (PyBytes_Check(obj)) {
        v->type = SQLITE_BLOB;
        v->p = PyBytes_AS_STRING(obj);
        v->len = PyBytes_GET_SIZE(obj);
    } else if (obj == Py_None) {
        v->type = SQLITE_NULL;
    } else if (PyUnicode_Check(obj)) {
        v->type = SQLITE_TEXT;
        v->p = PyUnicode_AsUTF8AndSize(obj, &v->len);
        if (v->p == NULL) return -1;
    } else if (PyFloat_Check(obj)) {
        v->type = SQLITE_FLOAT;
        v->d = PyFloat_AS_DOUBLE(obj);
    } else {
        PyErr_Format(PyExc_TypeError, "cannot store a %.100s in SQLite", Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* An unsigned 128-bit field as SQLiteStore stores it: INTEGER below 2^63, else 16 bytes
 * big-endian in the value itself. */
static int to_u128(PyObject *obj, Value *v) {
    if (!PyLong_CheckExact(obj)) {
        PyErr_Format(PyExc_TypeError, "expected an int, got %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    v->i = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow <= 0) {
        /* As sqlite3 would: in int64 it is an INTEGER, below it too large. */
        v->type = SQLITE_INTEGER;
        if (overflow < 0) {
            PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to SQLite INTEGER");
            return -1;
        }
        return 0;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (_PyLong_AsByteArray((PyLongObject *)obj, v->u128, 16, 0, 0, 1) < 0) return -1;
#else
    if (_PyLong_AsByteArray((PyLongObject *)obj, v->u128, 16, 0, 0) < 0) return -1;
#endif
    v->type = SQLITE_BLOB;
    v->p = v->u128;
    v->len = 16;
    return 0;
}

static int bind(sqlite3_stmt *stmt, int column, const Value *v) {
    switch (v->type) {
    case SQLITE_INTEGER: return sqlite3_bind_int64(stmt, column, v->i);
    case SQLITE_FLOAT: return sqlite3_bind_double(stmt, column, v->d);
    case SQLITE_BLOB: return sqlite3_bind_blob64(stmt, column, v->p, v->len, SQLITE_STATIC);
    case SQLITE_TEXT:
        return sqlite3_bind_text64(stmt, column, v->p, v->len, SQLITE_STATIC, SQLITE_UTF8);
    default: return sqlite3_bind_null(stmt, column);
    }
}

/* One statement and every row of values for it, read from Python and ready to run. */
typedef struct {
    sqlite3_stmt *stmt;
    Value *values;
    Py_ssize_t rows;
    int columns;
    PyObject *keep; /* a tuple of the rows: keeps every value alive while the GIL is released */
} Batch;

static void batch_free(Batch *b) {
    sqlite3_finalize(b->stmt);
    PyMem_Free(b->values);
    Py_XDECREF(b->keep);
    memset(b, 0, sizeof *b);
}

/* One column read straight from an object's slot (a Struct's field), optionally unsigned. */
typedef struct {
    PyTypeObject *type;
    Py_ssize_t offset;
    int u128;
} Field;

/* fields: a tuple of (member descriptor, is_u128) -> Field[]; all of one type. */
static Field *read_fields(PyObject *fields, int *count) {
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) == 0) {
        PyErr_SetString(PyExc_TypeError, "fields must be a tuple of (member descriptor, bool)");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    Field *out = PyMem_Calloc(n, sizeof(Field));
    if (out == NULL) return (Field *)PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *descr, *u128;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(fields, i), "OO", &descr, &u128)) goto fail;
        if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
            PyErr_SetString(PyExc_TypeError, "a field must be an object slot's member descriptor");
            goto fail;
        }
        out[i].type = PyDescr_TYPE(descr);
        out[i].offset = ((PyMemberDescrObject *)descr)->d_member->offset;
        out[i].u128 = PyObject_IsTrue(u128);
        if (out[i].u128 < 0 || out[i].type != out[0].type) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "fields of one type only");
            goto fail;
        }
    }
    *count = (int)n;
    return out;
fail:
    PyMem_Free(out);
    return NULL;
}

/* With the GIL: prepare `sql` and read every value of `rows_obj`: tuples, or with `fields`
 * (not None) objects whose slots give the columns (no tuple built per row). */
static int batch_prepare(Writer *self, Batch *b, PyObject *sql_obj, PyObject *rows_obj,
                         PyObject *fields_obj) {
    memset(b, 0, sizeof *b);
    Py_ssize_t sql_len;
    const char *sql = PyUnicode_AsUTF8AndSize(sql_obj, &sql_len);
    if (sql == NULL) return -1;
    b->keep = PySequence_Tuple(rows_obj);
    if (b->keep == NULL) return -1;
    b->rows = PyTuple_GET_SIZE(b->keep);
    int rc = sqlite3_prepare_v2(self->db, sql, (int)sql_len, &b->stmt, NULL);
    if (rc != SQLITE_OK) {
        raise_sqlite(rc, sqlite3_errmsg(self->db));
        goto fail;
    }
    b->columns = sqlite3_bind_parameter_count(b->stmt);
    size_t cells = (size_t)b->rows * (size_t)b->columns + 1;
    if (cells > PY_SSIZE_T_MAX / sizeof(Value)) {
        PyErr_NoMemory();
        goto fail;
    }
    b->values = PyMem_Malloc(sizeof(Value) * cells);
    if (b->values == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (fields_obj != NULL && fields_obj != Py_None) {
        int count = 0;
        Field *fields = read_fields(fields_obj, &count);
        if (fields == NULL) goto fail;
        if (count != b->columns) {
            PyErr_Format(PyExc_ValueError, "%d fields for %d parameters", count, b->columns);
            PyMem_Free(fields);
            goto fail;
        }
        for (Py_ssize_t r = 0; r < b->rows; r++) {
            PyObject *obj = PyTuple_GET_ITEM(b->keep, r);
            if (Py_TYPE(obj) != fields[0].type) {
                PyErr_Format(PyExc_TypeError, "row %zd: expected a %.100s, got %.100s", r,
                             fields[0].type->tp_name, Py_TYPE(obj)->tp_name);
                PyMem_Free(fields);
                goto fail;
            }
            for (int c = 0; c < count; c++) {
                PyObject *v = *(PyObject **)((char *)obj + fields[c].offset);
                Value *cell = &b->values[r * count + c];
                if (v == NULL) {
                    PyErr_Format(PyExc_ValueError, "row %zd: a field is unset", r);
                    PyMem_Free(fields);
                    goto fail;
                }
                /* Ints only: their values are copied now, so nothing read here can change or
                 * be freed while the GIL is released (a str or bytes field could be). */
                if (!fields[c].u128 && !PyLong_Check(v)) {
                    PyErr_Format(PyExc_TypeError, "row %zd: field %d is a %.100s, not an int",
                                 r, c, Py_TYPE(v)->tp_name);
                    PyMem_Free(fields);
                    goto fail;
                }
                if ((fields[c].u128 ? to_u128(v, cell) : to_value(v, cell)) < 0) {
                    PyMem_Free(fields);
                    goto fail;
                }
            }
        }
        PyMem_Free(fields);
        return 0;
    }
    for (Py_ssize_t r = 0; r < b->rows; r++) {
        PyObject *row = PyTuple_GET_ITEM(b->keep, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != b->columns) {
            PyErr_Format(PyExc_ValueError, "row %zd: expected a tuple of %d values", r,
                         b->columns);
            goto fail;
        }
        for (int c = 0; c < b->columns; c++)
            if (to_value(PyTuple_GET_ITEM(row, c), &b->values[r * b->columns + c]) < 0)
                goto fail;
    }
    return 0;
fail:
    batch_free(b);
    return -1;
}

/* Without the GIL: bind and step every row; SQLITE_OK or the error (row in *failed_row). */
static int batch_run(Batch *b, Py_ssize_t *failed_row) {
    int rc = SQLITE_OK;
    for (Py_ssize_t r = 0; r < b->rows && rc == SQLITE_OK; r++) {
        for (int c = 0; c < b->columns && rc == SQLITE_OK; c++)
            rc = bind(b->stmt, c + 1, &b->values[r * b->columns + c]);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(b->stmt);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        if (rc != SQLITE_OK) *failed_row = r;
        sqlite3_reset(b->stmt);
    }
    return rc;
}

static void raise_row(Writer *self, int rc, Py_ssize_t failed_row) {
    char message[512];
    PyOS_snprintf(message, sizeof message, "%s (row %zd)", sqlite3_errmsg(self->db), failed_row);
    raise_sqlite(rc, message);
}

/*
 * executemany(sql, rows): run one statement with no result rows once per row of parameters.
 * Every value is read first; then the rows run in C without the GIL.
 */
static PyObject *Writer_executemany(Writer *self, PyObject *args) {
    PyObject *sql, *rows;
    if (!PyArg_ParseTuple(args, "UO", &sql, &rows)) return NULL;
    if (check_open(self) < 0) return NULL;
    Batch b;
    if (batch_prepare(self, &b, sql, rows, NULL) < 0) return NULL;
    Py_ssize_t failed_row = -1;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = batch_run(&b, &failed_row);
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) raise_row(self, rc, failed_row);
    batch_free(&b);
    if (rc != SQLITE_OK) return NULL;
    Py_RETURN_NONE;
}

/*
 * transaction(batches): BEGIN IMMEDIATE, every batch in order, COMMIT, all in one stretch
 * without the GIL (so a busy GIL costs one wait per commit, not one per statement). A batch is
 * (sql, rows of values) or (sql, objects, fields): fields is a tuple of (member descriptor,
 * is_u128) giving each parameter from the object's slot, so no tuple is built per row; such
 * fields must hold ints (copied before the GIL is released), and an unsigned one is stored as
 * SQLiteStore stores it (INTEGER below 2^63, else a 16-byte big-endian BLOB). On any error the transaction is rolled back and nothing is written.
 */
static PyObject *Writer_transaction(Writer *self, PyObject *batches_obj) {
    if (check_open(self) < 0) return NULL;
    PyObject *batches = PySequence_Tuple(batches_obj);
    if (batches == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(batches);
    Batch *prepared = PyMem_Calloc(n ? n : 1, sizeof(Batch));
    Py_ssize_t ready = 0;
    PyObject *result = NULL;
    if (prepared == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; ready < n; ready++) {
        PyObject *item = PyTuple_GET_ITEM(batches, ready), *sql, *rows, *fields = NULL;
        if (!PyArg_ParseTuple(item, "UO|O;each batch is (sql, rows) or (sql, objects, fields)",
                              &sql, &rows, &fields))
            goto done;
        if (batch_prepare(self, &prepared[ready], sql, rows, fields) < 0) goto done;
    }
    int rc, failed_batch = -1;
    Py_ssize_t failed_row = -1;
    char *error = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, &error);
    for (Py_ssize_t i = 0; i < n && rc == SQLITE_OK; i++) {
        rc = batch_run(&prepared[i], &failed_row);
        if (rc != SQLITE_OK) failed_batch = (int)i;
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(self->db, "COMMIT", NULL, NULL, &error);
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        char message[600];
        PyOS_snprintf(message, sizeof message, "%s (batch %d, row %zd)",
                      error ? error : sqlite3_errmsg(self->db), failed_batch, failed_row);
        sqlite3_free(error);
        if (!sqlite3_get_autocommit(self->db)) {
            Py_BEGIN_ALLOW_THREADS
            sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
            Py_END_ALLOW_THREADS
        }
        raise_sqlite(rc, message);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < ready; i++) batch_free(&prepared[i]);
    PyMem_Free(prepared);
    Py_DECREF(batches);
    return result;
}

/* execute(sql, params=()): one statement with no result rows (BEGIN, COMMIT, an INSERT). */
static PyObject *Writer_execute(Writer *self, PyObject *args) {
    PyObject *sql, *params = NULL;
    if (!PyArg_ParseTuple(args, "U|O", &sql, &params)) return NULL;
    if (check_open(self) < 0) return NULL;
    if (params != NULL && PyObject_Size(params) > 0) {
        PyObject *rows = PyTuple_Pack(1, params);
        if (rows == NULL) return NULL;
        PyObject *call = PyTuple_Pack(2, sql, rows);
        Py_DECREF(rows);
        if (call == NULL) return NULL;
        PyObject *result = Writer_executemany(self, call);
        Py_DECREF(call);
        return result;
    }
    const char *text = PyUnicode_AsUTF8(sql);
    if (text == NULL) return NULL;
    char *error = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_exec(self->db, text, NULL, NULL, &error);
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        raise_sqlite(rc, error ? error : sqlite3_errstr(rc));
        sqlite3_free(error);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ postings runs
 *
 * group_postings(select_sql, params, insert_sql, accounts_per_row, postings_per_row): one step
 * of SQLiteStore's per-account index, in one stretch without the GIL. `select_sql` (bound with
 * `params`, ints) yields rows of a timestamp and one or more account ids (an INTEGER, or the
 * 16-byte big-endian BLOB of an id beyond int64), in timestamp order. Every account's
 * timestamps are grouped; the accounts, in ascending id order, are cut into chunks of at most
 * `accounts_per_row` accounts and (unless one account alone has more) `postings_per_row`
 * timestamps, and each chunk is one row of `insert_sql`, bound (?1 the chunk's first account
 * id as a 16-byte big-endian BLOB, ?2 the chunk). A chunk, all little-endian:
 *
 *     u32 n | n x (u64 id_high, u64 id_low) | (n + 1) x u32 offsets | int64 timestamps
 *
 * account k's timestamps being timestamps[offsets[k]:offsets[k + 1]], ascending. Returns the
 * number of rows read. Grouping here instead of an ORDER BY in SQL is what makes indexing cheap:
 * no sort of the postings, and a B-tree row per chunk of accounts instead of one per posting.
 */

typedef struct {
    sqlite3_uint64 hi, lo;
    Py_ssize_t count, start; /* postings of this account; its offset in the grouped array */
} Run;

typedef struct {
    Run *runs;
    Py_ssize_t runs_len, runs_cap;
    Py_ssize_t *slots; /* open addressing: run index + 1, 0 = empty */
    Py_ssize_t slots_cap;
    /* Postings in arrival order: (run index, timestamp). */
    Py_ssize_t *posting_run;
    sqlite3_int64 *posting_ts;
    Py_ssize_t postings_len, postings_cap;
    Py_ssize_t rows; /* rows read */
} Grouping;

static void grouping_free(Grouping *g) {
    free(g->runs);
    free(g->slots);
    free(g->posting_run);
    free(g->posting_ts);
    memset(g, 0, sizeof *g);
}

static sqlite3_uint64 mix(sqlite3_uint64 h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static size_t run_hash(sqlite3_uint64 hi, sqlite3_uint64 lo) { return (size_t)mix(lo ^ mix(hi)); }

static int grouping_rehash(Grouping *g, Py_ssize_t cap) {
    Py_ssize_t *slots = calloc((size_t)cap, sizeof(Py_ssize_t));
    if (slots == NULL) return SQLITE_NOMEM;
    for (Py_ssize_t r = 0; r < g->runs_len; r++) {
        size_t i = run_hash(g->runs[r].hi, g->runs[r].lo) & (size_t)(cap - 1);
        while (slots[i]) i = (i + 1) & (size_t)(cap - 1);
        slots[i] = r + 1;
    }
    free(g->slots);
    g->slots = slots;
    g->slots_cap = cap;
    return SQLITE_OK;
}

/* The run of an account value (creating it); -1 with *rc set on error. */
static Py_ssize_t grouping_run(Grouping *g, sqlite3_value *value, int *rc) {
    sqlite3_uint64 hi = 0, lo = 0;
    int type = sqlite3_value_type(value);
    if (type == SQLITE_INTEGER && sqlite3_value_int64(value) >= 0) {
        lo = (sqlite3_uint64)sqlite3_value_int64(value);
    } else if (type == SQLITE_BLOB && sqlite3_value_bytes(value) == 16) {
        const unsigned char *b = sqlite3_value_blob(value);
        for (int i = 0; i < 8; i++) hi = hi << 8 | b[i];
        for (int i = 8; i < 16; i++) lo = lo << 8 | b[i];
    } else {
        *rc = SQLITE_MISMATCH;
        return -1;
    }
    if (2 * (g->runs_len + 1) > g->slots_cap &&
        (*rc = grouping_rehash(g, g->slots_cap ? 2 * g->slots_cap : 1024)) != SQLITE_OK)
        return -1;
    size_t mask = (size_t)(g->slots_cap - 1);
    size_t i = run_hash(hi, lo) & mask;
    for (; g->slots[i]; i = (i + 1) & mask) {
        Run *run = &g->runs[g->slots[i] - 1];
        if (run->lo == lo && run->hi == hi) return g->slots[i] - 1;
    }
    if (g->runs_len == g->runs_cap) {
        Py_ssize_t cap = g->runs_cap ? 2 * g->runs_cap : 1024;
        Run *runs = realloc(g->runs, (size_t)cap * sizeof(Run));
        if (runs == NULL) {
            *rc = SQLITE_NOMEM;
            return -1;
        }
        g->runs = runs;
        g->runs_cap = cap;
    }
    g->runs[g->runs_len] = (Run){hi, lo, 0, 0};
    g->slots[i] = g->runs_len + 1;
    return g->runs_len++;
}

static int grouping_add(Grouping *g, Py_ssize_t run, sqlite3_int64 ts) {
    if (g->postings_len == g->postings_cap) {
        Py_ssize_t cap = g->postings_cap ? 2 * g->postings_cap : 65536;
        Py_ssize_t *r = realloc(g->posting_run, (size_t)cap * sizeof(Py_ssize_t));
        if (r == NULL) return SQLITE_NOMEM;
        g->posting_run = r;
        sqlite3_int64 *t = realloc(g->posting_ts, (size_t)cap * sizeof(sqlite3_int64));
        if (t == NULL) return SQLITE_NOMEM;
        g->posting_ts = t;
        g->postings_cap = cap;
    }
    g->posting_run[g->postings_len] = run;
    g->posting_ts[g->postings_len++] = ts;
    return SQLITE_OK;
}

/* Ascending unsigned 128-bit ids. */
static int run_order(const void *a, const void *b) {
    const Run *x = a, *y = b;
    if (x->hi != y->hi) return (x->hi > y->hi) - (x->hi < y->hi);
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static void put_u32(unsigned char *out, sqlite3_uint64 v) {
    for (int i = 0; i < 4; i++) out[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *out, sqlite3_uint64 v) {
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(v >> (8 * i));
}

/* Write runs[first:stop] as one chunk row. */
static int insert_chunk(sqlite3_stmt *insert, const Grouping *g, Py_ssize_t first,
                        Py_ssize_t stop, unsigned char *buffer) {
    Py_ssize_t n = stop - first, postings = 0;
    unsigned char *p = buffer;
    put_u32(p, (sqlite3_uint64)n);
    p += 4;
    for (Py_ssize_t r = first; r < stop; r++, p += 16) {
        put_u64(p, g->runs[r].hi);
        put_u64(p + 8, g->runs[r].lo);
    }
    for (Py_ssize_t r = first; r <= stop; r++, p += 4) {
        put_u32(p, (sqlite3_uint64)postings);
        if (r < stop) postings += g->runs[r].count;
    }
    for (Py_ssize_t r = first; r < stop; r++)
        for (Py_ssize_t k = 0; k < g->runs[r].count; k++, p += 8)
            put_u64(p, (sqlite3_uint64)g->posting_ts[g->runs[r].start + k]);
    unsigned char id[16];
    for (int i = 0; i < 8; i++) {
        id[i] = (unsigned char)(g->runs[first].hi >> (56 - 8 * i));
        id[8 + i] = (unsigned char)(g->runs[first].lo >> (56 - 8 * i));
    }
    int rc = sqlite3_bind_blob(insert, 1, id, 16, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob64(insert, 2, buffer, (sqlite3_uint64)(p - buffer), SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(insert);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_reset(insert);
    return rc;
}

static int group_run(sqlite3_stmt *select, sqlite3_stmt *insert, Grouping *g,
                     Py_ssize_t accounts_per_row, Py_ssize_t postings_per_row) {
    int rc, columns = sqlite3_column_count(select);
    if (columns < 2) return SQLITE_MISUSE;
    while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
        g->rows++;
        sqlite3_int64 ts = sqlite3_column_int64(select, 0);
        for (int c = 1; c < columns; c++) {
            Py_ssize_t run = grouping_run(g, sqlite3_column_value(select, c), &rc);
            if (run < 0) return rc;
            /* An account twice in one row (it cannot be, for a transfer) is posted once. */
            if (g->runs[run].count && g->posting_ts[g->runs[run].start] == ts) continue;
            g->runs[run].count++;
            g->runs[run].start = g->postings_len; /* for now: its last posting */
            if ((rc = grouping_add(g, run, ts)) != SQLITE_OK) return rc;
        }
    }
    if (rc != SQLITE_DONE) return rc;
    if (g->runs_len == 0) return SQLITE_OK;
    /* Lay every run's timestamps out contiguously, in arrival (= timestamp) order, in the
     * postings array itself: sort the postings by run with a counting sort. */
    Py_ssize_t offset = 0;
    for (Py_ssize_t r = 0; r < g->runs_len; r++) {
        g->runs[r].start = offset;
        offset += g->runs[r].count;
    }
    sqlite3_int64 *sorted = malloc((size_t)offset * sizeof(sqlite3_int64));
    Py_ssize_t *fill = calloc((size_t)g->runs_len, sizeof(Py_ssize_t));
    if (sorted == NULL || fill == NULL) {
        free(sorted);
        free(fill);
        return SQLITE_NOMEM;
    }
    for (Py_ssize_t p = 0; p < g->postings_len; p++) {
        Py_ssize_t run = g->posting_run[p];
        sorted[g->runs[run].start + fill[run]++] = g->posting_ts[p];
    }
    free(fill);
    free(g->posting_ts);
    g->posting_ts = sorted;
    qsort(g->runs, (size_t)g->runs_len, sizeof(Run), run_order);
    /* The largest chunk: its accounts, their offsets and all their timestamps. */
    size_t cap = 4 + (size_t)(accounts_per_row + 1) * 20 +
                 8 * (size_t)(offset > postings_per_row ? offset : postings_per_row);
    unsigned char *buffer = malloc(cap);
    if (buffer == NULL) return SQLITE_NOMEM;
    rc = SQLITE_OK;
    Py_ssize_t first = 0;
    while (first < g->runs_len && rc == SQLITE_OK) {
        Py_ssize_t stop = first + 1, postings = g->runs[first].count;
        while (stop < g->runs_len && stop - first < accounts_per_row &&
               postings + g->runs[stop].count <= postings_per_row)
            postings += g->runs[stop++].count;
        rc = insert_chunk(insert, g, first, stop, buffer);
        first = stop;
    }
    free(buffer);
    return rc;
}

static PyObject *Writer_group_postings(Writer *self, PyObject *args) {
    PyObject *select_obj, *params, *insert_obj;
    Py_ssize_t accounts_per_row, postings_per_row;
    if (!PyArg_ParseTuple(args, "UO!Unn", &select_obj, &PyTuple_Type, &params, &insert_obj,
                          &accounts_per_row, &postings_per_row))
        return NULL;
    if (accounts_per_row < 1 || postings_per_row < 1) {
        PyErr_SetString(PyExc_ValueError, "accounts_per_row and postings_per_row must be >= 1");
        return NULL;
    }
    if (check_open(self) < 0) return NULL;
    const char *select_sql = PyUnicode_AsUTF8(select_obj);
    const char *insert_sql = PyUnicode_AsUTF8(insert_obj);
    if (select_sql == NULL || insert_sql == NULL) return NULL;
    sqlite3_stmt *select = NULL, *insert = NULL;
    int rc = sqlite3_prepare_v2(self->db, select_sql, -1, &select, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(self->db, insert_sql, -1, &insert, NULL);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(insert) != 2) rc = SQLITE_MISUSE;
    for (Py_ssize_t i = 0; rc == SQLITE_OK && i < PyTuple_GET_SIZE(params); i++) {
        sqlite3_int64 v = PyLong_AsLongLong(PyTuple_GET_ITEM(params, i));
        if (v == -1 && PyErr_Occurred()) {
            sqlite3_finalize(select);
            sqlite3_finalize(insert);
            return NULL;
        }
        rc = sqlite3_bind_int64(select, (int)i + 1, v);
    }
    Grouping g = {0};
    if (rc == SQLITE_OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = group_run(select, insert, &g, accounts_per_row, postings_per_row);
        Py_END_ALLOW_THREADS
    }
    Py_ssize_t rows = g.rows;
    grouping_free(&g);
    if (rc != SQLITE_OK) {
        char message[512];
        PyOS_snprintf(message, sizeof message, "group_postings: %s",
                      rc == SQLITE_MISMATCH ? "an account value is neither a non-negative "
                                              "INTEGER nor a 16-byte BLOB"
                      : rc == SQLITE_MISUSE ? "bad statements (select: timestamp, accounts...; "
                                              "insert: 2 parameters)"
                                            : sqlite3_errmsg(self->db));
        raise_sqlite(rc, message);
    }
    sqlite3_finalize(select);
    sqlite3_finalize(insert);
    if (rc != SQLITE_OK) return NULL;
    return PyLong_FromSsize_t(rows);
}

static PyObject *Writer_in_transaction(Writer *self, void *closure) {
    if (check_open(self) < 0) return NULL;
    return PyBool_FromLong(!sqlite3_get_autocommit(self->db));
}

static PyMethodDef Writer_methods[] = {
    {"execute", (PyCFunction)Writer_execute, METH_VARARGS,
     "execute(sql, params=()): one statement, no result rows"},
    {"executemany", (PyCFunction)Writer_executemany, METH_VARARGS,
     "executemany(sql, rows): the statement once per row, in C without the GIL"},
    {"transaction", (PyCFunction)Writer_transaction, METH_O,
     "transaction([(sql, rows), ...]): all batches in one transaction, without the GIL"},
    {"group_postings", (PyCFunction)Writer_group_postings, METH_VARARGS,
     "group_postings(select_sql, params, insert_sql, accounts_per_row, postings_per_row): "
     "one index step, grouped per account in chunks, without the GIL"},
    {"close", (PyCFunction)Writer_close, METH_NOARGS, "close the connection"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Writer_getset[] = {
    {"in_transaction", (getter)Writer_in_transaction, NULL, "a transaction is open", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "formicary.ledger._sqlitewriter.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Writer(path, busy_timeout_ms=10000): a SQLite connection for batch writes",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
    .tp_getset = Writer_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sqlitewriter",
    "A SQLite connection whose batch writes run without the GIL (formicary/ledger/native.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sqlitewriter(void) {
    PyObject *sqlite3_module = PyImport_ImportModule("sqlite3");
    if (sqlite3_module == NULL) return NULL;
    IntegrityError = PyObject_GetAttrString(sqlite3_module, "IntegrityError");
    OperationalError = PyObject_GetAttrString(sqlite3_module, "OperationalError");
    Py_DECREF(sqlite3_module);
    if (IntegrityError == NULL || OperationalError == NULL) return NULL;
    if (PyType_Ready(&WriterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
