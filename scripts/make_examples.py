"""Write the small sample files in examples/ that the README's commands use.

    python scripts/make_examples.py

wine.csv (classification) and diabetes.csv (regression) are public tables bundled with
scikit-learn (UCI wine recognition; Efron et al.'s diabetes progression); flowers.csv is four iris
flowers to predict; sales.csv is a synthetic daily series (weekly and yearly seasons, trend, noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_iris, load_wine

OUT = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    wine = load_wine(as_frame=True)
    table = wine.data.rename(columns={"od280/od315_of_diluted_wines": "od280_od315"})
    table["cultivar"] = [f"cultivar_{int(t) + 1}" for t in wine.target]
    table.round(4).to_csv(OUT / "wine.csv", index=False)

    diabetes = load_diabetes(as_frame=True, scaled=False)
    table = diabetes.data.copy()
    table["progression"] = diabetes.target
    table.to_csv(OUT / "diabetes.csv", index=False)

    iris = load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
    pd.DataFrame(iris.data[[0, 60, 110, 140]], columns=names).to_csv(OUT / "flowers.csv", index=False)

    rng = np.random.default_rng(0)
    days = pd.date_range("2022-01-01", periods=730, freq="D")
    t = np.arange(len(days))
    sales = 100 + 0.05 * t + 10 * np.sin(2 * np.pi * t / 7) + 20 * np.sin(2 * np.pi * t / 365.25)
    sales += rng.normal(0, 3, len(t))
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "sales": sales.round(2)}).to_csv(OUT / "sales.csv", index=False)
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.csv')))} to {OUT}")


if __name__ == "__main__":
    main()
