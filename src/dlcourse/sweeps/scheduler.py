"""What SLURM says about jobs and nodes, asked through its own commands. squeue knows every job
slurmctld still holds (ended ones for MinJobAge, 300 s by default); sacct (accounting) is asked only
for jobs squeue no longer lists, and a cluster without accounting (no slurmdbd) works too. Also the
checks of a SLURM launcher's settings that run before anything is submitted."""

from __future__ import annotations

import shutil
import subprocess

from omegaconf import DictConfig, OmegaConf

from dlcourse.errors import ConfigError

# SLURM's states of a job that will not run again, and the status a sweep's summary gives each.
ENDED = {"COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled", "TIMEOUT": "timeout",
         "DEADLINE": "timeout", "NODE_FAIL": "node_fail", "BOOT_FAIL": "node_fail", "PREEMPTED": "preempted",
         "OUT_OF_MEMORY": "out_of_memory", "SPECIAL_EXIT": "failed", "REVOKED": "cancelled"}


def _run(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id (array task ids as 12_3): (STATE, reason or exit code)} for the jobs SLURM still knows."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    found: dict[str, tuple[str, str]] = {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(bases), "-o", "%i|%T|%r"])
    for line in (out or "").splitlines():
        jid, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        found[jid] = (state.split()[0] if state else "UNKNOWN", reason)
    missing = [j for j in job_ids if j not in found]
    if missing:  # squeue forgot them: accounting, where there is one
        out = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode", *[f"-j{j}" for j in missing]])
        for line in (out or "").splitlines():
            jid, state, code = (line.split("|") + ["", ""])[:3]
            if jid in missing and state:
                found[jid] = (state.split()[0], f"exit code {code}")
    return found


def cancel(job_ids: list[str]) -> bool:
    return bool(job_ids) and _run(["scancel", *job_ids]) is not None


def _partition_nodes(partition: str | None) -> list[tuple[int, str]] | None:
    """(CPUs, GRES) of each node of the partition (the default one when None); None: no sinfo."""
    if shutil.which("sinfo") is None:
        return None
    argv = ["sinfo", "-h", "-N", "-o", "%c|%G|%P"] + (["-p", partition] if partition else [])
    out = _run(argv)
    if out is None:
        return None
    nodes = []
    for line in out.splitlines():
        cpus, gres, part = (line.strip().split("|") + ["", "", ""])[:3]
        if partition or part.endswith("*"):
            nodes.append((int(cpus) if cpus.isdigit() else 0, gres))
    return nodes


def _positive(launcher: DictConfig, key: str, hint: str = "") -> int:
    value = launcher.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"hydra.launcher.{key}", value, f"a positive whole number{hint}")
    return value


def check_launcher(cfg: DictConfig) -> None:
    """Contradictions between the launcher and the trainer, and requests no node can meet."""
    launcher = cfg.hydra.launcher
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher", "slurm", "SLURM's sbatch is not on PATH: submit from a machine of "
                          "the cluster (a local test cluster: bash scripts/slurm_local.sh start)")
    gpus = launcher.get("gpus_per_node") or 0
    tasks = _positive(launcher, "tasks_per_node", " (slurm_gpu: it follows gpus_per_node; CPU nodes: "
                      "hydra/launcher=slurm_cpu)" if launcher.get("gpus_per_node") is None else "")
    nodes = _positive(launcher, "nodes")
    cpus = _positive(launcher, "cpus_per_task")
    timeout_min = _positive(launcher, "timeout_min")
    delay = launcher.get("signal_delay_s")
    if not isinstance(delay, int) or not 0 < delay < timeout_min * 60:
        raise ConfigError("hydra.launcher.signal_delay_s", delay, f"between 1 and the time limit, timeout_min*60 = "
                          f"{timeout_min * 60} s (the job is signalled this long before it)")
    requeues = launcher.get("max_num_timeout")
    if not isinstance(requeues, int) or requeues < 0:
        raise ConfigError("hydra.launcher.max_num_timeout", requeues, "0 or more (requeues after a time limit)")
    trainer = cfg.trainer
    accelerator = str(trainer.get("accelerator"))
    if accelerator in ("gpu", "cuda") and not gpus:
        raise ConfigError("trainer.accelerator", accelerator, "CPU-only jobs (hydra.launcher.gpus_per_node="
                          f"{launcher.get('gpus_per_node')}): use trainer.accelerator=cpu or trainer=ddp_cpu, "
                          "or ask for GPUs (hydra/launcher=slurm_gpu)")
    devices = OmegaConf.select(trainer, "devices", default="auto")
    ddp = "ddp" in str(trainer.get("strategy"))
    if devices == "auto":
        devices = gpus if accelerator in ("gpu", "cuda") else 1
    if isinstance(devices, int) and devices != tasks and (ddp or tasks > 1):
        raise ConfigError("hydra.launcher.tasks_per_node", tasks, f"trainer.devices={devices} processes "
                          f"(trainer.devices={OmegaConf.select(trainer, 'devices')}, {accelerator}): under SLURM srun "
                          "starts every rank, so set both to the same number")
    if (tasks > 1 or nodes > 1) and not ddp:
        raise ConfigError("hydra.launcher.tasks_per_node" if tasks > 1 else "hydra.launcher.nodes",
                          tasks if tasks > 1 else nodes, f"1 with trainer.strategy={trainer.get('strategy')} "
                          "(every process would train the whole run alone): use trainer=ddp or trainer=ddp_cpu")
    _check_nodes(launcher, cpus * tasks, gpus)


def _check_nodes(launcher: DictConfig, cpus: int, gpus: int) -> None:
    partition = launcher.get("partition")
    nodes = _partition_nodes(partition)
    if nodes is None:  # sinfo unavailable: SLURM will judge
        return
    if not nodes:
        known = sorted({p.strip().rstrip("*") for p in (_run(["sinfo", "-h", "-o", "%P"]) or "").split()})
        raise ConfigError("hydra.launcher.partition", partition, f"a partition of this cluster: {', '.join(known)}")
    most = max(c for c, _ in nodes)
    if cpus > most:
        raise ConfigError("hydra.launcher.cpus_per_task", launcher.cpus_per_task,
                          f"at most {most // launcher.tasks_per_node} with tasks_per_node={launcher.tasks_per_node}: "
                          f"the largest node of partition {partition or '(default)'} has {most} CPUs")
    if gpus and all("gpu" not in g for _, g in nodes):
        raise ConfigError("hydra.launcher.gpus_per_node", gpus, f"null: partition {partition or '(default)'} has "
                          "no GPUs (hydra/launcher=slurm_cpu)")
