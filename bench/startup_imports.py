"""Pair 8: a process's start-up imports, the project's modules alone vs the same plus the heavy
libraries it used to import at the top of its modules.

Every CLI command, every Tune trial actor and every Ray Train worker imports the runner before it
does any work. audiomentations (which pulls in scipy.signal), scikit-learn and matplotlib's pyplot
are now imported inside the functions that use them (augmenting, fitting the EPR forest or the
reference, drawing). "lazy" times `import runner.tune` in a fresh interpreter; "eager" times the
same interpreter importing those three first, which is what every process paid before. Runs
alternate (lazy, eager, ...) so drift in the machine hits both alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import Figure, Result

REPO = Path(__file__).resolve().parents[1]
LAZY = "import runner.tune"
EAGER = "import audiomentations, sklearn.ensemble, matplotlib.pyplot; import runner.tune"
CLOCKED = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"


def seconds(statement: str) -> float:
    done = subprocess.run([sys.executable, "-c", CLOCKED.format(statement)], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def run(work: Path, quick: bool, repeats: int) -> Result:
    seconds(LAZY)  # the first import after an install compiles bytecode: not measured
    lazy = Figure("import runner.tune (heavy libraries where they are used)", "s")
    eager = Figure("import runner.tune after audiomentations, scikit-learn, pyplot", "s")
    for _ in range(repeats):
        lazy.values.append(seconds(LAZY))
        eager.values.append(seconds(EAGER))
    return Result(
        "8. Start-up imports: lazy vs eager heavy libraries",
        f"a fresh Python per import, {repeats} alternating run(s) per side",
        [lazy, eager],
        {"eager_over_lazy": (eager.median / lazy.median,
                             "start-up time each process saves, as a factor")})
