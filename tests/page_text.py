"""What a person sees of a page: its text outside script, style and title, and which elements
exist; shared by the status page's unit test and its Molecule test."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium")
HIDDEN = ("script", "style", "title")


class Seen(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self.hidden += tag in HIDDEN

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in HIDDEN

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text.append(data)

    def words(self) -> str:
        """The visible text with runs of white space made one space, as a reader takes it in."""
        return " ".join(" ".join(self.text).split())


def seen(markup: str) -> Seen:
    page = Seen()
    page.feed(markup)
    return page


def chromium(profile: Path, *args: str) -> str:
    """Debian's headless Chromium (as root: no sandbox of its own), its standard output."""
    assert CHROMIUM is not None, "chromium is not installed"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout
