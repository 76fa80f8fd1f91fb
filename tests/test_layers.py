"""The pipeline's layer order, enforced: imports point one way only, and no module imports itself in a circle.

Packages, lowest first (a module may import its own package and any package before it)::

    errors, formats -> read -> engine -> calibrate -> quantize -> write -> validate -> demo -> pipelines -> cli

``formats`` holds tables, ``read`` readers, ``engine`` the forward pass, ``calibrate`` data and
activation capture, ``quantize`` algorithms and encoders, ``write`` writers, ``validate`` metrics
and reports, ``demo`` the demo checkpoints, ``pipelines`` the runs that string them together, ``cli``
the commands.  Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "r1v_quant"
LAYERS = ["errors", "formats", "read", "engine", "calibrate", "quantize", "write", "validate", "demo", "pipelines",
          "cli"]
TOP = {"r1v_quant", "r1v_quant.__main__"}  # the version and the entry point


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (a ``from pkg import sub`` counts as ``pkg.sub`` when that
    is a module)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "r1v_quant"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "r1v_quant":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            out |= subs or {target}
    return out & known


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if module in TOP:
        return None
    return LAYERS.index(parts[1])


def test_every_package_has_a_layer() -> None:
    packages = {m.split(".")[1] for m in modules() if m not in TOP}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_imports_point_down_the_pipeline_only() -> None:
    mods = modules()
    wrong = []
    for name, path in mods.items():
        mine = layer_of(name)
        for target in imports_of(name, path, set(mods)):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{name} imports {target} ({LAYERS[mine]} -> {LAYERS[theirs]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    mods = modules()
    graph = {name: imports_of(name, path, set(mods)) - {name} for name, path in mods.items()}
    # a package's __init__ re-exporting its own modules is not a cycle through them
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and mods[t].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_the_check_catches_a_wrong_import(tmp_path: Path) -> None:
    """The parser sees relative, absolute and function-level imports (so the tests above can fail)."""
    fake = tmp_path / "r1v_quant" / "read" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..pipelines import awq\n    import r1v_quant.cli.app\n")
    got = imports_of("r1v_quant.read.bad", fake, {"r1v_quant.pipelines.awq", "r1v_quant.cli.app"})
    assert got == {"r1v_quant.pipelines.awq", "r1v_quant.cli.app"}
    assert all(layer_of(t) > layer_of("r1v_quant.read.bad") for t in got)


def test_every_package_is_installed() -> None:
    """pyproject.toml lists packages by hand: a new folder left out would be missing from a wheel."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert present <= listed, sorted(present - listed)


def test_no_folder_at_the_root_shadows_an_installed_package() -> None:
    """``python -m pytest`` and ``python -m r1v_quant`` put the checkout's root first on sys.path, so a
    root folder with an ``__init__.py`` would be imported in place of an installed package of that
    name.  ``kernels/`` did: transformers 5.25 requires Hugging Face's ``kernels`` package and imports
    it, and got ours.  Data folders (installed as ``r1v_quant._kernels``, ``r1v_quant._calib_data``)
    carry no ``__init__.py``; a folder without one loses to any installed package."""
    root = PACKAGE.parent
    packages = sorted(p.parent.name for p in root.glob("*/__init__.py"))
    assert packages == ["r1v_quant", "tools"], packages  # tools: the data generators, run from a checkout
    import importlib.util

    spec = importlib.util.find_spec("kernels")  # transformers' dependency, not our C sources
    assert spec is not None and spec.origin and Path(spec.origin).parent != root / "kernels", spec
