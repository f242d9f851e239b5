"""Models trained elsewhere: a small MONAI DenseNet trained here for a few steps on the 6 mm
cohort, imported by name with its state dict, as TorchScript and as a torch.export program, and
explained like a bundle that ``train`` wrote; a plain module through an entry point; and every bad
input one line with its exit code."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerGradCam
from conftest import RES, messages, run_cli
from monai.networks.nets import DenseNet
from safetensors.torch import save_file

from bidsxai.explain import explain_many
from bidsxai.import_model import main as import_model
from bidsxai.models.bundle import BundleModels
from bidsxai.models.card import ModelCard, card_template
from bidsxai.outputs import model_input_path, sidecar_path
from bidsxai.template import load_template
from bidsxai.training.dataset import load_inputs

CHANNELS = ["T1w", "FLAIR"]
ARGS = {
    "spatial_dims": 3,
    "in_channels": 2,
    "out_channels": 3,
    "init_features": 8,
    "growth_rate": 8,
    "block_config": [2, 2],
}


def _inputs(out, subjects):
    spec = {
        "space": "MNI152NLin2009aSym",
        "resolution": RES,
        "contrasts": CHANNELS,
        "crop": [[0, n] for n in load_template(RES).shape],
    }
    return torch.from_numpy(np.stack([load_inputs(out, s, None, spec) for s in subjects]))


@pytest.fixture(scope="module")
def trained(pipeline, cohort, tmp_path_factory):
    """The DenseNet trained for a few steps, saved four ways, with its card."""
    folder = tmp_path_factory.mktemp("external")
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t")
    subjects = [s.removeprefix("sub-") for s in participants.participant_id]
    classes = sorted(participants.group.unique())
    x = _inputs(pipeline["out"], subjects)
    y = torch.tensor([classes.index(g) for g in participants.group])
    torch.manual_seed(0)
    net = DenseNet(**{**ARGS, "block_config": tuple(ARGS["block_config"])})
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(4):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    net.eval()
    save_file(net.state_dict(), str(folder / "net.safetensors"))
    torch.save(net.state_dict(), folder / "net.pt")
    torch.jit.script(net).save(str(folder / "net.ts"))
    torch.export.save(torch.export.export(net, (x[:1],)), str(folder / "net.pt2"))
    card = card_template() | {
        "name": "densenet",
        "space": "MNI152NLin2009aSym",
        "resolution": RES,
        "channels": CHANNELS,
        "classes": classes,
        "trained_on": ["sub-01"],
    }
    (folder / "card.json").write_text(json.dumps(card))
    return {"folder": folder, "net": net, "x": x, "subjects": subjects, "classes": classes}


def _import(trained, bundle, *source):
    card = str(trained["folder"] / "card.json")
    return import_model([str(bundle), "--card", card, *map(str, source)])


@pytest.fixture(scope="module")
def bundles(trained, tmp_path_factory):
    folder, root = trained["folder"], tmp_path_factory.mktemp("bundles")
    sources = {
        "monai": [
            "--monai",
            "DenseNet",
            "--args",
            json.dumps(ARGS),
            "--weights",
            folder / "net.pt",
        ],
        "torchscript": ["--torchscript", folder / "net.ts"],
        "export": ["--export", folder / "net.pt2"],
    }
    for name, source in sources.items():
        assert _import(trained, root / name, *source) == 0
    return {name: BundleModels(root / name, torch.device("cpu")) for name in sources}


def test_three_ways_in_give_one_model(trained, bundles):
    x = trained["x"][:2]
    with torch.no_grad():
        expected = torch.softmax(trained["net"](x), 1)
    results = {}
    for name, models in bundles.items():
        model = models.get("external")
        with torch.no_grad():
            assert torch.allclose(torch.softmax(model(x), 1), expected, atol=1e-5), name
        results[name] = explain_many(model, x, ["saliency"], targets="all")["saliency"]
    assert torch.allclose(results["torchscript"], results["monai"], atol=1e-5)
    assert torch.allclose(results["export"], results["monai"], atol=1e-5)
    layers = {name: m.meta["explain_layer"] for name, m in bundles.items()}
    assert layers == {
        "monai": "network.class_layers.relu",
        "torchscript": None,  # a script module cannot be hooked
        "export": "network.class_layers.relu",
    }
    cams = {
        name: explain_many(
            bundles[name].get("external"), x, ["gradcam"], layer=layers[name], targets="all"
        )["gradcam"]
        for name in ("monai", "export")
    }
    assert torch.allclose(cams["export"], cams["monai"], atol=1e-5)
    assert [m.meta["lrp"] is None for m in bundles.values()] == [True, False, False]


def test_gradcam_of_an_imported_network_is_captums(trained, bundles):
    x, net = trained["x"][:2], trained["net"]
    model = bundles["monai"].get("external")
    ours = explain_many(
        model, x, ["gradcam"], layer="network.class_layers.relu", targets=1, upsample=False
    )["gradcam"][:, 0]
    theirs = LayerGradCam(net, net.class_layers.relu).attribute(x, target=1, relu_attributions=True)
    assert torch.allclose(ours, theirs[:, 0], atol=1e-6 * float(theirs.abs().max()) + 1e-9)


def test_integrated_gradients_of_an_imported_network_keep_completeness(trained, bundles):
    model = bundles["monai"].get("external")
    result = explain_many(model, trained["x"][:1], ["ig"], targets="all", steps=64)
    logits = result["logits"].abs().max()
    assert float(result["ig_completeness_error"].max()) < 0.02 * float(logits) + 1e-4


def test_a_plain_module_comes_in_through_an_entry_point(trained, tmp_path):
    from networks import gap_net

    net = gap_net(3)
    save_file(net.state_dict(), str(tmp_path / "gap.safetensors"))
    args = ["--entry-point", "networks:gap_net", "--args", '{"dims": 3}']
    assert _import(trained, tmp_path / "b", *args, "--weights", tmp_path / "gap.safetensors") == 0
    model = BundleModels(tmp_path / "b", torch.device("cpu")).get("external")
    x = trained["x"][:1]
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta["explain_layer"] == "network.3" and meta["lrp"] is None


def test_covariates_named_in_the_card_reach_the_network(
    pipeline, cohort, trained, tmp_path, capsys
):
    """A network that takes age beside the image: the participant level gives it each subject's
    age from participants.tsv."""
    from networks import covariate_net

    from bidsxai.models.covariates import binding

    net = covariate_net(3)
    save_file(net.state_dict(), str(tmp_path / "cov.safetensors"))
    card = json.loads((trained["folder"] / "card.json").read_text()) | {"covariates": ["age"]}
    (tmp_path / "card.json").write_text(json.dumps(card))
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out, ignore=shutil.ignore_patterns("group", "models"))
    source = ["--entry-point", "networks:covariate_net", "--args", '{"dims": 3}', "--weights"]
    argv = [str(out / "models" / "aged"), "--card", str(tmp_path / "card.json"), *source]
    assert import_model([*argv, str(tmp_path / "cov.safetensors")]) == 0
    model = BundleModels(out / "models" / "aged", torch.device("cpu")).get("external")
    x, age = trained["x"][:1], torch.tensor([61.0])
    with torch.no_grad(), binding(model, age):
        assert torch.equal(model(x), net(x, age[None]))
    participants = pd.read_csv(cohort / "participants.tsv", sep="\t", index_col=0)
    run = ["--skip-bids-validation", "--resolution", RES, "--methods", "saliency", "--nprocs", 1]
    assert (
        run_cli(cohort, out, "participant", "--model", "aged", *run, "--participant-label", "02")
        == 0
    )
    sidecar = next((out / "sub-02" / "anat").glob("*method-saliency_target-*_heatmap.json"))
    given = json.loads(sidecar.read_text())["PredictedProbabilities"]
    with torch.no_grad():
        expected = torch.softmax(
            net(
                trained["x"][1:2],
                torch.tensor([[float(participants.age["sub-02"])]], dtype=torch.float32),
            ),
            1,
        )
    assert np.allclose(list(given.values()), expected[0].numpy(), atol=1e-5)


def test_a_min_max_card_gets_min_max_images_in_its_range(
    pipeline, cohort, trained, tmp_path, capsys
):
    """A card that asks for min-max normalisation to [-1, 1] (MONAI's ScaleIntensity(-1, 1)): the
    participant level takes the normalisation from the bundle, writes min-max images, and the
    network reads them taken to [-1, 1]."""
    card = json.loads((trained["folder"] / "card.json").read_text())
    card |= {"normalisation": "minmax", "intensity_range": [-1, 1]}
    (tmp_path / "card.json").write_text(json.dumps(card))
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out, ignore=shutil.ignore_patterns("group", "models"))
    source = ["--monai", "DenseNet", "--args", json.dumps(ARGS), "--weights"]
    argv = [str(out / "models" / "mm"), "--card", str(tmp_path / "card.json"), *source]
    assert import_model([*argv, str(trained["folder"] / "net.pt")]) == 0
    run = ["--skip-bids-validation", "--methods", "saliency", "--nprocs", 1]
    run += ["--participant-label", "02"]
    refused = ["--model", "mm", "--normalisation", "zscore", *run]
    assert run_cli(cohort, out, "participant", *refused) == 64
    assert "--normalisation zscore contradicts --model mm" in capsys.readouterr().err
    assert run_cli(cohort, out, "participant", "--model", "mm", *run) == 0
    written = []
    for contrast in CHANNELS:
        path = model_input_path(out, "02", None, contrast, RES, "MNI152NLin2009aSym")
        assert json.loads(sidecar_path(path).read_text())["IntensityNormalisation"] == "minmax"
        written.append(np.asarray(nib.load(str(path)).dataobj, np.float32))
    written = torch.from_numpy(np.stack(written))[None]
    assert float(written.min()) == 0.0 and float(written.max()) == 1.0
    with torch.no_grad():
        expected = torch.softmax(trained["net"](-1 + 2 * written), 1)[0].numpy()
    sidecar = next((out / "sub-02" / "anat").glob("*method-saliency_target-*_heatmap.json"))
    given = json.loads(sidecar.read_text())["PredictedProbabilities"]
    assert np.allclose(list(given.values()), expected, atol=1e-5)


def _monai_bundle(trained, folder, network_def):
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    torch.save(trained["net"].state_dict(), folder / "models" / "model.pt")
    declared = {"num_channels": 2, "spatial_shape": list(trained["x"].shape[2:])}
    metadata = {
        "name": "densenet",
        "version": "0.1.0",
        "network_data_format": {
            "inputs": {"image": {"type": "image", **declared}},
            "outputs": {"pred": {"type": "probabilities", "num_channels": 3}},
        },
    }
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata))
    config = {"features": 8, "network_def": network_def}
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    return folder


def test_a_monai_bundle_folder_imports_as_its_network(trained, tmp_path, capsys):
    definition = (
        {"_target_": "monai.networks.nets.DenseNet"} | ARGS | {"init_features": "@features"}
    )
    source = _monai_bundle(trained, tmp_path / "mb", definition)
    assert _import(trained, tmp_path / "b", "--monai-bundle", source) == 0
    model = BundleModels(tmp_path / "b", torch.device("cpu")).get("external")
    x = trained["x"][:1]
    with torch.no_grad():
        assert torch.allclose(model(x), trained["net"](x), atol=1e-6)
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta["external"]["monai_bundle"] == {"name": "densenet", "version": "0.1.0"}
    assert meta["explain_layer"] == "network.class_layers.relu"
    ours = explain_many(
        model, x, ["gradcam"], layer=meta["explain_layer"], targets=1, upsample=False
    )
    net = trained["net"]
    theirs = LayerGradCam(net, net.class_layers.relu).attribute(x, target=1, relu_attributions=True)
    tolerance = 1e-6 * float(theirs.abs().max()) + 1e-9
    assert torch.allclose(ours["gradcam"][:, 0], theirs[:, 0], atol=tolerance)
    capsys.readouterr()
    code = _monai_bundle(trained, tmp_path / "code", definition | {"growth_rate": "$8 * 1"})
    assert _import(trained, tmp_path / "c", "--monai-bundle", code) == 64
    assert "is a Python expression, which bidsxai does not evaluate" in _error(capsys)
    assert not (tmp_path / "c").exists()


def test_participant_level_explains_with_an_imported_model(
    pipeline, cohort, trained, bundles, tmp_path, capsys
):
    out = tmp_path / "out"
    shutil.copytree(pipeline["out"], out, ignore=shutil.ignore_patterns("group"))
    for name in ("monai", "torchscript"):
        shutil.copytree(bundles[name].folder, out / "models" / f"dn_{name}")
    argv = ["--skip-bids-validation", "--resolution", RES, "--participant-label", "01", "02"]
    argv += ["--methods", "gradcam,saliency,lrp", "--nprocs", 1]
    assert run_cli(cohort, out, "participant", "--model", "dn_monai", *argv) == 0
    sidecar = (
        out
        / "sub-01"
        / "anat"
        / (f"sub-01_space-MNI152NLin2009aSym_res-{RES:g}_method-lrp_target-HC_heatmap.json")
    )
    record = json.loads(sidecar.read_text())
    assert record["Model"] == "dn_monai" and record["SplitAssignment"] == "in-sample"
    second = out / "sub-02" / "anat" / sidecar.name.replace("sub-01", "sub-02")
    assert json.loads(second.read_text())["SplitAssignment"] == "external"
    strip = "Grad-CAM at every convolutional layer"
    assert strip in (out / "sub-01.html").read_text()
    capsys.readouterr()
    start = {p: p.stat().st_mtime_ns for p in out.rglob("*method-lrp*_heatmap.nii.gz")}
    assert run_cli(cohort, out, "participant", "--model", "dn_torchscript", *argv) == 0
    err = messages(capsys.readouterr().err)
    assert any("gradcam need a layer" in line for line in err)
    assert any("LRP cannot run: a TorchScript module" in line for line in err)
    saliency_name = second.name.replace("method-lrp", "method-saliency").replace(".json", ".nii.gz")
    saliency = nib.load(second.with_name(saliency_name)).get_fdata()
    assert np.isfinite(saliency).all() and saliency.any()
    assert {p: p.stat().st_mtime_ns for p in start} == start  # LRP was not rewritten
    report = (out / "sub-01.html").read_text()
    assert "dn_torchscript (external model, imported with bidsxai-import-model)" in report
    assert "Model card of densenet" in report and "<td>TorchScript program</td>" in report
    assert "<th>Subjects it trained on</th><td>sub-01</td>" in report
    assert strip not in report  # the same network's strip, but from the MONAI bundle's run
    group = ["--skip-bids-validation", "--methods", "saliency", "--n-perm", 50, "--nprocs", 1]
    capsys.readouterr()
    assert run_cli(cohort, out, "group", *group) == 64  # maps of three models: which?
    assert "made by several models: cnn3d_group (" in capsys.readouterr().err
    assert run_cli(cohort, out, "group", "--model", "dn_torchscript", *group) == 0
    assert "dn_torchscript" in (out / "group.html").read_text()


def _error(capsys):
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(err) == 1, err
    return err[0]


def test_bad_imports_are_one_line_and_write_nothing(trained, tmp_path, capsys):
    folder, bundle = trained["folder"], tmp_path / "bundle"
    torch.save(trained["net"], tmp_path / "whole.pt")  # a pickled module, not a state dict
    monai = ["--monai", "DenseNet", "--args", json.dumps(ARGS), "--weights"]
    assert _import(trained, bundle, *monai, tmp_path / "whole.pt") == 66
    assert "refused, it cannot be read as weights alone" in _error(capsys)
    state = trained["net"].state_dict()
    state["extra.weight"] = state.pop("class_layers.out.weight")
    save_file(state, str(tmp_path / "renamed.safetensors"))
    assert _import(trained, bundle, *monai, tmp_path / "renamed.safetensors") == 66
    assert "'class_layers.out.weight'" in _error(capsys)
    wrong = json.loads((folder / "card.json").read_text()) | {"channels": ["T1w"]}
    (tmp_path / "card.json").write_text(json.dumps(wrong))
    code = import_model(
        [
            str(bundle),
            "--card",
            str(tmp_path / "card.json"),
            *map(str, monai),
            str(folder / "net.pt"),
        ]
    )
    assert code == 64 and "cannot read the card's input of shape [1, 33, 39, 33]" in _error(capsys)
    assert _import(trained, bundle, "--monai", "DensNet", "--weights", folder / "net.pt") == 64
    assert "near names: DenseNet" in _error(capsys)
    del wrong["output"]
    (tmp_path / "card.json").write_text(json.dumps(wrong))
    assert (
        import_model(
            [
                str(bundle),
                "--card",
                str(tmp_path / "card.json"),
                "--torchscript",
                str(folder / "net.ts"),
            ]
        )
        == 64
    )
    assert "field 'output' is missing" in _error(capsys)
    assert not bundle.exists() or not (bundle / "model.json").exists()


def test_a_changed_file_in_an_imported_bundle_is_refused(trained, bundles, tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(bundles["torchscript"].folder, folder)
    with open(folder / "net.ts", "ab") as fh:
        fh.write(b"\0")
    from bidsxai.errors import NoInputError

    with pytest.raises(NoInputError, match="sha256 does not match"):
        BundleModels(folder, torch.device("cpu")).get("external")


def test_the_card_template_is_a_valid_card_and_every_field_is_checked(tmp_path, capsys):
    assert import_model(["--init-card", str(tmp_path / "card.json")]) == 0
    card = ModelCard.from_json(json.loads((tmp_path / "card.json").read_text()))
    assert card.output == "logits" and card.channels == ["T1w"]
    minmax = card_template() | {"normalisation": "minmax", "intensity_range": [-1, 1]}
    assert ModelCard.from_json(minmax).intensity_range == [-1.0, 1.0]
    for change, message in [
        ({"normalisation": "robust"}, "preprocessing writes percentile, zscore, minmax, none"),
        ({"intensity_range": [0, 1]}, "'intensity_range' is for min-max normalisation only"),
        ({"normalisation": "minmax", "intensity_range": [1, -1]}, "with low < high"),
        ({"channels": ["T1"]}, "each is one of"),
        ({"classes": ["AD"]}, "at least two class names"),
        ({"output": "sigmoid", "classes": ["A", "B", "C"]}, "'sigmoid' is for two classes"),
        ({"space": "T1w"}, "is not a TemplateFlow template"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ]:
        with pytest.raises(Exception, match=message) as caught:
            ModelCard.from_json(card_template() | change, "card.json")
        assert getattr(caught.value, "exit_code", None) == 64


def test_a_subject_without_a_covariate_value_is_its_own_error():
    from bidsxai.errors import NoInputError
    from bidsxai.models.covariates import subject_covariates

    participants = pd.DataFrame({"age": [40.0, float("nan")]}, index=["01", "02"])
    assert subject_covariates(["age"], participants, "01", "cpu").tolist() == [40.0]
    with pytest.raises(NoInputError, match="sub-02: the model needs age from participants.tsv"):
        subject_covariates(["age"], participants, "02", "cpu")
