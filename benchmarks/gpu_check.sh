#!/usr/bin/env bash
# The device check of issue #20 as one script, for a session that is lent the GPU machine (at most 9 min 30 s there):
#   0. tests/test_cuda.py: the CUDA path of the CNN's batches (pinned staging, the CUDA graph), skipped on CPUs;
#   1. benchmarks/extract.py with the real CNN: CNN only, decode ceiling, end to end, ratio, then a profile of the main
#      process over one more end-to-end run;
#   2. a 1-GPU `vidrnn fit` of configs/ucf101_cpu.yaml in bf16-mixed (EfficientNet-Lite0: Lite2's weights do not fit
#      the device tool's 64 MiB beside the data), its extraction timed too;
#   3. benchmarks/classify.py with the checkpoint that fit made (and its main process's profile);
#   4. benchmarks/decode_window.py: the decode ceiling with the dispatch window at 1x and 2x the workers' queue places;
#   5. benchmarks/extract.py with the nearly free CNN (last: the least needed if time runs short).
# Prepare it here with `python benchmarks/gpu_prepare.py` (wheels and a UCF101 subset in an ignored folder), which
# prints the command to run there. Every step's output goes to OUT_DIR (the device tool's $OUT) as it runs.
#
#   bash benchmarks/gpu_check.sh ROOT OUT_DIR
#   DEVICE=cpu VIDEOS=8 WORKERS=2 BATCH=8 EPOCHS=1 bash benchmarks/gpu_check.sh ROOT OUT_DIR   # a dry run on a CPU
set -euo pipefail
root=${1:?usage: gpu_check.sh UCF101_ROOT OUT_DIR}
out=${2:?usage: gpu_check.sh UCF101_ROOT OUT_DIR}
device=${DEVICE:-cuda}
videos=${VIDEOS:-1000}
workers=${WORKERS:-16}
batch=${BATCH:-64}
epochs=${EPOCHS:-30}
accelerator=gpu precision=bf16-mixed
if [ "$device" = cpu ]; then accelerator=cpu precision=32-true; fi
python=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to the terminal and OUT_DIR/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee "$out/$name.txt"
    local start=$SECONDS status=0
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.txt" || status=$?  # a failed step does not stop the others
    echo "== $name: exit $status, $((SECONDS - start)) s" | tee -a "$out/$name.txt"
}

step machine 30 bash -c "nproc; (nvidia-smi -L || true); $python -c 'import torch, cv2, lightning; print(torch.__version__, torch.cuda.is_available(), cv2.__version__, lightning.__version__)'"
step tests 90 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step extract_real 150 "$python" benchmarks/extract.py --root "$root" --device "$device" --videos "$videos" \
    --workers "$workers" --batch-size "$batch" --rounds 3 --profile 25
runs=$(mktemp -d)
step fit 180 "$python" -m vidrnn fit --config configs/ucf101_cpu.yaml --data.root "$root" \
    --data.backbone.name efficientnet_lite0 --data.cache_dir "$runs/cache" --data.extract_workers "$workers" \
    --trainer.accelerator "$accelerator" --trainer.devices 1 --trainer.precision "$precision" \
    --trainer.max_epochs "$epochs" --trainer.default_root_dir "$runs/fit" --trainer.enable_progress_bar false
ckpt=$(find "$runs/fit" -name "*.ckpt" ! -name "latest*.ckpt" 2>/dev/null | head -n 1 || true)
if [ -z "$ckpt" ]; then  # no validation split to pick a best one by (a small dry run): the last one
    ckpt=$(find "$runs/fit" -name "latest.ckpt" 2>/dev/null | head -n 1 || true)
fi
if [ -n "$ckpt" ]; then
    step classify 110 "$python" benchmarks/classify.py --ckpt "$ckpt" --root "$root" --videos "$videos" \
        --workers "$workers" --batch-size "$batch" --skip-memory --profile 25
else
    echo "no checkpoint from fit: classify skipped" | tee "$out/classify.txt"
fi
step window 60 "$python" benchmarks/decode_window.py --root "$root" --clips "$videos" --workers "$workers" \
    --measure 3 --timed 24
step extract_tiny 90 "$python" benchmarks/extract.py --root "$root" --device "$device" --videos "$videos" \
    --workers "$workers" --batch-size "$batch" --rounds 3 --cnn tiny
