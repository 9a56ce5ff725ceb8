#!/usr/bin/env bash
# The GPU check on a bare GPU machine (python3 with a CUDA PyTorch, transformers, sentence-transformers,
# scikit-learn, safetensors, pyarrow, pandas; no network). From the repository root:
#
#   bash benchmarks/gpu_check.sh BUNDLE OUT [cuda|cpu]
#
# BUNDLE is the folder `python benchmarks/gpu_bundle.py` builds (wheels, the fp16 MiniLM, an IMDB slice; <= 60 MB).
# Its wheels are installed with pip --no-index --no-deps into a private folder (nothing of the machine's changes),
# then benchmarks/gpu_check.py runs every step and writes OUT/summary.json. `cpu` runs the same flow at small sizes,
# to check the script where there is no GPU (set PYTHON to the interpreter that has textsae's needs).
set -euo pipefail
BUNDLE=${1:?usage: gpu_check.sh BUNDLE OUT [cuda|cpu]}
OUT=${2:?usage: gpu_check.sh BUNDLE OUT [cuda|cpu]}
DEVICE=${3:-cuda}
PYTHON=${PYTHON:-python3}
SITE=${TEXTSAE_GPU_SITE:-/tmp/textsae-gpu-site}
mkdir -p "$OUT" "$SITE"
# Install only what the interpreter lacks, so a machine's own newer versions are left as they are.
missing=()
for wheel in "$BUNDLE"/wheels/*.whl "$BUNDLE"/wheels/peer/*.whl; do
  [ -e "$wheel" ] || continue
  module=$(basename "$wheel" | cut -d- -f1 | tr '[:upper:]' '[:lower:]' | sed 's/^eai_sparsify$/sparsify/')
  "$PYTHON" -c "import $module" >/dev/null 2>&1 || missing+=("$wheel")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${missing[@]}"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PYTHON" benchmarks/gpu_check.py --bundle "$BUNDLE" --out "$OUT" --device "$DEVICE"
