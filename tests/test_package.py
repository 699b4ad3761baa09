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
    # Installed, dlcourse's Hydra plugins are found by Hydra's own scan of hydra_plugins (the public way).
    scan = "from hydra.core.plugins import Plugins; " \
           "print(sorted(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover()))"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", scan], cwd=elsewhere, env=env, capture_output=True,
                           text=True, timeout=120)
    assert "'hydra_plugins.dlcourse_slurm.SlurmLauncher'" in found.stdout, found.stdout + found.stderr
    assert "'hydra_plugins.dlcourse_optuna.OptunaSweeper'" in found.stdout, found.stdout + found.stderr
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


def _imports(path: Path, modules) -> set[str]:
    """dlcourse modules a module imports, at its top level or inside a function (a lazy import still
    makes a circle: the two modules then depend on each other's state at call time)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlcourse"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dlcourse")}
    return found


def test_no_import_cycles():
    modules = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in SRC.rglob("*.py")}
    graph = {name: {m for m in _imports(path, modules) if m in modules and m != name} for name, path in modules.items()}

    circles, done = [], set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append(" -> ".join([*trail[trail.index(name):], name]))
            return
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert not circles, circles


# Names with a leading underscore that are not private members: Hydra's config keys.
NOT_PRIVATE = {"_target_", "_partial_", "_args_", "_recursive_", "_convert_"}


def _own_names() -> set[str]:
    """Every name dlcourse defines or assigns (its own private members included)."""
    own = set()
    for p in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
    return own


def _private_uses(path: Path, own: set[str]) -> list[str]:
    """`x._name` where `_name` is not a name dlcourse defines itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and node.attr not in NOT_PRIVATE | own):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
    return found


def test_no_private_member_of_another_library_outside_internals():
    """Lightning's, Hydra's, submitit's and TensorBoard's private members are read, written or overridden
    only in dlcourse/internals.py, where tests/test_internals.py pins each one."""
    import importlib

    own = _own_names()
    found = [use for p in SRC.rglob("*.py") if p.name != "internals.py" for use in _private_uses(p, own)]
    for p in SRC.rglob("*.py"):  # a private method of a base class overridden in a dlcourse class
        if p.name == "internals.py" or "hydra_plugins" in p.parts:
            continue
        name = ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in [n for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ClassDef)]:
            methods = [f.name for f in node.body
                       if isinstance(f, ast.FunctionDef) and f.name.startswith("_") and not f.name.startswith("__")]
            if methods:
                cls = getattr(importlib.import_module(name), node.name)
                bases = [b for b in cls.__mro__[1:] if not b.__module__.startswith("dlcourse")]
                found += [f"{name}.{node.name}.{m} overrides a private member" for m in methods
                          if any(m in vars(b) for b in bases)]
    assert not found, found


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
