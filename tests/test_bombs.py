"""Untrusted archives and images take bounded memory: a checkpoint whose zip directory claims far more
than its size, and a PNG over PIL's pixel limit, are refused in one line naming the file before they
are unpacked. Proven under a memory ceiling (RLIMIT_AS in the command's process) that the same
files, unpacked without the check, do not fit in."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import image_folder_run, run_in_process, write_pngs
from crafting import png_bomb, zip_bomb

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc for the ceiling")
GiB = 2**30
IMPORTS = "import dlcourse.evaluate, dlcourse.predictor, torch, PIL.Image"


def ceiling(limit: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return set_limit


def run_limited(args: list[str], cwd: Path, limit: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLCOURSE_ROOT": str(cwd)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=ceiling(limit))


@pytest.fixture(scope="module")
def imported() -> int:
    """The address space a dlcourse command has before it reads anything (torch's libraries are mapped
    at import, gigabytes on some builds): each ceiling below is this plus a margin."""
    out = subprocess.run([sys.executable, "-c", f"{IMPORTS}; print(open('/proc/self/status').read())"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return int(re.search(r"VmPeak:\s*(\d+) kB", out)[1]) * 1024


def one_line(result, *names: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert all(n in line for n in names), line
    return line


def test_a_zip_bomb_checkpoint_is_refused_before_it_is_unpacked(iris_run, tmp_path, imported, capfd):
    good = iris_run / "checkpoints" / "last.ckpt"
    bomb = zip_bomb(good, tmp_path / "bomb.ckpt", 3 * 1024)  # 3 GiB from about 3 MB
    assert bomb.stat().st_size < 4 * 2**20
    limit = imported + GiB + GiB // 4
    result = run_limited(["-m", "dlcourse.evaluate", f"ckpt_path={bomb}"], tmp_path, limit)
    one_line(result, str(bomb), "decompression bomb", "refused before loading")
    # The ceiling is real: under it the good checkpoint loads, the bomb (torch unpacking it) does not.
    control = run_limited(["-c", f"{IMPORTS}; torch.load({str(good)!r}, weights_only=True); print('good loaded'); "
                           f"torch.load({str(bomb)!r}, weights_only=True)"], tmp_path, limit)
    assert "good loaded" in control.stdout and control.returncode != 0, control.stderr[-2000:]
    from dlcourse.app import main  # resuming from it: the same check, before anything is built

    resumed = run_in_process(main, [f"ckpt_path={bomb}", "trainer.max_epochs=5"], tmp_path, capfd)
    one_line(resumed, str(bomb), "decompression bomb")
    assert not (tmp_path / "outputs").exists()


def test_a_png_bomb_is_refused_in_training_and_at_predict_time(tmp_path_factory, tmp_path, imported, capfd):
    bomb = png_bomb(tmp_path / "bomb.png", 13_000)  # 169 million pixels: PIL only warns up to 179 million
    run, _ = image_folder_run(tmp_path_factory)
    limit = imported + GiB // 2
    result = run_limited(["-m", "dlcourse.evaluate", f"ckpt_path={run}", f"predict={bomb}"], tmp_path, limit)
    one_line(result, str(bomb), "too large to read", "MAX_IMAGE_PIXELS")
    assert not list(tmp_path.glob("*predictions*"))
    control = run_limited(["-c", f"{IMPORTS}, warnings; warnings.simplefilter('ignore'); "
                           f"PIL.Image.open({str(bomb)!r}).convert('RGB').resize((16, 16))"], tmp_path, limit)
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stderr[-2000:]
    pics = tmp_path / "pics"
    write_pngs(pics, per_class=4)
    (pics / "red" / "bomb.png").write_bytes(bomb.read_bytes())
    from dlcourse.app import main

    trained = run_in_process(main, ["experiment=mnist_cnn", "data=image_folder", f"data.root={pics}", "trainer.max_epochs=1",
                                    "trainer.accelerator=cpu"], tmp_path, capfd)
    one_line(trained, str(pics / "red" / "bomb.png"), "too large to read")
    assert not (tmp_path / "outputs").exists()
