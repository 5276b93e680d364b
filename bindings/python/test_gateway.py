"""Python clients through `tessera gateway` to an upstream that is not Rust
(crates/tessera-gateway/tests/upstream.py, started with the gateway by
bindings/run.sh): requests and httpx with `tessera.auth`, in both signing modes."""
import os
import uuid

import httpx
import pytest
import requests
import tessera_ffi as t
from tessera.auth import TesseraAuth, TesseraHttpxAuth
from tessera.hmac_provider import HmacProvider


@pytest.fixture
def gateway():
    url = os.environ.get("TESSERA_GATEWAY_URL")
    log = os.environ.get("TESSERA_GATEWAY_UPSTREAM_LOG")
    if not url or not log:
        pytest.skip("no gateway configured (TESSERA_GATEWAY_URL)")
    return {
        "url": url,
        "log": log,
        "key_id": os.environ["TESSERA_KEY_ID"],
        "secret": bytes.fromhex(os.environ["TESSERA_KEY_SECRET_HEX"]),
    }


def signer(mode, g):
    if mode == "platform":
        return t.Signer.with_mac_provider(g["key_id"], HmacProvider(g["secret"]), [])
    return t.Signer(g["key_id"], g["secret"], [])


def headers_of(echo):
    out = {}
    for name, value in echo["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


@pytest.mark.parametrize("mode", ["in-rust", "platform"])
def test_requests_through_the_gateway(gateway, mode):
    auth = TesseraAuth(signer(mode, gateway))
    path = f"/v1/orders/{uuid.uuid4()}?limit=5"
    r = requests.get(
        gateway["url"] + path,
        auth=auth,
        headers={"Tessera-Key-Id": "spoofed", "X-Forwarded-For": "203.0.113.9"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["method"] == "GET" and echo["path"] == path
    h = headers_of(echo)
    assert h["tessera-key-id"] == [gateway["key_id"]]
    assert h["tessera-owner"] == ["bindings"]
    # The gateway sets the forwarding fields itself (no trusted proxies configured).
    assert h["x-forwarded-for"] == ["127.0.0.1"], h

    body = b'{"item":"book","mode":"%s"}' % mode.encode()
    r = requests.post(gateway["url"] + "/v1/orders", data=body, auth=auth,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["body"] == body.decode()


@pytest.mark.parametrize("mode", ["in-rust", "platform"])
def test_httpx_through_the_gateway(gateway, mode):
    with httpx.Client(auth=TesseraHttpxAuth(signer(mode, gateway)), timeout=10) as client:
        r = client.put(gateway["url"] + "/v1/orders/7", json={"qty": 2})
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["method"] == "PUT"
    assert headers_of(echo)["tessera-key-id"] == [gateway["key_id"]]


def test_rejections_never_reach_the_upstream(gateway):
    path = f"/v1/never-forwarded/{uuid.uuid4()}"
    unsigned = requests.get(gateway["url"] + path, timeout=10)
    assert unsigned.status_code == 401
    assert unsigned.headers["Content-Type"].startswith("application/problem+json")
    assert "WWW-Authenticate" in unsigned.headers
    wrong = t.Signer(gateway["key_id"], b"\x01" * 32, [])
    forged = requests.get(gateway["url"] + path, auth=TesseraAuth(wrong), timeout=10)
    assert forged.status_code == 401
    assert forged.json()["code"] == "bad_signature"
    with open(gateway["log"]) as log:
        assert path not in log.read()
