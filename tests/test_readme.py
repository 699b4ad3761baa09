"""The README is executable: every command in its code blocks (and the inline ones) runs here, in
README order, in a sandbox laid out like a checkout (examples/, ../shared/datasets with tiny fake
MNIST, a home with ~/Downloads and ~/pictures, a torch hub cache with planted ImageNet weights).

Runs get a short epoch budget; a command that needs a GPU or a GPU cluster is composed and validated
(`--cfg job`) instead; the CPU SLURM recipes run on the local cluster (scripts/slurm_local.sh) and
skip, saying why, without one; `<run>` and `<timestamp>` stand for the newest run or sweep directory of that
experiment. The error examples (`$ dlcourse-train ...` followed by `error: ...`) must fail with
exactly that line. Files the README shows with a path in their first line (`# mynets.py`) are
written as shown before the commands run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_here, slurm_cluster_reason, write_fake_mnist, write_pngs

README = REPO / "README.md"
BIN = Path(sys.executable).parent
# Commands not run here, and why.
SKIP = {
    "make test": "this suite itself",
    "make benchmark": "all cases, minutes; its script runs below with --only and a short budget",
    "make reproduce": "every course row on real data, hours on a CPU; its script runs below with --only",
}
SERVERS = ("tensorboard", "optuna-dashboard")  # started, asked to say where they listen, stopped
NEEDS_GPU_OR_CLUSTER = ("trainer=ddp ", "trainer=gpu", "hydra/launcher=slurm ", "hydra/launcher=slurm_gpu")
# Commands that run on the local SLURM cluster (scripts/slurm_local.sh; .ci/run starts it) and skip without one.
ON_LOCAL_SLURM = ("hydra/launcher=slurm_cpu", "scripts/slurm_local.sh")
# Commands that a test elsewhere runs as written (with its short budget), checking more than an exit status.
RUN_BY = {  # (the end of the command, comments left out)
    "slurm_cpu hydra.launcher.tasks_per_node=2 hydra.launcher.cpus_per_task=1 trainer=ddp_cpu experiment=gaussian_mlp":
        "tests/test_slurm.py::test_ddp_job_with_two_ranks",
    "dlcourse-train experiment=gaussian_mlp trainer=ddp_cpu": "tests/test_sweeps.py::test_ddp_cpu_matches_single_process_and_writes_one_run_dir",
}


# The README's commands run in two files, each with its own sandbox, one per test worker: this one
# up to SECOND_HALF, tests/test_readme_second_half.py from there (no command there needs a run made here).
SECOND_HALF = "\n## Images\n"


def readme_part(second: bool | None = None) -> str:
    text = README.read_text()
    cut = text.index(SECOND_HALF)
    return text if second is None else (text[cut:] if second else text[:cut])


def blocks(text: str | None = None) -> list[tuple[str, list[str]]]:
    """(language, lines) of every fenced block."""
    found, lang, lines = [], None, []
    for line in (README.read_text() if text is None else text).splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                found.append((lang, lines))
                lang = None
        elif lang is not None:
            lines.append(line)
    return found


def commands(text: str | None = None) -> list[str]:
    """Command lines in README order: bash blocks (continuations joined), `$ ` examples with the
    error line they show (`command\\nerror: ...`), and inline `dlcourse-...` code."""
    out = []
    text = README.read_text() if text is None else text
    for lang, lines in blocks(text):
        joined = "\n".join(lines).replace("\\\n", " ")
        for i, line in enumerate(joined.splitlines()):
            if lang == "bash" and line.strip() and not line.startswith("#"):
                out.append(line.strip())
            elif lang == "" and line.startswith("$ "):
                out.append(f"{line[2:]}\n{joined.splitlines()[i + 1]}")
    for inline in re.findall(r"`((?:dlcourse-[a-z]+ |make |python |tensorboard )[^`]*)`", text):  # with arguments
        if "<run dir>" not in inline and inline != "tensorboard --logdir":
            out.append(inline)
    unique: dict[str, str] = {}
    for command in out:  # once each (comments aside)
        unique.setdefault(bare(command.partition("\n")[0]), command)
    return list(unique.values())


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("readme")
    repo, home = root / "repo", root / "home"
    repo.mkdir()
    subprocess.run(["cp", "-r", str(REPO / "examples"), str(repo)], check=True)
    write_fake_mnist(root / "shared" / "datasets", n_train=128, n_test=64)
    write_fake_mnist(repo / "data", n_train=128, n_test=64)  # data.root's default, ./data
    write_fake_mnist(home / "datasets", n_train=128, n_test=64)  # the README's data.root=~/datasets
    write_pngs(home / "pictures" / "pets", per_class=6, size=24)
    import torch
    import torchvision

    torch.manual_seed(1)
    weights = torchvision.models.resnet18(weights=None).state_dict()  # stands in for the ImageNet weights
    for folder in (home / "Downloads", root / "torch" / "hub" / "checkpoints"):
        folder.mkdir(parents=True)
        torch.save(weights, folder / "resnet18-f37072fd.pth")
    for lang, lines in blocks():  # the files the README shows
        match = next((m for m in (re.match(r"# (\S+\.(py|yaml))", line) for line in lines[:2]) if m), None)
        if match and lang in ("python", "yaml"):
            path = repo / match.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HOME": str(home), "TORCH_HOME": str(root / "torch"), "DLCOURSE_ROOT": str(repo),
           "DLCOURSE_DATASETS": str(root / "shared" / "datasets"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return {"repo": repo, "env": env}


MNIST_RUNS = ("experiment=mnist", "experiment=fashion", "data=mnist", "data=fashion")


def budget(argv: list[str]) -> list[str]:
    """A short run of a dlcourse-train command: 2 epochs (3 when it asks for more; a resume keeps its
    own), 2 Optuna trials, 20 learning-rate finder steps, 32 validation images of the tiny fake MNIST."""
    extra = ["trainer.enable_progress_bar=false"]
    if not any(a.startswith("ckpt_path=") for a in argv):
        argv = [re.sub(r"^trainer\.max_epochs=\d+$", "trainer.max_epochs=3", a) for a in argv]
        if not any(a.startswith("trainer.max_epochs=") for a in argv):
            extra.append("trainer.max_epochs=2")
    if any(a.startswith("hparams_search=") for a in argv):
        extra.append("hydra.sweeper.n_trials=2")
    if "lr_find.enabled=true" in argv:
        extra.append("lr_find.num_training=20")
    if "experiment=gaussian_mlp" in argv and "data.batch_size=1" in argv:  # single-sample steps: fewer samples
        extra.append("data.n_train=300")
    if any(a.startswith(MNIST_RUNS) for a in argv):
        extra.append("data.n_val=32")
    if any(a.startswith("experiment=sine") for a in argv) and not any(a.startswith("data=") for a in argv):
        extra.append("data.n_series=500")
    if "hydra/launcher=slurm_cpu" in argv:  # ask SLURM every half second whether the jobs ended, not every 5
        extra.append("hydra.launcher.poll_s=0.5")
    return [*argv, *extra]


def readme_command(key: str) -> list[str]:
    """The arguments of the README's dlcourse-train command that ends with `key`, for the test of RUN_BY
    that runs it."""
    assert key in RUN_BY
    (command,) = [c for c in commands() if bare(c).endswith(key)]
    argv = shlex.split(command, comments=True)
    assert argv[0] == "dlcourse-train"
    return argv[1:]


def bare(command: str) -> str:
    """A command line as its words, comments and extra spaces left out."""
    return " ".join(shlex.split(command, comments=True))


def narrowed(argv: list[str], keep) -> list[str]:
    """A script's argv with its `--only` list cut to `keep(cases)` (each case costs a process of its own)."""
    if "--only" in argv:
        at = argv.index("--only") + 1
        argv = [*argv[:at], ",".join(keep(argv[at].split(","))), *argv[at + 1:]]
    return argv


def newest(repo: Path, pattern: str) -> str:
    found = sorted(repo.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert found, f"no {pattern} from an earlier README command"
    return str(found[-1].relative_to(repo))


def prepare(command: str, repo: Path) -> tuple[list[str], Path]:
    """The argv to run and where (the sandbox, or the checkout for make and scripts)."""
    if "<run>" in command:
        experiment = re.search(r"outputs/([^/]+)/<run>", command).group(1)
        run = newest(repo, f"outputs/{experiment}/*/checkpoints/last.ckpt")
        command = command.replace(f"outputs/{experiment}/<run>", str(Path(run).parent.parent))
    if "<timestamp>" in command:
        command = command.replace("outputs/iris_mlp/multirun/<timestamp>", newest(repo, "outputs/iris_mlp/multirun/*"))
    argv = shlex.split(command, comments=True)
    tool = argv[0]
    if tool == "dlcourse-train":
        if any(marker in command + " " for marker in NEEDS_GPU_OR_CLUSTER):
            return [tool, "--cfg", "job", *argv[1:]], repo
        return [tool, *budget(argv[1:])], repo
    if tool == "python" and argv[1] == "scripts/benchmark.py":  # its last case only
        return [sys.executable, *narrowed(argv, lambda cases: cases[-1:])[1:], "--epochs", "1"], REPO
    if tool == "python" and argv[1] == "scripts/reproduce.py":  # one row will do, unless rows run at once
        if "--jobs" not in argv:
            argv = narrowed(argv, lambda rows: rows[-1:])
        tiny = ["--set", "data.n_val=32"] if "mnist" in command else []
        return [sys.executable, *argv[1:], "--set", "trainer.max_epochs=1", *tiny], REPO
    if tool == "python" and argv[1] == "scripts/startup_benchmark.py":  # one round; a whole run is no case of its own here
        argv = narrowed(argv, lambda cases: [c for c in cases if c != "gaussian_mlp"])
        return [sys.executable, *argv[1:], "--repeat", "1", "--out", str(repo / "startup_benchmark.md")], REPO
    if tool == "python" and argv[1] == "scripts/tabular_parity.py":  # a plain table and one with gaps (the
        only = [] if "--only" in argv else ["--only", "iris,breast_cancer_gaps"]  # images' row: RESULTS.md)
        return [sys.executable, *argv[1:], "--seeds", "1", *only], REPO
    if tool == "python" and argv[1] == "scripts/precision_speed.py":  # the smallest of the CNNs
        return [sys.executable, *argv[1:], "--steps", "2", "--only", "mnist_lenet5"], REPO
    if tool == "python" and argv[1] == "-m":
        return [sys.executable, *budget(argv[1:])], repo
    if tool == "python":
        return [sys.executable, *argv[1:]], REPO
    if tool in ("make", "bash"):
        return argv, REPO
    return argv, repo


@pytest.mark.parametrize("command", commands(readme_part(second=False)))
def test_readme_command_runs(sandbox, command, capfd):
    run_readme_command(sandbox, command, capfd)


def run_readme_command(sandbox, command, capfd):
    command, _, expected_error = command.partition("\n")
    words = bare(command)
    if words in SKIP:
        pytest.skip(SKIP[words])
    elsewhere = next((test for key, test in RUN_BY.items() if words.endswith(key)), None)
    if elsewhere:
        pytest.skip(f"run as written by {elsewhere}")
    if any(marker in command for marker in ON_LOCAL_SLURM) and not any(m in command + " " for m in NEEDS_GPU_OR_CLUSTER):
        reason = slurm_cluster_reason()
        if reason:
            pytest.skip(reason)
    argv, cwd = prepare(command, sandbox["repo"])
    if argv[-1] == "tensorboard" or argv[0] in SERVERS:
        return serve(argv, cwd, sandbox["env"])
    before = snapshot() if argv[1:2] == ["scripts/make_examples.py"] else None
    result = run(argv, cwd, sandbox["env"], capfd)
    if expected_error:  # an error example: exit 2 and the line the README shows (up to its "...")
        assert result.returncode == 2, result.stderr[-2000:]
        shown = expected_error.split("...")[0].rstrip()
        assert result.stderr.strip().startswith(shown), f"README: {expected_error}\nactual: {result.stderr}"
        return
    assert result.returncode == 0, f"{' '.join(argv)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    if before is not None:
        assert snapshot() == before, "scripts/make_examples.py must reproduce examples/ exactly"


IN_PROCESS = {"dlcourse-train": "dlcourse", "dlcourse-eval": "dlcourse.evaluate", "dlcourse-summary": "dlcourse.sweeps.summary",
              "dlcourse-export": "dlcourse.exporting"}  # console script -> its module (conftest.run_here)


def run(argv: list[str], cwd: Path, env: dict, capfd) -> subprocess.CompletedProcess:
    """A dlcourse command runs in this process (torch is imported already: seconds saved per command),
    unless it starts processes of its own (a launcher's jobs, DDP); anything else as a subprocess."""
    own_processes = any(a.startswith("hydra/launcher=") for a in argv) or "trainer=ddp_cpu" in argv
    if argv[0] in IN_PROCESS and not own_processes:
        return run_here(argv[1:], cwd, capfd, module=IN_PROCESS[argv[0]], env_extra=env)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def snapshot() -> dict:
    return {p.name: p.read_bytes() for p in sorted((REPO / "examples").glob("*.csv"))}


def serve(argv: list[str], cwd: Path, env: dict) -> None:
    """A server command: it must come up and say where (then it is stopped)."""
    proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]] if argv[0] in SERVERS else argv, cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline, seen = time.time() + 120, ""
        while time.time() < deadline and "http://" not in seen:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
        assert "http://" in seen, seen[-2000:]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def python_blocks() -> list[str]:
    """The README's Python code blocks, except files it shows (a `# path.py` first line)."""
    return ["\n".join(lines) for lang, lines in blocks()
            if lang == "python" and lines and not re.match(r"# \S+\.(py|yaml)", lines[0])]


def test_readme_has_a_from_python_section():
    assert "## From Python" in README.read_text() and python_blocks()


@pytest.mark.parametrize("code", python_blocks(), ids=lambda code: code.splitlines()[0][:40])
def test_readme_python_block_runs(sandbox, code, capfd):
    """Run in this process, in the sandbox as the commands are, as a notebook cell would run it."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(sandbox["env"])
    os.chdir(sandbox["repo"])
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the project's own README)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    out = capfd.readouterr().out
    if "model.dropout=1.5" in code:  # the error example prints the command line's line
        assert "model.dropout=1.5 is invalid: must be a number >= 0 and < 1" in out
    if "result" in namespace:
        assert namespace["result"].status == "completed"
