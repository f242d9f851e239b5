"""Report figures as PNG data URIs, so each HTML report is one self-contained file."""

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def data_uri(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", facecolor=fig.get_facecolor())
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def axial_slices(mask, n=8):
    """Evenly spaced axial slice indices through the mask's extent."""
    z = np.flatnonzero(mask.any(axis=(0, 1)))
    return np.linspace(z[0] + 0.1 * (z[-1] - z[0]), z[-1] - 0.1 * (z[-1] - z[0]), n).astype(int)


def _mosaic(n):
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.7), facecolor="black")
    for ax in axes:
        ax.axis("off")
    return fig, axes


def registration_mosaic(image, template, mask, n=8):
    """The subject's image in template space with the template's tissue edges in red."""
    fig, axes = _mosaic(n)
    for ax, z in zip(axes, axial_slices(mask, n)):
        ax.imshow(image[:, :, z].T, origin="lower", cmap="gray")
        ax.contour(
            template[:, :, z].T, levels=[0.45, 0.75], colors=["red"], linewidths=0.5, origin="lower"
        )
    return data_uri(fig)


def heatmap_mosaic(background, heatmap, mask, n=8):
    """A heatmap (max-normalised for display only) over the subject's image."""
    fig, axes = _mosaic(n)
    peak = float(heatmap[mask].max()) if mask.any() and heatmap[mask].max() > 0 else 1.0
    for ax, z in zip(axes, axial_slices(mask, n)):
        ax.imshow(background[:, :, z].T, origin="lower", cmap="gray")
        shown = np.ma.masked_where(
            ~mask[:, :, z] | (heatmap[:, :, z] <= 0), heatmap[:, :, z] / peak
        )
        ax.imshow(shown.T, origin="lower", cmap="jet", vmin=0, vmax=1, alpha=0.5)
    return data_uri(fig)


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
        ax.imshow(shown.T, origin="lower", cmap="jet", vmin=0, vmax=1, alpha=0.5)
        ax.set_title(name, color="white", fontsize=8)
    return data_uri(fig)


def stat_mosaic(background, stat, shown_mask, mask, n=8):
    """A t map over the template, shown where ``shown_mask`` holds (e.g. p_FDR < 0.05)."""
    fig, axes = _mosaic(n)
    limit = float(np.abs(stat[mask]).max()) or 1.0
    for ax, z in zip(axes, axial_slices(mask, n)):
        ax.imshow(background[:, :, z].T, origin="lower", cmap="gray")
        shown = np.ma.masked_where(~shown_mask[:, :, z], stat[:, :, z])
        ax.imshow(shown.T, origin="lower", cmap="coolwarm", vmin=-limit, vmax=limit)
    return data_uri(fig)


def learning_curves(histories):
    """Training (dashed) and validation (solid) loss of every fold model, one colour per model."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (name, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        colour = f"C{i % 10}"
        ax.plot(epochs, [h["train_loss"] for h in history], "--", color=colour, alpha=0.6)
        ax.plot(epochs, [h["val_loss"] for h in history], "-", color=colour, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=6, ncol=2)
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
    axes[1].set_title("deletion / insertion (blurred baseline)", fontsize=9)
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
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return data_uri(fig)


def measure_boxplot(values_by_group, ylabel):
    fig, ax = plt.subplots(figsize=(4, 3))
    names = list(values_by_group)
    ax.boxplot([values_by_group[g] for g in names])
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, g in enumerate(names, start=1):
        ax.scatter(np.full(len(values_by_group[g]), i), values_by_group[g], s=8, color="k")
    ax.set_ylabel(ylabel)
    return data_uri(fig)


def glass_brain(image, threshold):
    """A glass-brain projection of a statistic image (both signs) above ``threshold``."""
    from nilearn import plotting

    fig = plt.figure(figsize=(7, 2.6))
    plotting.plot_glass_brain(
        image, threshold=threshold, plot_abs=False, colorbar=True, figure=fig, cmap="coolwarm"
    )
    return data_uri(fig)


def correlation_scatter(x, y, xlabel, ylabel):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter(x, y, s=14, color="k")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return data_uri(fig)
