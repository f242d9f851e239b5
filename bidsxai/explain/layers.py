"""Find a named layer and capture its output for one forward pass, leaving no hook behind."""

from contextlib import contextmanager


def get_layer(model, name):
    modules = dict(model.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if "Conv" in type(m).__name__]
        raise ValueError(f"layer {name!r} not in the model; convolutional layers: {', '.join(convs)}")
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
