"""Every UI string has its English translation: makemessages run on a copy of the tree finds no message in
locale/en that is missing or only fuzzy (a string added with a context, or a template's "%" that becomes
"%%", once showed Chinese on English pages because its entry did not match)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = (".venv", "node_modules", ".git", ".run", "__pycache__", "var", "staticfiles", "media", "tools")
SKIP_TOO = ("test-artifacts", ".hypothesis", ".ruff_cache", ".pytest_cache", ".import_linter_cache")


def _msgids(po_text: str) -> list[str]:
    """The msgids of a .po text's entries (the header's empty one left out), continuation lines joined."""
    found = []
    for block in po_text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#")]
        text, inside = [], False
        for line in lines:
            if line.startswith("msgid "):
                inside = True
                text.append(line[len("msgid ") :].strip('"'))
            elif line.startswith(("msgstr", "msgid_plural", "msgctxt")):
                inside = False
            elif inside and line.startswith('"'):
                text.append(line.strip('"'))
        if "".join(text):
            found.append("".join(text))
    return found


def test_makemessages_finds_no_english_translation_missing_or_fuzzy(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*SKIP, *SKIP_TOO), symlinks=True)
    command = [sys.executable, "manage.py", "makemessages", "-l", "en", "--ignore=tests", "-v", "0"]
    subprocess.run(command, cwd=tree, env=dict(os.environ), check=True, timeout=300)
    po = tree / "locale" / "en" / "LC_MESSAGES" / "django.po"
    problems = {}
    for flag in ("--untranslated", "--only-fuzzy"):
        out = subprocess.run(["msgattrib", flag, "--no-obsolete", str(po)], capture_output=True, text=True, check=True)
        problems[flag] = _msgids(out.stdout)
    assert problems == {"--untranslated": [], "--only-fuzzy": []}, (
        "add these to locale/en/LC_MESSAGES/django.po (with their msgctxt / python-format where makemessages "
        f"puts one): {problems}"
    )


def test_the_msgid_reader_joins_continuation_lines_and_skips_the_header():
    po = (
        'msgid ""\nmsgstr ""\n"Language: en\\n"\n\n'
        '#: x.py:1\nmsgid ""\n"长的"\n"一句"\nmsgstr ""\n\nmsgid "短"\nmsgstr ""\n'
    )
    assert _msgids(po) == ["长的一句", "短"]
