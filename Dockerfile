# bidsxai BIDS-App image. Build: docker build -t bidsxai .
# For a CPU-only image: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu
# BASE: any Debian bookworm image; Python comes from the image where it has one (the official
# Python image, the default) and from Debian's python3 otherwise (tests/container/build_and_run.sh
# builds on a base bootstrapped from the Debian archive).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
# 1: fetch MNI152NLin2009cAsym from TemplateFlow's storage at build time (a published image);
# 0: leave it out, for builds without that network (bidsxai's default space is seeded offline).
ARG PREFETCH_TEMPLATEFLOW=1
# The release (checked against bidsxai.__version__ by the tests) and where its source lives (the
# container workflow passes the repository's URL).
ARG VERSION="0.2.0"
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="bidsxai" \
      org.opencontainers.image.description="Explain deep networks trained on brain MRI (BIDS-App)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib \
    DENO_DIR=/tmp/deno \
    NUMBA_CACHE_DIR=/tmp/numba \
    XDG_CACHE_HOME=/tmp/cache \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSXAI_CONTAINER=bidsxai:${VERSION} \
    BIDSXAI_CONTAINER_TYPE=docker

WORKDIR /opt/bidsxai

# The AAL atlas for the group level's cluster labels and lobe summaries (Debian's mricron-data),
# and Python where the base has none. Debian stable's package versions move with point releases,
# so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mricron-data \
    && if ! command -v python3 >/dev/null; then \
        apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# torch first, so the (large) layer is cached independently of the code. The version is pinned
# through TORCH_SPEC, which hadolint cannot read.
# hadolint ignore=DL3013
RUN if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    else pip install "$TORCH_SPEC"; fi

# Every other dependency at the version pinned in requirements.lock, then bidsxai itself (its
# report templates and boilerplate are package data).
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY bidsxai ./bidsxai
COPY scripts/prefetch_templates.py ./scripts/
# Templates in the image: MNI152NLin2009aSym seeded from nilearn's copy and, with
# PREFETCH_TEMPLATEFLOW=1, MNI152NLin2009cAsym fetched through TemplateFlow; runs need no network.
RUN pip install --no-deps . \
    && bidsxai --version \
    && python scripts/prefetch_templates.py --templateflow "$PREFETCH_TEMPLATEFLOW" \
    && chmod -R a+rX "$TEMPLATEFLOW_HOME" \
    && python -c "import numpy as np; from bidsxai.group.ttest import ttest; m = np.random.default_rng(0).normal(size=(6, 3, 3, 3)); ttest(m[:3], m[3:], tfce=True, cluster_p=0.5, n_perm=5)" \
    && useradd --create-home --uid 1000 bidsxai

USER 1000
ENTRYPOINT ["bidsxai"]
CMD ["--help"]
