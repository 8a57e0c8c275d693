"""The double-entry ledger: engine, stores and the single-writer service."""
