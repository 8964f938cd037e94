"""The Korean catalogue is complete, compiled, and has every string the code marks.

When this fails after marking new strings for translation:

    .venv/bin/python manage.py makemessages -l ko
    .venv/bin/python manage.py makemessages -d djangojs -l ko
    (translate every empty or fuzzy msgstr in locale/ko/LC_MESSAGES/*.po)
    .venv/bin/python manage.py compilemessages -l ko

and commit the .po and .mo files: the product runs without gettext installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "locale" / "ko" / "LC_MESSAGES"
DOMAINS = ["django", "djangojs"]
# What makemessages reads: every app of the project (a new one is found by its
# apps.py), the templates and static scripts.
APPS = sorted(p.parent.name for p in ROOT.glob("*/apps.py"))
SOURCES = [*APPS, "templates", "static", "manage.py"]


def _need_msgfmt() -> None:
    if shutil.which("msgfmt") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("msgfmt is missing: apt-get install gettext")
        pytest.skip("msgfmt is missing: apt-get install gettext")


def _entries(catalogue: polib._BaseFile) -> dict[tuple[str | None, str], object]:
    return {
        (e.msgctxt, e.msgid): e.msgstr_plural or e.msgstr
        for e in catalogue
        if not e.obsolete
    }


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_string_has_a_korean_translation(domain: str) -> None:
    po = polib.pofile(str(MESSAGES / f"{domain}.po"))
    assert not po.metadata_is_fuzzy, f"{domain}.po: the header is still fuzzy"
    missing = [
        e.msgid
        for e in po
        if not e.obsolete
        and (
            "fuzzy" in e.flags
            or not (e.msgstr or all(e.msgstr_plural.values()) and e.msgstr_plural)
        )
    ]
    assert not missing, f"{domain}.po: untranslated or fuzzy: {missing}"


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_is_the_compiled_po(domain: str, tmp_path: Path) -> None:
    _need_msgfmt()
    fresh = tmp_path / f"{domain}.mo"
    subprocess.run(
        ["msgfmt", "--check-format", "-o", str(fresh), str(MESSAGES / f"{domain}.po")],
        check=True,
        capture_output=True,
    )
    committed = polib.mofile(str(MESSAGES / f"{domain}.mo"))
    assert _entries(committed) == _entries(polib.mofile(str(fresh))), (
        f"{domain}.mo is not the compiled {domain}.po: "
        "run manage.py compilemessages -l ko and commit the .mo"
    )


def test_makemessages_finds_no_string_missing_from_the_catalogue(
    tmp_path: Path,
) -> None:
    """makemessages on a copy of the sources: no msgid it would add."""
    _need_msgfmt()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / "locale").mkdir()
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "core.settings"}
    for domain in DOMAINS:
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "ko", "-d", domain],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        found = polib.pofile(str(tmp_path / "locale/ko/LC_MESSAGES" / f"{domain}.po"))
        committed = polib.pofile(str(MESSAGES / f"{domain}.po"))
        new = set(_entries(found)) - set(_entries(committed))
        assert not new, (
            f"strings marked for translation but not in {domain}.po: "
            f"{sorted(msgid for _, msgid in new)}; see this module's docstring"
        )
