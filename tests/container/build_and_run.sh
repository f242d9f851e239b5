#!/usr/bin/env bash
# The container image, built and run here: bootstrap a Debian bookworm base from the Debian archive,
# build the Dockerfile on it with buildah (chroot isolation, no TemplateFlow prefetch), run the
# image with podman (runc) on a 6 mm cohort as a non-root user with a read-only HOME, the input
# mounted read-only and no network: participant, train, participant --model, group. Then run the
# same four commands in the virtual environment and compare the two output trees
# (scripts/compare_outputs.py: the same files, images and heatmaps equal within TOLERANCE).
#
#   tests/container/build_and_run.sh [WORK_DIR]
#
# Needs root, apt-get (buildah, podman, runc, debootstrap are installed where missing), the Debian
# archive and PyPI. Prints the image's size and build time. Exits non-zero on any failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:-$(mktemp -d /tmp/bidsxai-container.XXXXXX)}
BIN=${VENV_BIN:-$ROOT/.venv/bin}
TOLERANCE=${TOLERANCE:-1e-5}
IMAGE=localhost/bidsxai:test
BASE=localhost/bidsxai-base:bookworm
mkdir -p "$WORK"

missing=""
for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"
# This machine's kernel: vfs storage (no overlay mounts), runc (crun fails on hybrid cgroups) and
# no ulimits for podman to set.
export STORAGE_DRIVER=vfs
export CONTAINERS_CONF="$WORK/containers.conf"
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' > "$CONTAINERS_CONF"

if ! podman image exists "$BASE"; then
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian \
        > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; exit 1; }
    tar -C "$WORK/rootfs" -c . | podman import - "$BASE" >/dev/null
    rm -rf "$WORK/rootfs"
fi

# pip inside the build resolves packages as the host's pip does: the host's CA bundle (a proxy
# with its own CA may stand between this machine and PyPI) and its local wheel folders and
# indexes, each lent read-only where it exists.
lent=()
pip_conf="$WORK/pip.conf"
printf '[global]\n' > "$pip_conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    lent+=(-v /etc/ssl/certs/ca-certificates.crt:/run/host/ca-certificates.crt:ro)
    printf 'cert = /run/host/ca-certificates.crt\n' >> "$pip_conf"
fi
links=$("$BIN/python" -m pip config get global.find-links 2>/dev/null || true)
indexes=$("$BIN/python" -m pip config get global.extra-index-url 2>/dev/null || true)
for index in ${indexes//file:\/\//}; do  # a local index: lend the folder its links point into
    links="$links $(dirname "$index")"
done
for folder in $links; do
    [ -d "$folder" ] && lent+=(-v "$folder:$folder:ro")
done
links=$("$BIN/python" -m pip config get global.find-links 2>/dev/null || true)
[ -n "$links" ] && printf 'find-links = %s\n' "$links" >> "$pip_conf"
[ -n "$indexes" ] && printf 'extra-index-url = %s\n' "$indexes" >> "$pip_conf"
lent+=(-v "$pip_conf:/etc/pip.conf:ro")

start=$(date +%s)
buildah bud --isolation chroot --layers=false "${lent[@]}" --build-arg "BASE=$BASE" \
    --build-arg PREFETCH_TEMPLATEFLOW=0 -t "$IMAGE" "$ROOT" > "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; exit 1; }
built=$(( $(date +%s) - start ))
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "image built in ${built} s; size $(( size / 1000000 )) MB"

rm -rf "$WORK/bids" "$WORK/venv" "$WORK/container" "$WORK/home"
"$BIN/bidsxai-synth" "$WORK/bids" --n-subjects 6 --resolution 6 --seed 3 >/dev/null
chmod -R a+rX "$WORK/bids"
mkdir -p "$WORK/container" "$WORK/home"
chown 1000:1000 "$WORK/container"
chmod 0555 "$WORK/home"

# The input and output sit side by side in both runs, so that the outputs' relative link to the
# raw dataset (dataset_description.json) is the same.
in_container() {
    podman --runtime runc run --rm --network none --user 1000:1000 \
        -e HOME=/home/user -v "$WORK/home:/home/user:ro" \
        -v "$WORK/bids:/work/bids:ro" -v "$WORK/container:/work/container" "$IMAGE" \
        /work/bids /work/container "$@"
}
in_venv() {
    "$BIN/bidsxai" "$WORK/bids" "$WORK/venv" "$@"
}
common=(--resolution 6 --nprocs 2 --skip-bids-validation)
for run in in_container in_venv; do
    $run participant "${common[@]}"
    $run train --epochs 2 --cv-folds 2 "${common[@]}"
    $run participant --model cnn3d_group "${common[@]}"
    $run group --n-perm 0 "${common[@]}"
done
"$BIN/python" "$ROOT/scripts/compare_outputs.py" "$WORK/venv" "$WORK/container" \
    --tolerance "$TOLERANCE"
echo "container outputs equal the virtual environment's (tolerance $TOLERANCE)"
