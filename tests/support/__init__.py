"""Test support: a fault-injecting local HTTP server and real-format fixture layers.

Importing this package keeps CloudVolume/CloudFiles away from the home
directory: their config/secret/cache directories are read from environment
variables when those libraries are first imported, so they are pointed at a
throwaway directory here, before any test module imports cloudvolume. (A
conftest can do the same earlier; ``setdefault`` leaves its choice alone.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_SANDBOX = Path(tempfile.gettempdir()) / f"mesh-export-tests-{os.getuid()}"
os.environ.setdefault("CLOUD_VOLUME_DIR", str(_SANDBOX / "cloudvolume"))
os.environ.setdefault("CLOUD_FILES_DIR", str(_SANDBOX / "cloudfiles"))
os.environ.setdefault("CLOUD_VOLUME_CACHE_DIR", str(_SANDBOX / "cloudvolume-cache"))

# Allow running the tests from a source checkout that is not pip-installed yet.
try:  # pragma: no cover - depends on how the package is installed
    import mesh_export  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
