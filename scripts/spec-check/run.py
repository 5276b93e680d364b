#!/usr/bin/env python3
"""Runs every spec/vectors/*/case.json as spec §16.3 / §16.4 say."""
import base64, glob, json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tessera
from tessera import TesseraError

VDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'spec', 'vectors')
VERBOSE = os.environ.get('V')


def L(s):  # §16.2: code points U+0000..U+00FF stand for octets
    s.encode('latin-1')  # asserts no code point above U+00FF
    return s


def cfg_of(c):
    v = c['verifier']
    return tessera.VerifierConfig(now=v['now'], window=v['window'], scheme=v['scheme'],
                                  authorities=v.get('authorities', []),
                                  fixed_authority=v.get('fixed_authority'),
                                  store_since=v.get('store_since'),
                                  http2=c['request'].get('http_version') == '2')


def req_of(c):
    r = c['request']
    return (L(r['method']), L(r['target_uri']), [(L(n), L(v)) for n, v in r['headers']],
            base64.b64decode(r['body_base64']))


def keystore(c):
    return {c['key']['id']: bytes.fromhex(c['key']['secret_hex'])}


def do_sign(c):
    m, t, h, b = req_of(c)
    s = c['sign']
    return tessera.sign(m, t, h, b, c['key']['id'], bytes.fromhex(c['key']['secret_hex']),
                        s['created'], s['nonce'], s.get('expires'), s.get('extra_components', []))


def do_verify(m, t, h, b, c):
    try:
        return ('ok', tessera.verify(m, t, h, b, cfg_of(c), keystore(c)))
    except TesseraError as e:
        return ('err', e.code, e.detail)


def run(c):
    """Returns list of failure strings."""
    name = c['name']
    exp = c['expected']
    fails = []
    if c['kind'] == 'rfc9421-generic':
        m, t, h, b = req_of(c)
        r = c['rfc9421']
        got = tessera.generic_rfc9421(m, t, h, b, bytes.fromhex(c['key']['secret_hex']),
                                      r['label'], r['components'], r['signature_params'])
        for k in ('signature_base', 'signature_input', 'signature'):
            if got[k] != exp[k]:
                fails.append('%s: got %r expected %r' % (k, got[k], exp[k]))
        return fails
    if name.startswith('pos-'):
        try:
            got = do_sign(c)
        except TesseraError as e:
            return ['signer refused with %s (%s); expected success' % (e.code, e.detail)]
        for k in ('signature_base', 'signature_input', 'signature', 'content_digest'):
            if got[k] != exp[k]:
                fails.append('%s: got %r expected %r' % (k, got[k], exp[k]))
        m, t, h, b = req_of(c)
        h = h + [('Content-Digest', exp['content_digest']), ('Signature-Input', exp['signature_input']),
                 ('Signature', exp['signature'])]
        target = t.split('#', 1)[0]
        r = do_verify(m, target, h, b, c)
        if r[0] != 'ok':
            fails.append('verify: got %s (%s); expected accept' % (r[1], r[2]))
        elif r[1] != exp['signature_base']:
            fails.append('verify base: got %r expected %r' % (r[1], exp['signature_base']))
        return fails
    if name.startswith('unsignable-'):
        try:
            do_sign(c)
            return ['signer accepted; expected %s' % exp['sign_error']]
        except TesseraError as e:
            if e.code != exp['sign_error']:
                return ['signer: got %s (%s); expected %s' % (e.code, e.detail, exp['sign_error'])]
            return []
    m, t, h, b = req_of(c)
    r = do_verify(m, t, h, b, c)
    if name.startswith('neg-'):
        if r[0] == 'ok':
            return ['verify accepted; expected %s' % exp['error']]
        if r[1] != exp['error']:
            return ['verify: got %s (%s); expected %s' % (r[1], r[2], exp['error'])]
        return []
    if name.startswith('acc-'):
        if r[0] != 'ok':
            return ['verify: got %s (%s); expected accept' % (r[1], r[2])]
        if r[1] != exp['signature_base']:
            return ['verify base: got %r expected %r' % (r[1], exp['signature_base'])]
        return []
    return ['unknown case prefix']


def main():
    passed = failed = 0
    for f in sorted(glob.glob(os.path.join(VDIR, '*', 'case.json'))):
        with open(f, encoding='utf-8') as fh:
            c = json.load(fh)
        assert c['name'] == os.path.basename(os.path.dirname(f))
        try:
            fl = run(c)
        except Exception as e:  # crash = failure
            fl = ['exception %r' % e]
        if fl:
            failed += 1
            for x in fl:
                print('FAIL %s: %s' % (c['name'], x))
        else:
            passed += 1
            if VERBOSE:
                print('ok   %s' % c['name'])
    print('spec-check: %d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
