"""Monte Carlo dropout (Gal & Ghahramani 2016; the Bayesian CNNs of Avci 2021): dropout that can
stay on at inference, so repeated passes sample the predictive distribution.

``MCDropout`` is ordinary dropout in training and off in eval mode, so explanations stay
deterministic; ``mc_predict`` switches it on only for its own passes and reports the mean and the
spread of the class probabilities.
"""

from contextlib import contextmanager

import torch
from torch import nn


class MCDropout(nn.Dropout):
    """Dropout that ``sampling(model)`` keeps active in eval mode."""

    sampling_active = False

    def forward(self, x):
        if self.training or self.sampling_active:
            return nn.functional.dropout(x, self.p, training=True)
        return x


def has_mc_dropout(model):
    return any(isinstance(m, MCDropout) for m in model.modules())


@contextmanager
def sampling(model):
    """Every MCDropout of ``model`` drops units, the rest of the model stays in eval mode."""
    layers = [m for m in model.modules() if isinstance(m, MCDropout)]
    for m in layers:
        m.sampling_active = True
    try:
        yield
    finally:
        for m in layers:
            m.sampling_active = False


@torch.no_grad()
def mc_predict(model, x, samples, seed=0, chunk=16):
    """The softmax of model(x) in ``samples`` stochastic passes, (samples, N, classes); x is a
    batch, passed in chunks of at most ``chunk`` rows. The global torch generator is left as
    found."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model.eval()
    try:
        with sampling(model):
            draws = torch.stack(
                [
                    torch.cat(
                        [torch.softmax(model(x[i : i + chunk]), 1) for i in range(0, len(x), chunk)]
                    )
                    for _ in range(samples)
                ]
            )
    finally:
        torch.random.set_rng_state(generator_state)
    return draws
