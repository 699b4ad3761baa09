"""dlcourse as an installed package: a wheel built from this checkout, installed apart from it, runs
from another directory; and the code's shape (no import cycles, short files and functions)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

from conftest import REPO

SRC = REPO / "src" / "dlcourse"


def test_a_wheel_installed_apart_trains_the_default_experiment_from_another_directory(tmp_path):
    wheels, checkout = tmp_path / "wheels", tmp_path / "checkout"
    # A copy of the checkout (what git would clone), so that building leaves nothing in this one.
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "build", "*.egg-info",
                                                                   "__pycache__", ".pytest_cache", ".ruff_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            str(checkout), "-w", str(wheels)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("dlcourse-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    # The dependencies come from this environment's site-packages as a plain path entry: its .pth
    # files (among them the editable install of this checkout) are not processed, so only the
    # wheel's dlcourse can be imported.
    (site / "deps.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                              "--no-deps", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLCOURSE", "PYTHON"))}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import dlcourse; print(dlcourse.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert str(site) in where.stdout, where.stdout + where.stderr  # the wheel, not the checkout
    helped = subprocess.run([str(venv / "bin" / "dlcourse-train"), "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "gaussian_mlp" in helped.stdout, helped.stderr[-2000:]
    trained = subprocess.run([str(venv / "bin" / "dlcourse-train"), "experiment=gaussian_mlp", "trainer.max_epochs=2",
                              "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (metrics,) = elsewhere.glob("outputs/gaussian_mlp/*/metrics.json")
    assert '"status": "completed"' in metrics.read_text()


def test_every_package_is_in_the_wheel_list():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    # Every package under src/: dlcourse's and the Hydra plugin (hydra_plugins is a namespace package).
    found = {".".join(p.parent.relative_to(SRC.parent).parts) for p in SRC.parent.rglob("__init__.py")}
    assert found | {"dlcourse.conf"} == listed


def _imports(path: Path) -> set[str]:
    """dlcourse modules a module imports at its top level (imports inside functions are lazy on purpose)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlcourse"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dlcourse")}
    return found


def test_no_import_cycles():
    modules = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in SRC.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}

    def visit(name: str, trail: list[str]) -> None:
        assert name not in trail, " -> ".join([*trail[trail.index(name):], name])
        for dep in graph[name]:
            visit(dep, [*trail, name])

    for name in graph:
        visit(name, [])


def test_files_and_functions_are_short():
    """No file over 250 lines, no function over 60 (the brief's style: small files, readable functions)."""
    long = []
    for path in [*SRC.rglob("*.py"), *(REPO / "scripts").glob("*.py")]:
        text = path.read_text()
        if len(text.splitlines()) > 250:
            long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long


def test_scripts_do_not_import_the_tests():
    for path in (REPO / "scripts").glob("*.py"):
        assert not re.search(r"^\s*(from|import) conftest|sys\.path.*tests", path.read_text(), re.M), path
