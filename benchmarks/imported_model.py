"""An imported MONAI DenseNet121 explained by bidsxai against captum on the same module, side by
side in one run.

The network (MONAI's ``DenseNet121``, 3D, 2 input channels, 2 classes; seeded weights moved by
three Adam steps towards labels that the input's mean decides, so no weights are downloaded) is
saved as a state dict, a TorchScript file and a ``torch.export`` program, and each is imported with
``bidsxai-import-model`` and loaded back from its bundle. On the same input (random values on the
2 mm brain crop of the template), bidsxai explains each imported model and captum explains the
original module:

- Grad-CAM of every class at the last spatial layer (captum ``LayerGradCam``, ReLU'd, not
  upsampled; the TorchScript import has no hookable layer, so it has no Grad-CAM);
- saliency of every class (captum ``Saliency``, absolute gradient, its largest channel as bidsxai
  writes it);
- integrated gradients of every class from a zero baseline (captum with Gauss-Legendre steps, as
  bidsxai uses; ``--ig-steps``).

Each figure is the best of ``--repeats`` runs in this process; the maps' largest difference is
given relative to captum's largest value.

Usage: python benchmarks/imported_model.py [--batch 2] [--ig-steps 16] [--repeats 2]
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

CHANNELS = ["T1w", "FLAIR"]
CLASSES = ["HC", "MS"]


def best_of(repeats, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def imported(folder, net, x):
    """{format: the model loaded from the bundle bidsxai-import-model wrote}."""
    from monai.networks.nets import DenseNet121  # noqa: F401 (the import needs MONAI)

    from bidsxai.import_model import main as import_model
    from bidsxai.models.bundle import BundleModels
    from bidsxai.models.card import card_template

    card = card_template() | {
        "name": "densenet121",
        "space": "MNI152NLin2009aSym",
        "resolution": 2,
        "channels": CHANNELS,
        "classes": CLASSES,
        "crop": CROP,
    }
    (folder / "card.json").write_text(json.dumps(card))
    torch.save(net.state_dict(), folder / "net.pt")
    torch.jit.script(net).save(str(folder / "net.ts"))
    torch.export.save(torch.export.export(net, (x[:1],)), str(folder / "net.pt2"))
    args = {"spatial_dims": 3, "in_channels": len(CHANNELS), "out_channels": len(CLASSES)}
    sources = {
        "monai": ["--monai", "DenseNet121", "--args", json.dumps(args), "--weights", "net.pt"],
        "torchscript": ["--torchscript", "net.ts"],
        "export": ["--export", "net.pt2"],
    }
    models = {}
    for name, source in sources.items():
        source = [str(folder / s) if s.startswith("net.") else s for s in source]
        code = import_model([str(folder / name), "--card", str(folder / "card.json"), *source])
        assert code == 0, name
        bundle = BundleModels(folder / name, torch.device("cpu"))
        models[name] = (bundle.get("external"), bundle.meta["explain_layer"])
    return models


def captum_maps(net, x, steps):
    from captum.attr import IntegratedGradients, LayerGradCam, Saliency

    layer = net.class_layers.relu
    out = {}

    def gradcam():
        return torch.stack(
            [
                LayerGradCam(net, layer).attribute(x, target=c, relu_attributions=True)[:, 0]
                for c in range(len(CLASSES))
            ],
            1,
        )

    def saliency():
        return torch.stack(
            [Saliency(net).attribute(x, target=c, abs=True).amax(1) for c in range(len(CLASSES))],
            1,
        )

    def ig():
        method = IntegratedGradients(net)
        return torch.stack(
            [
                method.attribute(
                    x, target=c, n_steps=steps, method="gausslegendre", internal_batch_size=steps
                ).sum(1)
                for c in range(len(CLASSES))
            ],
            1,
        )

    for name, fn in (("gradcam", gradcam), ("saliency", saliency), ("ig", ig)):
        out[name] = best_of(ARGS.repeats, fn)
    return out


def bidsxai_maps(model, layer, x, steps):
    from bidsxai.explain import explain_many

    out = {}
    if layer is not None:
        out["gradcam"] = best_of(
            ARGS.repeats,
            lambda: explain_many(model, x, ["gradcam"], layer=layer, upsample=False)["gradcam"],
        )
    out["saliency"] = best_of(
        ARGS.repeats, lambda: explain_many(model, x, ["saliency"])["saliency"]
    )
    out["ig"] = best_of(ARGS.repeats, lambda: explain_many(model, x, ["ig"], steps=steps)["ig"])
    return out


def main():
    from monai.networks.nets import DenseNet121

    from bidsxai.template import load_template
    from bidsxai.training.crop_box import brain_crop

    global CROP
    CROP = [list(map(int, r)) for r in brain_crop(load_template(2.0).brain_mask)]
    shape = [hi - lo for lo, hi in CROP]
    torch.manual_seed(0)
    net = DenseNet121(spatial_dims=3, in_channels=len(CHANNELS), out_channels=len(CLASSES))
    x = torch.rand(ARGS.batch, len(CHANNELS), *shape)
    # A few steps towards labels that the input's mean decides, so that each class has evidence
    # (at random weights one class's Grad-CAM is often zero everywhere after its ReLU).
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    labels = (x.mean((1, 2, 3, 4)) > x.mean()).long()
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), labels).backward()
        optimiser.step()
    net.eval()
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{time.strftime('%Y-%m-%d')}; DenseNet121 3D, input {list(x.shape)}, "
        f"IG {ARGS.ig_steps} steps, best of {ARGS.repeats}"
    )
    import captum
    import monai

    print(f"# captum {captum.__version__}, MONAI {monai.__version__}")
    theirs = captum_maps(net, x, ARGS.ig_steps)
    with tempfile.TemporaryDirectory() as tmp:
        models = imported(Path(tmp), net, x)
        print("| import | method | bidsxai s | captum s | captum / bidsxai | max diff / max |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, (model, layer) in models.items():
            ours = bidsxai_maps(model, layer, x, ARGS.ig_steps)
            for method, (seconds, maps) in ours.items():
                their_seconds, their_maps = theirs[method]
                scale = float(their_maps.detach().abs().max())
                diff = float((maps - their_maps.detach()).abs().max())
                relative = f"{diff / scale:.1e}" if scale > 0 else f"{diff:.1e} (all zero)"
                print(
                    f"| {name} | {method} | {seconds:.2f} | {their_seconds:.2f} | "
                    f"{their_seconds / seconds:.2f}x | {relative} |"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    ARGS = parser.parse_args()
    main()
