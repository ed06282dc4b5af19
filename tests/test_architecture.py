"""The layers of docs/architecture.md hold: every import points down (import-linter's contracts in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_keep_the_layer_contracts() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_path_holds_lightning() -> None:
    """Lightning formats every warning whose file path holds "lightning" as its own (no category, no source line):
    a package named ``lightning_cli`` made vidrnn's warnings from it read as Lightning's."""
    assert [path for path in (ROOT / "vidrnn").rglob("*.py") if "lightning" in str(path.relative_to(ROOT))] == []
