"""The model summary a student needs: the network's layers and parameter counts, without the
task's metric objects (which hold no parameters and would fill half the table)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichModelSummary

HIDDEN_PREFIXES = ("val_metrics", "test_metrics", "test_preds", "test_targets")


class ModelSummary(RichModelSummary):
    @staticmethod
    def summarize(summary_data, *args, **kwargs) -> None:
        names = dict(summary_data).get("Name", [])
        keep = [i for i, name in enumerate(names) if not name.startswith(HIDDEN_PREFIXES)]
        filtered = [(column, [values[i] for i in keep]) for column, values in summary_data]
        if filtered and filtered[0][0] == " ":  # the row-number column: renumber
            filtered[0] = (" ", [str(i) for i in range(len(keep))])
        RichModelSummary.summarize(filtered, *args, **kwargs)
