"""What a student waits for around the training steps: whole commands, side by side in one run.

Every case is one fresh process, as a student runs it; the cases are alternated (case 1, 2, ...,
then again), so drift of a shared machine hits them alike. Per case: the median wall time, its
ratio to the bare `import torch, lightning`, and from the child's resource usage (os.wait4) the
peak RSS, user and system CPU seconds and minor page faults. `plain_*` cases are the hand-written
PyTorch loop doing the same work (scripts/plain_mnist.py), the baseline for memory.

    python scripts/startup_benchmark.py                        # every case, 5 rounds
    python scripts/startup_benchmark.py --only bare,config_error,cfg_job --repeat 9
    python scripts/startup_benchmark.py --only mnist_cnn_short,mnist_cnn_short_keep,plain_mnist_cnn  # page faults
    python scripts/startup_benchmark.py --baseline /tmp/old    # the same cases on older code too (git worktree)
    python scripts/startup_benchmark.py --only bare,gaussian_mlp,api_gaussian_mlp,cli_gaussian_mlp_x3,api_gaussian_mlp_x3

Goals (issue 15): config error and --cfg job <= 0.35x the bare import, a 1-epoch gaussian_mlp run
<= 1.15x, peak RSS of a small MNIST run within 10% of the plain loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "dlcourse"]
QUIET = ["trainer.enable_progress_bar=false"]  # the same bytes to a pipe on every run; the bar is not what is timed


@dataclass
class Case:
    name: str
    argv: list[str]
    notes: str = ""
    env: dict[str, str] = field(default_factory=dict)
    data: bool = False  # appends data.root=<--data-root> (real MNIST)
    exit_code: int = 0
    plain: str = ""  # the hand-written case doing the same work: peak RSS is compared with it


# The plain loop's work (scripts/plain_mnist.py --model cnn): 60 training batches without augmentation,
# then the whole validation and test sets.
SHORT_CNN = ["experiment=mnist_cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=60", "data.augment=false",
             *QUIET]
TINY = ["experiment=gaussian_mlp", "trainer.max_epochs=1", "data.n_train=2000", *QUIET]
CASES = [
    Case("bare", [sys.executable, "-c", "import torch, lightning"], "import torch, lightning"),
    Case("bare_torch", [sys.executable, "-c", "import torch"], "import torch"),
    Case("config_error", [*TRAIN, "experiment=gaussian_mlp", "model.dropout=1.5"], "model.dropout=1.5: one line, exit 2",
         exit_code=2),
    Case("cfg_job", [*TRAIN, "--cfg", "job", "experiment=mnist_cnn"], "--cfg job experiment=mnist_cnn"),
    Case("help", [*TRAIN, "--help"], "--help"),
    Case("gaussian_mlp", [*TRAIN, "experiment=gaussian_mlp", "trainer.max_epochs=1", *QUIET],
         "1 epoch: data, training, test, figures, metrics.json"),
    Case("gaussian_mlp_full_imports", [*TRAIN, "experiment=gaussian_mlp", "trainer.max_epochs=1", *QUIET],
         "the same, torchmetrics' optional imports on (DLCOURSE_FULL_IMPORTS=1)", env={"DLCOURSE_FULL_IMPORTS": "1"}),
    Case("api_gaussian_mlp", [sys.executable, "-c", f"import dlcourse; dlcourse.run(*{TINY!r})"],
         "the same run from Python: dlcourse.run in a fresh process"),
    Case("cli_gaussian_mlp_x3", [sys.executable, "-c", "import subprocess, sys\nfor seed in (1, 2, 3): "
                                 f"subprocess.run([sys.executable, '-m', 'dlcourse', *{TINY!r}, f'seed={{seed}}'], "
                                 "check=True, stdout=subprocess.DEVNULL)"],
         "three 1-epoch runs, three dlcourse-train processes (a student re-running a cell's command)"),
    Case("api_gaussian_mlp_x3", [sys.executable, "-c", f"import dlcourse\nfor seed in (1, 2, 3): "
                                 f"dlcourse.run(*{TINY!r}, f'seed={{seed}}')"],
         "the same three runs in one Python process (a notebook): imports paid once"),
    Case("gaussian_sweep4", [*TRAIN, "-m", *TINY, "optimizer.lr=0.01,0.1", "seed=1,2"],
         "a 2x2 grid of 1-epoch runs in one process, with the sweep summary"),
    Case("mnist_mlp", [*TRAIN, "experiment=mnist_mlp", "trainer.max_epochs=1", *QUIET], "1 epoch, 44k images",
         data=True, plain="plain_mnist_mlp"),
    Case("plain_mnist_mlp", [sys.executable, str(REPO / "scripts" / "plain_mnist.py"), "--model", "mlp"],
         "hand-written loop, the same work", data=True),
    Case("mnist_cnn_short", [*TRAIN, *SHORT_CNN], "mnist_cnn, 60 training batches, whole val and test sets", data=True,
         plain="plain_mnist_cnn"),
    Case("mnist_cnn_short_keep", [*TRAIN, *SHORT_CNN],
         "the same, freed memory kept for the next steps (DLCOURSE_MALLOC=keep)",
         env={"DLCOURSE_MALLOC": "keep"}, data=True, plain="plain_mnist_cnn"),
    Case("plain_mnist_cnn", [sys.executable, str(REPO / "scripts" / "plain_mnist.py"), "--model", "cnn",
                             "--limit-train-batches", "60"], "hand-written loop, the same work", data=True),
]
DEFAULT = ["bare", "bare_torch", "config_error", "cfg_job", "help", "gaussian_mlp", "gaussian_sweep4", "mnist_mlp",
           "plain_mnist_mlp"]


def run_once(case: Case, data_root: str, workdir: Path) -> dict:
    argv = list(case.argv)
    if case.data:
        argv += ["--data-root", data_root] if "plain_mnist.py" in " ".join(argv) else [f"data.root={data_root}"]
    env = {**os.environ, "DLCOURSE_ROOT": str(workdir), **case.env}
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != case.exit_code:
        raise SystemExit(f"{case.name}: exit {child.returncode}, expected {case.exit_code}\n"
                         f"{stderr.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "user": usage.ru_utime, "sys": usage.ru_stime,
            "minflt": usage.ru_minflt}


def table(cases: list[Case], results: dict[str, list[dict]]) -> str:
    med = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in results.items()}
    bare = med.get("bare", {}).get("wall")
    lines = ["| case | what | wall s (median) | x bare import | peak RSS MB | RSS x plain loop | user s | sys s | "
             "minor faults |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case in cases:
        m = med[case.name]
        ratio = f"{m['wall'] / bare:.2f}" if bare else ""
        plain = med.get(case.plain.removesuffix("@baseline"), {}).get("rss_mb")
        rss_ratio = f"{m['rss_mb'] / plain:.2f}" if plain else ""
        lines.append(f"| {case.name} | {case.notes} | {m['wall']:.2f} | {ratio} | {m['rss_mb']:.0f} | {rss_ratio} | "
                     f"{m['user']:.2f} | {m['sys']:.2f} | {m['minflt']:,.0f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated cases of: {', '.join(c.name for c in CASES)}")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; each runs every case once, in order")
    ap.add_argument("--data-root", default=os.environ.get("DLCOURSE_DATASETS", str(REPO.parent / "shared" / "datasets")))
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every case (default: unset)")
    ap.add_argument("--baseline", default=None, help="a checkout of older code (e.g. `git worktree add /tmp/old "
                    "<commit>`): its dlcourse cases run too, alternated, as <case>@baseline")
    ap.add_argument("--out", default=str(REPO / "outputs" / "startup_benchmark.md"))
    args = ap.parse_args()
    wanted = [n for n in args.only.split(",") if n]
    by_name = {c.name: c for c in CASES}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; cases: {', '.join(by_name)}")
    cases = [by_name[n] for n in wanted]
    if args.baseline:  # the same commands on the old code: PYTHONPATH comes before the editable install
        old = {"PYTHONPATH": str(Path(args.baseline).resolve() / "src")}
        cases += [Case(f"{c.name}@baseline", c.argv, f"{c.notes} (baseline code)", {**c.env, **old}, c.data, c.exit_code,
                       c.plain) for c in cases if c.argv[:3] == TRAIN]
    if any(c.data for c in cases) and not (Path(args.data_root) / "MNIST" / "raw").is_dir():
        ap.error(f"no MNIST at {args.data_root}/MNIST/raw (--data-root)")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    results: dict[str, list[dict]] = {c.name: [] for c in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            for case in cases:
                workdir = Path(tmp) / f"{case.name}-{round_}"
                workdir.mkdir()
                results[case.name].append(r := run_once(case, args.data_root, workdir))
                print(f"round {round_ + 1}/{args.repeat} {case.name}: {r['wall']:.2f} s, {r['rss_mb']:.0f} MB, "
                      f"user {r['user']:.2f} s, sys {r['sys']:.2f} s, {r['minflt']:,} minor faults", file=sys.stderr)
    text = table(cases, results)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
