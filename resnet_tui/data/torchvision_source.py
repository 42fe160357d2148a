"""The seed's loader, torchvision.datasets.CIFAR10, run in a child process so torch never loads here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from resnet_tui.data.cifar10 import ensure_cifar10
from resnet_tui.data.dataset import DatasetError, Progress

# Run in a child process: importing torchvision after TensorFlow crashes the
# process (torch loads triton, whose LLVM clashes with TensorFlow's: a
# segfault), and the training process is better off without torch anyway.
_TORCHVISION_SCRIPT = """
import sys
import numpy as np
try:
    from torchvision.datasets import CIFAR10
except ImportError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
root, out = sys.argv[1], sys.argv[2]
try:
    train = CIFAR10(root=root, train=True, download=False)
    test = CIFAR10(root=root, train=False, download=False)
except RuntimeError as exc:
    print(exc, file=sys.stderr)
    sys.exit(4)
np.savez(out, x_train=train.data, y_train=np.asarray(train.targets),
         x_test=test.data, y_test=np.asarray(test.targets))
"""
_TORCHVISION_MISSING = ("DATASET.source 'torchvision' needs torchvision, which is not installed: "
                        "pip install 'resnet-tui[torchvision]' (or use DATASET.source 'cifar10', "
                        "which reads the same files without it)")


def load_torchvision(data_path: Path, progress: Progress | None):
    """The seed's loader, ``torchvision.datasets.CIFAR10``, on the same folder layout.

    The archive is fetched by our own downloader (progress reported, nothing
    printed over the dashboard); torchvision then checks every file's md5.
    """
    if importlib.util.find_spec("torchvision") is None:
        raise DatasetError(_TORCHVISION_MISSING)
    ensure_cifar10(data_path, progress)
    with tempfile.TemporaryDirectory(prefix="resnet-tui-torchvision-") as tmp:
        out = Path(tmp) / "cifar10.npz"
        result = subprocess.run([sys.executable, "-c", _TORCHVISION_SCRIPT, str(data_path.resolve()), str(out)],
                                capture_output=True, text=True)
        error = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        if result.returncode == 3:
            raise DatasetError(f"{_TORCHVISION_MISSING}; importing it failed: {error}")
        if result.returncode != 0:
            raise DatasetError(f"torchvision could not load CIFAR-10 from {data_path.resolve()}: {error}")
        with np.load(out) as arrays:
            return ((arrays["x_train"], arrays["y_train"].astype(np.int64)),
                    (arrays["x_test"], arrays["y_test"].astype(np.int64)))


