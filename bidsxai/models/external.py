"""Networks trained elsewhere, read from the files their authors give: a MONAI network by name with
its state dict, a Python factory (``package.module:factory``) with its state dict, a TorchScript
file, or a ``torch.export`` program (``.pt2``).

State dicts are read from safetensors, or from ``.pt``/``.pth`` with
``torch.load(weights_only=True)``, which builds tensors and containers only: a checkpoint that
needs unpickling of code is refused.
A TorchScript or export file is not data: it is a program from the model's author that bidsxai
runs (its operations only, no Python), and a factory is the author's Python code; the docs say so.

Which methods work for which format: a module (MONAI, factory) and an export program, unflattened
into its submodules, take every method; a TorchScript module cannot be hooked, so the CAM family
and LRP (which hook layers) are refused for it with one line, and the gradient methods and the
perturbation masks run.

``ExternalModel`` wraps the network so that every bidsxai method sees one score per class whose
softmax is the model's probabilities: logits as they are, the log of probabilities, and for a
sigmoid output z the pair (-z/2, z/2) (its softmax is (1 - sigmoid z, sigmoid z), and each class's
score is the other's negative). A network whose card names covariates (participants.tsv columns)
is called as ``network(x, covariates)``, with an (N, covariates) tensor in the card's order.
"""

import difflib
import importlib
from pathlib import Path

import torch
from torch import nn

from bidsxai.errors import NoInputError, UsageError
from bidsxai.models.covariates import bound_covariates

FORMATS = ("monai", "entry_point", "torchscript", "export")
HOOKABLE = ("monai", "entry_point", "export")


class ExternalModel(nn.Module):
    """A network trained elsewhere, its outputs as class scores (see the module docstring)."""

    def __init__(self, network, output, one_at_a_time=False, covariates=0):
        super().__init__()
        self.network, self.output, self.one_at_a_time = network, output, one_at_a_time
        self.covariates = covariates  # how many values the network takes as its second argument

    def forward(self, x):
        extra = self._covariates(x)
        if self.one_at_a_time:  # an export program traced for one sample (a static batch)
            z = torch.cat(
                [
                    self._scores(x[i : i + 1], None if extra is None else extra[i : i + 1])
                    for i in range(len(x))
                ]
            )
        else:
            z = self._scores(x, extra)
        return self._as_class_scores(z)

    def _covariates(self, x):
        """(N, covariates) for a network that takes them: the subject's values that the
        participant level binds (``models.covariates``), zeros while none are bound (the shape
        checks of the import and of the first session)."""
        if not self.covariates:
            return None
        bound = bound_covariates(self)
        values = torch.zeros(self.covariates) if bound is None else bound
        return values.to(x).reshape(1, -1).expand(len(x), -1)

    def _scores(self, x, covariates):
        z = self.network(x) if covariates is None else self.network(x, covariates)
        return z[0] if isinstance(z, (tuple, list)) else z

    def _as_class_scores(self, z):
        z = z.reshape(z.shape[0], -1)
        if self.output == "probabilities":
            return torch.log(z.clamp_min(1e-12))
        if self.output == "sigmoid":
            return torch.cat([-z / 2, z / 2], 1)
        return z


def read_state_dict(path):
    """{name: tensor} from safetensors, or a ``.pt``/``.pth`` read without unpickling code (a
    ``{"state_dict": ...}`` or ``{"model": ...}`` checkpoint gives its inner dict)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise NoInputError(f"{path.name}: not a readable safetensors file ({exc})") from None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise NoInputError(f"{path.name}: cannot read it ({exc.strerror})") from None
    except Exception as exc:  # pickle.UnpicklingError and friends: the file needs code to load
        reason = str(exc).splitlines()[0][:200]
        raise NoInputError(
            f"{path.name}: refused, it cannot be read as weights alone ({reason}); save "
            "model.state_dict() with torch.save or as safetensors"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
    if not isinstance(content, dict) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise NoInputError(f"{path.name}: not a state dict (a mapping of names to tensors)")
    return content


def monai_network(name, args):
    """``monai.networks.nets.<name>(**args)``; an unknown name lists the near ones."""
    try:
        from monai.networks import nets
    except ImportError:
        raise UsageError("--monai needs MONAI: pip install 'bidsxai[monai]'") from None
    names = sorted(n for n in dir(nets) if n[:1].isupper() or n.islower() and not n.startswith("_"))
    factory = getattr(nets, name, None)
    if not isinstance(name, str) or not callable(factory) or name.startswith("_"):
        near = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
        hint = f"; near names: {', '.join(near)}" if near else ""
        raise UsageError(f"--monai {name}: not a network of monai.networks.nets{hint}")
    try:
        return factory(**args)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--monai {name} with --args {args}: {exc}") from None


def entry_point_network(spec, args):
    """``package.module:factory`` called with ``args``: the author's Python code, run here."""
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--entry-point {spec}: give it as package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--entry-point {spec}: cannot import it ({exc})") from None
    network = factory(**args)
    if not isinstance(network, nn.Module):
        raise UsageError(f"--entry-point {spec}: returned a {type(network).__name__}, not a module")
    return network


def load_weights(network, state, source):
    """The state dict into the network; a mismatch names its first key."""
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        first = (missing or unexpected)[0]
        which = "the network has no weights named" if not missing else "the weights lack"
        raise NoInputError(
            f"{source}: does not fit the network: {which} {first!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise NoInputError(
            f"{source}: does not fit the network: {k!r} has shape {tuple(state[k].shape)}, the "
            f"network's is {tuple(own[k].shape)}"
        )
    network.load_state_dict(state)
    return network


def load_network(record, folder):
    """The network a bundle's ``external`` record describes, from the files in ``folder``."""
    kind = record["format"]
    if kind not in FORMATS:
        raise NoInputError(f"{folder}: unknown external format {kind!r}")
    path = Path(folder) / record["file"]
    if kind == "torchscript":
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise NoInputError(f"{path.name}: not a TorchScript file ({exc})") from None
    if kind == "export":
        try:
            return torch.export.unflatten(torch.export.load(str(path)))
        except (RuntimeError, ValueError) as exc:
            raise NoInputError(f"{path.name}: not a torch.export program ({exc})") from None
    if kind == "monai":
        network = monai_network(record["network"], record.get("args", {}))
    else:
        network = entry_point_network(record["network"], record.get("args", {}))
    return load_weights(network, read_state_dict(path), path.name)


def last_spatial_layer(model, x):
    """The dotted name of the last module (in execution order) whose output keeps the input's
    spatial dimensions with more than one voxel: the CAM family's default layer; None when there
    is none (a TorchScript module, whose layers cannot be hooked)."""
    seen, handles = [], []
    spatial = x.dim() - 2
    for name, module in model.named_modules():
        if not name or isinstance(module, torch.jit.ScriptModule):
            continue

        def hook(module, inputs, output, name=name):
            if (
                isinstance(output, torch.Tensor)
                and output.dim() == spatial + 2
                and max(output.shape[2:]) > 1
            ):
                seen.append(name)

        try:
            handles.append(module.register_forward_hook(hook))
        except RuntimeError:  # script modules refuse hooks
            continue
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen[-1] if seen else None


LRP_LEAVES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.Dropout,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Flatten,
    nn.Identity,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)


def lrp_unsupported(model):
    """Why LRP cannot run on ``model`` (the first layer it has no rule for, by name and type), or
    None. Its rules hook torch's layer types, which a TorchScript module hides and an export
    program replaces by graphs."""
    for name, module in model.named_modules():
        if isinstance(module, torch.jit.ScriptModule):
            return "a TorchScript module (its layers cannot be hooked)"
        if type(module).__name__ == "InterpreterModule":
            return "a torch.export program (its layers are graphs, not torch layer types)"
        if name and not list(module.children()) and not isinstance(module, LRP_LEAVES):
            return f"layer {name} ({type(module).__name__}) has no LRP rule"
    return None
