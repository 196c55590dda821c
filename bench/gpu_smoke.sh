#!/usr/bin/env bash
# One whole job end to end on a CUDA GPU, from a local model folder, with nothing downloaded:
# train 200 steps, 8 images, face refine, rank; prints per-stage times, peak GPU memory and the
# overhead figure (bench/gpu_job.py). On a host without CUDA it says so and exits 0.
#
#   bench/gpu_smoke.sh /models/stable-diffusion-v1-5 [--selfies DIR] [--steps 200] [--n 8]
#
# Budget: under 8 minutes on one H100-class GPU (SD1.5 at 512 px or SDXL at 1024 px).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_smoke: no CUDA device on this host (or no torch with CUDA); nothing to run (exit 0)"
    exit 0
fi
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 MODEL_FOLDER [--selfies DIR] [--steps N] [--n N]  (a local diffusers folder)" >&2
    exit 2
fi
model="$1"
shift
export HEADSHOTS_HF_OFFLINE=1 HF_HUB_OFFLINE=1
exec timeout 480 "$python" "$here/gpu_job.py" --model "$model" "$@"
