"""Replace one generated block of the README, between `<!-- NAME results: start -->` and `... end -->`.

Benchmarks write their own README section from their committed JSON, so a quoted number cannot drift from the
file it came from. A README without the markers is left alone (and says so), never rewritten.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} results: start -->", f"<!-- {name} results: end -->"


def replace_block(path: Path, name: str, body: str) -> bool:
    """Put body between the two markers of `name`; False (file untouched) when a marker is missing."""
    start, end = markers(name)
    text = path.read_text()
    if start not in text or end not in text:
        print(f"[{name}] {path} has no {start} ... {end} block; not updated")
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}")
    return True
