"""The README's fresh-machine commands stay true: CI runs exactly its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shell_blocks(text: str) -> list[str]:
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.startswith("```sh"):
            inside, cur = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append("\n".join(l for l in cur if not l.startswith("#")).strip())
        elif inside:
            cur.append(line)
    return blocks


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = shell_blocks(readme)[1]
    assert "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_demo_command_uses_bundled_files():
    demo = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))[0]
    for token in demo.split():
        if token.startswith("sample_data/"):
            assert (ROOT / token).is_file(), token


def test_readme_is_short_and_its_links_resolve():
    """The README stays a front page (≤ 150 lines); the details live in docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(l.startswith("docs/") for l in links)
    for link in links:
        if "://" not in link:
            assert (ROOT / link).is_file(), link


def test_readme_names_the_quick_test_run():
    assert 'pytest -m "not slow"' in shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
