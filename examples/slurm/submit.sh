#!/bin/bash
# The whole study on a SLURM cluster, in the container:
#   1. index the dataset once (a pybids database beside the outputs);
#   2. preprocess every subject, one array task each;
#   3. train on a GPU when the preprocessing has succeeded (afterok);
#   4. explain every subject with the trained model, one array task each (afterok);
#   5. run the group level (afterok).
# Usage: submit.sh BIDS_DIR OUTPUT_DIR [TARGET]
# Environment:
#   SIF               the Apptainer image (default: bidsxai.sif)
#   BIDSXAI           the command that runs bidsxai (default: the image's runscript)
#   BIDSXAI_EXEC      the command that runs a program in the image (default: apptainer exec --nv)
#   GPU_REQUEST       sbatch options of the training job (default: --gres=gpu:1)
#   GPUS              GPUs for training; more than 1 starts torchrun (default: 1)
#   MODEL             the bundle that training writes (default: cnn3d_TARGET)
#   PARTICIPANT_ARGS, TRAIN_ARGS, GROUP_ARGS   extra bidsxai options per level
#   SBATCH_OPTIONS    extra sbatch options for every job (e.g. --account=... --partition=...)
set -euo pipefail
here=$(dirname "$(realpath "$0")")
bids=$(realpath "$1") out=$(realpath -m "$2") target=${3:-group}
sif=${SIF:-bidsxai.sif}
binds="-B $bids -B $(dirname "$out")"
export BIDSXAI=${BIDSXAI:-"apptainer run --nv --cleanenv $binds $sif"}
export BIDSXAI_EXEC=${BIDSXAI_EXEC:-"apptainer exec --nv --cleanenv $binds $sif"}
database="$out-pybids"
logs="$out/logs/slurm"
mkdir -p "$logs"
n=$(($(wc -l < "$bids/participants.tsv") - 1))

$BIDSXAI "$bids" "$out" participant --boilerplate-only --bids-database-dir "$database"

array() {  # sbatch of an array, printing only the job id; a log per task
  sbatch --parsable --array=1-"$n" --output="$logs/%x-%A_%a.out" ${SBATCH_OPTIONS:-} "$@"
}
single() {
  sbatch --parsable --output="$logs/%x-%j.out" ${SBATCH_OPTIONS:-} "$@"
}
prep=$(array "$here/participant.sbatch" "$bids" "$out" "$database" ${PARTICIPANT_ARGS:-})
train=$(single --dependency=afterok:"$prep" ${GPU_REQUEST---gres=gpu:1} \
  "$here/train.sbatch" "$bids" "$out" "$database" --target "$target" ${TRAIN_ARGS:-})
explain=$(array --dependency=afterok:"$train" "$here/participant.sbatch" \
  "$bids" "$out" "$database" --model "${MODEL:-cnn3d_$target}" ${PARTICIPANT_ARGS:-})
group=$(single --dependency=afterok:"$explain" "$here/group.sbatch" \
  "$bids" "$out" "$database" --target "$target" ${GROUP_ARGS:-})
echo "submitted: preprocessing $prep, training $train, explaining $explain, group $group"
