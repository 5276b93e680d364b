"""`tessera.auth` (requests, httpx sync and async) and the platform-MAC mode from
Python, against the real verifier (`tessera serve`, started by bindings/run.sh)."""
import asyncio
import hashlib
import http.server
import os
import pathlib
import threading
import time
import urllib.parse
import uuid

import httpx
import pytest
import requests
import tessera_ffi as t
from tessera.auth import TesseraAuth, TesseraHttpxAuth, TesseraSigningError
from tessera.hmac_provider import HmacProvider

MODES = ["in-rust", "platform"]


def make_signer(mode, key_id, secret, covered=(), required=False):
    if mode == "platform":
        return t.Signer.with_mac_provider(key_id, HmacProvider(secret), list(covered),
                                          covered_headers_required=required)
    return t.Signer(key_id, secret, list(covered), covered_headers_required=required)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 running `handler` (a BaseHTTPRequestHandler class)."""

    def __init__(self, handler, host="127.0.0.1"):
        self.httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Redirector(LoopbackServer):
    """A loopback HTTP server that answers every request with `status` and a
    Location to `target` (+ the request path), and records what it received."""

    def __init__(self, status, target, *, exact=False, host="127.0.0.1"):
        seen = self.seen = []
        location = self.location = [target]

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Location", location[0] if exact else location[0] + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        super().__init__(Handler, host)


@pytest.fixture
def redirector(server):
    made = []

    def make(status):
        r = Redirector(status, server["url"])
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize("mode", MODES)
def test_requests_get_and_post_are_accepted(server, mode):
    plain = make_signer(mode, server["key_id"], server["secret"])
    r = requests.get(server["url"] + "/v1/things/a%2Fb?x=1&y=%20", auth=TesseraAuth(plain), timeout=10)
    assert r.status_code == 200, r.text
    assert (r.json()["key_id"], r.json()["path"]) == (server["key_id"], "/v1/things/a%2Fb")
    # content-type is covered when present: the GET at the end carries none and is signed too.
    covered = make_signer(mode, server["key_id"], server["secret"], ["content-type"])
    payload = {"qty": 1, "note": "héllo"}
    with requests.Session() as session:
        session.auth = TesseraAuth(covered)
        r = session.post(server["url"] + "/v1/orders", json=payload, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["body_sha256"] == hashlib.sha256(r.request.body).hexdigest()
        # A str body goes on the wire as urllib3 encodes it (UTF-8 with urllib3 2), and is signed so.
        r = session.put(server["url"] + "/v1/notes", data="café", headers={"Content-Type": "text/plain"},
                        timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["body_sha256"] == hashlib.sha256("café".encode("utf-8")).hexdigest()
        # The same signer, a body-less GET without content-type: signed without it, accepted.
        r = session.get(server["url"] + "/v1/me", timeout=10)
        assert r.status_code == 200, r.text
        assert "content-type" not in r.request.headers["Signature-Input"]


@pytest.mark.parametrize("mode", MODES)
def test_requests_recovers_from_clock_skew_with_one_retry(server, mode):
    s = make_signer(mode, server["key_id"], server["secret"])
    s.set_clock_offset(-3600)
    r = requests.get(server["url"] + "/v1/skew", auth=TesseraAuth(s), timeout=10)
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [401]
    assert r.history[0].json()["code"] == "clock_skew"
    assert abs(s.clock_offset()) <= 2
    assert r.request.headers["Signature-Input"] != r.history[0].request.headers["Signature-Input"]


@pytest.mark.parametrize("status", [303, 307])
def test_requests_signs_each_redirect_hop_afresh(server, redirector, status):
    hop = redirector(status)
    s = make_signer("in-rust", server["key_id"], server["secret"])
    auth = TesseraAuth(s, allow_redirects_to=[server["url"]])
    r = requests.post(hop.url + "/v1/moved", json={"qty": 2}, auth=auth, timeout=10)
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [status]
    answer = r.json()
    assert answer["path"] == "/v1/moved"
    assert answer["method"] == ("GET" if status == 303 else "POST")
    if status == 307:
        assert answer["body_sha256"] == hashlib.sha256(b'{"qty": 2}').hexdigest()
    first = hop.seen[0][2]
    assert first["signature"] != r.request.headers["Signature"]
    assert first["signature-input"] != r.request.headers["Signature-Input"]
    # The caller may also take the 3xx itself.
    r = requests.get(hop.url + "/v1/x", auth=TesseraAuth(s, follow_redirects=False), allow_redirects=False,
                     timeout=10)
    assert r.status_code == status and r.headers["Location"].endswith("/v1/x")


def test_requests_follows_a_non_ascii_location_as_requests_does(server):
    """A Location holding UTF-8 (`/v1/café`) goes to the path requests itself would
    take, `/v1/caf%C3%A9`, signed for that path."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    # http.server writes header values as ISO-8859-1: these are the UTF-8 bytes of é.
    hop = Redirector(302, server["url"] + "/v1/caf\u00c3\u00a9", exact=True)
    try:
        r = requests.get(hop.url + "/v1/a", auth=TesseraAuth(s, allow_redirects_to=[server["url"]]), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["path"] == "/v1/caf%C3%A9"
    finally:
        hop.close()


def test_requests_refuses_unsignable_requests_and_sends_nothing(server, redirector):
    target = redirector(307)
    strict = make_signer("in-rust", server["key_id"], server["secret"], ["x-required"], required=True)
    with pytest.raises(TesseraSigningError) as e:
        requests.get(target.url + "/v1/x", auth=TesseraAuth(strict), timeout=10)
    assert e.value.code == "missing_component"
    s = make_signer("in-rust", server["key_id"], server["secret"])
    with pytest.raises(TesseraSigningError) as e:
        requests.post(target.url + "/v1/x", data=iter([b"a", b"b"]), auth=TesseraAuth(s), timeout=10)
    assert e.value.code == "streaming_body"
    assert target.seen == []


def test_a_host_header_that_contradicts_the_url_is_refused(server, redirector):
    """Sent in origin-form, the request would carry that Host, which the
    verifier signs instead of the URL's authority (spec section 10)."""
    target = redirector(307)
    s = make_signer("in-rust", server["key_id"], server["secret"])
    with pytest.raises(TesseraSigningError) as e:
        requests.get(target.url + "/v1/x", headers={"Host": "api.example.com"}, auth=TesseraAuth(s),
                     timeout=10)
    assert e.value.code == "authority_mismatch"
    assert "api.example.com" in str(e.value)
    with pytest.raises(TesseraSigningError) as e:
        httpx.get(target.url + "/v1/x", headers={"Host": "api.example.com"}, auth=TesseraHttpxAuth(s),
                  timeout=10)
    assert e.value.code == "authority_mismatch"
    assert target.seen == []
    # One that agrees is signed and verifies.
    netloc = urllib.parse.urlsplit(server["url"]).netloc
    r = requests.get(server["url"] + "/v1/x", headers={"Host": netloc.upper()}, auth=TesseraAuth(s), timeout=10)
    assert r.status_code == 200, r.text
    r = httpx.get(server["url"] + "/v1/x", headers={"Host": netloc}, auth=TesseraHttpxAuth(s), timeout=10)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- httpx


@pytest.mark.parametrize("mode", MODES)
def test_httpx_sync_and_async_are_accepted(server, mode):
    s = make_signer(mode, server["key_id"], server["secret"], ["content-type"])
    with httpx.Client(auth=TesseraHttpxAuth(s), timeout=10) as client:
        r = client.get(server["url"] + "/v1/a|b/{c}?q={x}|y^", headers={"Content-Type": "text/plain"})
        assert r.status_code == 200, r.text
        sent_path, _, sent_query = r.request.url.raw_path.decode().partition("?")
        assert (r.json()["path"], r.json()["query"]) == (sent_path, sent_query)
        r = client.post(server["url"] + "/v1/orders", json={"qty": 1})
        assert r.status_code == 200, r.text
        assert r.json()["body_sha256"] == hashlib.sha256(r.request.content).hexdigest()

    async def run():
        async with httpx.AsyncClient(auth=TesseraHttpxAuth(s), timeout=10) as client:

            async def chunks():
                yield b'{"qty":'
                yield b"3}"

            r1, r2 = await asyncio.gather(
                client.get(server["url"] + "/v1/async", headers={"Content-Type": "text/plain"}),
                client.post(server["url"] + "/v1/stream", content=chunks(),
                            headers={"Content-Type": "application/json"}),
            )
            return r1, r2

    r1, r2 = asyncio.run(run())
    assert r1.status_code == 200, r1.text
    assert r2.status_code == 200, r2.text
    assert r2.json()["body_sha256"] == hashlib.sha256(b'{"qty":3}').hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_httpx_recovers_from_clock_skew_sync_and_async(server, mode):
    s = make_signer(mode, server["key_id"], server["secret"])
    s.set_clock_offset(-3600)
    r = httpx.get(server["url"] + "/v1/skew", auth=TesseraHttpxAuth(s), timeout=10)
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [401]
    assert abs(s.clock_offset()) <= 2

    s.set_clock_offset(3600)

    async def run():
        async with httpx.AsyncClient(auth=TesseraHttpxAuth(s), timeout=10) as client:
            return await client.get(server["url"] + "/v1/skew")

    r = asyncio.run(run())
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [401]
    assert abs(s.clock_offset()) <= 2


@pytest.mark.parametrize("status", [303, 308])
def test_httpx_signs_each_redirect_hop_afresh(server, redirector, status):
    hop = redirector(status)
    s = make_signer("platform", server["key_id"], server["secret"])
    auth = TesseraHttpxAuth(s, allow_redirects_to=[server["url"]])
    with httpx.Client(auth=auth, timeout=10) as client:
        r = client.post(hop.url + "/v1/moved", json={"qty": 2})
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [status]
    answer = r.json()
    assert answer["method"] == ("GET" if status == 303 else "POST")
    if status == 308:
        assert answer["body_sha256"] == hashlib.sha256(r.request.content).hexdigest()
    assert hop.seen[0][2]["signature"] != r.request.headers["Signature"]

    async def run():
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:
            return await client.get(hop.url + "/v1/moved-async")

    r = asyncio.run(run())
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/v1/moved-async"


def test_redirects_to_another_origin_are_not_followed_unless_allowed(server):
    """A redirect to another origin is handed back, and the other origin hears nothing;
    an allowed one gets a fresh signature and none of the request's credentials."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    foreign = Redirector(302, server["url"])
    first = Redirector(307, foreign.url)
    try:
        secrets = {"Authorization": "Bearer SECRET-TOKEN", "Cookie": "session=1"}
        r = requests.post(first.url + "/v1/a", json={"qty": 1}, headers=secrets, auth=TesseraAuth(s),
                          allow_redirects=False, timeout=10)
        assert r.status_code == 307 and r.headers["Location"] == foreign.url + "/v1/a"
        with httpx.Client(auth=TesseraHttpxAuth(s), timeout=10) as client:
            r = client.post(first.url + "/v1/b", json={"qty": 1}, headers=secrets)
        assert r.status_code == 307
        assert foreign.seen == []

        # Allowed: followed, signed for the new origin, without the credentials. (The next hop,
        # back to the verifier, is another origin that is not allowed: handed back.)
        r = requests.post(first.url + "/v1/c", json={"qty": 1}, headers=secrets,
                          auth=TesseraAuth(s, allow_redirects_to=[foreign.url]), allow_redirects=False,
                          timeout=10)
        assert r.status_code == 302 and r.url == foreign.url + "/v1/c"
        with httpx.Client(auth=TesseraHttpxAuth(s, allow_redirects_to=[foreign.url]), timeout=10) as client:
            r = client.post(first.url + "/v1/d", json={"qty": 1}, headers=secrets)
        assert r.status_code == 302
        assert [(m, p) for m, p, _, _ in foreign.seen] == [("POST", "/v1/c"), ("POST", "/v1/d")]
        for _, _, headers, body in foreign.seen:
            assert "authorization" not in headers and "cookie" not in headers, headers
            assert "signature-input" in headers, headers
            assert body in (b'{"qty": 1}', b'{"qty":1}'), body
        with pytest.raises(ValueError):
            TesseraAuth(s, allow_redirects_to=["api.example.com"])
    finally:
        first.close()
        foreign.close()


def test_requests_following_a_handed_back_redirect_sends_no_signature(server):
    """With requests' default allow_redirects=True, a 3xx the auth hands back (another
    origin) is followed by requests itself: that hop carries neither the signature nor
    the credentials, so the other origin has nothing to replay."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    foreign = Redirector(302, server["url"])
    first = Redirector(307, foreign.url)
    try:
        secrets = {"Authorization": "Bearer SECRET-TOKEN", "Cookie": "session=1"}
        r = requests.post(first.url + "/v1/e", json={"qty": 1}, headers=secrets, auth=TesseraAuth(s),
                          timeout=10)
        # requests went on to the verifier, unsigned: refused there.
        assert r.status_code == 401 and r.json()["code"] == "missing_signature", r.text
        assert [(m, p) for m, p, _, _ in foreign.seen] == [("POST", "/v1/e")]
        _, _, headers, _ = foreign.seen[0]
        for name in ("signature", "signature-input", "content-digest", "authorization", "cookie"):
            assert name not in headers, (name, headers)
        # Nor anything after it: a chain the other origin steers (here back to itself) is
        # requests' own, never signed by the auth.
        evil = Redirector(307, "")
        entry = Redirector(307, evil.url)
        try:
            r = requests.post(entry.url + "/v1/g", json={"qty": 1}, auth=TesseraAuth(s), timeout=10)
            assert r.status_code == 307, r.status_code  # requests gives up after its own limit
        except requests.TooManyRedirects:
            pass
        finally:
            entry.close()
            evil.close()
        assert evil.seen, "the other origin was reached"
        for _, _, headers, _ in evil.seen:
            assert "signature-input" not in headers and "signature" not in headers, headers
        # The same with follow_redirects=False: the hop requests makes is unsigned too.
        r = requests.get(first.url + "/v1/f", auth=TesseraAuth(s, follow_redirects=False), timeout=10)
        assert r.status_code == 401
        assert "signature-input" not in foreign.seen[-1][2], foreign.seen[-1]
    finally:
        first.close()
        foreign.close()


def test_a_location_that_url_parsers_read_differently_is_not_followed(server):
    """`http://OTHER\\@API/next`: urlsplit reads host API, urllib3 (which connects)
    reads OTHER. The auth judges the URL as it will be sent, so nothing signed, and
    none of the request's credentials, reaches the other host; a 3xx handed back
    to an httpx caller carries no signature for its next hop."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    other = Redirector(302, server["url"], host="127.0.0.2")
    first = Redirector(302, "", exact=True)
    first.location[0] = f"http://127.0.0.2:{other.port}\\@127.0.0.1:{first.port}/next"
    try:
        secrets = {"Authorization": "Bearer SECRET-TOKEN", "Cookie": "session=1"}
        r = requests.get(first.url + "/v1/a", headers=secrets, auth=TesseraAuth(s),
                         allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.status_code
        assert other.seen == [], other.seen
        # Handed back with the signature fields taken off, should requests follow it itself.
        for name in ("signature", "signature-input", "content-digest"):
            assert name not in r.request.headers, name
        with httpx.Client(auth=TesseraHttpxAuth(s, follow_redirects=False), timeout=10) as client:
            r = client.get(first.url + "/v1/c", headers=secrets)
        assert r.status_code == 302 and r.next_request is not None
        for name in ("signature", "signature-input", "content-digest"):
            assert name not in r.next_request.headers, name
        assert other.seen == [], other.seen
    finally:
        first.close()
        other.close()


def test_an_httpx_client_that_follows_redirects_itself_is_named(server):
    """httpx's own redirect following resends the signature to each hop before the
    auth sees an answer: the auth says so instead of returning the hop's refusal."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    first = Redirector(307, server["url"])
    try:
        with httpx.Client(auth=TesseraHttpxAuth(s), follow_redirects=True, timeout=10) as client:
            with pytest.raises(TesseraSigningError) as e:
                client.get(first.url + "/v1/moved")
        assert e.value.code == "client_followed_redirects"
        assert "follow_redirects=False" in str(e.value)
    finally:
        first.close()


class CookieRedirect(LoopbackServer):
    """`/start` answers 302 to `/final` setting cookie b=2; `/final` answers 200 with
    the Cookie field it received."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/start":
                    self.send_response(302)
                    self.send_header("Location", "/final")
                    self.send_header("Set-Cookie", "b=2; Path=/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = (self.headers.get("Cookie") or "").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def test_requests_same_origin_hops_carry_the_sessions_cookies(server):
    """A hop the auth follows carries the cookies requests would send: the session's for
    that URL, and those the 3xx set."""
    s = make_signer("in-rust", server["key_id"], server["secret"])
    site = CookieRedirect()
    try:
        session = requests.Session()
        session.cookies.set("sid", "abc", domain="127.0.0.1", path="/")
        r = session.get(site.url + "/start", auth=TesseraAuth(s), timeout=10)
        assert r.status_code == 200 and [h.status_code for h in r.history] == [302]
        sent = sorted(part.strip() for part in r.text.split(";"))
        assert sent == ["b=2", "sid=abc"], r.text
    finally:
        site.close()


# ---------------------------------------------------------------- platform MAC failures


class Failing:
    def mac(self, message):
        raise RuntimeError("KeyPermanentlyInvalidatedException")


class Short:
    def mac(self, message):
        return b"\x00" * 20


def test_provider_failures_are_named_errors():
    req = t.HttpRequest(method="GET", url="https://api.example.com/v1/x", headers=[])
    for provider, code, text in [(Failing(), "mac_provider_failed", "KeyPermanentlyInvalidatedException"),
                                 (Short(), "mac_wrong_length", "20 bytes")]:
        s = t.Signer.with_mac_provider("phone-1", provider)
        with pytest.raises(t.TesseraError.MacFailed) as e:
            s.sign(req)
        assert e.value.code == code and text in e.value.detail
        with pytest.raises(t.TesseraError.MacFailed):
            s.apply_skew_challenge('time=1, keyid="phone-1", nonce="AAAAAAAAAAAAAAAAAAAAAA", mac=:AAAA:',
                                   "AAAAAAAAAAAAAAAAAAAAAA")
        assert s.clock_offset() == 0


class Interrupted:
    def mac(self, message):
        raise KeyboardInterrupt()


class Verbose:
    def mac(self, message):
        raise RuntimeError("x" * 1_000_000)


# UniFFI's ctypes callback reports the KeyboardInterrupt as "Exception ignored".
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_provider_interrupts_and_long_texts_give_readable_errors():
    req = t.HttpRequest(method="GET", url="https://api.example.com/v1/x", headers=[])
    with pytest.raises(t.TesseraError.MacFailed) as e:
        t.Signer.with_mac_provider("phone-1", Interrupted()).sign(req)
    assert e.value.code == "mac_provider_failed"
    assert "returned no bytes" in e.value.detail and "KeyboardInterrupt" in e.value.detail
    with pytest.raises(t.TesseraError.MacFailed) as e:
        t.Signer.with_mac_provider("phone-1", Verbose()).sign(req)
    assert "more bytes cut" in e.value.detail and len(e.value.detail) < 1000


def test_the_hex_text_of_a_secret_is_refused():
    secret = bytes(range(32))
    with pytest.raises(t.TesseraError.InvalidConfig) as e:
        t.Signer("k1", secret.hex().encode())
    assert e.value.code == "invalid_parameter" and "bytes.fromhex" in e.value.detail
    assert secret.hex() not in e.value.detail
    t.Signer("k1", bytes.fromhex(secret.hex()))
    with pytest.raises(t.TesseraError.InvalidConfig) as e:
        t.Signer("k1", b"short")
    assert "got 5" in e.value.detail


def test_a_failing_provider_sends_nothing(server):
    """requests and httpx raise before connecting; the verifier's access log
    (bindings/run.sh passes its path) never shows the request, though it shows
    the requests sent just before and after."""
    log = os.environ.get("TESSERA_SERVER_LOG")
    if not log:
        pytest.skip("no server access log configured (TESSERA_SERVER_LOG)")
    run = uuid.uuid4().hex

    def served(path):
        return path in pathlib.Path(log).read_text()

    def await_served(path):
        deadline = time.monotonic() + 5
        while not served(path):
            assert time.monotonic() < deadline, f"{path} never reached the access log"
            time.sleep(0.02)

    good = TesseraAuth(make_signer("platform", server["key_id"], server["secret"]))
    assert requests.get(f"{server['url']}/v1/before-{run}", auth=good, timeout=10).status_code == 200
    await_served(f"/v1/before-{run}")
    bad = t.Signer.with_mac_provider(server["key_id"], Failing())
    with pytest.raises(TesseraSigningError) as e:
        requests.get(f"{server['url']}/v1/never-{run}", auth=TesseraAuth(bad), timeout=10)
    assert e.value.code == "mac_provider_failed"
    with pytest.raises(TesseraSigningError) as e:
        httpx.get(f"{server['url']}/v1/never-{run}", auth=TesseraHttpxAuth(bad), timeout=10)
    assert e.value.code == "mac_provider_failed"
    assert requests.get(f"{server['url']}/v1/after-{run}", auth=good, timeout=10).status_code == 200
    await_served(f"/v1/after-{run}")
    assert not served(f"/v1/never-{run}")
