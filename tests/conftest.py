"""Shared fixtures: compose any config fast and run it in-process on tiny settings."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from dlcourse.compose import compose, conf_dir, job_config

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = conf_dir()

# Settings that make any experiment finish in seconds on a CPU (tests check behaviour, not accuracy).
FAST = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "~callbacks.model_summary",
]


# A run for tests that use what it leaves (its checkpoint): no loggers, no figures.
QUIET_RUN = ["logger=none", "~callbacks.figures", "~callbacks.lr_monitor"]


def make_cfg(overrides: list[str], output_dir: Path):
    """Compose conf/train.yaml as the command line does, with the run directory set explicitly."""
    return job_config(compose(list(overrides), output_dir=output_dir))


@pytest.fixture
def cfg_factory(tmp_path):
    runs = iter(range(1_000_000))

    def factory(*overrides: str, fast: bool = True):
        # A fresh run directory per config, as the command line gives each run its own.
        return make_cfg([*(FAST if fast else []), *overrides], tmp_path / f"run{next(runs)}")

    return factory


def trained(tmp_path_factory, *overrides: str) -> Path:
    """A tiny run trained in this process; its run directory."""
    from dlcourse.train import train

    run = tmp_path_factory.mktemp("runs") / "run"
    train(make_cfg([*FAST, *QUIET_RUN, *overrides], run))
    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared CPU: one thread is fastest (and the same for every test of the module)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    return trained(tmp_path_factory, "experiment=iris_mlp", "trainer.max_epochs=3")


def image_folder_run(tmp_path_factory, *overrides: str) -> tuple[Path, Path]:
    """A tiny CNN on write_pngs' red and blue images (20x20 files, trained at 16x16: inputs get resized)."""
    pics = tmp_path_factory.mktemp("pics")
    write_pngs(pics, per_class=10)
    run = trained(tmp_path_factory, "experiment=mnist_cnn", "data=image_folder", f"data.root={pics}",
                  "data.image_size=16", "model.channels=[8,pool]", "data.batch_size=4", *overrides)
    return run, pics


def level_series_run(tmp_path_factory, *overrides: str) -> tuple[Path, np.ndarray]:
    """A tiny forecaster of a noisy sine around 100 (a CSV series far from standard units: any scaling
    that is not undone shows), windows of 10 steps, 2 forecast."""
    t = np.arange(300)
    values = 100 + 10 * np.sin(t / 4) + np.random.default_rng(0).normal(0, 0.5, 300)
    path = tmp_path_factory.mktemp("series") / "level.csv"
    path.write_text("level\n" + "\n".join(f"{float(v)!r}" for v in values) + "\n")
    run = trained(tmp_path_factory, "data=csv_series", f"data.path={path}", "data.n_steps=10", "data.horizon=2",
                  *overrides)
    return run, values


def one_line(error: pytest.ExceptionInfo) -> str:
    """The message of a raised DlcourseError, checked to be one line."""
    from dlcourse.errors import DlcourseError

    assert isinstance(error.value, DlcourseError)
    text = str(error.value)
    assert text and "\n" not in text
    return text


@contextmanager
def local_server(argv: list[str], log: Path, cwd: Path | None = None):
    """A web server of a package's own (`mlflow ui`, `optuna-dashboard`) on a free loopback port, as
    a user starts it: yields `ask(path, body=None)`, which waits (bounded) for the first answer and
    returns the response's JSON or bytes. The server and its workers are stopped afterwards."""
    import json
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = open(log, "w")
    server = subprocess.Popen([*argv, "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)  # its own process group

    def request(path: str, body: dict | None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
            return json.loads(data) if "json" in r.headers.get("Content-Type", "") else data

    def ask(path: str, body: dict | None = None):
        for _ in range(120):  # bounded: up to a minute for the server to start
            try:
                return request(path, body)
            except OSError:
                assert server.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
        raise AssertionError(f"{argv[0]} did not answer on port {port}")

    try:
        yield ask
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        out.close()


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 300,
            module: str = "dlcourse") -> subprocess.CompletedProcess:
    """Run a dlcourse command as a user would, with outputs under `cwd`."""
    env = {**os.environ, "DLCOURSE_ROOT": str(cwd), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# The slowest files first (measured with --durations=0): each worker takes a whole file at a time
# (--dist loadfile, in this order: --no-loadscope-reorder), so the long ones start at once and the
# workers end together, not one of them running a long file alone at the end.
SLOWEST_FIRST = ("test_readme_second_half.py", "test_compose.py", "test_readme.py", "test_slurm.py", "test_sweeps.py",
                 "test_api.py", "test_bombs.py", "test_faults.py", "test_integrity.py", "test_loggers.py")


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: a worker more than the cores. Many tests wait on a command's own processes or on
    SLURM; the extra worker keeps the cores busy meanwhile (2 cores: 423 s against 439-456 s)."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file, its own order


MAINS = {"dlcourse": "dlcourse.app", "dlcourse.evaluate": "dlcourse.evaluate", "dlcourse.exporting": "dlcourse.exporting",
         "dlcourse.sweeps.summary": "dlcourse.sweeps.summary"}


def run_here(args: list[str], cwd: Path, capfd, module: str = "dlcourse", env_extra: dict | None = None
             ) -> subprocess.CompletedProcess:
    """`run_cli` in this process: the same command, `python -m <module>`'s main, without a new process
    importing torch and Lightning (seconds each). For the tests where the process itself is not the point."""
    import importlib

    return run_in_process(importlib.import_module(MAINS[module]).main, args, cwd, capfd, env_extra)


def run_in_process(main, args: list[str], cwd: Path, capfd, env: dict | None = None) -> subprocess.CompletedProcess:
    """A console script's `main` in this process, as `run_cli` runs it in a new one (torch and Lightning
    are imported already: seconds saved per command): working directory, DLCOURSE_ROOT, exit status,
    stdout and stderr (empty without `capfd`: a module-scoped fixture has none). Only where the process itself
    is not what a test checks (signals, DDP ranks)."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update({"DLCOURSE_ROOT": str(cwd), **(env or {})})
    os.environ.pop("HYDRA_FULL_ERROR", None)
    os.chdir(cwd)
    if capfd is not None:
        capfd.readouterr()
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    out, err = capfd.readouterr() if capfd is not None else ("", "")
    return subprocess.CompletedProcess(args, code, out, err)


def write_pngs(folder: Path, per_class: int = 8, size: int = 20) -> None:
    """An image folder of two learnable classes: reddish and bluish noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("blue", 2)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)
            img[..., channel] = 200
            Image.fromarray(img).save(folder / name / f"{i}.png")


def write_table(path: Path, per_class: int = 30, classes=("cat", "dog", "fox")) -> Path:
    """A CSV of two numeric features and a string label, one well-separated cluster per class."""
    rng = np.random.default_rng(0)
    lines = ["weight,height,label"]
    for k, name in enumerate(classes):
        for x, y in rng.normal(size=(per_class, 2)) + [4.0 * k, 4.0 * (k % 2)]:
            lines.append(f"{x:.3f},{y:.3f},{name}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_idx(path: Path, array) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_digits(n: int, rng):
    """Learnable images: class c is a bright bar at row 2c+4, plus noise."""
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, c in enumerate(labels):
        images[i, 2 * c + 4: 2 * c + 7, 4:24] = 255
    return images, labels


def write_fake_mnist(root: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """torchvision's layout with only the four .gz files, for MNIST and Fashion-MNIST."""
    rng = np.random.default_rng(0)
    for name in ("MNIST", "FashionMNIST"):
        raw = root / name / "raw"
        raw.mkdir(parents=True)
        for split, n in (("train", n_train), ("t10k", n_test)):
            x, y = fake_digits(n, rng)
            write_idx(raw / f"{split}-images-idx3-ubyte.gz", x)
            write_idx(raw / f"{split}-labels-idx1-ubyte.gz", y)
    return root


def slurm_cluster_reason() -> str | None:
    """Why SLURM commands cannot run here (None: a cluster answers, e.g. scripts/slurm_local.sh's)."""
    import re
    import shutil

    if shutil.which("sinfo") is None:
        return "no SLURM on this machine (a local cluster: bash scripts/slurm_local.sh start; .ci/run starts one)"
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not re.search(r"idle|mixed|allocated", out.stdout):
        detail = (out.stderr or out.stdout).strip().splitlines()[:1]
        return (f"no SLURM cluster answers ({detail[0][:160] if detail else 'no node up'}); start the local one: "
                "bash scripts/slurm_local.sh start")
    return None

