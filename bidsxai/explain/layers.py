"""Find a named layer and capture its output for one forward pass, leaving no hook behind."""

from contextlib import contextmanager

import torch


def get_layer(model, name):
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if "Conv" in type(m).__name__]
        raise ValueError(
            f"layer {name!r} not in the model; convolutional layers: {', '.join(convs)}"
        )
    return modules[name]


@contextmanager
def capture_output(module):
    """Yield a dict whose 'output' is the module's output tensor after the forward pass."""
    store = {}

    def hook(_module, _inputs, output):
        store["output"] = output

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def eval_mode(model):
    """Evaluate in eval mode (BN statistics frozen, dropout off) and restore every flag after."""
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags.items():
            module.train(flag)


@contextmanager
def graph_from(module):
    """Yield a dict whose 'output' is the module's output, as a leaf that requires grad. Run the
    forward pass under torch.no_grad(): nothing before the module is recorded (no activations kept
    for a backward pass that the CAM family never takes), and the graph starts at the module's
    output, which is all that d score / d activation needs."""
    store = {}

    def hook(_module, _inputs, output):
        torch.set_grad_enabled(True)  # the caller's no_grad context restores the mode on exit
        store["output"] = output.detach().requires_grad_()
        return store["output"].clone()  # later in-place layers (ReLU(inplace=True)) change the copy

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()
