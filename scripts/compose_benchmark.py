"""What one composition costs: the config files Hydra loads and the time `dlcourse.compose` takes.

Every sweep job and every run composes its config once. This counts the files Hydra reads for one
composition (by wrapping Hydra's private `ConfigRepository.load_config`, here in a script only) and
times the composition: the median of several, in one process, after a warm-up composition.

    python scripts/compose_benchmark.py                               # the default config and a few experiments
    python scripts/compose_benchmark.py --repeat 21 experiment=mnist_cnn
    python scripts/compose_benchmark.py --files experiment=mnist_cnn  # list the files loaded
    PYTHONPATH=/other/tree/src python scripts/compose_benchmark.py     # another checkout's configs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter

from hydra._internal.config_repository import ConfigRepository

from dlcourse import compose as dlcompose

CASES = ["(default)", "experiment=gaussian_mlp", "experiment=iris_mlp", "experiment=mnist_cnn",
         "experiment=fashion_mnist_cnn", "experiment=mnist_resnet_frozen", "experiment=sine_lstm"]
_loads: Counter = Counter()
_original = ConfigRepository.load_config


def _counting(self, config_path):
    result = _original(self, config_path)
    if result is not None:
        _loads[config_path] += 1
    return result


def _overrides(case: str) -> list[str]:
    return [] if case == "(default)" else case.split()


def measure(case: str, repeat: int) -> tuple[int, float, Counter]:
    """Files loaded by one composition (after a warm-up) and the median seconds of `repeat` compositions."""
    overrides = _overrides(case)
    dlcompose.compose(overrides)  # warm-up: imports, plugin discovery
    _loads.clear()
    dlcompose.compose(overrides)
    files = Counter(_loads)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        dlcompose.compose(overrides)
        times.append(time.perf_counter() - start)
    return sum(files.values()), statistics.median(times), files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="overrides per case (space-separated in one argument)")
    parser.add_argument("--repeat", type=int, default=9, help="compositions timed per case (the median is shown)")
    parser.add_argument("--files", action="store_true", help="list the files each composition loads")
    args = parser.parse_args(argv)
    ConfigRepository.load_config = _counting
    dlcompose.start()
    print(f"conf: {dlcompose.conf_dir()}")
    print("| composition | files loaded | median s |")
    print("|---|---:|---:|")
    for case in args.cases or CASES:
        count, seconds, files = measure(case, args.repeat)
        print(f"| {case} | {count} | {seconds:.3f} |")
        if args.files:
            for path, n in sorted(files.items()):
                print(f"    {path}" + (f" x{n}" if n > 1 else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
