"""Lu et al.'s (2023) Table II for gated-attention models: every subject's attention weight per
contrast, from the model that never trained on it, and the weights averaged over correctly
classified subjects."""

import numpy as np
import torch

from bidsxai.models.ensemble import FoldEnsemble
from bidsxai.models.gated_attention import attention_module, attention_weights
from bidsxai.outputs import ENSEMBLE, ensemble_members, member_name


def attention_table(members, sessions, y, classes, contrasts, sample, part, final_name):
    """None for models without gated attention. ``sample(i)`` gives session i's (x, covariates).
    The fold models' ensemble's weights are its members' mean."""
    by_name = {m.name: m.model for m in members}
    if attention_module(members[0].model) is None:
        return None
    if final_name == ENSEMBLE:
        by_name[ENSEMBLE] = FoldEnsemble({n: by_name[n] for n in ensemble_members(by_name)})
    rows = []
    for i, session in enumerate(sessions):
        name = final_name if part[i] == "test" else member_name(1, part[i])
        x, covariates = sample(i)
        model = by_name[name]
        with torch.no_grad():
            inputs = (x[None], *covariates[None].unbind(1))
            weights = attention_weights(model, *inputs)[0].tolist()
            predicted = int(model(*inputs).argmax(1))
        rows.append(
            {
                "subject": session.subject,
                "session": session.session,
                "model": name,
                "set": "test" if part[i] == "test" else "cross-validation",
                "true": classes[y[i]],
                "predicted": classes[predicted],
                "correct": predicted == y[i],
                "weights": dict(zip(contrasts, weights)),
            }
        )
    correct = [list(r["weights"].values()) for r in rows if r["correct"]]
    return {
        "contrasts": contrasts,
        "rows": rows,
        "mean_correct": dict(zip(contrasts, np.mean(correct, 0).tolist())) if correct else None,
        "n_correct": len(correct),
    }
