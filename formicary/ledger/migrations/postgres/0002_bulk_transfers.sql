-- Formicary ledger schema 2 (PostgreSQL): bulk transfers, part of the log (replayed in
-- timestamp order with transfers and expirations). The legs are two bytea blobs (see
-- formicary/ledger/bulk.py): one row per bulk keeps a fund's daily income for millions of
-- holders a few large appends.

CREATE TABLE bulk_transfers (
    timestamp bigint PRIMARY KEY,
    id numeric(39) NOT NULL UNIQUE,
    account_id numeric(39) NOT NULL,
    debit_common boolean NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    user_data_128 numeric(39) NOT NULL,
    user_data_64 numeric(20) NOT NULL,
    user_data_32 bigint NOT NULL,
    legs integer NOT NULL,
    leg_accounts bytea NOT NULL,
    leg_amounts bytea NOT NULL
);
