"""python -m studies.progress FOLDER: what a study script's own bookkeeping says about a folder
of runner.train rows (studies/epr.sh keeps it): the wall time of each seed from its times.log, and
the seeds in flight (their newest state, kept by runner.train --state-dir in in_flight/, with the
seconds so far from the script's marks). runner.report reads none of this: it reports what the
seed folders hold.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


# A line of a study's times.log (studies/common.sh): date, time, a name ("<row> seed<k>" for one
# seed of one row, anything else for a step such as the reference's five seeds at once), the wall
# seconds of all its attempts, then the command.
TIMES_LINE = re.compile(r"\S+ \S+ (?P<name>.+?) (?P<seconds>\d+) s\b[^:]*: ")
SEED_NAME = re.compile(r"(?P<row>\S+) seed(?P<seed>\d+)")


def logged_walls(run: Path) -> dict[str, dict[int, int]]:
    """Wall seconds from <run>/times.log: each row's, one per seed (the last entry of a seed
    wins: a seed run again after its folder was removed), and each other step's under its name
    and seed -1."""
    log = run / "times.log"
    if not log.is_file():
        return {}
    walls: dict[str, dict[int, int]] = {}
    for line in log.read_text().splitlines():
        if match := TIMES_LINE.match(line):
            seed = SEED_NAME.fullmatch(match["name"])
            row, k = (seed["row"], int(seed["seed"])) if seed else (match["name"], -1)
            walls.setdefault(row, {})[k] = int(match["seconds"])
    return walls


def in_flight(run: Path) -> str:
    """Seeds stopped part-way whose newest state runner.train --state-dir keeps in
    <run>/in_flight/<row>/seed<k>/ (the EPR study's archive): how far each got, from that state,
    and the seconds so far from the study's mark file beside it. "" when there are none."""
    import torch  # (here: a report without seeds in flight does not need it)
    cells = []
    for state in sorted(run.glob("in_flight/*/seed*/state.pt")):
        row, seed = state.parent.parent.name, state.parent.name
        try:
            saved = torch.load(state, map_location="cpu", weights_only=True)
            history, attempt = saved["history"], saved["attempt"]
        except Exception as err:  # noqa: BLE001 - reported, and the seed's runner.train refuses it
            cells.append(f"{row} {seed}: unreadable state ({err})")
            continue
        last = history[-1][1] if history else {}
        where = ", ".join(f"{key.replace('_', ' ')} {int(last[key])}"
                          for key in ("stage", "fold", "stage_epoch") if key in last)
        cell = (f"{row} {seed}: {len(history)} reports, the last at "
                f"{where or 'epoch ' + str(history[-1][0]) if history else 'none'}, "
                f"attempt {attempt}, code {saved.get('code', '?')[:8]}")
        mark = state.parent / f"{row}_{seed}.running"
        if mark.is_file():
            cell += f", {int(mark.read_text().split()[0]):,} s so far"
        cells.append(cell)
    return ("seeds in flight (they resume from these states; runner.train --state-dir): "
            + "; ".join(cells)) if cells else ""


def walls_line(run: Path) -> str:
    """Each row's wall seconds per seed (mean, range, n) from times.log; "" without one."""
    cells = []
    for row, by_seed in logged_walls(run).items():
        w = list(by_seed.values())
        cells.append(f"{row} {w[0]} (one command)" if -1 in by_seed else
                     f"{row} {sum(w) / len(w):.0f} per seed ({min(w)}-{max(w)}, n={len(w)})")
    return ("wall time (s) from times.log: " + ", ".join(cells)) if cells else ""


def main(argv: list[str] | None = None) -> None:
    for run in map(Path, sys.argv[1:] if argv is None else argv):
        print("\n\n".join(line for line in (walls_line(run), in_flight(run)) if line))


if __name__ == "__main__":
    main()
