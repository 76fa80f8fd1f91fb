"""Project hygiene: the README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "r1v-quant demo-checkpoint" in demo and "pytest" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_command = tests.split("&& ", 2)[-1]  # the part after venv creation and activation
    assert ci_command in ci_lines, (ci_command, ci_lines)
