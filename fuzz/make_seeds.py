#!/usr/bin/env python3
"""Writes the committed seed corpus from spec/vectors (run from anywhere).

parse_headers seeds are "<Signature-Input>\\n<Signature>" as the target reads
them; the structured targets get each vector's method, target, headers and
body as raw bytes, which `arbitrary` slices into realistic strings.
"""
import base64
import hashlib
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent
vectors = root.parent / "spec" / "vectors"
seeds = root / "seeds"


def write(target: str, data: bytes) -> None:
    out = seeds / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)


for case_file in sorted(vectors.glob("*/case.json")):
    case = json.loads(case_file.read_text())
    request = case["request"]
    headers = {name.lower(): value for name, value in request["headers"]}
    expected = case.get("expected", {})
    sig_input = headers.get("signature-input", expected.get("signature_input", ""))
    signature = headers.get("signature", expected.get("signature", ""))
    write("parse_headers", f"{sig_input}\n{signature}".encode())
    body = base64.b64decode(request["body_base64"])[:256]
    parts = [request["method"], request["target_uri"]]
    parts += [f"{n}\0{v}" for n, v in request["headers"]]
    raw = "\0".join(parts).encode() + b"\0" + body
    write("signature_base", raw)
    write("sign_verify", raw)

# Canonical headers at the edges the parse_headers target compares against
# sfv: 15-digit integers (sf-integer's limit), the optional parameters, and
# the longest key id.
MAC = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
FLOOR = '("@method" "@authority" "@path" "@query" "content-digest")'
NONCE = "tp7iIu9aG0ISMM80RFUc4w"
for params in [
    f';created=999999999999999;keyid="k";nonce="{NONCE}";tag="tessera-v1"',
    f';created=0;expires=999999999999999;keyid="k";nonce="{NONCE}";alg="hmac-sha256";tag="tessera-v1"',
    f';tag="tessera-v1";nonce="{NONCE}";keyid="{"k" * 128}";created=1700000000',
]:
    write("parse_headers", f"tessera={FLOOR}{params}\ntessera=:{MAC}:".encode())
