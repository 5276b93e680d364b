#!/usr/bin/env python3
"""Syntax-only check of .swift files with tree-sitter-swift (no Swift toolchain here).

usage: swift_syntax_check.py FILE.swift...   exits 1 on any ERROR or MISSING node.
"""
import re
import sys

import tree_sitter_swift
from tree_sitter import Language, Parser

# tree-sitter-swift 0.7.x cannot parse `#if swift(>=5.8)\n@attr\n#endif` (UniFFI
# emits one per internal type); blank the directives, keeping line numbers.
ATTR_ONLY_IF = re.compile(rb"^[ \t]*#if [^\n]*\n([ \t]*@[^\n]*)\n[ \t]*#endif[ \t]*$", re.M)
parser = Parser(Language(tree_sitter_swift.language()))
errors = 0
for path in sys.argv[1:]:
    src = ATTR_ONLY_IF.sub(lambda m: b"\n" + m.group(1) + b"\n", open(path, "rb").read())
    stack = [parser.parse(src).root_node]
    while stack:
        n = stack.pop()
        if n.is_error or n.is_missing:
            errors += 1
            r, c = n.start_point
            print(f"{path}:{r + 1}:{c + 1}: {'missing ' + n.type if n.is_missing else 'syntax error'}")
        elif n.has_error:
            stack.extend(n.children)
print(f"swift-syntax: {len(sys.argv) - 1} files, {errors} errors")
sys.exit(1 if errors or len(sys.argv) < 2 else 0)
