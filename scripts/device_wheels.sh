#!/usr/bin/env bash
# Downloads, here, the wheels that scripts/gpu_check.sh needs on the lent GPU machine and its image
# lacks (seen there in 2026-11: Python 3.12, torch 2.11, transformers 5.17, no trl, datasets or
# jsonschema). They go to .whl/ (git-ignored), which the device call carries; gpu_check.sh installs
# them before anything else. These versions ran the SFT search there on 2026-11-26 beside the image's
# transformers; the course's own pins (requirements/constraints.txt) are for this machine.
# Usage: bash scripts/device_wheels.sh   then   run(command="bash scripts/gpu_check.sh $OUT", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    trl==1.15.0 datasets==4.8.5 "dill<0.4.2" "multiprocess<0.70.20" jsonschema jsonschema-specifications \
    referencing rpds-py
ls .whl
