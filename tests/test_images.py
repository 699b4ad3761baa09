"""Images: the MNIST reader on tiny .gz files written here, every image experiment for one fast
epoch, Grad-CAM, ResNet weight loading, image folders and the missing-data error.
Nothing here reads ../shared."""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import run_here, write_fake_mnist, write_pngs
from dlcourse.config.validate import check_node
from dlcourse.data.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx
from dlcourse.errors import ConfigError, DataError
from dlcourse.gradcam import gradcam
from dlcourse.models.cnn import CNN
from dlcourse.models.lenet5 import LeNet5
from dlcourse.models.resnet import ResNet
from dlcourse.train import train

N_TRAIN, N_TEST = 64, 32


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """torchvision's layout with only the four .gz files, for MNIST and Fashion-MNIST; read-only."""
    root = tmp_path_factory.mktemp("datasets")
    write_fake_mnist(root, N_TRAIN, N_TEST)
    for raw in root.glob("*/raw"):
        for p in [raw, raw.parent]:
            p.chmod(0o555)
    root.chmod(0o555)
    yield root
    for p in [root, *root.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)


FAST_IMG = ["logger=none", "data.batch_size=16", "data.n_val=16"]


# -- the reader and the data module --------------------------------------------------------
def test_reader_reads_gz_idx_files_without_writing(data_root):
    before = sorted(str(p) for p in data_root.rglob("*"))
    x = read_idx(data_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    assert x.shape == (N_TRAIN, 28, 28) and x.dtype == torch.uint8
    dm = MNISTDataModule(root=str(data_root), n_val=16, seed=0)
    dm.setup()
    x_train, y_train = dm.splits["train"]
    assert x_train.shape == (N_TRAIN - 16, 1, 28, 28) and x_train.dtype == torch.float32
    assert len(dm.splits["val"][0]) == 16 and len(dm.splits["test"][0]) == N_TEST
    assert abs(float(x_train.mean())) < 1e-4 and abs(float(x_train.std()) - 1) < 1e-2  # train-split stats
    assert dm.input_shape == (1, 28, 28) and dm.num_outputs == 10
    assert sorted(str(p) for p in data_root.rglob("*")) == before
    state = dm.state_dict()
    assert isinstance(state["mean"][0], float) and state["class_names"][0] == "0"
    assert FashionMNISTDataModule(root=str(data_root), n_val=16).class_names[0] == "T-shirt/top"


def test_bad_files_and_split_sizes(tmp_path, data_root):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 28, 28) + b"\x00" * 100)
    with pytest.raises(DataError, match="truncated"):
        read_idx(bad)
    with pytest.raises(DataError, match="n_val"):
        MNISTDataModule(root=str(data_root), n_val=N_TRAIN).setup()
    with pytest.raises(DataError, match="data.download=true"):
        MNISTDataModule(root=str(tmp_path / "none")).setup()


def test_reader_rejects_extra_bytes_and_cut_headers_and_reads_plain_files(tmp_path):
    long = tmp_path / "long.gz"
    with gzip.open(long, "wb") as f:
        f.write(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([1, 2, 3, 4]))
    with pytest.raises(DataError, match="truncated or corrupt: header says \\[3\\], file has more"):
        read_idx(long)
    cut = tmp_path / "cut"
    cut.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 5))
    with pytest.raises(DataError, match="header is cut short"):
        read_idx(cut)
    plain = tmp_path / "plain-idx1-ubyte"
    plain.write_bytes(b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + bytes(range(6)))
    x = read_idx(plain)
    assert x.dtype == torch.uint8 and x.tolist() == [[0, 1, 2], [3, 4, 5]]
    x[0, 0] = 9  # a tensor of its own, writable
    huge = tmp_path / "huge-idx3-ubyte"  # a header that asks for 40 PB: one line, nothing allocated for long
    huge.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 4_000_000, 100_000, 100_000) + bytes(10))
    with pytest.raises(DataError, match="huge-idx3-ubyte"):
        read_idx(huge)
    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello world")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(text)


def test_statistics_by_chunks_and_in_place_normalisation_equal_the_whole_split_at_once():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(50, 3, 5, 4, generator=gen) * torch.tensor([1.0, 0.5, 0.1]).view(1, 3, 1, 1)
    dm = MNISTDataModule()
    dm.fit_normalization(x, chunk=7)  # 8 chunks, the last one short
    whole_mean, whole_std = x.double().mean((0, 2, 3)), x.double().std((0, 2, 3))
    assert dm.mean == pytest.approx(whole_mean.tolist(), rel=1e-12)
    assert dm.std == pytest.approx(whole_std.tolist(), rel=1e-12)
    expected = dm.apply_normalization(x)
    own = x.clone()
    assert dm.normalize_(own) is own and torch.equal(own, expected)  # the same values, no copy
    off = MNISTDataModule(normalize=False)
    off.fit_normalization(x)
    assert off.mean == [0.0] * 3 and off.std == [1.0] * 3


def test_input_figure_denormalises_only_the_images_it_shows(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path, 300, 32)  # ~28 training images per class, 8 of each shown
    dm = MNISTDataModule(root=str(tmp_path), n_val=16, seed=0)
    dm.setup()
    shown = []
    real = dm.denormalize
    monkeypatch.setattr(dm, "denormalize", lambda x: shown.append(len(x)) or real(x))
    figs = dm.input_figures()
    y = dm.splits["train"][1]
    expected = sum(min(8, int((y == c).sum())) for c in range(10))
    assert shown == [expected] and expected < len(y)
    assert list(figs) == ["input_samples"]


def test_augmentation_runs_on_the_batch_and_keeps_the_background(data_root):
    dm = MNISTDataModule(root=str(data_root), n_val=16, augment=True, max_shift=3, seed=0)
    dm.setup()
    x, y = dm.splits["train"]
    (xa, ya) = dm.train_transform((x[:8], y[:8]))
    assert xa.shape == x[:8].shape and torch.equal(ya, y[:8]) and not torch.allclose(xa, x[:8])
    blank = dm.apply_normalization(torch.zeros(8, 1, 28, 28))  # all background: stays all background
    (blank_aug,) = dm.train_transform((blank,))
    assert torch.allclose(blank_aug, blank, atol=1e-5)


# -- every image experiment, one fast epoch ----------------------------------------------------
EXPERIMENTS = {
    "mnist_mlp": [],
    "mnist_lenet5": [],
    "mnist_lenet5_modern": [],
    "mnist_cnn": [],
    "mnist_best": ["model.channels=[8,pool,8,pool]", "model.hidden=[16]"],
    "fashion_mnist_cnn": ["model.channels=[8,pool]"],
    "mnist_resnet": ["model.image_size=32"],
}


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_image_experiment_runs_one_epoch(cfg_factory, data_root, name):
    cfg = cfg_factory(f"experiment={name}", f"data.root={data_root}", *FAST_IMG, "~callbacks.figures",
                      *EXPERIMENTS[name])
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0 and len(metrics["class_names"]) == 10


def test_cnn_run_writes_the_image_figures(cfg_factory, data_root):
    cfg = cfg_factory("experiment=mnist_cnn", f"data.root={data_root}", *FAST_IMG, "model.channels=[8,pool]")
    train(cfg)
    figures = Path(cfg.paths.output_dir) / "figures"
    for name in ("input_samples", "confusion_matrix", "per_class_precision_recall", "misclassified",
                 "gradcam", "first_layer_filters"):
        assert (figures / f"{name}.png").is_file(), name


# -- models --------------------------------------------------------------------------------------
def test_lenet5_parameter_count_and_shapes():
    classic = LeNet5((1, 28, 28), 10, variant="classic")
    assert sum(p.numel() for p in classic.parameters()) == 61_706
    assert classic(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert LeNet5((1, 32, 32), 10, variant="modern")(torch.zeros(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="model.variant='retro' is invalid: allowed: classic, modern"):
        check_node("model", OmegaConf.create({"_target_": "dlcourse.models.lenet5.LeNet5", "variant": "retro"}))


def test_cnn_default_is_the_lectures_network():
    m = CNN((1, 28, 28), 10)
    convs = [x for x in m.features if isinstance(x, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert m.classifier[1].in_features == 12 * 12 * 64 and m.classifier[1].out_features == 64
    with pytest.raises(ConfigError, match="channels"):
        CNN((1, 28, 28), 10, channels=[32, "pool", "pool", "pool", "pool", "pool"])


@pytest.mark.parametrize("make", [lambda: CNN((1, 28, 28), 10, channels=[8, 8, "pool"]),
                                  lambda: LeNet5((1, 28, 28), 10),
                                  lambda: ResNet((1, 28, 28), 10, image_size=32)])
def test_gradcam_has_the_image_size_and_is_not_constant(make):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():  # as after the test: Grad-CAM must still work
        cams, classes = gradcam(model, x)
    assert cams.shape == (3, 28, 28) and classes.shape == (3,)
    assert float(cams.min()) >= 0 and float(cams.max()) <= 1
    assert all(float(c.std()) > 0 for c in cams)


@pytest.fixture
def planted_weights(tmp_path) -> Path:
    import torchvision

    torch.manual_seed(1)
    net = torchvision.models.resnet18(weights=None)  # stands in for ImageNet weights (1000-class head)
    path = tmp_path / "resnet18-planted.pth"
    torch.save(net.state_dict(), path)
    return path


def test_resnet_loads_a_local_weights_file(planted_weights):
    saved = torch.load(planted_weights, weights_only=True)
    model = ResNet((1, 28, 28), 10, weights_path=str(planted_weights), image_size=32)
    assert torch.equal(model.net.conv1.weight, saved["conv1.weight"])
    assert torch.equal(model.net.layer4[1].bn2.running_var, saved["layer4.1.bn2.running_var"])
    assert model.net.fc.out_features == 10  # a new head
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    scratch = ResNet((1, 28, 28), 10)
    assert not torch.equal(scratch.net.conv1.weight, saved["conv1.weight"])


def test_resnet_frozen_backbone_trains_only_the_head(cfg_factory, data_root, planted_weights):
    saved = torch.load(planted_weights, weights_only=True)
    cfg = cfg_factory("experiment=mnist_resnet_frozen", f"data.root={data_root}", *FAST_IMG, "~callbacks.figures",
                      f"model.weights_path={planted_weights}", "model.image_size=32")
    metrics = train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(ckpt["model.net.conv1.weight"], saved["conv1.weight"])
    assert torch.equal(ckpt["model.net.bn1.running_mean"], saved["bn1.running_mean"])  # BN frozen too
    assert metrics["trainable_params"] == 512 * 10 + 10


def test_resnet_finetune_uses_the_lower_backbone_lr(planted_weights):
    model = ResNet((1, 28, 28), 10, weights_path=str(planted_weights), backbone_lr=1e-4)
    opt = torch.optim.AdamW(model.param_groups(), lr=1e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-4]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_resnet_finetune_experiment_runs_one_epoch(cfg_factory, data_root, planted_weights):
    cfg = cfg_factory("experiment=mnist_resnet_finetune", f"data.root={data_root}", *FAST_IMG, "~callbacks.figures",
                      f"model.weights_path={planted_weights}", "model.image_size=32", "trainer.max_epochs=1")
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    assert metrics["trainable_params"] == metrics["params"]  # the whole network trains
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    saved = torch.load(planted_weights, weights_only=True)
    assert not torch.equal(ckpt["model.net.conv1.weight"], saved["conv1.weight"])  # the backbone moved


def test_resnet_imagenet_offline_says_how_to_provide_the_file(monkeypatch, tmp_path):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(type(torchvision.models.ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(ConfigError) as err:
        ResNet((1, 28, 28), 10, weights="imagenet")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and "weights_path" in msg and str(tmp_path / "hub") in msg
    assert "\n" not in msg


# -- your own image folders ------------------------------------------------------------------------
def test_image_folder_trains(cfg_factory, tmp_path):
    write_pngs(tmp_path / "pics")
    cfg = cfg_factory("experiment=mnist_cnn", "data=image_folder", f"data.root={tmp_path / 'pics'}",
                      "data.image_size=16", "data.augment=true", "model.channels=[8,pool]", "logger=none",
                      "data.batch_size=4", "trainer.max_epochs=2")
    metrics = train(cfg)
    assert metrics["class_names"] == ["blue", "red"] and metrics["epochs"] == 2
    assert (Path(cfg.paths.output_dir) / "figures" / "gradcam.png").is_file()


def test_image_folder_with_separate_split_folders(tmp_path):
    from dlcourse.data.image_folder import ImageFolderDataModule

    write_pngs(tmp_path / "pics" / "train", per_class=6)
    write_pngs(tmp_path / "pics" / "val", per_class=2)
    dm = ImageFolderDataModule(root=str(tmp_path / "pics"), image_size=12, channels=1, seed=0)
    dm.setup()
    assert dm.input_shape == (1, 12, 12) and dm.class_names == ["blue", "red"]
    assert len(dm.splits["val"][1]) == 4 and len(dm.splits["train"][1]) + len(dm.splits["test"][1]) == 12


# -- errors ------------------------------------------------------------------------------------------
def test_missing_mnist_is_one_line_and_exit_2(tmp_path, capfd):
    result = run_here(["experiment=mnist_mlp", f"data.root={tmp_path / 'nowhere'}", "trainer.accelerator=cpu",
                       "logger=none"], tmp_path, capfd)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: MNIST not found"), result.stderr[-2000:]
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in lines[0] and "data.root=" in lines[0]
    assert "data.download=true" in lines[0]


def test_metrics_json_of_an_image_run(cfg_factory, data_root):
    cfg = cfg_factory("experiment=mnist_mlp", f"data.root={data_root}", *FAST_IMG, "~callbacks.figures")
    train(cfg)
    saved = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert saved["params"] == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert os.path.isfile(saved["best_checkpoint"])
