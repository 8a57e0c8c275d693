-- Formicary ledger schema 1 (SQLite). Applied once, in one transaction, by SQLiteStore.migrate.
--
-- Unsigned fields that may not fit a signed int64 (ids, pending_id, user_data_128, user_data_64)
-- are `ANY` columns of STRICT tables: an INTEGER when the value is below 2^63, otherwise its
-- 16-byte big-endian unsigned BLOB. Equality (the only comparison queries make on them) works
-- because each value has exactly one encoding.
--
-- Every table is keyed by timestamp (unique, strictly increasing across accounts, transfers and
-- expirations) so that the hot path only ever appends at the right edge of each B-tree.

CREATE TABLE accounts (
    timestamp INTEGER PRIMARY KEY,
    id ANY NOT NULL UNIQUE,
    ledger INTEGER NOT NULL,
    code INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    user_data_128 ANY NOT NULL,
    user_data_64 ANY NOT NULL,
    user_data_32 INTEGER NOT NULL
) STRICT;

-- The log. No secondary index on purpose: the engine keeps ids in memory, and the per-account
-- index lives in the derived `-index` file (see sqlite_store.py).
CREATE TABLE transfers (
    timestamp INTEGER PRIMARY KEY,
    id ANY NOT NULL,
    debit_account_id ANY NOT NULL,
    credit_account_id ANY NOT NULL,
    amount INTEGER NOT NULL,
    ledger INTEGER NOT NULL,
    code INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    pending_id ANY NOT NULL,
    timeout INTEGER NOT NULL,
    user_data_128 ANY NOT NULL,
    user_data_64 ANY NOT NULL,
    user_data_32 INTEGER NOT NULL
) STRICT;

-- Pending transfers released by their timeout; part of the log (replayed in timestamp order).
CREATE TABLE expirations (
    timestamp INTEGER PRIMARY KEY,
    pending_id ANY NOT NULL
) STRICT;

-- Balances after each event, for accounts with the `history` flag only (opt-in, so the random
-- inserts of this clustered key are paid only by those accounts).
CREATE TABLE account_balances (
    account_id ANY NOT NULL,
    timestamp INTEGER NOT NULL,
    debits_pending INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    PRIMARY KEY (account_id, timestamp)
) STRICT, WITHOUT ROWID;
