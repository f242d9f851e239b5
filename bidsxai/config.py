"""The settings of one run, saved as TOML under OUTPUT_DIR/logs/ for provenance."""

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomli_w

from bidsxai import __version__
from bidsxai.atomic import write_text


@dataclass
class Settings:
    bids_dir: Path
    output_dir: Path
    level: str
    participant_label: list = field(default_factory=list)
    session_label: list = field(default_factory=list)
    bids_filter_file: Path | None = None
    derivatives: dict = field(default_factory=dict)
    work_dir: Path | None = None
    model: str | None = None
    target: str = "group"
    arch: str = "cnn3d"
    device: str = "auto"
    nprocs: int = 2
    seed: int = 0
    skip_bids_validation: bool = False
    reports_only: bool = False
    resolution: float = 2.0
    normalisation: str = "percentile"
    nonlinear: bool = False
    explain_layer: str | None = None
    methods: list = field(default_factory=lambda: ["gradcam"])
    targets: str = "all"
    lrp_composite: str = "paper001"
    lrp_start: str = "logit"
    lrp_map: str = "sum"
    epochs: int = 30
    patience: int = 8
    batch_size: int = 4
    learning_rate: float | None = None  # None: the architecture's recipe
    optimiser: str | None = None
    weight_decay: float | None = None
    target_threshold: float | None = None
    loss_weight: str = "none"
    cv_folds: int = 5
    cv_repeats: int = 1
    test_fraction: float = 0.2
    select_by: str = "loss"
    augment: str = "auto"
    precision: str = "auto"
    loader_workers: int | None = None
    arch_width: float = 1.0
    mc_samples: int = 50
    slice_size: int = 256
    pretrained: Path | None = None
    groups: list = field(default_factory=list)
    n_perm: int = 1000
    tfce: bool = False
    cluster_p: float | None = None
    covariates: list = field(default_factory=list)
    threshold: str = "p95"
    atlas: str | None = "auto"
    correlate: str | None = None
    correlate_image: str = "T1w"
    correlate_mask: str = "top40"
    correlate_n_perm: int = 20000
    verbosity: int = 0

    def to_toml(self):
        def plain(value):
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        body = {k: plain(v) for k, v in asdict(self).items() if v is not None}
        body = {"bidsxai": {"version": __version__, "command": " ".join(sys.argv)}, "settings": body}
        return tomli_w.dumps(body)

    def save(self):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(self.output_dir) / "logs" / f"{self.level}-{stamp}.toml"
        write_text(path, self.to_toml())
        return path
