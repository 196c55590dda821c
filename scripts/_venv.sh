# Sourced by the scripts: create .venv (Python 3.11+) and install headshots with the given extras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# torch first, pinned: a plain "torch" requirement would pull a multi-GB CUDA build on machines
# that only need the CPU one (and on GPU hosts this pin fetches the matching CUDA build).
python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
python -m pip install --quiet -e ".[$1]"
if [[ ",$1," == *",dev,"* ]]; then
  # Only its bpe_simple_vocab_16e6.txt.gz (SD1.5's CLIP merges) is used, read as a file:
  # --no-deps keeps out torchvision, whose PyPI build does not load beside the CPU torch.
  python -m pip install --quiet --no-deps "open-clip-torch==3.3.0"
fi
