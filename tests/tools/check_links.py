#!/usr/bin/env python3
"""check_links.py -- every relative link of the Markdown files named resolves.

    python3 tests/tools/check_links.py FILE.md...

One test per file: each relative link target, `[text](target)` or
`![alt](target)` outside code blocks and inline code, must name a file or
folder that exists (from the file's own folder), and a `#anchor`, alone or
after a Markdown file, must be one of that file's headings as GitHub spells
its anchors. Absolute links (http:, https:, mailto:) are not fetched.
Prints each broken link with its line, then "links: N passed, N failed";
exits 1 when a file failed.
"""
import re
import sys
from pathlib import Path

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def prose_lines(text):
    """Yields (line number, line) of the lines outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def slug(heading):
    """GitHub's anchor for a heading: lower case, markup and punctuation
    dropped (letters, digits, '-' and '_' kept), spaces made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    """The anchors of a Markdown file's headings (repeats get -1, -2, ...)."""
    if path not in cache:
        seen, out = {}, set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                out.add(base if n == 0 else f"{base}-{n}")
        cache[path] = out
    return cache[path]


def broken_links(path):
    """Yields "line N: target: why" for each relative link of path that does
    not resolve."""
    for n, line in prose_lines(path.read_text(encoding="utf-8")):
        for m in LINK.finditer(INLINE_CODE.sub("", line)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path.resolve()
            if not dest.exists():
                yield f"line {n}: {target}: no such file {dest}"
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                yield f"line {n}: {target}: {dest.name} has no heading with the anchor #{anchor}"


def main(files):
    passed = failed = 0
    for name in files:
        path = Path(name)
        if not path.is_file():
            print(f"FAIL {name}: no such file")
            failed += 1
            continue
        bad = list(broken_links(path))
        if bad:
            print(f"FAIL {name}: {len(bad)} broken link(s)")
            for b in bad:
                print(f"    {b}")
            failed += 1
        else:
            passed += 1
    print(f"links: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: check_links.py FILE.md...")
    sys.exit(main(sys.argv[1:]))
