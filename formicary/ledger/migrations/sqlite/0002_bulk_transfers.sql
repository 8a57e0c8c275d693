-- Formicary ledger schema 2 (SQLite): bulk transfers, part of the log (replayed in timestamp
-- order with transfers and expirations). The legs are two blobs (see formicary/ledger/bulk.py):
-- one row per bulk keeps a fund's daily income for millions of holders a few large appends.

CREATE TABLE bulk_transfers (
    timestamp INTEGER PRIMARY KEY,
    id ANY NOT NULL UNIQUE,
    account_id ANY NOT NULL,
    debit_common INTEGER NOT NULL,
    ledger INTEGER NOT NULL,
    code INTEGER NOT NULL,
    user_data_128 ANY NOT NULL,
    user_data_64 ANY NOT NULL,
    user_data_32 INTEGER NOT NULL,
    legs INTEGER NOT NULL,
    leg_accounts BLOB NOT NULL,
    leg_amounts BLOB NOT NULL
) STRICT;
