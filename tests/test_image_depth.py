"""Images at their real depth: 16-bit PNGs read as 16 bits (the same pixels, the same accuracy as the same
images in 8 bits), other PIL modes (LA, P with transparency, CMYK, 1, F) scaled to [0, 1], the same at
predict time, and an empty class folder as one line. The PNGs are written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_line
from dlcourse.data.image_folder import ImageFolderDataModule, read_image
from dlcourse.errors import DataError

SIZE = 12


def grey_images(per_class: int = 12) -> dict[str, list[np.ndarray]]:
    """Two learnable classes of 8-bit grey noise: dark (0-120) and bright (135-255)."""
    rng = np.random.default_rng(0)
    return {name: [rng.integers(lo, lo + 121, size=(SIZE, SIZE)).astype(np.uint8) for _ in range(per_class)]
            for name, lo in (("bright", 135), ("dark", 0))}


def write_folder(root: Path, bits: int) -> Path:
    for name, images in grey_images().items():
        (root / name).mkdir(parents=True)
        for i, a in enumerate(images):
            Image.fromarray(a if bits == 8 else a.astype(np.uint16) * 257).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("depth")
    return {bits: write_folder(tmp / f"png{bits}", bits) for bits in (8, 16)}


def test_sixteen_bit_pngs_are_read_at_their_depth(folders):
    with Image.open(next((folders[16] / "dark").iterdir())) as img:
        assert img.mode.startswith("I;16")  # what the test means to write
    splits = {}
    for bits, root in folders.items():
        dm = ImageFolderDataModule(root=str(root), seed=0)  # channels and size found from the files
        dm.setup()
        assert dm.input_shape == (1, SIZE, SIZE)
        splits[bits] = (dm.mean, dm.std, dm.splits)
    assert splits[16][0] == pytest.approx(splits[8][0], abs=1e-6) and 0.2 < splits[16][0][0] < 0.8  # not clipped
    for name, (x8, y8) in splits[8][2].items():
        x16, y16 = splits[16][2][name]
        assert torch.equal(y16, y8)
        torch.testing.assert_close(x16, x8, atol=1e-5, rtol=0)
    raw8, raw16 = (read_image(next((folders[b] / "bright").iterdir()), (3, 8, 8)) for b in (8, 16))
    assert raw16.max() <= 1 and (raw16 - raw8).abs().max() <= 1 / 255  # resized: 8 bits round, 16 bits do not


def test_sixteen_and_eight_bit_folders_train_to_the_same_accuracy_and_predict_alike(folders, cfg_factory):
    from dlcourse import load
    from dlcourse.train import train

    results, predictors = {}, {}
    for bits, root in folders.items():
        cfg = cfg_factory("experiment=mnist_mlp", "data=image_folder", f"data.root={root}", "model.hidden=[16]",
                          "logger=none", "data.batch_size=8", "trainer.max_epochs=4", "~callbacks.figures")
        train(cfg)
        results[bits] = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["test"]
        predictors[bits] = load(cfg.paths.output_dir)
    assert results[16]["test/acc"] == results[8]["test/acc"] >= 0.9
    files = sorted(folders[16].rglob("*.png"))
    probs = {bits: p.predict(files)["prob_dark"].to_numpy() for bits, p in predictors.items()}
    np.testing.assert_allclose(probs[16], probs[8], atol=1e-5)
    # the 8-bit model on the 16-bit files, as files and as uint16 arrays, sees the same images as on its own
    p8 = predictors[8]
    own = p8.predict(sorted(folders[8].rglob("*.png")))["prob_dark"].to_numpy()
    np.testing.assert_allclose(p8.predict(files)["prob_dark"].to_numpy(), own, atol=1e-5)
    arrays = np.stack([np.asarray(Image.open(f)) for f in files])
    assert arrays.dtype == np.uint16
    np.testing.assert_allclose(p8.predict(arrays)["prob_dark"].to_numpy(), own, atol=1e-5)
    np.testing.assert_allclose(p8.predict(arrays[:, :8, :8])["prob_dark"].to_numpy(),  # resized as floats
                               p8.predict((arrays[:, :8, :8] // 257).astype(np.uint8))["prob_dark"].to_numpy(), atol=0.05)


def other_modes(a: np.ndarray) -> dict[str, Image.Image]:
    la = Image.fromarray(np.stack([a, np.where(a > 128, 255, 0).astype(np.uint8)], 2), "LA")
    palette = Image.fromarray(a).convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    return {"LA": la, "P": palette, "CMYK": Image.fromarray(np.stack([a] * 3, 2)).convert("CMYK"),
            "1": Image.fromarray(a > 128), "F": Image.fromarray(a.astype(np.float32) / 255),
            "F255": Image.fromarray(a.astype(np.float32)), "I;16": Image.fromarray(a.astype(np.uint16) * 257)}


def test_other_modes_are_scaled_to_zero_one(tmp_path):
    a = grey_images()["bright"][0]
    for mode, img in other_modes(a).items():
        path = tmp_path / f"{mode.replace(';', '')}.{'tif' if mode in ('F', 'F255', 'CMYK') else 'png'}"
        img.save(path)
        x = read_image(path, (1, SIZE, SIZE))
        assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1, mode
        expected = torch.from_numpy(a / 255.0).float()[None]
        if mode == "1":
            expected = (expected > 128 / 255).float()
        elif mode == "LA":  # transparent pixels composited over black
            expected = expected * (expected > 128 / 255)
        elif mode == "P":
            expected = torch.where(torch.from_numpy(np.asarray(img) == np.asarray(img)[0, 0]), 0.0, expected)
        torch.testing.assert_close(x, expected, atol=1.5 / 255 if mode in ("P", "CMYK") else 1e-5, rtol=0,
                                   msg=mode)
    Image.fromarray(np.full((4, 4), 300.0, np.float32)).save(tmp_path / "hot.tif")
    with pytest.raises(DataError) as e:
        read_image(tmp_path / "hot.tif", (1, 4, 4))
    assert "hot.tif" in one_line(e) and "from 300 to 300" in one_line(e)


def test_an_empty_class_folder_is_one_line_and_leaves_no_run(folders, tmp_path, capsys, monkeypatch):
    import shutil

    from dlcourse.app import main

    root = tmp_path / "pics"
    shutil.copytree(folders[8], root)
    (root / "cat").mkdir()
    with pytest.raises(DataError) as e:
        ImageFolderDataModule(root=str(root), seed=0).setup()
    assert str(root / "cat") in one_line(e) and "has no images" in one_line(e)
    monkeypatch.setenv("DLCOURSE_ROOT", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exc:
        main(["experiment=mnist_mlp", "data=image_folder", f"data.root={root}", "logger=none"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "cat has no images" in err, err
    assert not (tmp_path / "home" / "outputs").exists()
