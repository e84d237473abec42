from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fusion.__main__ import PoolError, main, read_pool
from fusion.testing.upstream import Upstream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pool.toml"

FAST_POOL = """
mode = "best_of"
[providers.sim]
kind = "simulated"
[[members]]
provider = "sim"
model = "sim-fast@ttft=0,tps=0,tokens=30"
[[members]]
provider = "sim"
model = "sim-balanced@ttft=0,tps=0,tokens=30"
[judge]
provider = "sim"
model = "sim-judge@ttft=0,tps=0"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(text)
    return path


def test_it_reads_the_example_pool() -> None:
    spec, providers = read_pool(EXAMPLE, "hi")
    assert spec.mode == "merge" and len(spec.members) == 4 and spec.judge is not None
    assert [m.id for m in spec.members] == ["m1", "m2", "m3", "m4"]
    assert providers["sim"].kind == "simulated"


def test_it_streams_candidates_and_the_verdict_to_the_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    code = main(["run", "--pool", str(write(tmp_path, FAST_POOL)), "Why is the sky blue?"], out)
    text = out.getvalue()
    assert code == 0
    assert "[m1] [simulated sim-fast]" in text and "[m2] [simulated sim-balanced]" in text
    assert "[judge:score]" in text
    assert "=== finished ===" in text and "winner: m" in text and "--- answer ---" in text


def test_it_prints_events_as_json_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["run", "--json", "--pool", str(write(tmp_path, FAST_POOL)), "hi"], out) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.finished"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_it_reports_a_missing_key_variable_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FUSION_TEST_KEY", raising=False)
    pool = FAST_POOL + '\n[providers.oa]\nkind = "openai"\napi_key_env = "FUSION_TEST_KEY"\n'
    assert main(["run", "--pool", str(write(tmp_path, pool)), "hi"], io.StringIO()) == 2
    assert "FUSION_TEST_KEY is not set" in capsys.readouterr().err


def test_it_rejects_a_pool_naming_an_unknown_provider(tmp_path: Path) -> None:
    pool = FAST_POOL.replace('provider = "sim"\nmodel = "sim-fast', 'provider = "x"\nmodel = "a')
    with pytest.raises(PoolError, match=r"providers\.x"):
        read_pool(write(tmp_path, pool), "hi")


def test_it_sends_keys_from_the_environment_to_real_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = Upstream()
    url = up.start_in_thread()
    try:
        monkeypatch.setenv("FUSION_TEST_KEY", "sk-from-env-1234")
        pool = f"""
mode = "best_of"
[providers.oa]
kind = "openai_compatible"
base_url = "{url}/v1"
api_key_env = "FUSION_TEST_KEY"
[[members]]
provider = "oa"
model = "up-small"
"""
        out = io.StringIO()
        assert main(["run", "--pool", str(write(tmp_path, pool)), "hello"], out) == 0
        assert [r.headers["authorization"] for r in up.requests] == ["Bearer sk-from-env-1234"]
        assert "sk-from-env" not in out.getvalue()
        assert "Answer from up-small: hello" in out.getvalue()
    finally:
        up.stop_thread()
