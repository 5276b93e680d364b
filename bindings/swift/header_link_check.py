#!/usr/bin/env python3
"""usage: header_link_check.py GEN_SWIFT_DIR CDYLIB OUT_DIR

Without a Swift compiler, checks what the Swift bindings rely on:
1. the generated C header compiles (gcc -Werror) and every FFI function it
   declares links against the built library;
2. every FFI function the generated Swift calls is declared in the header;
3. the API checksums and the FFI contract version embedded in the Swift file
   equal what the library returns (the check the bindings run when loaded).
"""
import ctypes
import pathlib
import re
import subprocess
import sys

gen, cdylib, out = map(pathlib.Path, sys.argv[1:4])
out.mkdir(parents=True, exist_ok=True)
header = next(gen.glob("*FFI.h"))
swift = next(gen.glob("*.swift"))
hdr, src = header.read_text(), swift.read_text()

funcs = sorted(set(re.findall(r"^[A-Za-z_][\w ]*?[\s*]((?:uniffi|ffi)_\w+)\(", hdr, re.M)))
assert funcs, "no FFI functions found in header"
c = out / "link_check.c"
c.write_text(
    f'#include "{header.name}"\n#include <stdio.h>\n'
    "static void *const fns[] = {\n" + "".join(f"  (void *)&{f},\n" for f in funcs) + "};\n"
    "int main(void) { for (unsigned i = 0; i < sizeof fns / sizeof *fns; i++) if (!fns[i]) return 1;\n"
    '  printf("%zu FFI functions resolved\\n", sizeof fns / sizeof *fns); return 0; }\n')
exe = out / "link_check"
subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_Nullable=", "-D_Nonnull=",
                f"-I{gen}", str(c), "-o", str(exe), f"-L{cdylib.parent}",
                f"-l:{cdylib.name}", f"-Wl,-rpath,{cdylib.parent.resolve()}"], check=True)
subprocess.run([str(exe)], check=True)

called = set(re.findall(r"\b((?:uniffi|ffi)_[a-z0-9_]+)\(", src))
missing = sorted(called - set(funcs))
assert not missing, f"swift calls undeclared FFI functions: {missing}"

lib = ctypes.CDLL(str(cdylib.resolve()))
bad = []
checksums = re.findall(r"\b(uniffi_\w+_checksum_\w+)\(\) != (\d+)", src)
assert checksums, "no API checksums found in the Swift bindings"
for name, want in checksums:
    fn = getattr(lib, name)
    fn.restype = ctypes.c_uint16
    if fn() != int(want):
        bad.append((name, want, fn()))
cv = re.search(r"bindings_contract_version = (\d+)", src).group(1)
cvfn = re.search(r"\b(ffi_\w+_uniffi_contract_version)\(\)", src).group(1)
f = getattr(lib, cvfn)
f.restype = ctypes.c_uint32
if f() != int(cv):
    bad.append((cvfn, cv, f()))
assert not bad, f"checksum/contract mismatch: {bad}"
print(f"swift ffi check ok: {len(funcs)} header fns, {len(called)} called from swift, "
      f"{len(checksums)} checksums + contract v{cv} match")
