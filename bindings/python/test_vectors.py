"""Every positive tessera-v1 vector of spec/vectors, signed from Python through the FFI."""
import base64
import json

import pytest
import tessera_ffi as t
from conftest import VECTORS

CASES = sorted(p.name for p in VECTORS.iterdir() if p.name.startswith("pos-"))


def test_the_vectors_are_there():
    assert len(CASES) >= 80, VECTORS


@pytest.mark.parametrize("name", CASES)
def test_vector(name):
    case = json.loads((VECTORS / name / "case.json").read_text())
    if case["kind"] != "tessera-v1":
        pytest.skip("the generic RFC 9421 example is not a tessera-v1 request")
    r, key, sign, expected = case["request"], case["key"], case["sign"], case["expected"]
    request = t.HttpRequest(
        method=r["method"], url=r["target_uri"],
        headers=[t.HttpHeader(name=n, value=v) for n, v in r["headers"]],
        body=base64.b64decode(r["body_base64"]),
    )
    signer = t.Signer(key["id"], bytes.fromhex(key["secret_hex"]), sign["extra_components"])
    signed = signer.sign_at(request, sign["created"], sign["nonce"], sign.get("expires"))
    got = {h.name: h.value for h in signed.headers}
    assert got["content-digest"] == expected["content_digest"]
    assert got["signature-input"] == expected["signature_input"]
    assert got["signature"] == expected["signature"]
    assert signer.signature_base(request, signed) == expected["signature_base"]
