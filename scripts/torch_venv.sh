# Sourced by the PyTorch comparison scripts: makes (once) a virtual environment with torch,
# numpy and safetensors at $VENV (default ~/.cache/unlearn-torch-venv) and sets PY to its
# python. torch comes from PyTorch's CPU index when reachable, else from PyPI.
VENV=${VENV:-$HOME/.cache/unlearn-torch-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, safetensors, numpy' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q numpy safetensors
    "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu \
        || "$VENV/bin/pip" install -q torch
fi
PY="$VENV/bin/python"
