"""`dlcourse-train --help`: what can be chosen and how, read from the configs (no torch import)."""

from __future__ import annotations

from hydra.core.global_hydra import GlobalHydra

from dlcourse.compose import start, user_dirs

GROUPS = {
    "experiment": "a course experiment: a recipe of the options below",
    "data": "the data module (dataset, splits, preprocessing, batch size)",
    "model": "the network",
    "optimizer": "the optimizer",
    "scheduler": "the learning-rate schedule",
    "task": "loss, L1 penalty, gradient clipping",
    "trainer": "device and Trainer settings",
    "callbacks": "early stopping, checkpoints, figures, ...",
    "logger": "where the curves go",
    "hparams_search": "an Optuna search",
}
EXAMPLES = """\
examples:
  dlcourse-train experiment=iris_mlp                         a course experiment
  dlcourse-train experiment=iris_mlp optimizer=sgd           ... with another option (its own defaults)
  dlcourse-train experiment=iris_mlp optimizer.lr=0.05       ... with another value
  dlcourse-train data=csv data.path=t.csv data.target=label  your own table, neutral defaults (Adam, batches of 32)
  dlcourse-train --cfg job experiment=mnist_cnn              print the composed config, run nothing
  dlcourse-train -m experiment=iris_mlp seed=1,2,3           a sweep: one job per value
  dlcourse-train --config-dir my_conf experiment=my_exp      your own configs (my_conf/experiment/my_exp.yaml)
  dlcourse-train ckpt_path=outputs/iris_mlp/<run>            resume a run"""


def help_text() -> str:
    if not GlobalHydra.instance().is_initialized():
        start(user_dirs())
    loader = GlobalHydra.instance().config_loader()
    lines = ["usage: dlcourse-train [-m] [--cfg job|hydra|all] [--config-dir DIR] [key=value ...]", "",
             "Options (group=option); change any value with key=value, e.g. optimizer.lr=0.01:"]
    for group, what in GROUPS.items():
        options = loader.get_group_options(group)
        lines.append(f"  {group:<15} {what}")
        lines.append(f"  {'':<15} {', '.join(options)}")
    lines += ["", "flags:",
              "  -m, --multirun      run every combination of comma-separated values (a sweep)",
              "  -c, --cfg job       print the composed config (hydra | all: also Hydra's part); --resolve",
              "  -cd, --config-dir   a folder of your own configs, searched with dlcourse's (repeatable)",
              "  --hydra-help        Hydra's own flags", "", EXAMPLES]
    return "\n".join(lines)
