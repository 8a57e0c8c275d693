/*
 * The ledger engine's hot loop in C: the fast path of Engine.create_transfers (runs of plain
 * posted transfers and linked chains of them).
 *
 * Why: with a million accounts the Python fast path spends ~2 us per transfer, most of it in
 * the interpreter (attribute loads, int boxing, branches) rather than in the unavoidable cache
 * misses on the account objects. This module does the same work on the same Python objects
 * (Account and Transfer msgspec Structs, the engine's dicts), so nothing else in the engine,
 * the stores or the queries changes, and the Python implementation stays the reference: the
 * hypothesis tests compare the two event by event.
 *
 * Field access goes through the slot offsets of the Structs' member descriptors, read once by
 * configure(); every object is checked to be exactly Account or Transfer before its slots are
 * read. Anything unusual (a non-int field, a value beyond int64, an account with the `history`
 * or `closed` flag, a flag other than `linked`) stops the run where it is, exactly as the Python
 * fast path stops, and the general Python path takes that event over and names its result.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define LINKED 1LL
#define DMNEC (1LL << 1)
#define CMNED (1LL << 2)
#define HISTORY (1LL << 3)
#define CLOSED (1LL << 5)

/* Transfer fields, in declaration order. */
enum { T_ID, T_DEBIT, T_CREDIT, T_AMOUNT, T_LEDGER, T_CODE, T_FLAGS, T_PENDING_ID, T_TIMEOUT,
       T_UD128, T_UD64, T_UD32, T_TIMESTAMP, T_FIELDS };
static const char *transfer_fields[T_FIELDS] = {
    "id", "debit_account_id", "credit_account_id", "amount", "ledger", "code", "flags",
    "pending_id", "timeout", "user_data_128", "user_data_64", "user_data_32", "timestamp"};

enum { A_LEDGER, A_FLAGS, A_DP, A_DPO, A_CP, A_CPO, A_FIELDS };
static const char *account_fields[A_FIELDS] = {
    "ledger", "flags", "debits_pending", "debits_posted", "credits_pending", "credits_posted"};

typedef struct {
    PyTypeObject *account_type;
    PyTypeObject *transfer_type;
    PyObject *transfer_copy; /* Transfer.__copy__, msgspec's C-level shallow copy */
    PyObject *id_max;        /* 2**128 - 1 */
    Py_ssize_t t_off[T_FIELDS];
    Py_ssize_t a_off[A_FIELDS];
} State;

static State state;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))
#define TF(obj, f) SLOT(obj, state.t_off[f])
#define AF(obj, f) SLOT(obj, state.a_off[f])

static int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset) {
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) return -1;
    if (!Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
        Py_DECREF(descr);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return 0;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *account_type, *transfer_type, *id_max;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &account_type, &PyType_Type,
                          &transfer_type, &PyLong_Type, &id_max))
        return NULL;
    for (int i = 0; i < A_FIELDS; i++)
        if (slot_offset((PyTypeObject *)account_type, account_fields[i], &state.a_off[i]) < 0)
            return NULL;
    for (int i = 0; i < T_FIELDS; i++)
        if (slot_offset((PyTypeObject *)transfer_type, transfer_fields[i], &state.t_off[i]) < 0)
            return NULL;
    PyObject *copy = PyObject_GetAttrString(transfer_type, "__copy__");
    if (copy == NULL) return NULL;
    Py_XSETREF(state.transfer_copy, copy);
    Py_INCREF(account_type);
    Py_XSETREF(state.account_type, (PyTypeObject *)account_type);
    Py_INCREF(transfer_type);
    Py_XSETREF(state.transfer_type, (PyTypeObject *)transfer_type);
    Py_INCREF(id_max);
    Py_XSETREF(state.id_max, id_max);
    Py_RETURN_NONE;
}

/* An exact int that fits int64 -> 1 and *out; anything else -> 0 (no exception left set). */
static inline int as_i64(PyObject *obj, long long *out) {
    if (!PyLong_CheckExact(obj)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) return 0;
    *out = v;
    return 1;
}

/* 0 < id < 2**128 - 1 for an exact int: 1 yes, 0 no, -1 error. */
static inline int id_ok(PyObject *obj) {
    if (!PyLong_CheckExact(obj)) return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (!overflow) return v > 0;
    if (overflow < 0) return 0;
    return PyObject_RichCompareBool(obj, state.id_max, Py_LT);
}

/* How a chain is undone if it cannot finish on the fast path: the balance objects it replaced. */
typedef struct {
    PyObject *debit;      /* borrowed: the account stays in the engine's dict */
    PyObject *old_debits; /* owned */
    PyObject *credit;
    PyObject *old_credits;
} Undo;

typedef struct {
    Undo *items;
    Py_ssize_t len, cap;
} UndoLog;

static int undo_push(UndoLog *log, PyObject *dr, PyObject *cr) {
    if (log->len == log->cap) {
        Py_ssize_t cap = log->cap ? log->cap * 2 : 16;
        Undo *items = PyMem_Realloc(log->items, cap * sizeof(Undo));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        log->items = items;
        log->cap = cap;
    }
    Undo *u = &log->items[log->len++];
    u->debit = dr;
    u->old_debits = Py_NewRef(AF(dr, A_DPO));
    u->credit = cr;
    u->old_credits = Py_NewRef(AF(cr, A_CPO));
    return 0;
}

static void undo_clear(UndoLog *log) {
    for (Py_ssize_t i = 0; i < log->len; i++) {
        Py_DECREF(log->items[i].old_debits);
        Py_DECREF(log->items[i].old_credits);
    }
    log->len = 0;
}

/* Put back the balances a chain replaced, newest first (the log is emptied). */
static void undo_apply(UndoLog *log) {
    for (Py_ssize_t i = log->len - 1; i >= 0; i--) {
        Undo *u = &log->items[i];
        Py_SETREF(AF(u->credit, A_CPO), u->old_credits);
        Py_SETREF(AF(u->debit, A_DPO), u->old_debits);
    }
    log->len = 0;
}

/* Remove the chain's transfers (stored[from:]) from the engine's dict and the outcome's list. */
static int drop_stored(PyObject *transfers, PyObject *stored, Py_ssize_t from) {
    Py_ssize_t n = PyList_GET_SIZE(stored);
    for (Py_ssize_t i = from; i < n; i++)
        if (PyDict_DelItem(transfers, TF(PyList_GET_ITEM(stored, i), T_ID)) < 0) return -1;
    return PyList_SetSlice(stored, from, n, NULL);
}

/*
 * Account lookups run ahead of the events, a block at a time: the accounts dict does not change
 * during a run, and with a million accounts every lookup is a chain of cache misses (dict
 * index, entry, key, account). Looked up back to back, the lookups of different events overlap
 * in the CPU; each account found is prefetched, and so are the balances of the event two ahead.
 */
#define LOOKAHEAD 32

typedef struct {
    PyObject *debit[LOOKAHEAD]; /* borrowed; NULL: look it up the ordinary way */
    PyObject *credit[LOOKAHEAD];
    Py_ssize_t first, end;      /* the block of events [first, end) */
} Ahead;

static void look_ahead(Ahead *ahead, PyObject **items, Py_ssize_t from, Py_ssize_t count,
                       PyObject *accounts) {
    Py_ssize_t end = from + LOOKAHEAD < count ? from + LOOKAHEAD : count;
    ahead->first = from;
    ahead->end = end;
    for (Py_ssize_t i = from; i < end; i++) {
        PyObject *t = items[i], *dr = NULL, *cr = NULL;
        if (Py_TYPE(t) == state.transfer_type && PyLong_CheckExact(TF(t, T_DEBIT)) &&
            PyLong_CheckExact(TF(t, T_CREDIT))) {
            /* Exact ints hash and compare without raising; a miss is simply NULL. */
            dr = PyDict_GetItemWithError(accounts, TF(t, T_DEBIT));
            cr = PyDict_GetItemWithError(accounts, TF(t, T_CREDIT));
            if (dr) __builtin_prefetch(dr);
            if (cr) __builtin_prefetch(cr);
        }
        ahead->debit[i - from] = dr;
        ahead->credit[i - from] = cr;
    }
}

static inline void prefetch_balances(const Ahead *ahead, Py_ssize_t i) {
    if (i >= ahead->end) return;
    PyObject *dr = ahead->debit[i - ahead->first], *cr = ahead->credit[i - ahead->first];
    if (dr && cr && Py_TYPE(dr) == state.account_type && Py_TYPE(cr) == state.account_type) {
        __builtin_prefetch(AF(dr, A_DPO));
        __builtin_prefetch(AF(dr, A_CPO));
        __builtin_prefetch(AF(cr, A_CPO));
    }
}

static inline int is_zero(PyObject *obj) {
    long long v;
    return as_i64(obj, &v) && v == 0;
}

/*
 * fast_run(batch, start, first, accounts, transfers, stored, request_ends) -> applied
 *
 * Engine._fast_run in C; see its docstring for the contract. `stored` is the outcome's list of
 * transfers to commit; `request_ends` a set of event indexes that end a client request.
 */
static PyObject *fast_run(PyObject *self, PyObject *args) {
    PyObject *batch_obj, *accounts, *transfers, *stored, *request_ends;
    Py_ssize_t start;
    long long first;
    if (!PyArg_ParseTuple(args, "OnLO!O!O!O", &batch_obj, &start, &first, &PyDict_Type,
                          &accounts, &PyDict_Type, &transfers, &PyList_Type, &stored,
                          &request_ends))
        return NULL;
    if (state.transfer_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastpath.configure() was not called");
        return NULL;
    }
    PyObject *batch = PySequence_Fast(batch_obj, "batch must be a sequence");
    if (batch == NULL) return NULL;
    Py_ssize_t ends = PyObject_Size(request_ends);
    if (ends < 0) {
        Py_DECREF(batch);
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(batch);
    Py_ssize_t count = PySequence_Fast_GET_SIZE(batch);
    Py_ssize_t last = count - 1;
    Py_ssize_t chain_start = -1, chain_stored = 0;
    UndoLog undo = {NULL, 0, 0};
    Py_ssize_t index = start;
    int error = 0;
    Ahead ahead;
    ahead.first = ahead.end = start;

    for (; index < count; index++) {
        if (index == ahead.end) {
            look_ahead(&ahead, items, index, count, accounts);
            prefetch_balances(&ahead, index);
            prefetch_balances(&ahead, index + 1);
        }
        prefetch_balances(&ahead, index + 2);
        PyObject *t = items[index];
        if (Py_TYPE(t) != state.transfer_type) break;
        long long flags, amount, ledger, code;
        if (!as_i64(TF(t, T_FLAGS), &flags)) break;
        if (flags) {
            if (flags != LINKED || index == last) break; /* the general path says why */
            if (ends) {
                PyObject *key = PyLong_FromSsize_t(index);
                if (key == NULL) { error = 1; break; }
                int in = PySequence_Contains(request_ends, key);
                Py_DECREF(key);
                if (in < 0) { error = 1; break; }
                if (in) break; /* a chain left open at a request's end */
            }
            if (chain_start < 0) {
                chain_start = index;
                chain_stored = PyList_GET_SIZE(stored);
            }
        }
        PyObject *tid = TF(t, T_ID), *dr_id = TF(t, T_DEBIT), *cr_id = TF(t, T_CREDIT);
        if (!is_zero(TF(t, T_TIMESTAMP)) || !is_zero(TF(t, T_PENDING_ID)) ||
            !is_zero(TF(t, T_TIMEOUT)) || !as_i64(TF(t, T_CODE), &code) || code == 0 ||
            !as_i64(TF(t, T_LEDGER), &ledger) || ledger == 0 ||
            !as_i64(TF(t, T_AMOUNT), &amount) || amount <= 0)
            break;
        int ok = id_ok(tid);
        if (ok > 0) ok = id_ok(dr_id);
        if (ok > 0) ok = id_ok(cr_id);
        if (ok > 0) {
            ok = PyObject_RichCompareBool(dr_id, cr_id, Py_EQ);
            ok = ok < 0 ? -1 : !ok;
        }
        if (ok <= 0) {
            error = ok < 0;
            break;
        }
        PyObject *dr = ahead.debit[index - ahead.first], *cr = ahead.credit[index - ahead.first];
        if (dr == NULL || cr == NULL) {
            dr = PyDict_GetItemWithError(accounts, dr_id);
            cr = dr ? PyDict_GetItemWithError(accounts, cr_id) : NULL;
        }
        if (cr == NULL) {
            error = PyErr_Occurred() != NULL;
            break;
        }
        if (Py_TYPE(dr) != state.account_type || Py_TYPE(cr) != state.account_type) break;
        /* The balances are read one after another, before any arithmetic: with 1M accounts
         * each is a cache miss, and misses issued close together overlap. */
        long long dr_ledger, cr_ledger, dr_flags, cr_flags, dr_dp, dr_dpo, dr_cpo, cr_cp, cr_cpo;
        if (!as_i64(AF(dr, A_LEDGER), &dr_ledger) || !as_i64(AF(cr, A_LEDGER), &cr_ledger) ||
            !as_i64(AF(dr, A_FLAGS), &dr_flags) || !as_i64(AF(cr, A_FLAGS), &cr_flags) ||
            !as_i64(AF(dr, A_DP), &dr_dp) || !as_i64(AF(dr, A_DPO), &dr_dpo) ||
            !as_i64(AF(dr, A_CPO), &dr_cpo) || !as_i64(AF(cr, A_CP), &cr_cp) ||
            !as_i64(AF(cr, A_CPO), &cr_cpo))
            break;
        if (dr_ledger != ledger || cr_ledger != ledger) break;
        long long both = dr_flags | cr_flags;
        /* History accounts need a balance record per event: the Python path writes it. */
        if (both & (CLOSED | HISTORY)) break;
        __int128 dr_total = (__int128)dr_dp + dr_dpo + amount;
        __int128 cr_total = (__int128)cr_cp + cr_cpo + amount;
        if ((__int128)dr_dpo + amount > LLONG_MAX || (__int128)cr_cpo + amount > LLONG_MAX ||
            dr_total > LLONG_MAX || cr_total > LLONG_MAX)
            break;
        if ((dr_flags & DMNEC) && dr_total > dr_cpo) break;
        if (cr_flags & CMNED) {
            long long cr_dpo;
            if (!as_i64(AF(cr, A_DPO), &cr_dpo) || cr_total > cr_dpo) break;
        }

        /* Valid if the id is new: one probe of the (large) transfers dict both checks that and
         * inserts the record. */
        PyObject *record = PyObject_CallOneArg(state.transfer_copy, t);
        if (record == NULL) { error = 1; break; }
        PyObject *found = PyDict_SetDefault(transfers, tid, record);
        if (found != record) {
            Py_DECREF(record);
            error = found == NULL;
            break; /* exists: the general path compares it */
        }
        PyObject *timestamp = PyLong_FromLongLong(first + index);
        PyObject *debits = PyLong_FromLongLong(dr_dpo + amount);
        PyObject *credits = PyLong_FromLongLong(cr_cpo + amount);
        if (timestamp == NULL || debits == NULL || credits == NULL ||
            (chain_start >= 0 && undo_push(&undo, dr, cr) < 0) ||
            PyList_Append(stored, record) < 0) {
            /* Out of memory: the record goes (an undo entry pushed restores what is there). */
            PyDict_DelItem(transfers, tid);
            Py_XDECREF(timestamp);
            Py_XDECREF(debits);
            Py_XDECREF(credits);
            Py_DECREF(record);
            error = 1;
            break;
        }
        Py_SETREF(TF(record, T_TIMESTAMP), timestamp);
        Py_DECREF(record);
        Py_SETREF(AF(dr, A_DPO), debits);
        Py_SETREF(AF(cr, A_CPO), credits);
        if (!flags && chain_start >= 0) {
            chain_start = -1; /* the chain closed: it stays */
            undo_clear(&undo);
        }
    }

    Py_ssize_t applied = index - start;
    if (chain_start >= 0) {
        /* The chain cannot finish here (or an error stopped it): undo it, newest first. */
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
        undo_apply(&undo);
        if (drop_stored(transfers, stored, chain_stored) < 0) error = 1;
        if (exc_type != NULL) PyErr_Restore(exc_type, exc_value, exc_tb);
        applied = chain_start - start;
    }
    undo_clear(&undo);
    PyMem_Free(undo.items);
    Py_DECREF(batch);
    if (error) return NULL;
    return PyLong_FromSsize_t(applied);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Account, Transfer, ID_MAX): read the Structs' slot offsets."},
    {"fast_run", fast_run, METH_VARARGS,
     "fast_run(batch, start, first, accounts, transfers, stored, request_ends) -> applied"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath",
    "The ledger engine's fast path in C (see formicary/ledger/native.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void) { return PyModule_Create(&module); }
