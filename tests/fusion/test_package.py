from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import fusion

FORBIDDEN = ("django", "channels", "celery", "workbench")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def test_it_never_imports_django_or_the_workbench_from_the_engine():
    root = Path(fusion.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 10  # the walk really found the package

    offenders = {
        f"{path.relative_to(root)}: {name}"
        for path in sources
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
    }

    assert not offenders


# Import the package and every module in it, then list what got loaded.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import fusion
names = [m.name for m in pkgutil.walk_packages(fusion.__path__, "fusion.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_it_loads_no_django_when_every_module_is_imported():
    # The static check above misses imports made by dependencies or at run time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(fusion.__file__).parent.parent,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"fusion.engine", "fusion.bench", "fusion.testing.upstream"} <= set(report["modules"])
    loaded = {name.split(".")[0] for name in report["loaded"]}
    assert "aiohttp" in loaded  # the walk really imported the HTTP code
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
