"""docs/custom_layers.md runs: its python blocks, in order, in one namespace."""

import re
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "custom_layers.md"


def _python_blocks():
    return re.findall(r"^```python\s*\n(.*?)^```", TUTORIAL.read_text(encoding="utf-8"),
                      re.M | re.S)


def test_the_tutorial_has_its_steps():
    blocks = _python_blocks()
    assert len(blocks) >= 10
    text = "\n".join(blocks)
    for step in ("check_layer", "Sequential", "cr.fit", "resume=True", "cr.io.save",
                 "explain", "diagnostics"):
        assert step in text, step


def test_the_tutorial_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)          # it writes a checkpoint and a model file
    matplotlib.use("Agg")
    namespace: dict = {"__name__": "tutorial"}
    for i, block in enumerate(_python_blocks()):
        try:
            exec(compile(block, f"{TUTORIAL.name} block {i}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"block {i} of {TUTORIAL.name} failed:\n{block}") from exc
    out = capsys.readouterr().out
    assert "TrainingWarning" in out and "dgamma2" in out
