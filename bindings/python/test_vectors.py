"""Every positive tessera-v1 vector of spec/vectors, signed from Python through the FFI,
with the secret given to Rust and with the MAC computed by a Python `hmac` provider."""
import base64
import json

import pytest
import tessera_ffi as t
from conftest import VECTORS
from tessera.hmac_provider import HmacProvider

CASES = sorted(p.name for p in VECTORS.iterdir() if p.name.startswith("pos-"))
UNSIGNABLE = sorted(p.name for p in VECTORS.iterdir() if p.name.startswith("unsignable-"))


def test_the_vectors_are_there():
    assert len(CASES) >= 80, VECTORS
    assert len(UNSIGNABLE) >= 20, VECTORS


def request_of(case):
    r = case["request"]
    return t.HttpRequest(
        method=r["method"], url=r["target_uri"],
        headers=[t.HttpHeader(name=n, value=v) for n, v in r["headers"]],
        body=base64.b64decode(r["body_base64"]),
    )


@pytest.mark.parametrize("name", CASES)
def test_vector(name):
    case = json.loads((VECTORS / name / "case.json").read_text())
    if case["kind"] != "tessera-v1":
        pytest.skip("the generic RFC 9421 example is not a tessera-v1 request")
    key, sign, expected = case["key"], case["sign"], case["expected"]
    request = request_of(case)
    # A vector's components are exactly what is covered: required, not "when present".
    signer = t.Signer(key["id"], bytes.fromhex(key["secret_hex"]), sign["extra_components"],
                      covered_headers_required=True)
    signed = signer.sign_at(request, sign["created"], sign["nonce"], sign.get("expires"))
    got = {h.name: h.value for h in signed.headers}
    assert got["content-digest"] == expected["content_digest"]
    assert got["signature-input"] == expected["signature_input"]
    assert got["signature"] == expected["signature"]
    assert signer.signature_base(request, signed) == expected["signature_base"]
    # Platform-MAC mode: the MAC computed by Python's hmac gives byte-identical headers.
    platform = t.Signer.with_mac_provider(key["id"], HmacProvider(bytes.fromhex(key["secret_hex"])),
                                          sign["extra_components"], covered_headers_required=True)
    assert platform.sign_at(request, sign["created"], sign["nonce"], sign.get("expires")) == signed


@pytest.mark.parametrize("name", UNSIGNABLE)
def test_unsignable_vector_is_refused_with_its_code(name):
    """The signer refuses the case (when built, or when signing) with the code a verifier gives it."""
    case = json.loads((VECTORS / name / "case.json").read_text())
    key, sign = case["key"], case["sign"]
    with pytest.raises(t.TesseraError) as e:
        signer = t.Signer(key["id"], bytes.fromhex(key["secret_hex"]), sign["extra_components"],
                          covered_headers_required=True)
        signer.sign_at(request_of(case), sign["created"], sign["nonce"], sign.get("expires"))
    assert e.value.code == case["expected"]["sign_error"], e.value.detail
