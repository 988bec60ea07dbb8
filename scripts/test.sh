#!/usr/bin/env bash
# The README's test command: installs what the project needs, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
bash scripts/fetch_noise_profiles.sh  # darktable's sensor noise data, for the renderer
python3 -m pytest -q tests "$@"
