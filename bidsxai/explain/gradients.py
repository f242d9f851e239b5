"""Input-gradient methods: saliency (Simonyan et al. 2014), SmoothGrad (Smilkov et al. 2017) and
integrated gradients (Sundararajan et al. 2017). Maps are (N, T, *spatial); channels are reduced
as each method defines (saliency: max |gradient| over channels; IG: sum over channels, so that
completeness holds for the map)."""

import numpy as np
import torch
import torch.nn.functional as F

QUADRATURES = (
    "gausslegendre",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
)


def _input_gradients(model, x, targets):
    """(T, N, C, *spatial) gradients of each target score w.r.t. the input, one forward pass."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    grads = []
    for t in range(targets.shape[1]):
        score = logits.gather(1, targets[:, t : t + 1]).sum()
        grads.append(torch.autograd.grad(score, x, retain_graph=t < targets.shape[1] - 1)[0])
    return torch.stack(grads), logits.detach()


def _reduce(gradients, mode):
    if mode == "abs":
        return gradients.abs().amax(dim=2)
    if mode == "signed":
        return gradients.sum(dim=2)
    raise ValueError(f"saliency mode must be 'abs' or 'signed', got {mode!r}")


def saliency(model, x, targets, mode="abs"):
    grads, logits = _input_gradients(model, x, targets)
    return _reduce(grads, mode).transpose(0, 1), {"logits": logits}


def smoothgrad(model, x, targets, mode="abs", samples=25, noise=0.15, seed=0):
    """Mean saliency over noisy copies; noise SD = ``noise`` x (max - min) of each sample. Each
    sample draws its noise from its own generator seeded with ``seed``, so its map is the one it
    gets alone, whatever else is in the batch."""
    generators = [torch.Generator(device=x.device).manual_seed(seed) for _ in range(len(x))]
    spread = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).reshape(-1, *([1] * (x.dim() - 1)))
    total = 0
    for _ in range(samples):
        draws = [
            torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
            for g in generators
        ]
        noisy = x + noise * spread * torch.stack(draws)
        grads, _ = _input_gradients(model, noisy, targets)
        total = total + _reduce(grads, mode)
    with torch.no_grad():
        logits = model(x)
    return (total / samples).transpose(0, 1), {"logits": logits}


def quadrature_rule(steps, method="gausslegendre"):
    """Points in [0, 1] and weights summing to 1 for the path integral."""
    if method == "gausslegendre":
        points, weights = np.polynomial.legendre.leggauss(steps)
        return (points + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        points = np.linspace(0, 1, steps)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
        return points, weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method not in offsets:
        raise ValueError(f"quadrature must be one of {QUADRATURES}, got {method!r}")
    return (np.arange(steps) + offsets[method]) / steps, np.full(steps, 1 / steps)


def make_baseline(x, baseline="zero", blur_sigma=4.0):
    """'zero', 'blur' (Gaussian, sigma in voxels) or a tensor broadcastable to x (e.g. a
    template)."""
    if isinstance(baseline, torch.Tensor):
        return baseline.to(x).expand_as(x)
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "blur":
        radius = int(3 * blur_sigma)
        kernel = torch.exp(
            -(torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) ** 2)
            / (2 * blur_sigma**2)
        )
        kernel = kernel / kernel.sum()
        out, dims = x, x.dim() - 2
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
        channels = x.shape[1]
        for axis in range(dims):
            shape = [1] * dims
            shape[axis] = kernel.numel()
            weight = kernel.reshape(1, 1, *shape).repeat(channels, 1, *([1] * dims))
            padding = [0] * dims
            padding[axis] = radius
            out = conv(out, weight, padding=padding, groups=channels)
        return out
    raise ValueError(f"baseline must be 'zero', 'blur' or a tensor, got {baseline!r}")


def integrated_gradients(
    model,
    x,
    targets,
    steps=64,
    baseline="zero",
    quadrature="gausslegendre",
    internal_batch_size=16,
    blur_sigma=4.0,
):
    """IG maps and the completeness error |sum(attribution) - (S(x) - S(baseline))| per sample
    and target, which shrinks as ``steps`` grows."""
    base = make_baseline(x, baseline, blur_sigma).detach()
    points, weights = quadrature_rule(steps, quadrature)
    n_targets = targets.shape[1]
    maps, errors = [], []
    with torch.no_grad():
        logits = model(x)
        base_logits = model(base)
    for n in range(x.shape[0]):
        delta = (x[n] - base[n]).unsqueeze(0)
        total = torch.zeros((n_targets,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        for start in range(0, steps, internal_batch_size):
            alpha = torch.as_tensor(
                points[start : start + internal_batch_size], dtype=x.dtype, device=x.device
            )
            w = torch.as_tensor(
                weights[start : start + internal_batch_size], dtype=x.dtype, device=x.device
            )
            path = base[n].unsqueeze(0) + alpha.reshape(-1, *([1] * (x.dim() - 1))) * delta
            path.requires_grad_(True)
            out = model(path)
            for t in range(n_targets):
                score = (out[:, targets[n, t]] * w).sum()
                grad = torch.autograd.grad(score, path, retain_graph=t < n_targets - 1)[0]
                total[t] += grad.sum(0)
        attribution = total * delta  # (T, C, *spatial)
        maps.append(attribution.sum(1))
        expected = logits[n, targets[n]] - base_logits[n, targets[n]]
        errors.append((attribution.flatten(1).sum(1) - expected).abs())
    return torch.stack(maps), {"logits": logits, "ig_completeness_error": torch.stack(errors)}
