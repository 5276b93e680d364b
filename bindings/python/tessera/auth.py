"""Sign `requests` and `httpx` requests with a Tessera `Signer`.

    import requests, httpx
    from tessera_ffi import Signer
    from tessera.auth import TesseraAuth, TesseraHttpxAuth

    signer = Signer("user-42", secret, ["content-type"])
    requests.post(url, json={"qty": 1}, auth=TesseraAuth(signer))
    httpx.post(url, json={"qty": 1}, auth=TesseraHttpxAuth(signer))
    async with httpx.AsyncClient(auth=TesseraHttpxAuth(signer)) as client: ...

Both sign every request as it will be sent (method as given, the URL's path and
query as they go on the request line, the headers the signer covers, the body),
and for every request they send:

* **Redirects are signed again.** A signature covers the URL, so a redirected
  hop carrying the first hop's signature would be refused, and a signature is
  never sent twice (spec §10). The auth follows redirects itself, each hop
  signed afresh, with the usual method rules (303, and 301/302 for anything
  but GET/HEAD, become a body-less GET; 307/308 keep the method and body), at
  most `max_redirects` hops, each with the cookies the session holds for it
  (and those the 3xx set). Pass `follow_redirects=False` to get the 3xx back
  (with `requests`, also pass `allow_redirects=False`). A 3xx the auth hands
  back, to another origin or with `follow_redirects=False`, has the signature
  fields removed from its request (and from the first request of the chain),
  so that if requests follows it itself (or an httpx caller sends its
  `next_request`) it sends them nowhere: the next hop goes unsigned. Whether
  a hop leaves the origin is judged on the URL the HTTP library will connect
  to; a `Location` that two URL parsers read differently (`http://a\\@b/`) is
  handed back, not followed.
  With httpx, leave the client's `follow_redirects` off (httpx's default): a
  client that follows redirects itself sends the first signature to every
  hop, whatever its origin, before the auth sees any answer. The auth then
  raises `TesseraSigningError` (code `client_followed_redirects`) on the first
  such response, so the mistake shows at once.
* **One retry on an authenticated clock-skew challenge.** On a `401` with a
  `Tessera-Server-Time` header whose MAC verifies under the signer's key for
  the nonce just sent, the signer adopts the server's clock
  (`Signer.apply_skew_challenge`) and the request is signed afresh and sent
  once more. A challenge that does not verify is ignored: the 401 is returned.
* **Fail closed.** A request that cannot be signed (a required covered header
  missing, with `covered_headers_required=True`; a body that is a stream; a MAC
  provider that fails) raises `TesseraSigningError` before anything is sent.

Bodies must be in memory (`bytes`, or `str` as `requests` sends it); for
`httpx` a streamed body is read first (`requires_request_body`).
"""
from __future__ import annotations

import typing
from urllib.parse import urljoin, urlsplit

import tessera_ffi

__all__ = ["TesseraAuth", "TesseraHttpxAuth", "TesseraSigningError", "SERVER_TIME_HEADER"]

#: The response header of the authenticated server-time challenge.
SERVER_TIME_HEADER = "Tessera-Server-Time"

_SIGNED = ("content-digest", "signature-input", "signature")
_DEFAULT_MAX_REDIRECTS = 30


class TesseraSigningError(Exception):
    """A request could not be signed; nothing was sent.

    `code` is the tessera-v1 code (`missing_component`, `invalid_field_value`,
    ...) or the client's own (`mac_provider_failed`, `mac_wrong_length`,
    `streaming_body`, `client_followed_redirects`); `__cause__` is the
    `tessera_ffi.TesseraError`, if any.
    """

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _sign(signer, method: str, url: str, headers: typing.Iterable[tuple[str, str]], body: bytes | None):
    """Signs one request through the FFI; returns the `SignedHeaders`."""
    request = tessera_ffi.HttpRequest(
        method=method,
        url=url,
        headers=[tessera_ffi.HttpHeader(name=n, value=v) for n, v in headers],
        body=body or None,
    )
    try:
        return signer.sign(request)
    except tessera_ffi.TesseraError as e:
        target = url.split("?", 1)[0]
        raise TesseraSigningError(f"cannot sign {method} {target}: {e.detail}", e.code) from e


_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, lower-case, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: no origin matches it
        return (scheme, "", -1)
    return (scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme))


class _Redirects:
    """Which redirect targets the auth follows: the origin of the request, or one allowed."""

    def __init__(self, allowed: typing.Iterable[str]):
        self.allowed = {_origin(o) for o in allowed}
        for origin in self.allowed:
            if origin[0] not in _DEFAULT_PORTS or not origin[1]:
                raise ValueError(f"allow_redirects_to takes origins such as https://api.example.com: {origin}")

    def follows(self, previous_url: str, next_url: str) -> tuple[bool, bool]:
        """(follow it, it leaves the origin): whether to follow a hop, and whether to strip credentials."""
        if _origin(previous_url) == _origin(next_url):
            return True, False
        return _origin(next_url) in self.allowed, True


def _redirect_method(status: int, method: str) -> str:
    """The method of the next hop, as browsers, requests and httpx choose it."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method not in ("GET", "HEAD"):
        return "GET"
    return method


def _challenge(status: int, headers) -> str | None:
    return headers.get(SERVER_TIME_HEADER) if status == 401 else None


def _adopt(signer, challenge: str, nonce: str) -> bool:
    """Checks a clock-skew challenge for `nonce`; adopts the server's clock when it verifies."""
    try:
        signer.apply_skew_challenge(challenge, nonce)
        return True
    except tessera_ffi.TesseraError:
        return False  # forged, replayed, for another request, or the provider failed


# --------------------------------------------------------------------------- requests

try:
    import requests as _requests
    from requests.auth import AuthBase as _AuthBase
except ImportError:  # requests is optional
    _requests = None
    _AuthBase = object

# How a `str` body goes on the wire, as requests computes its Content-Length:
# UTF-8 with urllib3 2, ISO-8859-1 (http.client's rule) with urllib3 1.
_STR_BODY_ENCODING = (
    "iso-8859-1" if _requests is not None and getattr(_requests.compat, "is_urllib3_1", False) else "utf-8"
)


class TesseraAuth(_AuthBase):
    """`requests` authentication: signs each request with `signer` (a `tessera_ffi.Signer`).

    ``requests.get(url, auth=TesseraAuth(signer))``, or ``session.auth = TesseraAuth(signer)``.
    See the module documentation for redirects and the clock-skew retry.
    """

    def __init__(
        self,
        signer,
        *,
        follow_redirects: bool = True,
        max_redirects: int = _DEFAULT_MAX_REDIRECTS,
        allow_redirects_to: typing.Iterable[str] = (),
    ):
        if _requests is None:
            raise ImportError("TesseraAuth needs the requests package")
        self.signer = signer
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.redirects = _Redirects(allow_redirects_to)

    def __call__(self, r):
        self._sign_prepared(r)
        r.register_hook("response", self._on_response)
        return r

    def _sign_prepared(self, r) -> None:
        body = r.body
        if isinstance(body, str):
            body = body.encode(_STR_BODY_ENCODING)
        elif isinstance(body, bytearray):
            body = bytes(body)
        elif body is not None and not isinstance(body, bytes):
            raise TesseraSigningError(
                "cannot sign a streamed request body (a file or generator): pass the body as bytes",
                "streaming_body",
            )
        for name in _SIGNED:
            r.headers.pop(name, None)
        parts = urlsplit(r.url)
        # Userinfo never goes on the wire (urllib3's Host has none), so it is not signed.
        authority = parts.netloc.rpartition("@")[2]
        url = f"{parts.scheme}://{authority}{r.path_url}"
        signed = _sign(self.signer, r.method, url, r.headers.items(), body)
        for h in signed.headers:
            r.headers[h.name] = h.value
        r._tessera_nonce = signed.nonce  # the nonce a clock-skew challenge must name

    def _resend(self, response, request, **kwargs):
        """Sends `request` (just signed) on the connection of `response`, which is released first."""
        response.content  # noqa: B018  (read the body, so the connection can be reused)
        response.close()
        new = response.connection.send(request, **kwargs)
        new.history = [*response.history, response]
        new.request = request
        return new

    def _on_response(self, response, **kwargs):
        if getattr(response.request, "_tessera_nonce", None) is None:
            # A hop requests sent itself (its copy keeps the hook, not the
            # nonce): not signed by this auth, so neither followed nor signed
            # here; whoever redirected it does not get a signature.
            return response
        skew_retried = False
        hops = 0
        while True:
            request = response.request
            challenge = _challenge(response.status_code, response.headers)
            nonce = getattr(request, "_tessera_nonce", None)
            if challenge and not skew_retried and nonce and _adopt(self.signer, challenge, nonce):
                skew_retried = True
                retry = request.copy()
                self._sign_prepared(retry)
                response = self._resend(response, retry, **kwargs)
                continue
            if response.is_redirect and not self.follow_redirects:
                return _unsigned_for_requests(response)
            if response.is_redirect:
                hop = self._next_hop(response)
                if hop is None:
                    # Another origin, not allowed: the caller gets the 3xx.
                    return _unsigned_for_requests(response)
                hops += 1
                if hops > self.max_redirects:
                    raise _requests.TooManyRedirects(
                        f"exceeded {self.max_redirects} redirects", response=response
                    )
                self._sign_prepared(hop)
                response = self._resend(response, hop, **kwargs)
                continue
            return response

    def _next_hop(self, response):
        """The redirect target of `response` as a new prepared request (not signed yet),
        or None when it lies on an origin the auth does not follow."""
        location = response.headers["location"]
        # As requests reads it (get_redirect_target): http.client decoded the
        # field as ISO-8859-1, but servers send a non-ASCII Location as UTF-8.
        try:
            location = location.encode("latin1").decode("utf8")
        except UnicodeError:
            pass
        previous = response.request
        if location.startswith("//"):
            location = f"{urlsplit(previous.url).scheme}:{location}"
        target = urljoin(previous.url, location)
        hop = previous.copy()
        try:
            hop.prepare_url(target, None)
        except (_requests.exceptions.RequestException, ValueError):
            return None  # not a URL requests can send: the caller gets the 3xx
        # Judged on the URL as prepared, the one urllib3 connects to, and only
        # when urlsplit reads the same origin from it: for a Location such as
        # `http://other:80\@api:80/` the two parsers name different hosts.
        if _origin(hop.url) != _origin_as_connected(hop.url):
            return None
        follow, leaves = self.redirects.follows(previous.url, hop.url)
        if not follow:
            return None
        hop.method = _redirect_method(response.status_code, previous.method)
        if response.status_code not in (307, 308):
            for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
                hop.headers.pop(name, None)
            hop.body = None
        if leaves:
            for name in _CREDENTIALS:
                hop.headers.pop(name, None)
        # Cookies as requests would send them on this hop: those of the
        # session's jar (and of the 3xx's Set-Cookie) that match the target,
        # so another origin gets only its own.
        hop.headers.pop("Cookie", None)
        # `copy()` copied the jar (any CookieJar, not only requests' own).
        jar = hop._cookies if hop._cookies is not None else _requests.cookies.RequestsCookieJar()
        if response.raw is not None:
            _requests.cookies.extract_cookies_to_jar(jar, previous, response.raw)
        hop.prepare_cookies(jar)
        return hop


def _origin_as_connected(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url` as urllib3, which opens the connection, parses it."""
    from urllib3.util import parse_url

    try:
        parts = parse_url(url)
    except ValueError:  # urllib3's LocationParseError is a ValueError
        return ("", "", -1)
    scheme = (parts.scheme or "").lower()
    host = (parts.host or "").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # urlsplit's hostname has no brackets
    return (scheme, host, parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme))


def _unsigned_for_requests(response):
    """`response`, a 3xx the auth does not follow, with the signature fields
    taken off the request requests would copy if it follows the redirect
    itself (`allow_redirects=True`, its default): that hop then carries no
    signature, which would be a resent one (spec §10) and, to another origin,
    a credential the origin could replay. requests copies the first request
    of the chain, so that one loses them too."""
    requests_to_strip = [response.request]
    if response.history:
        requests_to_strip.append(response.history[0].request)
    for request in requests_to_strip:
        for name in _SIGNED:
            request.headers.pop(name, None)
    return response


# --------------------------------------------------------------------------- httpx

try:
    import httpx as _httpx

    _HttpxAuthBase = _httpx.Auth
except ImportError:  # httpx is optional
    _httpx = None
    _HttpxAuthBase = object


class TesseraHttpxAuth(_HttpxAuthBase):
    """`httpx` authentication, sync and async: signs each request with `signer`.

    ``httpx.Client(auth=TesseraHttpxAuth(signer))`` or
    ``httpx.AsyncClient(auth=TesseraHttpxAuth(signer))``; leave the client's
    `follow_redirects` off (httpx's default), this auth follows them itself,
    signing each hop. See the module documentation.
    """

    # The body is hashed, so httpx reads a streamed body before the flow starts
    # (for AsyncClient too: httpx's async_auth_flow runs this sync flow).
    requires_request_body = True

    def __init__(
        self,
        signer,
        *,
        follow_redirects: bool = True,
        max_redirects: int = _DEFAULT_MAX_REDIRECTS,
        allow_redirects_to: typing.Iterable[str] = (),
    ):
        if _httpx is None:
            raise ImportError("TesseraHttpxAuth needs the httpx package")
        self.signer = signer
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.redirects = _Redirects(allow_redirects_to)

    def _sign(self, request) -> str:
        for name in _SIGNED:
            request.headers.pop(name, None)
        url = request.url
        authority = url.netloc.decode("ascii")  # host[:port], lowercase, IDNA; no userinfo
        target = url.raw_path.decode("ascii")  # path and query as on the request line
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        signed = _sign(self.signer, request.method, f"{url.scheme}://{authority}{target}", headers, request.content)
        for h in signed.headers:
            request.headers[h.name] = h.value
        return signed.nonce

    def auth_flow(self, request):
        nonce = self._sign(request)
        response = yield request
        skew_retried = False
        hops = 0
        received = 1  # responses this flow has received, this one included
        while True:
            # httpx lists in `history` the responses this flow received
            # before, then any redirect it followed itself, each hop carrying
            # the signature of the request this flow signed.
            if len(response.history) >= received:
                raise TesseraSigningError(
                    "the httpx client followed a redirect itself, resending this request's signature "
                    "to the next hop: create the client with follow_redirects=False (httpx's default); "
                    "TesseraHttpxAuth follows redirects itself, signing each hop",
                    "client_followed_redirects",
                )
            challenge = _challenge(response.status_code, response.headers)
            if challenge and not skew_retried and _adopt(self.signer, challenge, nonce):
                skew_retried = True
                nonce = self._sign(request)
                response = yield request
                received += 1
                continue
            hop = response.next_request
            if self.follow_redirects and hop is not None:
                follow, leaves = self.redirects.follows(str(request.url), str(hop.url))
                if not follow:
                    # Another origin, not allowed: the caller gets the 3xx,
                    # and a client that follows it sends no signature there.
                    _unsigned_for_httpx(response)
                    return
                if leaves:
                    for name in _CREDENTIALS:
                        hop.headers.pop(name, None)
                hops += 1
                if hops > self.max_redirects:
                    raise _httpx.TooManyRedirects(f"exceeded {self.max_redirects} redirects", request=hop)
                hop.read()  # the body (307/308) is the one already read, in memory
                request = hop
                nonce = self._sign(request)
                response = yield request
                received += 1
                continue
            _unsigned_for_httpx(response)
            return


def _unsigned_for_httpx(response) -> None:
    """Takes the signature fields off the request httpx would send if the
    client follows `response` (a 3xx handed back) itself: httpx copies the
    headers of the request just sent, so that hop would carry a signature
    already used (spec §10) to wherever the 3xx points."""
    hop = getattr(response, "next_request", None)
    if hop is not None:
        for name in _SIGNED:
            hop.headers.pop(name, None)
