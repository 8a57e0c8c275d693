-- Formicary ledger schema 1 (PostgreSQL). Applied once, in one transaction, by
-- PostgresStore.migrate.
--
-- 128-bit ids, pending_id and user_data_128 are numeric(39) (2^128 has 39 digits), user_data_64
-- is numeric(20): exact, readable in psql, and COPY-ed straight from Python ints (measured as fast
-- as 16-byte bytea, which needs a to_bytes per value, and simpler than two bigint halves).
-- u32 fields (ledger, timeout, user_data_32) are bigint since integer is signed 32-bit.

CREATE TABLE accounts (
    timestamp bigint PRIMARY KEY,
    id numeric(39) NOT NULL UNIQUE,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    user_data_128 numeric(39) NOT NULL,
    user_data_64 numeric(20) NOT NULL,
    user_data_32 bigint NOT NULL
);

-- The log. No index but the primary key on purpose: the engine keeps ids in memory, and the
-- per-account index (postings) is built off the hot path by the store's indexer.
CREATE TABLE transfers (
    timestamp bigint PRIMARY KEY,
    id numeric(39) NOT NULL,
    debit_account_id numeric(39) NOT NULL,
    credit_account_id numeric(39) NOT NULL,
    amount bigint NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    pending_id numeric(39) NOT NULL,
    timeout bigint NOT NULL,
    user_data_128 numeric(39) NOT NULL,
    user_data_64 numeric(20) NOT NULL,
    user_data_32 bigint NOT NULL
);

CREATE TABLE expirations (
    timestamp bigint PRIMARY KEY,
    pending_id numeric(39) NOT NULL
);

CREATE TABLE account_balances (
    account_id numeric(39) NOT NULL,
    timestamp bigint NOT NULL,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    PRIMARY KEY (account_id, timestamp)
);

-- Derived per-account index of the log, maintained by the indexer thread (never by commit).
-- `postings` holds one row per (transfer, side); rows are grouped in buckets of consecutive
-- transfers so that inserts stay inside one small, cached region of the B-tree.
-- account_key = account_id mod 9223372036854775783 (the largest prime below 2^63): equal to the
-- id for ids below it, and a bigint B-tree key is built ~1.7x faster than a numeric(39) one.
-- Two ids may share a key, so queries re-check the transfer's account ids.
CREATE TABLE postings_state (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    timestamp bigint NOT NULL,   -- every transfer with timestamp <= this is indexed
    transfers bigint NOT NULL    -- how many transfers are indexed (picks the bucket)
);
INSERT INTO postings_state (timestamp, transfers) VALUES (0, 0);

CREATE TABLE postings_buckets (
    bucket integer PRIMARY KEY,
    timestamp_min bigint NOT NULL,
    timestamp_max bigint NOT NULL
);

CREATE TABLE postings (
    bucket integer NOT NULL,
    account_key bigint NOT NULL,
    timestamp bigint NOT NULL,
    PRIMARY KEY (bucket, account_key, timestamp)
);
