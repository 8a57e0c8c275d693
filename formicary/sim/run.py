"""Run a Double-11 simulation into an output directory: the library entry point behind
`formicary sim double11`."""

from __future__ import annotations

from pathlib import Path

from formicary.sim.config import Double11Config
from formicary.sim.double11 import Double11, View
from formicary.sim.report import Double11Report, write_outputs

__all__ = ["OutDirNotEmpty", "prepare_out_dir", "run_double11"]


class OutDirNotEmpty(ValueError):
    """The output directory holds files already: a run never mixes with (or overwrites) another."""


def prepare_out_dir(out_dir: Path) -> Path:
    """Create `out_dir` (and parents) or accept an empty one; refuse anything else."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutDirNotEmpty(f"{out_dir} exists and is not a directory")
        if any(out_dir.iterdir()):
            raise OutDirNotEmpty(f"{out_dir} is not empty; give a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def run_double11(
    config: Double11Config,
    out_dir: Path,
    *,
    view: View | None = None,
    plots: bool = True,
) -> Double11Report:
    """Simulate the night, write the report files into `out_dir`, and return the report."""
    prepare_out_dir(out_dir)
    sim = Double11(config, out_dir, view)
    try:
        sim.run()
        return write_outputs(sim, plots=plots)
    finally:
        sim.close()
