"""A run's HParams entry, ordered for what TensorBoard shows first.

TensorBoard's HParams table ticks its first few columns and sorts the hyperparameters by `differs`
then by name; the metrics keep the order the experiment summary gives them. So the user's
overrides (in a sweep they include the swept values) are marked as differing, `_target_` plumbing
is left out, integers are text (TensorBoard would show 2000 as `2000.0`), and the metrics come as: the test value of the optimised metric, the optimised metric,
the other test metrics, the other validation metrics (best epoch), the last training values.
"""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf

from dlcourse.run_records import flat_hparams
from dlcourse.runcard import job_overrides as user_overrides

GROUP_CHOICES = ("data", "model", "optimizer", "scheduler", "trainer")
# Overrides that change where or how a run is shown, not what it learns: not HParams columns.
SKIPPED_OVERRIDES = ("hydra.", "paths.", "ckpt_path", "hparams_search", "logger", "trainer.enable_progress_bar",
                     "trainer.enable_model_summary", "trainer.log_every_n_steps", "callbacks.progress_bar",
                     "callbacks.model_summary", "callbacks.figures", "callbacks.lr_monitor")


def hparam_entries(cfg: DictConfig, overrides: list[str] | None = None) -> tuple[dict, set[str]]:
    """(hparams, the keys shown first): the config's values without `_target_` paths, a group's
    chosen option by name (`optimizer: sgd`), and every override's key, also one outside the groups."""
    overrides = user_overrides() if overrides is None else overrides
    hp = {k: v for k, v in flat_hparams(cfg).items() if not k.rsplit(".", 1)[-1].startswith("_target_")}
    choices = _choices()
    for group in GROUP_CHOICES:
        if group in choices and choices[group]:
            hp[group] = str(choices[group]).removeprefix("experiment/")
    first = set()
    for text in overrides:
        key, _, value = text.lstrip("+").partition("=")
        if not key or key.startswith("~") or key.startswith(SKIPPED_OVERRIDES):
            continue
        first.add(key)
        if key not in hp:
            picked = OmegaConf.select(cfg, key, default=value, throw_on_resolution_failure=False)
            hp[key] = picked if isinstance(picked, (bool, int, float, str)) else str(picked)
    return hp, first & set(hp)


def _choices() -> dict:
    from hydra.core.hydra_config import HydraConfig

    return dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}


def metric_order(keys, optimized: str | None) -> list[str]:
    """metrics.json keys in the order of the HParams columns (see the module docstring)."""
    keys = list(dict.fromkeys(keys))
    name = optimized.split("/", 1)[1] if optimized and "/" in optimized else None
    head = [k for k in (f"test/{name}" if name else None, optimized) if k in keys]
    tail = [k for k in keys if k not in head]
    rank = {"test": 0, "val": 1, "train": 2}
    return head + sorted(tail, key=lambda k: (rank.get(k.split("/")[0], 3), k != f"{k.split('/')[0]}/loss", k))


def summaries(hparams: dict, differs: set[str], metrics: list[tuple[str, str, str]]) -> list:
    """Experiment, session start and session end summaries; `metrics` are (sub-run, tag, shown name)."""
    from google.protobuf import struct_pb2
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    infos, values = [], {}
    for name, value in hparams.items():
        if isinstance(value, bool):
            kind, v = api_pb2.DATA_TYPE_BOOL, struct_pb2.Value(bool_value=value)
        elif isinstance(value, float):
            kind, v = api_pb2.DATA_TYPE_FLOAT64, struct_pb2.Value(number_value=value)
        else:  # text, integers too: TensorBoard shows every number with 5 digits (2000 as 2000.0)
            kind, v = api_pb2.DATA_TYPE_STRING, struct_pb2.Value(string_value=str(value))
        infos.append(api_pb2.HParamInfo(name=name, type=kind, differs=name in differs))
        values[name] = v
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=[
        api_pb2.MetricInfo(name=api_pb2.MetricName(group=group, tag=tag), display_name=shown)
        for group, tag, shown in metrics])
    now = time.time()
    start = plugin_data_pb2.SessionStartInfo(hparams=values, start_time_secs=now)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=now)

    def summary(tag, **data):
        content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **data)
        return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content))])

    return [summary(metadata.EXPERIMENT_TAG, experiment=experiment),
            summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
            summary(metadata.SESSION_END_INFO_TAG, session_end_info=end)]
