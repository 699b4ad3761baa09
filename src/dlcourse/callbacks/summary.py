"""The model summary a student needs: the network's layers and parameter counts, without the
task's metric objects (which hold no parameters and would fill half the table) and without
columns that say nothing (FLOPs are all 0 unless Lightning can measure them, Mode all `train`)."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_formatted_model_size, get_human_readable_count

HIDDEN_PREFIXES = ("val_metrics", "test_metrics", "test_preds", "test_targets")


def informative(summary_data: list) -> list:
    """The rows of the network only (renumbered), and the columns whose values differ or are not 0."""
    names = dict(summary_data).get("Name", [])
    keep = [i for i, name in enumerate(names) if not name.startswith(HIDDEN_PREFIXES)]
    rows = [(column, [values[i] for i in keep]) for column, values in summary_data]
    if rows and rows[0][0] == " ":
        rows[0] = (" ", [str(i) for i in range(len(keep))])
    return [(c, v) for c, v in rows if not (c == "FLOPs" and all(x.strip() in ("0", "", "n/a") for x in v))
            and not (c == "Mode" and len(set(v)) <= 1)]


class ModelSummary(RichModelSummary):
    @staticmethod
    def summarize(summary_data, total_parameters: int, trainable_parameters: int, model_size: float,
                  total_training_modes: dict, total_flops: int = 0, **kwargs) -> None:
        from rich import get_console
        from rich.table import Table

        data = informative(summary_data)
        table = Table(header_style=kwargs.get("header_style", "bold magenta"))
        for column, _ in data:
            table.add_column(column, justify="left" if column in ("Name", "Type") else "right",
                             style="dim" if column == " " else None, no_wrap=column == "Name")
        for row in zip(*(values for _, values in data), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        grid = Table.grid(expand=True)
        grid.add_column()
        grid.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(int(trainable_parameters))}")
        grid.add_row(f"[bold]Non-trainable params[/]: "
                     f"{get_human_readable_count(int(total_parameters - trainable_parameters))}")
        grid.add_row(f"[bold]Total params[/]: {get_human_readable_count(int(total_parameters))}")
        grid.add_row(f"[bold]Total estimated model params size (MB)[/]: {get_formatted_model_size(model_size)}")
        if total_flops:
            grid.add_row(f"[bold]Total FLOPs[/]: {get_human_readable_count(int(total_flops))}")
        console.print(grid)
