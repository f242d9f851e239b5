"""The 2D slice models of Zhang et al. (2021): architectures, ImageNet weights from a local file,
slices in and maps back into the volume, and training and explaining from the CLI."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import RES, run_cli

from bidsxai.explain import explain_many
from bidsxai.models.registry import get_architecture, list_architectures
from bidsxai.models.slice2d import load_imagenet
from bidsxai.template import load_template
from bidsxai.training.slices import (
    SliceDataset,
    kept_slices,
    restack,
    subject_probabilities,
    to_slices,
)

SLICE_MODELS = ["vgg16_gap", "vgg16_fc", "vgg19_gap", "vgg19_fc", "resnet50_gap", "resnet50_fc"]


def test_every_slice_architecture_is_registered_as_2d():
    names = {a.name: a for a in list_architectures()}
    for name in SLICE_MODELS:
        assert names[name].dims == 2 and "Zhang et al. 2021" in names[name].source


@pytest.mark.parametrize("name", SLICE_MODELS)
def test_slice_models_classify_and_explain_a_batch(name):
    torch.manual_seed(0)
    arch = get_architecture(name)
    model = arch.build(in_channels=3, n_classes=3, input_shape=None, width=0.125).eval()
    x = torch.rand(2, 3, 64, 64)
    methods = ["gradcam", "cam"] if name.endswith("gap") else ["gradcam"]
    result = explain_many(model, x, methods, layer=arch.default_layer(model), targets="all")
    assert result["logits"].shape == (2, 3)
    for method in methods:
        assert result[method].shape == (2, 3, 64, 64) and torch.isfinite(result[method]).all()


def test_imagenet_weights_load_from_a_local_torchvision_layout_file(tmp_path):
    torch.manual_seed(1)
    source = get_architecture("vgg16_fc").build(
        in_channels=3, n_classes=1000, input_shape=None, width=0.125
    )
    path = tmp_path / "vgg16.pth"
    torch.save(source.state_dict(), path)
    target = get_architecture("vgg16_fc").build(
        in_channels=2, n_classes=3, input_shape=None, width=0.125
    )
    loaded = load_imagenet(target, torch.load(path, weights_only=True))
    first = source.features[0].weight
    torch.testing.assert_close(
        target.features[0].weight, first.mean(1, keepdim=True).repeat(1, 2, 1, 1)
    )
    torch.testing.assert_close(target.features[2].weight, source.features[2].weight)
    assert "classifier.7.weight" not in loaded and "classifier.1.weight" in loaded


def test_slices_go_out_and_maps_come_back_on_the_same_grid():
    template = load_template(RES)
    kept = kept_slices(template.brain_mask)
    z = np.flatnonzero(template.brain_mask.any(axis=(0, 1)))
    assert set(kept) <= set(z) and len(kept) >= 0.8 * len(z)
    volume = (
        np.random.default_rng(0)
        .random((2, 20, 20, template.brain_mask.shape[2]))
        .astype(np.float32)
    )
    slices = to_slices(volume, kept, 20)
    assert slices.shape == (len(kept), 2, 20, 20)
    back = restack(slices, kept, volume.shape[1:])
    np.testing.assert_allclose(back[..., kept].numpy(), volume[..., kept], rtol=1e-6)
    assert float(back[..., [k for k in range(volume.shape[3]) if k not in kept]].abs().sum()) == 0
    dataset = SliceDataset(volume[None].repeat(3, 0), [0, 1, 2], kept, 16)
    assert (
        len(dataset) == 3 * len(kept)
        and dataset[len(kept)][1] == 1
        and dataset[0][0].shape == (2, 16, 16)
    )
    probs = np.tile(np.array([[0.2, 0.8], [0.6, 0.4]]), (2, 1))
    np.testing.assert_allclose(subject_probabilities(probs, 2), [[0.4, 0.6], [0.4, 0.6]])


def test_vgg19_gap_trains_on_slices_and_is_explained_into_the_volume(pipeline, cohort, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out)
    common = ["--resolution", RES, "--skip-bids-validation"]
    imagenet = (
        tmp_path / "vgg19_imagenet_layout.pth"
    )  # a stand-in with torchvision's names and shapes
    torch.save(
        get_architecture("vgg19_gap")
        .build(in_channels=3, n_classes=1000, input_shape=None)
        .state_dict(),
        imagenet,
    )
    assert run_cli(cohort, out, "train", "--arch", "cnn3d", "--pretrained", imagenet, *common) == 64
    assert (
        run_cli(
            cohort,
            out,
            "train",
            "--arch",
            "vgg19_gap",
            "--slice-size",
            32,
            "--epochs",
            1,
            "--cv-folds",
            2,
            "--batch-size",
            16,
            "--pretrained",
            imagenet,
            *common,
        )
        == 0
    )
    meta = json.loads((out / "models" / "vgg19_gap_group" / "model.json").read_text())
    assert meta["pretrained"]["tensors_loaded"] == 32  # 16 convolutions; not the 1000-class output
    assert meta["input"]["slices"]["size"] == 32 and set(meta["metrics"]["slices"]) == {
        "cross_validation",
        "test",
    }
    n_slices = len(meta["input"]["slices"]["kept"])
    assert meta["metrics"]["slices"]["test"]["n"] == n_slices * meta["metrics"]["test"]["n"]
    assert (
        run_cli(
            cohort,
            out,
            "participant",
            "--participant-label",
            "04",
            "--model",
            "vgg19_gap_group",
            "--methods",
            "cam,gradcam,lrp",
            "--targets",
            "all",
            *common,
        )
        == 0
    )
    anat = out / "sub-04" / "anat"
    maps = sorted(anat.glob("*_method-cam_*_heatmap.nii.gz"))
    assert len(maps) == 3  # every class
    template = load_template(RES)
    data = np.asarray(nib.load(maps[0]).dataobj)
    assert data.shape == template.brain_mask.shape and np.abs(data).sum() > 0
    kept_z = set(np.flatnonzero(np.abs(data).sum(axis=(0, 1)) > 0))
    assert kept_z <= set(np.flatnonzero(template.brain_mask.any(axis=(0, 1))))
    slices = pd.read_csv(anat / "sub-04_slices.tsv", sep="\t")
    assert len(slices) == len(meta["input"]["slices"]["kept"])
    report = (out / "sub-04.html").read_text()
    assert "Slices (2D model)" in report
