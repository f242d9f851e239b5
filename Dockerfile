# bidsxai BIDS-App image. Build: docker build -t bidsxai .
# For a CPU-only image: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu
FROM python:3.11-slim-bookworm

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""
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
    MPLCONFIGDIR=/tmp/matplotlib \
    DENO_DIR=/tmp/deno \
    NUMBA_CACHE_DIR=/tmp/numba \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    BIDSXAI_CONTAINER=bidsxai:${VERSION} \
    BIDSXAI_CONTAINER_TYPE=docker

WORKDIR /opt/bidsxai

# The AAL atlas for the group level's cluster labels and lobe summaries (Debian's mricron-data).
# Debian stable's package versions move with point releases, so the version is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mricron-data \
    && rm -rf /var/lib/apt/lists/*

# torch first, so the (large) layer is cached independently of the code. The version is pinned
# through TORCH_SPEC, which hadolint cannot read.
# hadolint ignore=DL3013
RUN if [ -n "$TORCH_INDEX" ]; then pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"; \
    else pip install "$TORCH_SPEC"; fi

# Every other dependency at the version pinned in requirements.lock, then bidsxai itself.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY bidsxai ./bidsxai
COPY reports ./reports
COPY boilerplate ./boilerplate
COPY scripts/prefetch_templates.py ./scripts/
# Templates in the image: MNI152NLin2009cAsym fetched through TemplateFlow, MNI152NLin2009aSym
# seeded from nilearn's copy; runs need no network.
RUN pip install --no-deps . \
    && bidsxai --version \
    && python scripts/prefetch_templates.py \
    && chmod -R a+rX "$TEMPLATEFLOW_HOME" \
    && python -c "import numpy as np; from bidsxai.group import ttest; m = np.random.default_rng(0).normal(size=(6, 3, 3, 3)); ttest(m[:3], m[3:], tfce=True, cluster_p=0.5, n_perm=5)" \
    && useradd --create-home --uid 1000 bidsxai

USER 1000
ENTRYPOINT ["bidsxai"]
CMD ["--help"]
