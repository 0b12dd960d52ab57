"""`make test`'s entry point: pytest as `python -m pytest` runs it, then an exit that skips the
interpreter's teardown.

Why: the suite's results are final when pytest returns, but the process then tears down Ray's core
worker, torch's thread pools, openSMILE's and gRPC's native libraries. Once (CI at 9866b93: "322
passed", then SIGSEGV from the pytest process itself) one of them crashed there, and a passing
suite was reported as a failure. Here Ray is shut down explicitly (commands run in-process leave
it to Ray's exit hook), the output is flushed, and the process leaves with pytest's own exit
status through os._exit. Python's fault handler is on (PYTHONFAULTHANDLER, set by the Makefile),
so a native crash during a test still prints each thread's Python stack.

    python tests/run.py [pytest arguments]
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    # As `python -m pytest`: the working folder, not tests/, first on sys.path (tests import
    # `tests.…`).
    sys.path[0] = os.getcwd()
    import pytest

    code = pytest.main(argv)
    if "ray" in sys.modules:
        import ray

        ray.shutdown()
    return int(code)


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
