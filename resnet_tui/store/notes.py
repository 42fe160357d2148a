"""What a user says about runs (``notes.json``, json_files.RunNotes): tag names, and the
searches over notes and tags that ``resnet-tui runs`` and the Runs screen's filter share."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A tag is one word: letters, digits and _ . : / = @ + -, not starting with + - or # (the
# CLI's +name / -name and the filter's #name say what to do with it).
TAG_PATTERN = re.compile(r"^[\w.:/=@+-]+$")
TAG_MAX = 40


def tag_problem(name: str) -> str | None:
    """Why ``name`` cannot be a tag, or None."""
    if not name:
        return "a tag cannot be empty"
    if len(name) > TAG_MAX:
        return f"tag {name!r} is longer than {TAG_MAX} characters"
    if name[0] in "+-" or not TAG_PATTERN.match(name):
        return (f"tag {name!r}: use letters, digits and _ . : / = @ + - (not first: + - #), no spaces "
                "or commas")
    return None


def parse_tags(text: str) -> list[str]:
    """Comma- (or space-) separated tags as the dashboard's input holds them; a leading # is
    dropped. ValueError says which name is not a tag."""
    names = [name.strip().removeprefix("#") for name in re.split(r"[,\s]+", text)]
    tags: list[str] = []
    for name in names:
        if not name:
            continue
        problem = tag_problem(name)
        if problem:
            raise ValueError(problem)
        if name not in tags:
            tags.append(name)
    return tags


def shown_tags(tags: Iterable[str]) -> str:
    """Tags as the listings show them: ``#baseline #lr``."""
    return " ".join(f"#{tag}" for tag in tags)


def matches_filter(query: str, words: Iterable[str], tags: Iterable[str]) -> bool:
    """The Runs screen's filter: every word of ``query`` is in one of ``words`` (id, config,
    status, note...) or a tag, case ignored; ``#name`` only in a tag that starts with it."""
    text = " ".join(words).lower()
    tags = [tag.lower() for tag in tags]
    for word in query.lower().split():
        if word.startswith("#"):
            if not any(tag.startswith(word[1:]) for tag in tags):
                return False
        elif word not in text and not any(word in tag for tag in tags):
            return False
    return True
