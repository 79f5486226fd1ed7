"""The benchmark scripts are not run by the suite (they print figures and take minutes), so a rename in
service/ would break them unnoticed: each must at least import and offer its `main()`."""

import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted(
    p.stem for p in Path(__file__).parent.glob("*.py") if p.stem.startswith(("bench_", "explain_", "import_cpu"))
)


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_benchmark_script_imports(name: str) -> None:
    module = importlib.import_module(f"tests.perf.{name}")
    assert callable(getattr(module, "main", None)), f"tests/perf/{name}.py has no main()"
