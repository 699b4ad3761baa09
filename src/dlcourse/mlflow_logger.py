"""MLflow without a server (conf/logger/mlflow.yaml): every run of an output root in one local store,

    <output root>/mlflow.db                               the runs: params, metrics, tags (SQLite)
    <output root>/mlartifacts/<name>/<run id>/artifacts/  figures/*.png, checkpoints/, metrics.json, ...

experiment = the run's `name`, run = its run directory's name (0, 1, ... in a sweep), tag
`dlcourse.run_dir` = that directory. `mlflow ui --backend-store-uri sqlite:///<output root>/mlflow.db`
shows them. What the run sends and when: dlcourse.loggers.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from dlcourse.errors import ConfigError
from dlcourse.loggers import EpochRows, number

SQLITE = "sqlite:///"


def sqlite_path(uri: str) -> str | None:
    """The database file of an SQLite URI (None: another store, or an in-memory one)."""
    if not uri.startswith(SQLITE):
        return None
    path = uri[len(SQLITE):].split("?", 1)[0]
    return None if path in ("", ":memory:") else path


def absolute_uri(uri: str) -> str:
    """An SQLite store's path made absolute (`sqlite:///outputs/mlflow.db` is relative to the directory
    a process runs in): one store for the printed `mlflow ui` command and for every job of a sweep."""
    path = sqlite_path(uri)
    if path is None or Path(path).is_absolute():
        return uri
    return SQLITE + Path(path).absolute().as_posix() + uri[len(SQLITE) + len(path):]


@contextmanager
def store_lock(uri: str):
    """One process at a time opens a local SQLite store (MLflow creates its tables on first use) and
    creates an experiment: the jobs of a parallel sweep start together on the same store."""
    path = sqlite_path(uri)
    try:
        import fcntl
    except ImportError:  # Windows: no lock (parallel jobs there start on a store that exists)
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class MLFlowLogger(EpochRows, LightningMLFlowLogger):
    """Lightning's MLFlowLogger on dlcourse's epoch axis.

    `tracking_uri`: the store; by default a local SQLite database, as MLflow 3 recommends (it refuses
    its plain-file ./mlruns store unless MLFLOW_ALLOW_FILE_STORE=true); or a server's address.
    `run_dir`: the run directory; its name is the run's name (unless `run_name` is set), its path the tag
    `dlcourse.run_dir`. `artifact_location`: where a new experiment keeps its runs' artifacts (a folder
    or a URI). `log_best_checkpoint`: upload the tested checkpoint at the end of the run (Lightning's
    `log_model` uploads checkpoints as they are saved; off by default)."""

    def __init__(self, experiment_name: str = "dlcourse", run_name: str | None = None,
                 tracking_uri: str | None = None, tags: dict | None = None, run_dir: str | None = None,
                 artifact_location: str | None = None, log_best_checkpoint: bool = True,
                 log_model: Literal[True, False, "all"] = False, prefix: str = "", run_id: str | None = None,
                 synchronous: bool | None = None):
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError("logger.mlflow", "MLFlowLogger", 'needs MLflow: pip install "dlcourse[mlflow]"') from None
        # MLflow 3 reports usage to its makers unless told not to: a student's run sends nothing anywhere.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        uri = absolute_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or SQLITE + "mlflow.db")
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if run_dir:
            run_dir = str(Path(run_dir).absolute())
            run_name = run_name or Path(run_dir).name
            tags.setdefault("dlcourse.run_dir", run_dir)
        if artifact_location and "://" not in artifact_location and not artifact_location.startswith("file:"):
            artifact_location = Path(artifact_location).absolute().as_uri()
        with store_lock(uri):  # the client opens (the first time: creates) the store
            super().__init__(experiment_name=experiment_name, run_name=run_name, tracking_uri=uri, tags=tags,
                             log_model=log_model, prefix=prefix, artifact_location=artifact_location,
                             run_id=run_id, synchronous=synchronous)
            if run_id is None:
                _create_experiment(uri, experiment_name, artifact_location)
        self.log_best_checkpoint = log_best_checkpoint
        self.run_dir, self.store_uri = run_dir, uri
        self.experiment_name, self.run_name = experiment_name, run_name

    @rank_zero_only
    def log_metrics(self, metrics, step: int | None = None) -> None:
        rest = self._gather(metrics, step)
        if rest is not None and rest[0]:
            super().log_metrics(*rest)

    def _write_row(self, row: dict, step: int) -> None:
        LightningMLFlowLogger.log_metrics(self, row, step)

    @rank_zero_only
    def log_final(self, best: dict, test: dict, step: int) -> None:
        """The run's final values, `best/val/<m>` and `test/<m>`, at the tested epoch."""
        self._write_pending()
        values = {k: number(v) for k, v in {**best, **test}.items()}
        if values:
            LightningMLFlowLogger.log_metrics(self, values, step)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        self._write_pending()  # rows held back for their validation values, if any
        super().finalize(status)


def _create_experiment(uri: str, name: str, artifact_location: str | None) -> None:
    """The experiment, created here under the store's lock where it is missing: Lightning's logger then
    finds it by name, without its "not found, creating it" warning and without two jobs of a sweep
    racing to create it."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        client.create_experiment(name, artifact_location=artifact_location)
    elif found.lifecycle_stage == "deleted":
        raise ConfigError("logger.experiment_name", name,
                          f"an experiment of that name was deleted in {uri}: restore it "
                          f"(mlflow experiments restore) or choose another name")
