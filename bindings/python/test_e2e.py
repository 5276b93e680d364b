"""Python's urllib, signing through the FFI, against the real verifier (`tessera serve`) on loopback."""
import hashlib
import json
import re
import urllib.error
import urllib.request

import tessera_ffi as t


def send(signer, method, url, headers=(), body=None, tamper=None):
    """Signs and sends; returns (status, json body, response headers, signed, sent headers)."""
    headers = list(headers)
    if body is not None:
        headers.append(("Content-Length", str(len(body))))
    signed = signer.sign(t.HttpRequest(method=method, url=url,
                                       headers=[t.HttpHeader(name=n, value=v) for n, v in headers], body=body))
    wire = dict(headers)
    wire.update({h.name: h.value for h in signed.headers})
    if tamper:
        url, body = tamper(url, body)
    return raw(method, url, wire, body) + (signed, wire)


def raw(method, url, headers, body=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def test_signed_get_and_post_are_accepted(server):
    s = t.Signer(server["key_id"], server["secret"], ["content-type"])
    status, body, *_ = send(s, "GET", server["url"] + "/v1/things?x=1", [("Content-Type", "text/plain")])
    assert status == 200, body
    assert (body["key_id"], body["method"], body["path"]) == (server["key_id"], "GET", "/v1/things")
    payload = '{"qty":1,"note":"héllo"}'.encode()
    status, body, *_ = send(s, "POST", server["url"] + "/v1/orders", [("Content-Type", "application/json")], payload)
    assert status == 200, body
    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_tampered_requests_are_rejected(server):
    s = t.Signer(server["key_id"], server["secret"])
    status, body, *_ = send(s, "POST", server["url"] + "/v1/orders", [("Content-Type", "application/json")],
                            b'{"qty":1}', tamper=lambda u, b: (u, b'{"qty":9}'))
    assert (status, body["code"]) == (401, "digest_mismatch")
    status, body, *_ = send(s, "GET", server["url"] + "/v1/orders?limit=10",
                            tamper=lambda u, b: (u.replace("limit=10", "limit=1000"), b))
    assert (status, body["code"]) == (401, "bad_signature")


def test_replay_is_rejected(server):
    s = t.Signer(server["key_id"], server["secret"])
    url = server["url"] + "/v1/once"
    status, _, _, _, wire = send(s, "GET", url)
    assert status == 200
    status, body, _ = raw("GET", url, wire)
    assert (status, body["code"]) == (401, "replayed")


def test_a_retry_is_signed_again_and_a_resent_copy_is_replayed(server):
    # The first attempt reached the verifier (its nonce is recorded) but, say, the
    # answer was lost or was a 503: resending the same bytes is answered `replayed`,
    # signing again is accepted (spec §10).
    s = t.Signer(server["key_id"], server["secret"], ["content-type"])
    url = server["url"] + "/v1/orders"
    payload = b'{"qty":1}'
    status, _, _, first, wire = send(s, "POST", url, [("Content-Type", "application/json")], payload)
    assert status == 200
    status, body, _ = raw("POST", url, wire, payload)
    assert (status, body["code"]) == (401, "replayed")
    status, body, _, retry, retry_wire = send(s, "POST", url, [("Content-Type", "application/json")], payload)
    assert status == 200, body
    assert retry.nonce != first.nonce
    assert retry_wire["signature"] != wire["signature"]
    assert retry_wire["signature-input"] != wire["signature-input"]


def test_clock_skew_is_recovered_with_one_retry(server):
    s = t.Signer(server["key_id"], server["secret"])
    s.set_clock_offset(-3600)
    url = server["url"] + "/v1/skew"
    status, body, headers, signed, _ = send(s, "GET", url)
    assert (status, body["code"]) == (401, "clock_skew")
    challenge = headers["Tessera-Server-Time"]
    forged = re.sub(r"time=\d+", "time=1", challenge)
    try:
        s.apply_skew_challenge(forged, signed.nonce)
        raise AssertionError("a forged challenge was accepted")
    except t.TesseraError.InvalidChallenge as e:
        assert e.code == "bad_signature"
    assert s.clock_offset() == -3600
    offset = s.apply_skew_challenge(challenge, signed.nonce)
    assert abs(offset) <= 2 and s.clock_offset() == offset
    status, body, *_ = send(s, "GET", url)
    assert status == 200, body


def test_scopes_and_wrong_keys(server):
    ro = t.Signer(server["ro_id"], server["ro_secret"])
    assert send(ro, "GET", server["url"] + "/v1/x")[0] == 200
    status, body, *_ = send(ro, "DELETE", server["url"] + "/v1/x")
    assert (status, body["code"]) == (403, "insufficient_scope")
    wrong = t.Signer(server["key_id"], bytes(32))
    status, body, *_ = send(wrong, "GET", server["url"] + "/v1/x")
    assert (status, body["code"]) == (401, "bad_signature")


def test_methods_and_urls_reach_the_verifier_as_signed(server):
    """Lowercase and mixed-case methods, and path/query characters a URL library would
    refuse or re-encode, are signed verbatim and verify."""
    s = t.Signer(server["key_id"], server["secret"])
    for method, body in [("get", None), ("PaTcH", b"{}")]:
        status, answer, *_ = send(s, method, server["url"] + "/v1/a|b/{c}/^?q={x}|y^", body=body)
        assert status == 200, (method, answer)
        assert (answer["method"], answer["path"], answer["query"]) == (method, "/v1/a|b/{c}/^", "q={x}|y^")
