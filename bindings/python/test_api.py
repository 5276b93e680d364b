"""The FFI API from Python: signing, errors with codes, clock offset."""
import hashlib
import time

import pytest
import tessera_ffi as t

SECRET = bytes.fromhex("0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186")


def get(url, *headers):
    return t.HttpRequest(method="GET", url=url, headers=[t.HttpHeader(name=n, value=v) for n, v in headers])


def test_sign_at_reproduces_the_basic_vector():
    s = t.Signer("device-7f3a2c", SECRET)
    req = get("https://api.example.com/v1/orders?limit=10", ("Accept", "application/json"))
    signed = s.sign_at(req, 1_700_000_000, "sWdxpjKCug4loESa7u_Yzg", None)
    assert [h.name for h in signed.headers] == ["content-digest", "signature-input", "signature"]
    assert signed.headers[2].value == "tessera=:egSwrhVo92N7oJhkbfRWjM7ZdfnfSQl4/SXI217/40g=:"
    assert (signed.created, signed.nonce, signed.expires) == (1_700_000_000, "sWdxpjKCug4loESa7u_Yzg", None)
    assert s.signature_base(req, signed).startswith('"@method": GET\n"@authority": api.example.com\n')


def test_sign_fresh_nonce_extra_headers_and_digest_variant():
    s = t.Signer("device-7f3a2c", SECRET, ["content-type"], 60)
    assert s.covered_headers() == ["content-type"] and s.key_id() == "device-7f3a2c"
    body = b'{"qty":1}'
    req = t.HttpRequest(method="POST", url="https://api.example.com/v1/orders",
                        headers=[t.HttpHeader(name="Content-Type", value="application/json")], body=body)
    a, b = s.sign(req), s.sign(req)
    assert a.nonce != b.nonce and len(a.nonce) == 22
    assert abs(a.created - int(time.time())) <= 2 and a.expires == a.created + 60
    assert '"content-digest" "content-type");created=' in a.headers[1].value
    req.body = None
    c = s.sign_with_digest(req, hashlib.sha256(body).digest())
    assert c.headers[0] == a.headers[0]
    assert c.headers[0].value == t.content_digest(body)


@pytest.mark.parametrize("args, code", [
    (("has space", SECRET), "invalid_parameter"),
    (("k", bytes(15)), "invalid_parameter"),
    (("k", SECRET, ["host"]), "forbidden_component"),
    (("k", SECRET, ["content-digest"]), "duplicate_component"),
    (("k", SECRET, [], 0), "invalid_parameter"),
])
def test_configuration_errors_carry_codes(args, code):
    with pytest.raises(t.TesseraError) as e:
        t.Signer(*args)
    assert isinstance(e.value, t.TesseraError.InvalidConfig)
    assert e.value.code == code


def test_covered_headers_are_covered_when_present_unless_required():
    s = t.Signer("k1", SECRET, ["content-type"])
    def signature_input(signed):
        return next(h.value for h in signed.headers if h.name == "signature-input")

    assert "content-type" not in signature_input(s.sign(get("https://api.example.com/v1/me")))
    typed = s.sign(get("https://api.example.com/v1/me", ("Content-Type", "application/json")))
    assert '"content-digest" "content-type")' in signature_input(typed)


def test_request_errors_carry_codes():
    s = t.Signer("k1", SECRET, ["content-type"], covered_headers_required=True)
    with pytest.raises(t.TesseraError.InvalidRequest) as e:
        s.sign(get("https://api.example.com/"))
    assert e.value.code == "missing_component" and "content-type" in e.value.detail
    for req in [get("https://api.example.com/", ("content-type", "a\nb")), get("/relative", ("content-type", "x"))]:
        with pytest.raises(t.TesseraError) as e:
            s.sign(req)
        assert e.value.code == "invalid_field_value"
    with pytest.raises(t.TesseraError) as e:
        s.sign_with_digest(get("https://a.example/", ("content-type", "x")), b"short")
    assert e.value.code == "invalid_parameter"
    with pytest.raises(TypeError):
        t.Signer("k1", "not-bytes")


def test_clock_offset_and_forged_challenges():
    s = t.Signer("k1", SECRET)
    assert s.clock_offset() == 0
    sent = s.sign(get("https://api.example.com/"))
    forged = f'time=1, keyid="k1", nonce="{sent.nonce}", mac=:{"A" * 43}=:'
    with pytest.raises(t.TesseraError.InvalidChallenge) as e:
        s.apply_skew_challenge(forged, sent.nonce)
    assert e.value.code == "bad_signature"
    with pytest.raises(t.TesseraError) as e:
        s.apply_skew_challenge(forged, "B" * 22)
    assert e.value.code == "malformed_signature"
    assert s.clock_offset() == 0
    s.set_clock_offset(120)
    assert s.clock_offset() == 120
    assert abs(s.sign(get("https://api.example.com/")).created - (int(time.time()) + 120)) <= 2
    assert abs(s.now() - (int(time.time()) + 120)) <= 2


@pytest.mark.parametrize("names, bad, lower", [
    (["Content-Type"], "Content-Type", "content-type"),
    (["x-request-id", "X-Request-ID"], "X-Request-ID", "x-request-id"),
])
def test_uppercase_covered_names_are_refused_not_lowercased(names, bad, lower):
    with pytest.raises(t.TesseraError.InvalidConfig) as e:
        t.Signer("k1", SECRET, names)
    assert e.value.code == "malformed_signature"
    assert f'"{bad}"' in e.value.detail and f'use "{lower}"' in e.value.detail, e.value.detail
    # Lowercase names are fine, whatever the case of the header lines.
    s = t.Signer("k1", SECRET, [lower])
    assert s.covered_headers() == [lower]
    s.sign(get("https://api.example.com/", (bad.upper(), "v")))


@pytest.mark.parametrize("method", ["get", "PaTcH", "GET"])
def test_methods_are_signed_exactly_as_given(method):
    s = t.Signer("device-7f3a2c", SECRET)
    req = get("https://api.example.com/v1/orders?limit=10")
    req.method = method
    signed = s.sign_at(req, 1_700_000_000, "sWdxpjKCug4loESa7u_Yzg", None)
    assert s.signature_base(req, signed).startswith(f'"@method": {method}\n')
    if method != method.upper():
        req.method = method.upper()
        upper = s.sign_at(req, 1_700_000_000, "sWdxpjKCug4loESa7u_Yzg", None)
        assert upper.headers[2].value != signed.headers[2].value


def test_urls_are_signed_verbatim():
    s = t.Signer("device-7f3a2c", SECRET)

    def base(url):
        return s.signature_base(get(url), s.sign_at(get(url), 1_700_000_000, "sWdxpjKCug4loESa7u_Yzg", None))

    odd = base(r'https://api.example.com/a/"q"/<b>/c\d/^/`e`/{f}/g|h?x="1"&y=<2>&z=`^{}|')
    assert '"@path": /a/"q"/<b>/c\\d/^/`e`/{f}/g|h\n"@query": ?x="1"&y=<2>&z=`^{}|\n' in odd, odd
    assert '"@authority": api.ex%61mple.com\n' in base("https://api.ex%61mple.com/v1/x")
    for url in ["https://api.example.com/café", "https://api.example.com/x?q=ÿ", "https://api.example.com/a b",
                "https://user@api.example.com/", "https://api.example.com:65536/"]:
        with pytest.raises(t.TesseraError.InvalidRequest) as e:
            s.sign(get(url))
        assert e.value.code == "invalid_field_value", url


def test_every_sign_call_is_a_new_signature_so_retries_must_call_sign_again():
    # Spec §10: a resend carries a new signature; only a new sign() call makes one.
    s = t.Signer("device-7f3a2c", SECRET, ["content-type"])
    req = t.HttpRequest(method="POST", url="https://api.example.com/v1/orders",
                        headers=[t.HttpHeader(name="Content-Type", value="application/json")], body=b'{"qty":1}')
    attempts = [s.sign(req) for _ in range(200)]
    header = lambda signed, name: next(h.value for h in signed.headers if h.name == name)  # noqa: E731
    assert len({a.nonce for a in attempts}) == 200
    assert len({header(a, "signature") for a in attempts}) == 200
    assert len({header(a, "signature-input") for a in attempts}) == 200
    # The body digest is the same; the nonce is what differs ...
    assert len({header(a, "content-digest") for a in attempts}) == 1
    # ... and with the same (created, nonce) the signature is the same bytes, which a
    # verifier answers `replayed` once it has recorded the first copy.
    first = attempts[0]
    again = s.sign_at(req, first.created, first.nonce, first.expires)
    assert header(again, "signature") == header(first, "signature")
