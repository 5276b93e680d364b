#!/usr/bin/env python3
"""Independent check of spec/vectors with an RFC 9421 implementation we did not write.

The implementation is pyauth's `http-message-signatures` (PyPI), pinned in
requirements.txt. For every positive vector:

  (a) verify: the library parses our Signature-Input, builds the signature
      base itself from the request (method, URL, header lines) and checks our
      HMAC-SHA256 Signature; for tessera-v1 vectors it also checks our
      Content-Digest against the body (sha-256). Nothing of our signature base
      is used.
  (b) sign: the library signs the same request with the same components and
      parameters (created, expires, keyid, nonce, tag="tessera-v1", label
      "tessera"; `alg` included on every other case) and adds its own
      Content-Digest. The Signature-Input, Signature and Content-Digest it
      produced are written to --out for `tessera-vectors verify-external`,
      which verifies them with tessera_core::verify.

Workarounds (see README.md):
  * The library reads the wall clock for `created`/`expires` checks. Its
    module-level `datetime` is replaced by one frozen at the vector's `now`,
    and `max_clock_skew` is set to the vector's window with `max_age=0`, so
    its own time checks accept created within the window either way (wider
    than tessera-v1's 2 s ahead; only positive cases are checked here, and
    none is dated more than 2 s ahead).
  * The library's URL parser is strict RFC 3986 and rejects characters that
    http::Uri accepts in a path or query (`{`, `}`, `|`, `^`). For such URLs
    only, a fallback parser with the same grammar plus those characters is
    used; the library still derives @authority/@path/@query, the base and the
    HMAC. The number of such cases is printed.
"""

import argparse
import base64
import datetime
import json
import pathlib
import re
import sys
import types

import http_message_signatures.resolvers as resolvers_module
import http_message_signatures.signatures as signatures_module
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures._url import URLParts, parse_url

MANDATORY = ["@method", "@authority", "@path", "@query", "content-digest"]
TAG = "tessera-v1"
LABEL = "tessera"


# --- clock --------------------------------------------------------------------

class _FrozenDateTime(datetime.datetime):
    frozen = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

    @classmethod
    def now(cls, tz=None):
        return cls.frozen if tz is None else cls.frozen.astimezone(tz)


signatures_module.datetime = types.SimpleNamespace(
    datetime=_FrozenDateTime, timezone=datetime.timezone, timedelta=datetime.timedelta
)


def freeze_clock(now: int) -> None:
    _FrozenDateTime.frozen = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)


# --- lenient URL fallback ---------------------------------------------------------

# Every visible ASCII octet spec §8.4 allows in a path or query that RFC 3986
# does not: the library's parser refuses them, this one splits them verbatim.
_EXTRA = re.escape('"<>\\^`{}|[]')
_CHARS = r"A-Za-z0-9._~\-!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_LENIENT = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|(?:[{_CHARS}]|{_PCT})+)"
    r"(?::(?P<port>[0-9]*))?"
    rf"(?P<path>/(?:[{_CHARS}:@/{_EXTRA}]|{_PCT})*)?"
    rf"(?:\?(?P<query>(?:[{_CHARS}:@/?{_EXTRA}]|{_PCT})*))?"
)
LENIENT_URLS = set()


def _parse_url_with_fallback(url: str) -> URLParts:
    try:
        return parse_url(url)
    except HTTPMessageSignaturesException:
        match = _LENIENT.fullmatch(url)
        if match is None:
            raise
        LENIENT_URLS.add(url)
        return URLParts(match["scheme"], match["host"], match["port"], match["path"] or "", match["query"])


resolvers_module.parse_url = _parse_url_with_fallback


# --- message ------------------------------------------------------------------------

class Headers:
    """Ordered field lines with duplicates kept, as the library's protocol asks."""

    def __init__(self, pairs):
        self.pairs = [(str(n), str(v)) for n, v in pairs]

    def items(self):
        return list(self.pairs)

    def __iter__(self):
        return iter(dict.fromkeys(n for n, _ in self.pairs))

    def __contains__(self, name):
        return any(n.lower() == name.lower() for n, _ in self.pairs)

    def __getitem__(self, name):
        values = [v for n, v in self.pairs if n.lower() == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name, value):
        del self[name]
        self.pairs.append((name, value))

    def __delitem__(self, name):
        self.pairs = [(n, v) for n, v in self.pairs if n.lower() != name.lower()]


class Request:
    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = Headers(headers)


def utc(ts):
    return None if ts is None else datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)


# --- the two directions -------------------------------------------------------------

def load_positive(vectors: pathlib.Path):
    cases = []
    for case_file in sorted(vectors.glob("*/case.json")):
        case = json.loads(case_file.read_text(encoding="utf-8"))
        if "signature" in case["expected"]:
            cases.append(case)
    return cases


def key_resolver(case):
    secret = bytes.fromhex(case["key"]["secret_hex"])
    keys = {case["key"]["id"]: secret}
    return MappingKeyResolver(public_keys=keys, private_keys=keys)


def library_verifies(case):
    """Direction (a): the library verifies our signature."""
    req = case["request"]
    exp = case["expected"]
    body = base64.b64decode(req["body_base64"])
    headers = list(req["headers"])
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=key_resolver(case))
    if case["kind"] == "tessera-v1":
        headers += [
            ("Content-Digest", exp["content_digest"]),
            ("Signature-Input", exp["signature_input"]),
            ("Signature", exp["signature"]),
        ]
        v = case["verifier"]
        freeze_clock(v["now"])
        verifier.max_clock_skew = datetime.timedelta(seconds=v["window"])
        results = verifier.verify(
            Request(req["method"], req["target_uri"], headers),
            max_age=datetime.timedelta(0),
            expect_tag=TAG,
            require_components=MANDATORY + case["sign"]["extra_components"],
            body=body,
        )
        params = results[0].parameters
        s = case["sign"]
        want = {"created": s["created"], "keyid": case["key"]["id"], "nonce": s["nonce"], "tag": TAG}
        if s.get("expires") is not None:
            want["expires"] = s["expires"]
        if params != want:
            raise AssertionError(f"library saw parameters {params}, expected {want}")
        if results[0].body != body:
            raise AssertionError("library did not bind the body through Content-Digest")
    else:
        g = case["rfc9421"]
        headers += [("Signature-Input", exp["signature_input"]), ("Signature", exp["signature"])]
        freeze_clock(int(re.search(r"created=(\d+)", g["signature_params"]).group(1)))
        verifier.verify(
            Request(req["method"], req["target_uri"], headers),
            max_age=None,
            require_components=g["components"],
        )


def flip_mac(signature_value):
    label, _, rest = signature_value.partition("=:")
    mac = bytearray(base64.b64decode(rest.rstrip(":")))
    mac[0] ^= 1
    return f"{label}=:{base64.b64encode(bytes(mac)).decode()}:"


def library_rejects_flipped_mac(case):
    """Control for (a): with one MAC bit flipped, the library must reject."""
    flipped = dict(case, expected=dict(case["expected"], signature=flip_mac(case["expected"]["signature"])))
    try:
        library_verifies(flipped)
    except InvalidSignature:
        return
    raise AssertionError("the library accepted a flipped MAC")


def library_signs(case, index):
    """Direction (b): the library signs; returns the headers it produced."""
    req = case["request"]
    body = base64.b64decode(req["body_base64"])
    signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=key_resolver(case))
    msg = Request(req["method"], req["target_uri"], req["headers"])
    if case["kind"] == "tessera-v1":
        s = case["sign"]
        signer.sign(
            msg,
            key_id=case["key"]["id"],
            created=utc(s["created"]),
            expires=utc(s.get("expires")),
            nonce=s["nonce"],
            label=LABEL,
            tag=TAG,
            include_alg=index % 2 == 0,
            covered_component_ids=MANDATORY + s["extra_components"],
            body=body,
        )
        digest = msg.headers["Content-Digest"]
    else:
        g = case["rfc9421"]
        created = int(re.search(r"created=(\d+)", g["signature_params"]).group(1))
        signer.sign(
            msg,
            key_id=case["key"]["id"],
            created=utc(created),
            label=g["label"],
            include_alg=False,
            covered_component_ids=g["components"],
            use_existing_digest=True,
        )
        digest = None
    return {
        "name": case["name"],
        "signature_input": msg.headers["Signature-Input"],
        "signature": msg.headers["Signature"],
        "content_digest": digest,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args()

    cases = load_positive(args.vectors)
    # The library refuses a method that is not uppercase ("HTTP request method
    # must be an uppercase string"), although RFC 9421 Section 2.2.1 signs the
    # method exactly as sent, with no case change. Those cases cannot be run
    # against it: they are reported as skipped, never as passed.
    skipped = [c["name"] for c in cases if c["request"]["method"] != c["request"]["method"].upper()]
    for name in skipped:
        print(f"SKIP {name}: the library refuses methods that are not uppercase (RFC 9421 Section 2.2.1 keeps the case)")
    cases = [c for c in cases if c["name"] not in skipped]
    verified_failed = []
    signed = []
    sign_failed = []
    for index, case in enumerate(cases):
        try:
            library_verifies(case)
            library_rejects_flipped_mac(case)
        except Exception as e:  # noqa: BLE001 - report every failure by case
            verified_failed.append(case["name"])
            print(f"FAIL library-verify {case['name']}: {type(e).__name__}: {e}")
        try:
            signed.append(library_signs(case, index))
        except Exception as e:  # noqa: BLE001
            sign_failed.append(case["name"])
            print(f"FAIL library-sign {case['name']}: {type(e).__name__}: {e}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(signed, indent=2) + "\n", encoding="utf-8")
    if LENIENT_URLS:
        print(f"note: {len(LENIENT_URLS)} URL(s) outside RFC 3986 parsed by the fallback: {sorted(LENIENT_URLS)}")
    print(f"library signed {len(signed)} of {len(cases)} positive vectors -> {args.out}")
    if sign_failed:
        print(f"library could not sign: {sign_failed}")
    passed = len(cases) - len(verified_failed)
    print(f"library-verified: {passed} passed, {len(verified_failed)} failed, {len(skipped)} skipped")
    return 0 if not verified_failed and not sign_failed else 1


if __name__ == "__main__":
    sys.exit(main())
