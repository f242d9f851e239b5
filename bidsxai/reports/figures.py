"""Report charts (and the layer strip) as PNG data URIs, so each HTML report is one
self-contained file; brain cuts are in ``brain_figures``."""

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bidsxai.reports.brain_figures import fading_inferno  # noqa: E402


def data_uri(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", facecolor=fig.get_facecolor())
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def layer_strip(background, maps, mask, names):
    """One axial slice (through the brain's centre) per layer of a 4D map stack."""
    z = int(np.round(np.nonzero(mask)[2].mean()))
    fig, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.9), facecolor="black")
    for ax, k, name in zip(np.atleast_1d(axes), range(len(names)), names):
        ax.axis("off")
        layer = maps[:, :, z, k]
        peak = float(layer[mask[:, :, z]].max()) if layer[mask[:, :, z]].max() > 0 else 1.0
        ax.imshow(background[:, :, z].T, origin="lower", cmap="gray")
        shown = np.ma.masked_where(~mask[:, :, z] | (layer <= 0), layer / peak)
        ax.imshow(shown.T, origin="lower", cmap=fading_inferno(), vmin=0, vmax=1)
        ax.set_title(wrap_dotted(name), color="white", fontsize=8)
    return data_uri(fig)


def wrap_dotted(name, width=24):
    """A dotted module name broken after dots into lines of about ``width`` characters, so that
    the long names of imported networks (``network.features.denseblock1.denselayer1.layers.conv2``)
    do not run into their neighbours' titles."""
    lines, line = [], ""
    for part in name.split("."):
        piece = f"{line}.{part}" if line else part
        if line and len(piece) > width:
            lines.append(line + ".")
            piece = part
        line = piece
    return "\n".join([*lines, line])


# Okabe and Ito's colours, told apart with the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def learning_curves(histories, chosen):
    """Training (dashed) and validation (solid) loss of every fold model, one colour per model,
    with the epoch each model kept (``chosen``: {name: epoch}) marked."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (name, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(epochs, [h["train_loss"] for h in history], "--", color=colour, alpha=0.6)
        ax.plot(epochs, [h["val_loss"] for h in history], "-", color=colour, label=name)
        kept = next(h for h in history if h["epoch"] == chosen[name])
        ax.plot(kept["epoch"], kept["val_loss"], "*", color=colour, markersize=13, mec="k")
    ax.plot([], [], "k--", alpha=0.6, label="training loss")
    ax.plot([], [], "k*", markersize=11, label="epoch kept")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (solid: validation)")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return data_uri(fig)


def roc_curves(curves_by_set, classes):
    """One-vs-rest ROC curves of each class, one panel per set (out of fold, test)."""
    fig, axes = plt.subplots(1, len(curves_by_set), figsize=(4.2 * len(curves_by_set), 3.8))
    for ax, (label, curves) in zip(np.atleast_1d(axes), curves_by_set.items()):
        ax.plot([0, 1], [0, 1], ":", color="0.5")
        for k, curve in curves.items():
            ax.plot(
                curve["fpr"],
                curve["tpr"],
                drawstyle="steps-post",
                color=OKABE_ITO[int(k) % len(OKABE_ITO)],
                label=classes[int(k)],
            )
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_aspect("equal")
        ax.legend(fontsize=9, loc="lower right")
    return data_uri(fig)


def faithfulness_curves(curves, title):
    """Target probability as the top fraction of the map is inverted (against a random set of the
    same size), and the deletion and insertion curves."""
    fractions = 100 * np.asarray(curves["fractions"])
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8), sharey=True)
    axes[0].plot(fractions, curves["inverted"], "-", color="C3", label="map's top voxels")
    axes[0].plot(fractions, curves["inverted_random"], "--", color="0.4", label="random voxels")
    axes[0].set_title("voxel inverting", fontsize=9)
    axes[1].plot(fractions, curves["deletion"], "-", color="C0", label="deletion")
    axes[1].plot(fractions, curves["insertion"], "-", color="C2", label="insertion")
    axes[1].set_title("partial deletion / insertion (2.5-50 %)", fontsize=9)
    axes[0].set_ylabel("target probability")
    for ax in axes:
        ax.set_xlabel("% of voxels")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return data_uri(fig)


def inverting_curves(curves_by_method):
    """Mean target probability as each method's top voxels are inverted, against random voxels
    (dashed), over subjects: Lu et al. (2023), figure 4."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for i, (method, c) in enumerate(sorted(curves_by_method.items())):
        fractions = 100 * np.asarray(c["fractions"])
        ax.plot(fractions, c["inverted"], "-", color=f"C{i}", label=method)
        ax.plot(fractions, c["inverted_random"], "--", color=f"C{i}", alpha=0.5)
    ax.set_xlabel("% of voxels inverted (top of the map; dashed: random)")
    ax.set_ylabel("mean target probability")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return data_uri(fig)


def confusion_plot(matrix, classes):
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(3.5, 3))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        dark = v > matrix.max() / 2
        ax.text(j, i, str(v), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return data_uri(fig)


def correlation_scatter(x, y, xlabel, ylabel):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter(x, y, s=14, color="k")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return data_uri(fig)
