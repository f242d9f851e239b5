"""Meaningful-perturbation masks in 3D (Fong & Vedaldi 2017 as adapted by Thibeau-Sutre et al. 2020,
eqs. 1-2).

    X'_m = m X + (1 - m) mu                                                        (eq. 1)
    m*   = argmin  l1 ||1 - m||_b1^b1 + l2 sum_u ||grad m(u)||_b2^b2 + f(X'_m)       (eq. 2)

f is the network's softmax probability of the target class. The mask starts at 1, is optimised with
Adam (lr 0.1) and kept in [0, 1]; training stops when the loss has not improved by a relative
``tolerance`` for ``patience`` epochs, keeping the best mask; values above 0.95 are then set to 1.
Defaults: l1 = 1e-4, l2 = 1e-3, b1 = 0.1, b2 = 1 (the values the paper fixed while choosing b1
and b2) with its session-level stopping (patience 200, 5000 epochs, tolerance 0.01); mu = 0 suits
intensity-normalised MRI (the paper used mu = 1 on grey-matter probability maps). Seen here: with
b1 = 0.1 the sparsity term's gradient grows without bound as m approaches 1, so a larger l1 (the
paper multiplied l1 and l2 by 100 for session masks) or l2 = 0.01 kept the mask at 1 on a model
reading a known box, while these defaults recovered the box exactly; a saturated softmax
(probability 0.9999) also leaves the mask at 1, because the probability's gradient vanishes. The map
returned is 1 - m: high where masking changes the decision. ``group=True`` fits one mask for the
whole batch (the paper's group mask).
"""

import torch


def _power(values, beta):
    """|v|^beta with a zero (sub)gradient at v = 0, where beta < 1 makes the derivative infinite."""
    magnitude = values.abs()
    nonzero = magnitude > 0
    safe = torch.where(nonzero, magnitude, torch.ones_like(magnitude))
    return torch.where(nonzero, safe.pow(beta), torch.zeros_like(magnitude))


def mask_loss(mask, model, x, targets, lambda1, lambda2, beta1, beta2, mu):
    """Eq. 2 for masks (M, *spatial) broadcast over x (N, C, *spatial); one loss per mask."""
    spatial = tuple(range(1, mask.dim()))
    sparsity = _power(1 - mask, beta1).sum(dim=spatial)
    smoothness = sum(_power(torch.diff(mask, dim=axis), beta2).sum(dim=spatial) for axis in spatial)
    perturbed = mask.unsqueeze(1) * x + (1 - mask.unsqueeze(1)) * mu
    probability = torch.softmax(model(perturbed), 1).gather(1, targets[:, None])[:, 0]
    if mask.shape[0] == 1 and x.shape[0] > 1:
        probability = probability.mean(0, keepdim=True)
    return lambda1 * sparsity + lambda2 * smoothness + probability, probability


def fit_mask(
    model,
    x,
    targets,
    *,
    lambda1=1e-4,
    lambda2=1e-3,
    beta1=0.1,
    beta2=1.0,
    mu=0.0,
    lr=0.1,
    max_epochs=5000,
    patience=200,
    tolerance=0.01,
    threshold=0.95,
):
    """One mask for the samples ``x`` with class ``targets`` (N,): (mask, probability after)."""
    for p in model.parameters():
        p.requires_grad_(False)
    mask = torch.ones((1,) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.Adam([mask], lr=lr)
    best_loss, best_mask, waited = float("inf"), mask.detach().clone(), 0
    for _ in range(max_epochs):
        optimiser.zero_grad()
        loss, _ = mask_loss(mask, model, x, targets, lambda1, lambda2, beta1, beta2, mu)
        loss.sum().backward()
        optimiser.step()
        with torch.no_grad():
            mask.clamp_(0, 1)
            current, _ = mask_loss(mask, model, x, targets, lambda1, lambda2, beta1, beta2, mu)
        current = float(current.sum())
        if current < best_loss * (1 - tolerance) or best_loss == float("inf"):
            waited = 0
        else:
            waited += 1
        if current < best_loss:
            best_loss, best_mask = current, mask.detach().clone()
        if waited >= patience:
            break
    best_mask = torch.where(best_mask > threshold, torch.ones_like(best_mask), best_mask)
    with torch.no_grad():
        _, after = mask_loss(best_mask, model, x, targets, lambda1, lambda2, beta1, beta2, mu)
    return best_mask[0], after


def perturbation(model, x, targets, group=False, **params):
    """Maps 1 - m (N, T, *spatial) and the target probabilities before and after masking."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        with torch.no_grad():
            logits = model(x)
        before = torch.softmax(logits, 1).gather(1, targets)
        maps = torch.zeros(
            (x.shape[0], targets.shape[1]) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device
        )
        after = torch.zeros_like(before)
        for t in range(targets.shape[1]):
            if group:
                mask, prob = fit_mask(model, x, targets[:, t], **params)
                maps[:, t] = 1 - mask
                after[:, t] = prob
            else:
                for n in range(x.shape[0]):
                    mask, prob = fit_mask(model, x[n : n + 1], targets[n : n + 1, t], **params)
                    maps[n, t] = 1 - mask
                    after[n, t] = prob[0]
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return maps, {
        "logits": logits,
        "perturbation_probability_before": before,
        "perturbation_probability_after": after,
    }
