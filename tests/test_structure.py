"""The package's shape: imports in src/emoref form no loop, Ray Train is imported in one module,
and runner.tune does not go through another entry point."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function ("from a import b" counts
    a.b when a.b is a module of the package, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p, SRC): p for p in (SRC / "emoref").rglob("*.py")}
    return {name: {m for m in imports(path) if m in files and m != name}
            for name, path in files.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import loop as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_cycle_finder_sees_a_loop():  # the check below can fail
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_loop_in_the_package():
    edges = graph()
    # `from emoref.methods import epr_math` inside emoref.methods.epr imports the sibling
    # epr_math (counted), not the package's __init__ that lists the methods (dropped).
    for name in edges:
        edges[name] = {m for m in edges[name] if m != name.rsplit(".", 1)[0]}
    assert "emoref.ray_train" in edges and "emoref.methods.common" in edges
    assert cycle(edges) == []


def test_the_methods_do_not_import_what_runs_them():
    edges = graph()
    above = {"emoref.ray_train", "emoref.experiment", "emoref.sweep"}
    for name, targets in edges.items():
        if name.startswith("emoref.methods"):
            assert not targets & above, (name, targets & above)


def test_only_ray_train_imports_ray_train():
    users = [module_name(p, SRC) for p in (SRC / "emoref").rglob("*.py")
             if any(m == "ray.train" or m.startswith("ray.train.") for m in imports(p))]
    assert users == ["emoref.ray_train"]


def test_runner_tune_does_not_import_runner_train():
    assert not {m for m in imports(ROOT / "runner" / "tune.py") if m.startswith("runner.train")}


def test_starting_a_command_does_not_import_the_heavy_libraries_it_may_not_use():
    """Every CLI process, Tune trial actor and Ray Train worker imports the runner first; the
    libraries only some of them use are imported where they are used (BENCHMARKS.md, pair 8)."""
    import subprocess
    import sys
    heavy = ("audiomentations", "sklearn", "matplotlib", "scipy.signal")
    done = subprocess.run([sys.executable, "-c", "import sys, runner.tune, runner.train, "
                           "emoref.ray_train; print(' '.join(sorted(sys.modules)))"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert not [name for name in heavy if name in loaded]
