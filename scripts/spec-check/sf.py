"""RFC 9651 structured-field dictionary parser (parsing only), written from RFC 9651 §4.2.

Input is a Python str whose code points are octets (latin-1).  Values are tagged:
  ('int', n) ('dec', str) ('str', s) ('token', s) ('bytes', b) ('bool', b)
  ('date', n) ('dstr', s)
An item is (bare, params); an inner list is ('inner', [items], params).
params / dict are Python dicts (insertion-ordered; overwrite keeps first position,
RFC 9651 §3.1.2 / §3.2).

Tessera parse limits (spec §9.4) are applied when `limits=True`.
"""

class SFError(Exception):
    pass


LCALPHA = set("abcdefghijklmnopqrstuvwxyz")
DIGIT = set("0123456789")
ALPHA = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ") | LCALPHA
TCHAR = ALPHA | DIGIT | set("!#$%&'*+-.^_`|~")
B64 = ALPHA | DIGIT | set("+/=")


class Limits:
    def __init__(self, members=16, params=16, items=64):
        self.members, self.params, self.items = members, params, items


class Parser:
    def __init__(self, s, limits=None):
        self.s = s
        self.i = 0
        self.lim = limits

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else ''

    def eof(self):
        return self.i >= len(self.s)

    def consume(self):
        if self.eof():
            raise SFError("unexpected end")
        c = self.s[self.i]
        self.i += 1
        return c

    def discard_sp(self):
        while self.peek() == ' ':
            self.i += 1

    def discard_ows(self):
        while self.peek() in (' ', '\t') and not self.eof():
            self.i += 1

    # §4.2 top level, for a dictionary
    def parse_dictionary_field(self):
        self.discard_sp()
        d = self.parse_dictionary()
        self.discard_sp()
        if not self.eof():
            raise SFError("trailing characters")
        return d

    # §4.2.2
    def parse_dictionary(self):
        d = {}
        while not self.eof():
            key = self.parse_key()
            if self.peek() == '=':
                self.i += 1
                member = self.parse_item_or_inner_list()
            else:
                params = self.parse_parameters()
                member = (('bool', True), params)
            d[key] = member
            if self.lim and len(d) > self.lim.members:
                raise SFError("too many members")
            self.discard_ows()
            if self.eof():
                return d
            if self.consume() != ',':
                raise SFError("expected comma")
            self.discard_ows()
            if self.eof():
                raise SFError("trailing comma")
        return d

    # §4.2.1.1
    def parse_item_or_inner_list(self):
        if self.peek() == '(':
            return self.parse_inner_list()
        return self.parse_item()

    # §4.2.1.2
    def parse_inner_list(self):
        if self.consume() != '(':
            raise SFError("expected (")
        items = []
        while not self.eof():
            self.discard_sp()
            if self.peek() == ')':
                self.i += 1
                params = self.parse_parameters()
                return ('inner', items, params)
            item = self.parse_item()
            items.append(item)
            if self.lim and len(items) > self.lim.items:
                raise SFError("too many inner-list items")
            if self.peek() not in (' ', ')') or self.eof():
                raise SFError("bad inner list")
        raise SFError("unterminated inner list")

    # §4.2.3
    def parse_item(self):
        bare = self.parse_bare_item()
        params = self.parse_parameters()
        return (bare, params)

    # §4.2.3.1
    def parse_bare_item(self):
        c = self.peek()
        if c == '':
            raise SFError("empty bare item")
        if c == '-' or c in DIGIT:
            return self.parse_number()
        if c == '"':
            return self.parse_string()
        if c in ALPHA or c == '*':
            return self.parse_token()
        if c == ':':
            return self.parse_byte_sequence()
        if c == '?':
            return self.parse_boolean()
        if c == '@':
            return self.parse_date()
        if c == '%':
            return self.parse_display_string()
        raise SFError("unknown bare item")

    # §4.2.3.2
    def parse_parameters(self):
        params = {}
        while not self.eof():
            if self.peek() != ';':
                break
            self.i += 1
            self.discard_sp()
            key = self.parse_key()
            value = ('bool', True)
            if self.peek() == '=':
                self.i += 1
                value = self.parse_bare_item()
            params[key] = value
            if self.lim and len(params) > self.lim.params:
                raise SFError("too many parameters")
        return params

    # §4.2.3.3
    def parse_key(self):
        c = self.peek()
        if not (c in LCALPHA or c == '*') or c == '':
            raise SFError("bad key")
        out = ''
        while not self.eof():
            c = self.peek()
            if c not in LCALPHA and c not in DIGIT and c not in '_-.*':
                return out
            out += c
            self.i += 1
        return out

    # §4.2.4
    def parse_number(self):
        typ = 'int'
        sign = 1
        num = ''
        if self.peek() == '-':
            self.i += 1
            sign = -1
        if self.eof():
            raise SFError("empty integer")
        if self.peek() not in DIGIT:
            raise SFError("not a digit")
        while not self.eof():
            c = self.peek()
            if c in DIGIT:
                self.i += 1
                num += c
            elif typ == 'int' and c == '.':
                if len(num) > 12:
                    raise SFError("decimal too long")
                self.i += 1
                num += c
                typ = 'dec'
            else:
                break
            if typ == 'int' and len(num) > 15:
                raise SFError("integer too long")
            if typ == 'dec' and len(num) > 16:
                raise SFError("decimal too long")
        if typ == 'int':
            return ('int', sign * int(num))
        if num.endswith('.'):
            raise SFError("decimal ends in .")
        if len(num.split('.')[1]) > 3:
            raise SFError("decimal fraction too long")
        return ('dec', ('-' if sign < 0 else '') + num)

    # §4.2.5
    def parse_string(self):
        if self.consume() != '"':
            raise SFError("expected quote")
        out = ''
        while not self.eof():
            c = self.consume()
            if c == '\\':
                if self.eof():
                    raise SFError("bad escape")
                n = self.consume()
                if n not in '"\\':
                    raise SFError("bad escape")
                out += n
            elif c == '"':
                return ('str', out)
            elif ord(c) <= 0x1f or ord(c) >= 0x7f:
                raise SFError("bad string char")
            else:
                out += c
        raise SFError("unterminated string")

    # §4.2.6
    def parse_token(self):
        c = self.peek()
        if not (c in ALPHA or c == '*'):
            raise SFError("bad token")
        out = ''
        while not self.eof():
            c = self.peek()
            if c not in TCHAR and c not in ':/':
                break
            out += c
            self.i += 1
        return ('token', out)

    # §4.2.7
    def parse_byte_sequence(self):
        if self.consume() != ':':
            raise SFError("expected :")
        j = self.s.find(':', self.i)
        if j < 0:
            raise SFError("unterminated byte sequence")
        content = self.s[self.i:j]
        self.i = j + 1
        for c in content:
            if c not in B64:
                raise SFError("bad base64 char")
        return ('bytes', b64decode_lenient(content))

    # §4.2.8
    def parse_boolean(self):
        if self.consume() != '?':
            raise SFError("expected ?")
        c = self.consume()
        if c == '1':
            return ('bool', True)
        if c == '0':
            return ('bool', False)
        raise SFError("bad boolean")

    # §4.2.9
    def parse_date(self):
        if self.consume() != '@':
            raise SFError("expected @")
        v = self.parse_number()
        if v[0] != 'int':
            raise SFError("date is not an integer")
        return ('date', v[1])

    # §4.2.10
    def parse_display_string(self):
        if self.consume() != '%':
            raise SFError("expected %")
        if self.peek() != '"':
            raise SFError("expected quote")
        self.i += 1
        buf = bytearray()
        while not self.eof():
            c = self.consume()
            o = ord(c)
            if o <= 0x1f or o >= 0x7f:
                raise SFError("bad display string char")
            if c == '%':
                if self.i + 2 > len(self.s):
                    raise SFError("short pct")
                h = self.s[self.i:self.i + 2]
                self.i += 2
                if any(x not in '0123456789abcdef' for x in h):
                    raise SFError("bad pct hex")
                buf.append(int(h, 16))
            elif c == '"':
                try:
                    return ('dstr', bytes(buf).decode('utf-8'))
                except UnicodeDecodeError:
                    raise SFError("bad utf-8")
            else:
                buf.append(o)
        raise SFError("unterminated display string")


_B64VAL = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64decode_lenient(s):
    """RFC 4648 §4 alphabet; '=' padding optional, and may be short of
    complete (the parser supplies the rest, RFC 9651 §4.2.7) but never beyond
    it; non-zero pad bits ignored; padding in the middle / length 1 mod 4 fail
    (spec §9.4)."""
    body = s.rstrip('=')
    pad = len(s) - len(body)
    if '=' in body:
        raise SFError("padding in the middle")
    if len(body) % 4 == 1:
        raise SFError("bad base64 length")
    if pad > (-len(body)) % 4:
        raise SFError("padding beyond complete")
    bits = 0
    nbits = 0
    out = bytearray()
    for c in body:
        bits = (bits << 6) | _B64VAL[c]
        nbits += 6
        if nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xff)
            bits &= (1 << nbits) - 1
    return bytes(out)


def parse_dictionary(s, limits=None):
    return Parser(s, limits).parse_dictionary_field()
