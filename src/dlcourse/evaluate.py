"""`dlcourse-eval`: the metrics of a saved checkpoint, or its predictions on new inputs.

    dlcourse-eval ckpt_path=outputs/iris_mlp/<run>/checkpoints/last.ckpt          # test metrics
    dlcourse-eval ckpt_path=outputs/iris_mlp/<run> split=val                        # a run dir: its best checkpoint
    dlcourse-eval ckpt_path=<ckpt> predict=new_flowers.csv output=predictions.csv   # predictions to a CSV
    dlcourse-eval ckpt_path=<ckpt> data.root=/data trainer.accelerator=cpu          # change data/device settings

The run's config travels inside the checkpoint, so nothing else needs repeating. Metrics go to
stdout and to <run dir>/eval_<split>.json (a new file: the run's metrics.json is never touched).
This is the command line over dlcourse.predictor (`dlcourse.load(...)` in Python), which does the work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dlcourse.atomic_files import write_json, write_text
from dlcourse.cli_args import parse_key_values
from dlcourse.errors import DataError, DlcourseError, fail

if TYPE_CHECKING:
    from dlcourse.predictor import Predictor

USAGE = ("usage: dlcourse-eval ckpt_path=PATH [split=test|val] [predict=CSV|IMAGE|FOLDER] [output=PATH] "
         "[overwrite=true] [data.KEY=V] [trainer.KEY=V]")
OWN_KEYS = ("ckpt_path", "split", "predict", "output", "overwrite")


def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    own, dotlist = parse_key_values(argv, OWN_KEYS, USAGE, __doc__)
    if own.get("split", "test") not in ("test", "val"):
        fail(f"split={own['split']!r} is invalid: allowed: test, val")
    if own.get("overwrite", "false").lower() not in ("true", "false"):
        fail(f"overwrite={own['overwrite']!r} is invalid: allowed: true, false")
    own["overwrite"] = own.get("overwrite", "false").lower() == "true"
    return own, dotlist


def check_output(output: Path, p: Predictor, inputs: Path | None = None, overwrite: bool = False,
                 derived: bool = False) -> None:
    """Before anything is computed: an output that is a folder, the inputs, a file the run itself holds
    (its checkpoints, metrics.json, logs, config: never, not even with overwrite=true) or any other
    existing file (unless overwrite=true, or it is this command's own eval_<split>.json) is refused."""
    target, run = output.resolve(), p.run_dir.resolve()
    if output.is_dir():
        raise DataError(f"output={str(output)!r} is a folder; name a file")
    if inputs is not None and target == inputs.resolve():
        raise DataError(f"output={str(output)!r} would overwrite the inputs; choose another file")
    if target == p.checkpoint.resolve() or (run in target.parents and output.exists()
                                            and not target.name.startswith("eval_")):
        raise DataError(f"output={str(output)!r} would overwrite the run's own {output.name}; choose another file")
    if run / "checkpoints" in target.parents or run / ".hydra" in target.parents:
        raise DataError(f"output={str(output)!r} is inside the run's own {target.parent.name}/; choose another file")
    if output.exists() and not (overwrite or derived):
        raise DataError(f"output={str(output)!r} exists; choose another file, or replace it with overwrite=true")


def predict(p: Predictor, inputs: Path, output: Path) -> int:
    """The predictions on `inputs`, written to `output` (a CSV: the inputs, then the prediction columns)."""
    result = p.predict(inputs)  # a CSV's rows; an image file or a folder of images (a row per file, with its path)
    write_text(output, result.to_csv(index=False))  # whole or not at all
    return len(result)


def main(argv: list[str] | None = None) -> None:
    own, dotlist = parse_args(sys.argv[1:] if argv is None else argv)
    from dlcourse.lean import console_setup

    console_setup()  # before torch and Lightning are imported
    from dlcourse.predictor import Predictor, resolve_checkpoint

    try:
        path = resolve_checkpoint(own["ckpt_path"])
        p = Predictor(path, dotlist)
        if "predict" in own:
            inputs = Path(own["predict"])
            output = Path(own.get("output") or inputs.with_name(inputs.stem + "_predictions.csv"))
            check_output(output, p, inputs, own["overwrite"])
            n = predict(p, inputs, output)
            print(f"wrote {n} predictions to {output}")
            return
        split = own.get("split", "test")
        out = Path(own.get("output") or p.run_dir / f"eval_{split}.json")
        check_output(out, p, overwrite=own["overwrite"], derived="output" not in own)  # eval_<split>.json: this command's
        metrics = p.evaluate(split)
        write_json(out, {"checkpoint": str(path), "split": split, **metrics})
    except DlcourseError as e:
        fail(str(e), e.exit_code)
    print(json.dumps(metrics, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
