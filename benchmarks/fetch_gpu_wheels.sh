#!/usr/bin/env bash
# The wheels a GPU machine with JAX but without Keras lacks, for benchmarks/gpu_check.py.
#
#     benchmarks/fetch_gpu_wheels.sh [FOLDER]        # default: wheels/ (git ignores it)
#
# For Python 3.12 on manylinux x86_64 (the machine: JAX 0.11 with CUDA 13, numpy, h5py, absl-py,
# rich, ml-dtypes, psutil, nvidia-ml-py, pillow, protobuf, packaging, no network): Keras at
# pyproject's pin and what it needs beyond those (optree, namex), textual, textual-plotext,
# plotext and tensorboardX with their small needs, and a few the machine has, in case its
# versions are older than ours (pip takes those only when needed). The project itself travels
# as source. The 10k CIFAR-10 sample, when it is beside the checkout (../shared/data, which
# does not travel), is copied in too, for gpu_check.py's learning check. It ends with the
# folder's size: the working tree and the carried folders must stay under 64 MiB together.
#
# On the device machine, from the repository root, with FOLDER carried (nothing is fetched there):
#
#     python3 -m pip install -q --no-index --find-links wheels keras optree namex textual \
#         textual-plotext plotext tensorboardX \
#     && python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
#     && PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py
#
# (--no-deps -e .: the project's own needs are the wheels above and what the machine has;
# textual-serve, for `resnet-tui serve` only, is left out. --no-build-isolation: setuptools is
# taken from the machine rather than fetched.)
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${1:-wheels}
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
spec() {  # a dependency's specifier as pyproject.toml pins it, e.g. keras>=3.15,<3.16
    grep -o "\"$1[<>=!~][^\"]*\"" pyproject.toml | head -1 | tr -d '"'
}

# plotext<6: textual-plotext 1.0 asks for it (the check below would name a wheel that does not fit).
needed=("$(spec keras)" optree namex "$(spec textual)" "$(spec textual-plotext)" "plotext<6" "$(spec tensorboardX)"
        mdit-py-plugins platformdirs linkify-it-py uc-micro-py)
# On the machine already; carried in case its versions are older than these need.
spare=(protobuf "$(spec rich)" markdown-it-py mdurl pygments typing-extensions)

mkdir -p "$dest"
rm -f "$dest"/*.whl
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dest" "${needed[@]}" "${spare[@]}"

# Every wheel's needs (for Python 3.12 on Linux) must be among the wheels, in a version that fits, or on the machine.
"$python" - "$dest" <<'EOF'
import re, sys, zipfile
from pathlib import Path

from packaging.requirements import Requirement

ON_MACHINE = {"absl-py", "h5py", "ml-dtypes", "numpy", "packaging", "pillow", "psutil", "nvidia-ml-py", "rich",
              "protobuf", "pygments", "markdown-it-py", "mdurl", "typing-extensions", "jax", "jaxlib"}
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
wheels = sorted(Path(sys.argv[1]).glob("*.whl"))
have = {norm(w.name.split("-")[0]): w.name.split("-")[1] for w in wheels}
missing = set()
for wheel in wheels:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        for line in zf.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:"):
                req = Requirement(line.split(":", 1)[1].strip())
                if req.marker is not None and not req.marker.evaluate(env):
                    continue
                name = norm(req.name)
                if name in have and not req.specifier.contains(have[name], prereleases=True):
                    missing.add(f"{req} (for {wheel.name}; {have[name]} was fetched)")
                elif name not in have and name not in ON_MACHINE:
                    missing.add(f"{req} (for {wheel.name})")
for wheel in wheels:
    print(f"  {wheel.name}  {wheel.stat().st_size / 2**20:.2f} MiB")
if missing:
    sys.exit("missing, neither carried nor on the machine: " + ", ".join(sorted(missing)))
EOF

sample=../shared/data/cifar10-sample.npz
if [ -f "$sample" ]; then
    cp "$sample" "$dest/cifar10-sample.npz"
else
    echo "no $sample here: gpu_check.py's learning check will say it is absent and skip"
fi
wheels_mib=$(du -cm "$dest"/*.whl | tail -1 | cut -f1)
total_mib=$(du -sm "$dest" | cut -f1)
tree_mib=$(git ls-files -co --exclude-standard -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "$dest: wheels ${wheels_mib} MiB; with the sample ${total_mib} MiB; the working tree ${tree_mib} MiB;" \
     "together $((total_mib + tree_mib)) MiB of the 64 MiB that may travel"
