from __future__ import annotations

import ast
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
