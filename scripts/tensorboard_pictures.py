"""Screenshots of TensorBoard on fresh runs, for the README: scalars, HParams, figures.

    python scripts/tensorboard_pictures.py            # writes docs/tensorboard_*.png

Trains a small sweep (iris_mlp, two learning rates) and one gaussian_mlp run in a temporary
directory, starts `tensorboard` on them (loopback only), and photographs its pages with the system's
headless Chromium (Debian: `apt-get install chromium`); `--virtual-time-budget` lets the page's
JavaScript load and draw the charts before the picture is taken. The PNGs are reduced to a 256-colour
palette to stay small.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = ["trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "~callbacks.model_summary"]
# name -> (logdir under the temp folder, URL after the port, window size)
PAGES = {
    "scalars": ("sweep", "/#scalars&tagFilter=^(loss|acc)$&_smoothingWeight=0", (1400, 980)),
    "hparams": ("sweep", "/#hparams", (1900, 520)),
    "images": ("run", "/#images", (1400, 1000)),
    "text": ("run", "/#text", (1200, 620)),
}


def train(args: list[str], cwd: Path) -> None:
    subprocess.run([str(BIN / "dlcourse-train"), *args, *QUIET], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, timeout=900)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(logdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "tensorboard"), "--logdir", str(logdir), "--port", str(port),
                             "--host", "127.0.0.1", "--reload_interval", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                if json.loads(r.read()):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"tensorboard on {logdir} did not answer")


def shoot(browser: str, url: str, out: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
                        "--virtual-time-budget=20000", f"--screenshot={out}", url],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    from PIL import Image

    Image.open(out).convert("RGB").quantize(256).save(out, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs")
    p.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train(["-m", "experiment=iris_mlp", "optimizer.lr=0.003,0.03", "trainer.max_epochs=40",
               "hydra.sweep.dir=sweep"], tmp)
        train(["experiment=gaussian_mlp", "trainer.max_epochs=8", "hydra.run.dir=run"], tmp)
        servers = {}
        try:
            for name, (logdir, path, size) in PAGES.items():
                if logdir not in servers:
                    servers[logdir] = serve(tmp / logdir)
                out = args.out / f"tensorboard_{name}.png"
                shoot(args.browser, f"http://127.0.0.1:{servers[logdir][1]}{path}", out, size)
                print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}: {out.stat().st_size // 1024} KB")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
