"""Build the ledger's C extensions; everything else is declared in pyproject.toml.

`optional=True`: where no C compiler (or, for the SQLite writer, no sqlite3.h) is available the
install still succeeds and the ledger runs its (slower) Python code; see formicary/ledger/native.py.
"""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        Extension(
            "formicary.ledger._fastpath",
            sources=["formicary/ledger/_fastpath.c"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
        Extension(
            "formicary.ledger._sqlitewriter",
            sources=["formicary/ledger/_sqlitewriter.c"],
            libraries=["sqlite3"],
            extra_compile_args=_FLAGS,
            optional=True,
        ),
    ]
)
