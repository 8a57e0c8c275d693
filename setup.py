"""Build the ledger's C extension; everything else is declared in pyproject.toml.

`optional=True`: where no C compiler is available the install still succeeds and the ledger
runs its (slower) Python loops; see formicary/ledger/native.py.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "formicary.ledger._fastpath",
            sources=["formicary/ledger/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
