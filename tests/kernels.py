"""A Jupyter kernel of this test's own interpreter, for running notebooks and documentation code blocks.

The kernel spec is written to a temporary folder and only that folder is searched, so a user's own ``python3``
kernel (another environment's Python) can never be picked up instead.
"""

import json
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL = "cityagent-tests"


def kernel_manager(folder: Path) -> KernelManager:
    """A (not yet started) manager for a kernel running ``sys.executable``; the spec goes under ``folder``."""
    spec_dir = folder / "kernels" / KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
