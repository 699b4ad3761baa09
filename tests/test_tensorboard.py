"""TensorBoard as the browser asks it: a real `tensorboard` server on a two-job sweep, queried
through its HTTP API (the HParams table's columns, the scalar charts)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import run_here

SWEEP = ["-m", "experiment=iris_mlp", "optimizer.lr=0.01,0.05", "trainer.max_epochs=3", "trainer.accelerator=cpu",
         "trainer.enable_progress_bar=false", "~callbacks.model_summary", "~callbacks.figures"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_tensorboard_opens_a_sweep_on_what_matters(tmp_path, capfd):
    result = run_here(SWEEP, tmp_path, capfd)
    assert result.returncode == 0, result.stderr[-2000:]
    (sweep,) = sorted((tmp_path / "outputs" / "iris_mlp" / "multirun").glob("*"))
    port = free_port()
    tb = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen([str(tb), "--logdir", str(sweep), "--port", str(port), "--host", "127.0.0.1",
                               "--reload_interval", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):  # bounded: up to a minute for the server and its first load of the runs
            try:
                experiment = ask(port, "/data/plugin/hparams/experiment", {"experimentName": ""})
                tags = ask(port, "/data/plugin/scalars/tags")
                if experiment.get("hparamInfos") and len(tags) >= 4:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("tensorboard did not answer with the sweep's runs")
        hparams = [h["name"] for h in experiment["hparamInfos"]]
        metrics = [m.get("displayName") or m["name"]["tag"] for m in experiment["metricInfos"]]
        assert "optimizer.lr" in hparams[:5], hparams[:8]
        assert not any(h.endswith("_target_") for h in hparams)
        assert any(m.startswith("test/") for m in metrics[:5]), metrics[:8]
        assert "val/acc" in metrics[:5]  # the experiment's optimized metric
        # Keras-style sub-runs: the same tag `loss` under <job>/train and <job>/validation = one chart.
        assert "loss" in tags["0/train"] and "loss" in tags["0/validation"]
        assert not any(t.startswith(("test/", "hp/", "epoch")) for run in tags.values() for t in run)
        assert set(tags) >= {"0/train", "0/validation", "1/train", "1/validation"}
        groups = ask(port, "/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"],
            "colParams": [{"hparam": "optimizer.lr"}], "startIndex": 0, "sliceSize": 10})
        names = sorted(g["name"] for g in groups["sessionGroups"])
        assert names == ["0", "1"]  # trial names are the job numbers, no /tensorboard suffix
        lrs = sorted(g["hparams"]["optimizer.lr"] for g in groups["sessionGroups"])
        assert lrs == [0.01, 0.05]
    finally:
        server.terminate()
        server.wait(timeout=30)
