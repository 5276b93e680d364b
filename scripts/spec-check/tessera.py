"""tessera-v1 signer and verifier, implemented from spec/tessera-v1.md only.

All strings are 'octet strings' (str with code points 0..255, latin-1)."""
import base64
import hashlib
import hmac

from sf import parse_dictionary, SFError, Limits


class TesseraError(Exception):
    def __init__(self, code, detail=''):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def fail(code, detail=''):
    raise TesseraError(code, detail)


FLOOR = ['@method', '@authority', '@path', '@query', 'content-digest']
ALLOWED_DERIVED = {'@method', '@authority', '@path', '@query'}
LC_TCHAR = set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")
TCHAR = LC_TCHAR | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
FORBIDDEN_FIELDS = {'signature', 'signature-input', 'host', 'connection', 'keep-alive',
                    'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
                    'proxy-authorization', 'proxy-authenticate', 'forwarded', 'via'}
KEYID_CHARS = {chr(c) for c in range(0x21, 0x7f)} - {'"', '\\'}
B64URL = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
SF_INT_MAX = 999999999999999
MAX_HDR = 8192


def is_forbidden_field(name):
    return name in FORBIDDEN_FIELDS or name.startswith('x-forwarded-')


# ---------------------------------------------------------------- §8.3 authority
HEX = set('0123456789abcdefABCDEF')
UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
SUBDELIMS = set("!$&'()*+,;=")


def _valid_dec_octet(s):
    if not s or len(s) > 3 or any(c not in '0123456789' for c in s):
        return False
    if len(s) > 1 and s[0] == '0':
        return False
    return int(s) <= 255


def _valid_ipv4(s):
    parts = s.split('.')
    return len(parts) == 4 and all(_valid_dec_octet(p) for p in parts)


def _valid_h16(s):
    return 1 <= len(s) <= 4 and all(c in HEX for c in s)


def _valid_ipv6(s):
    """RFC 3986 IPv6address."""
    if s.count('::') > 1:
        return False

    def groups(part, allow_v4_tail):
        # returns number of 16-bit units, or None if invalid
        if part == '':
            return 0
        gs = part.split(':')
        n = 0
        for idx, g in enumerate(gs):
            if idx == len(gs) - 1 and allow_v4_tail and '.' in g:
                if not _valid_ipv4(g):
                    return None
                n += 2
            elif _valid_h16(g):
                n += 1
            else:
                return None
        return n

    if '::' in s:
        left, right = s.split('::')
        nl = groups(left, False)
        nr = groups(right, True)
        if nl is None or nr is None:
            return False
        return nl + nr <= 7
    n = groups(s, True)
    return n == 8


def _valid_ipvfuture(s):
    if len(s) < 4 or s[0] not in 'vV':
        return False
    dot = s.find('.')
    if dot < 2:
        return False
    if not all(c in HEX for c in s[1:dot]):
        return False
    rest = s[dot + 1:]
    return len(rest) >= 1 and all(c in UNRESERVED or c in SUBDELIMS or c == ':' for c in rest)


def _valid_regname(s):
    i = 0
    while i < len(s):
        c = s[i]
        if c == '%':
            h = s[i + 1:i + 3]
            if len(h) != 2 or any(x not in HEX for x in h):
                return False
            i += 3
            continue
        if c not in UNRESERVED and c not in SUBDELIMS:
            return False
        i += 1
    return True


def normalize_authority(auth, scheme):
    """Check (§8.3 grammar) and normalize an authority. Raises invalid_field_value."""
    if auth == '':
        fail('invalid_field_value', 'empty authority')
    if auth.startswith('['):
        end = auth.find(']')
        if end < 0:
            fail('invalid_field_value', 'unterminated IP-literal')
        lit = auth[1:end]
        if not (_valid_ipv6(lit) or _valid_ipvfuture(lit)):
            fail('invalid_field_value', 'invalid IP-literal')
        host = auth[:end + 1]
        rest = auth[end + 1:]
        if rest == '':
            port = None
        elif rest.startswith(':'):
            port = rest[1:]
        else:
            fail('invalid_field_value', 'garbage after IP-literal')
    else:
        if ':' in auth:
            host, port = auth.split(':', 1)
        else:
            host, port = auth, None
        if host == '':
            fail('invalid_field_value', 'no host')
        if not _valid_regname(host):
            fail('invalid_field_value', 'invalid reg-name')
    if port is not None:
        if any(c not in '0123456789' for c in port):
            fail('invalid_field_value', 'port not digits')
        if port != '' and int(port) > 65535:
            fail('invalid_field_value', 'port out of range')
    host = ascii_lower(host)
    default = {'https': 443, 'http': 80}.get(scheme.lower())
    if port is None or port == '' or int(port) == default:
        return host
    return host + ':' + port


# ---------------------------------------------------------------- §8.2, 8.4, 8.5
def check_method(m):
    if m == '' or any(c not in TCHAR for c in m):
        fail('invalid_field_value', 'method not a token')


def check_path(p):
    if p == '':
        return
    if not p.startswith('/'):
        fail('invalid_field_value', 'path does not start with /')
    for c in p:
        o = ord(c)
        if o < 0x21 or o > 0x7e or c in '?#':
            fail('invalid_field_value', 'bad path octet %r' % c)


def check_query(q):
    for c in q:
        o = ord(c)
        if o < 0x21 or o > 0x7e or c == '#':
            fail('invalid_field_value', 'bad query octet %r' % c)


def split_path_query(pq):
    """pq: everything after the authority. Returns (path, query or None)."""
    if '?' in pq:
        path, query = pq.split('?', 1)
    else:
        path, query = pq, None
    return path, query


def path_value(path):
    return '/' if path == '' else path


def query_value(query):
    return '?' + (query or '')


def split_absolute(target):
    """Split 'scheme://authority/path?query'. Returns (scheme, authority, rest) or None."""
    k = target.find('://')
    if k < 0:
        return None
    scheme = target[:k]
    if scheme.lower() not in ('http', 'https'):
        return None
    rest = target[k + 3:]
    n = len(rest)
    for i, c in enumerate(rest):
        if c in '/?':
            n = i
            break
    return scheme.lower(), rest[:n], rest[n:]


# ---------------------------------------------------------------- §8.6 fields
def ascii_lower(s):
    return ''.join(chr(ord(c) + 32) if 'A' <= c <= 'Z' else c for c in s)


def field_lines(headers, name):
    # §8.6: names compare case-insensitively (ASCII case folding only)
    return [v for (n, v) in headers if ascii_lower(n) == name]


def trim(v):
    return v.strip(' \t')


def joined(headers, name):
    lines = field_lines(headers, name)
    if not lines:
        return None
    return ', '.join(trim(v) for v in lines)


def check_field_value(v):
    for c in v:
        o = ord(c)
        if (o < 0x20 and c != '\t') or o >= 0x7f:
            fail('invalid_field_value', 'forbidden octet in covered field')


def covered_field_value(headers, name, http2=False):
    if http2 and name == 'cookie':
        lines = field_lines(headers, name)
        v = '; '.join(trim(x) for x in lines) if lines else None
    else:
        v = joined(headers, name)
    if v is None:
        fail('missing_component', 'covered field %s absent' % name)
    check_field_value(v)
    return v


# ---------------------------------------------------------------- §8.7
def serialize_params(components, params):
    s = '(' + ' '.join('"%s"' % c for c in components) + ')'
    for k, (t, v) in params.items():
        if t == 'int':
            s += ';%s=%d' % (k, v)
        elif t == 'str':
            s += ';%s="%s"' % (k, v)
        else:
            raise ValueError('cannot serialize %s' % t)
    return s


def build_base(lines, sig_params):
    return ''.join('"%s": %s\n' % (c, v) for c, v in lines) + '"@signature-params": ' + sig_params


def mac(secret, base):
    return hmac.new(secret, base.encode('latin-1'), hashlib.sha256).digest()


def b64(b):
    return base64.b64encode(b).decode('ascii')


# ---------------------------------------------------------------- §7.5 component checks
def check_component_name(name):
    """Per-item checks of §7.5 step 1 after the sf-string / params checks."""
    if name.startswith('@'):
        if name not in ALLOWED_DERIVED:
            fail('forbidden_component', name)
        return
    if name == '' or any(c not in LC_TCHAR for c in name):
        fail('malformed_signature', 'component name %r is not a lowercase token' % name)
    if is_forbidden_field(name):
        fail('forbidden_component', name)


def check_component_set(names):
    if len(names) > 32:
        fail('malformed_signature', 'more than 32 components')
    seen = set()
    for n in names:
        if n in seen:
            fail('duplicate_component', n)
        seen.add(n)
    for f in FLOOR:
        if f not in seen:
            fail('missing_component', f)


def check_keyid(k):
    if not (1 <= len(k) <= 128) or any(c not in KEYID_CHARS for c in k):
        fail('invalid_parameter', 'bad keyid')


def check_nonce(n):
    if not (22 <= len(n) <= 64) or any(c not in B64URL for c in n):
        fail('invalid_parameter', 'bad nonce')


# ================================================================ signer (§10)
def sign(method, target_uri, headers, body, key_id, secret, created, nonce,
         expires=None, extra_components=()):
    # step 2: inputs
    if not (16 <= len(secret) <= 128):
        fail('invalid_parameter', 'secret length')
    extra = list(extra_components)
    if len(FLOOR) + len(extra) > 64:
        fail('malformed_signature', 'a list this long would not parse (§9.4)')
    for name in extra:
        check_component_name(name)
    check_component_set(FLOOR + extra)
    # §10 step 2: 16-digit times are not sf-integers, then the parameter values.
    if created > SF_INT_MAX or (expires is not None and expires > SF_INT_MAX):
        fail('malformed_signature', 'created or expires is not an sf-integer')
    check_keyid(key_id)
    check_nonce(nonce)
    if created < 0:
        fail('invalid_parameter', 'created negative')
    if expires is not None:
        if expires < 0 or expires <= created:
            fail('invalid_parameter', 'expires')
    # step 3: request (§8.10 URL split, then method, path, query, authority)
    u = target_uri.split('#', 1)[0]  # §8.10 step 2: drop the fragment
    parts = split_absolute(u)
    if parts is None:
        fail('invalid_field_value', 'not an http(s) URL')
    scheme, auth, rest = parts
    path, query = split_path_query(rest)
    check_method(method)
    # §10 step 3: more than one Host line is refused, whatever the authority.
    if sum(1 for n, _ in headers if n.lower() == 'host') > 1:
        fail('invalid_field_value', 'more than one Host line')
    check_path(path)
    if query is not None:
        check_query(query)
    authority = normalize_authority(auth, scheme)
    # step 4
    digest = 'sha-256=:' + b64(hashlib.sha256(body).digest()) + ':'
    # step 5
    comps = FLOOR + extra
    params = {'created': ('int', created)}
    if expires is not None:
        params['expires'] = ('int', expires)
    params['keyid'] = ('str', key_id)
    params['nonce'] = ('str', nonce)
    params['tag'] = ('str', 'tessera-v1')
    sp = serialize_params(comps, params)
    # step 6
    sent_headers = [(n, v) for (n, v) in headers if ascii_lower(n) != 'content-digest']
    sent_headers.append(('Content-Digest', digest))
    lines = []
    for c in comps:
        if c == '@method':
            v = method
        elif c == '@authority':
            v = authority
        elif c == '@path':
            v = path_value(path)
        elif c == '@query':
            v = query_value(query)
        elif c == 'content-digest':
            v = digest
        else:
            v = covered_field_value(sent_headers, c)
        lines.append((c, v))
    # §10 step 6: a covered cookie goes out as one Cookie line (RFC 6265 §5.4).
    if 'cookie' in comps and len(field_lines(sent_headers, 'cookie')) > 1:
        fail('invalid_field_value', 'more than one Cookie line')
    base = build_base(lines, sp)
    m = mac(secret, base)
    return {
        'signature_base': base,
        'signature_input': 'tessera=' + sp,
        'signature': 'tessera=:' + b64(m) + ':',
        'content_digest': digest,
    }


# ================================================================ verifier (§11.2)
class VerifierConfig:
    def __init__(self, now, window=300, scheme='https', authorities=None, fixed_authority=None,
                 required_fields=(), store_since=None, http2=False):
        self.now = now
        # §8.6: received over HTTP/2 (or HTTP/3), `cookie` lines join with '; '.
        self.http2 = http2
        self.store_since = store_since
        self.window = window
        self.scheme = scheme
        self.authorities = set(authorities or [])
        self.fixed_authority = fixed_authority
        self.required_fields = list(required_fields)


def _parse_sig_field(headers, name):
    v = joined(headers, name)
    if v is None:
        return None
    if len(v) > MAX_HDR:
        fail('malformed_signature', '%s too long' % name)
    try:
        return parse_dictionary(v, Limits() if name == 'signature-input' else None)
    except SFError as e:
        fail('malformed_signature', '%s: %s' % (name, e))


def verify(method, target, headers, body, cfg, keystore):
    """keystore: dict keyid -> secret bytes. Returns signature base on success."""
    # ---- step 1
    if not field_lines(headers, 'signature-input'):
        fail('missing_signature')
    si = _parse_sig_field(headers, 'signature-input')
    cands = [(lbl, m) for lbl, m in si.items()
             if m[0] == 'inner' and m[2].get('tag') == ('str', 'tessera-v1')]
    if not cands:
        fail('missing_signature', 'no tessera-v1 member')
    if len(cands) > 1:
        fail('malformed_signature', 'more than one tessera-v1 member')
    label, member = cands[0]
    sig = _parse_sig_field(headers, 'signature')
    if sig is None:
        fail('malformed_signature', 'Signature absent')
    sm = sig.get(label)
    if sm is None or sm[0] == 'inner' or sm[0][0] != 'bytes' or len(sm[0][1]) != 32:
        fail('malformed_signature', 'no 32-byte signature for label')
    received_mac = sm[0][1]
    _, items, params = member
    # ---- step 2: components (§7.5)
    names = []
    for bare, iparams in items:
        if bare[0] != 'str':
            fail('malformed_signature', 'component not a string')
        if iparams:
            fail('forbidden_component', 'component parameters')
        check_component_name(bare[1])
        names.append(bare[1])
    check_component_set(names)
    # parameters (§6.2)
    types = {'created': 'int', 'expires': 'int', 'keyid': 'str', 'nonce': 'str', 'alg': 'str',
             'tag': 'str'}
    for k, (t, v) in params.items():
        if k not in types:
            fail('malformed_signature', 'unknown parameter %s' % k)
        if types[k] != t:
            fail('malformed_signature', 'parameter %s has wrong type' % k)
        if k == 'alg' and v != 'hmac-sha256':
            fail('algorithm_mismatch')
    for k in ('created', 'keyid', 'nonce'):
        if k not in params:
            fail('missing_parameter', k)
    created = params['created'][1]
    if created < 0:
        fail('invalid_parameter', 'created negative')
    expires = params['expires'][1] if 'expires' in params else None
    if expires is not None and (expires < 0 or expires <= created):
        fail('invalid_parameter', 'expires')
    keyid = params['keyid'][1]
    check_keyid(keyid)
    nonce = params['nonce'][1]
    check_nonce(nonce)
    for f in cfg.required_fields:
        if f not in names:
            fail('missing_component', f)
    # ---- step 3
    if keyid not in keystore:
        fail('unknown_key')
    secret = keystore[keyid]
    # ---- step 4
    now = cfg.now
    ahead = min(cfg.window, 2)
    if created > now + ahead or now - created > cfg.window:
        fail('clock_skew')
    if expires is not None and now > expires:
        fail('signature_expired')
    # ---- step 5
    fixed = cfg.fixed_authority is not None
    absparts = split_absolute(target)
    if target.startswith('/'):
        form = 'origin'
        path, query = split_path_query(target)
        tgt_auth = None
    elif absparts is not None:
        form = 'absolute'
        _, tgt_auth, rest = absparts
        path, query = split_path_query(rest)
    else:
        form = None
        tgt_auth = None
    hosts = field_lines(headers, 'host')
    if not fixed:
        if tgt_auth is None and not hosts:
            fail('authority_mismatch', 'no received authority')
        if len(hosts) > 1:
            fail('invalid_field_value', 'more than one Host line')
    if form is None:
        fail('invalid_field_value', 'request-target form')
    check_method(method)
    check_path(path)
    if query is not None:
        check_query(query)
    if fixed:
        # §11.2 step 5.3: an absolute-form target's own authority must
        # still be valid syntax (it is not used; Host is not read).
        if tgt_auth is not None:
            normalize_authority(tgt_auth, cfg.scheme)
        authority = cfg.fixed_authority
    else:
        recv = tgt_auth if tgt_auth is not None else trim(hosts[0])
        authority = normalize_authority(recv, cfg.scheme)
        if authority not in cfg.authorities:
            fail('authority_mismatch', authority)
    # ---- step 6: the MAC (the base holds Content-Digest as received)
    lines = []
    for c in names:
        if c == '@method':
            v = method
        elif c == '@authority':
            v = authority
        elif c == '@path':
            v = path_value(path)
        elif c == '@query':
            v = query_value(query)
        else:
            v = covered_field_value(headers, c, cfg.http2)
        lines.append((c, v))
    # §8.6: over HTTP/1.1 a covered cookie is one field line.
    if 'cookie' in names and not cfg.http2 and len(field_lines(headers, 'cookie')) > 1:
        fail('invalid_field_value', 'more than one Cookie line over HTTP/1.1')
    base = build_base(lines, serialize_params(names, params))
    if not hmac.compare_digest(mac(secret, base), received_mac):
        e = TesseraError('bad_signature')
        e.base = base
        raise e
    # ---- step 7: the body, only once the MAC has verified
    computed = hashlib.sha256(body).digest()
    cd = joined(headers, 'content-digest')
    if cd is None:
        fail('missing_component', 'Content-Digest absent')
    if len(cd) > MAX_HDR:
        fail('digest_mismatch', 'too long')
    try:
        cdd = parse_dictionary(cd)
    except SFError:
        fail('digest_mismatch', 'unparseable')
    m = cdd.get('sha-256')
    if m is None or m[0] == 'inner' or m[0][0] != 'bytes' or len(m[0][1]) != 32:
        fail('digest_mismatch', 'no sha-256 member')
    if not hmac.compare_digest(m[0][1], computed):
        fail('digest_mismatch')
    # step 8 (replay): the nonce store is empty for vectors; step 4 repeated with same now.
    # §14.1: a store that remembers only from `store_since` refuses anything created before.
    if cfg.store_since is not None and created < cfg.store_since:
        fail('store_reset')
    return base


# ================================================================ generic RFC 9421 (§16.4)
def generic_rfc9421(method, target_uri, headers, body, secret, label, components, sig_params):
    scheme, auth, rest = split_absolute(target_uri)
    rest = rest.split('#', 1)[0]
    path, query = split_path_query(rest)
    lines = []
    for c in components:
        if c == '@method':
            v = method
        elif c == '@authority':
            v = normalize_authority(auth, scheme)
        elif c == '@path':
            v = path_value(path)
        elif c == '@query':
            v = query_value(query)
        else:
            v = joined(headers, c)
        lines.append((c, v))
    base = build_base(lines, sig_params)
    return {
        'signature_base': base,
        'signature_input': label + '=' + sig_params,
        'signature': label + '=:' + b64(mac(secret, base)) + ':',
    }
