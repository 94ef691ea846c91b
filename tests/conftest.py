"""Make tests/ importable (the shared harness and the conformance backend live here)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
