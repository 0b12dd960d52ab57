"""python -m runner.report RUN_DIR [...]: the results tables of runner.train or runner.tune folders.

A sweep folder (runner.tune; it holds sweep.json) gets its report rebuilt and rewritten from the
seeds on disk: report.md, report.csv and best.txt. A runner.train folder gets mean ± std over
seeds rebuilt from each seed's epochs.csv (so a run that is still going, or was stopped, reports
the seeds it finished, and says how many), with the same selection rule as training: the epoch
with the best dev UA for the IPR family, the last report for EPR. The tables are built by
emoref.reports; this command prints them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoref.config import ConfigError
from emoref.reports import folder_report
from runner._cli import fail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.report",
                                     description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="folders written by runner.train --out or by runner.tune")
    parser.add_argument("--figures", action="store_true",
                        help="also write, for each runner.train folder, the pseudo-label agreement "
                             "curves (IPR Fig. 3) averaged over seeds and, for EPR rows, the "
                             "test-fold WA after each stage, one figure per kind, to "
                             "<folder>/figures/")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        print("\n\n".join(folder_report(run, args.figures) for run in args.runs))
    except ConfigError as err:
        fail(str(err))


if __name__ == "__main__":
    main()
