"""pytest setup: import the generated `tessera_ffi` module.

bindings/run.sh generates it into target/bindings/python (with the shared
library copied next to it) and passes that directory in TESSERA_PY_BINDINGS.
"""
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, os.environ.get("TESSERA_PY_BINDINGS", str(ROOT / "target" / "bindings" / "python")))

VECTORS = pathlib.Path(os.environ.get("TESSERA_VECTORS_DIR", str(ROOT / "spec" / "vectors")))


@pytest.fixture
def server():
    """The `tessera serve` verifier started by bindings/run.sh, or a skip."""
    url = os.environ.get("TESSERA_SERVER_URL")
    if not url:
        pytest.skip("no tessera server configured (TESSERA_SERVER_URL)")
    return {
        "url": url,
        "key_id": os.environ["TESSERA_KEY_ID"],
        "secret": bytes.fromhex(os.environ["TESSERA_KEY_SECRET_HEX"]),
        "ro_id": os.environ["TESSERA_KEY_RO_ID"],
        "ro_secret": bytes.fromhex(os.environ["TESSERA_KEY_RO_SECRET_HEX"]),
    }
