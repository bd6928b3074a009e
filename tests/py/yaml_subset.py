"""yaml_subset.py -- reads the block YAML that `docker-compose config` and `docker stack config` print, with the standard library only.

    import yaml_subset
    cfg = yaml_subset.load(subprocess.run(["docker-compose", "config"], ...).stdout)
    cfg["services"]["jaeger"]["ports"]

Not a YAML parser: the subset those two commands write (PyYAML's and Go's
block style). Mappings ("key: value", "key:" then a deeper block), sequences
("- item", at the key's indent or deeper, items that are scalars or
mappings), scalars plain, 'single-quoted' ('' for a quote) or "double-quoted"
(JSON escapes), a quoted or plain scalar folded over several more-indented
lines, the empty flow collections {} and [], null, true and false. Numbers
stay strings (compare "3000", not 3000): the tests compare what the file says.
Anything else (anchors, tags, flow collections with items, block scalars |
and >) raises ValueError naming the line, so a check never passes on a
misread file.
"""
import json
import re

_NEVER = 1 << 30
_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^'"\s#][^:#]*?)\s*:(?:\s+(.*))?$""")


def _logical_lines(text):
    """(indent, content, line number) of each line, a folded scalar's lines joined into one."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        content = raw.strip()
        if out and indent > _scalar_column(*out[-1][:2]):
            out[-1] = (out[-1][0], out[-1][1] + " " + content, out[-1][2])
            continue
        out.append((indent, content, number))
    return out


def _scalar_column(indent, content):
    """The column a deeper line continues the line's scalar from: its key's column
    ("key: value" at indent, "- key: value" two further), the dash's for
    "- value", any column for a quote still open; _NEVER when the scalar is
    complete ({}, [], a closed quote) or the line has none."""
    dashes = 0
    while content.startswith("- "):
        content = content[2:].lstrip()
        dashes += 1
    m = _KEY.match(content)
    value = (m.group(2) or "") if m else content
    if not value or value in ("{}", "[]", "-"):
        return _NEVER
    if value[0] == "'":
        return _NEVER if re.fullmatch(r"'(?:[^']|'')*'", value) else indent
    if value[0] == '"':
        return _NEVER if re.fullmatch(r'"(?:[^"\\]|\\.)*"', value) else indent
    return indent + 2 * dashes if m else indent


def _scalar(text, number):
    """The value of a scalar's text: str, None, True, False, {} or []."""
    if text[:1] == "'":
        return text[1:-1].replace("''", "'")
    if text[:1] == '"':
        return json.loads(text)
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text[:1] in "&*!|>[{" or " #" in text:
        raise ValueError(f"line {number}: not in the subset yaml_subset reads: {text!r}")
    return text


def _block(lines, i, indent):
    """Parses the block starting at lines[i] (indent given); returns (value, next index)."""
    if lines[i][1].startswith("- ") or lines[i][1] == "-":
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _mapping(lines, i, indent):
    out = {}
    while i < len(lines) and lines[i][0] == indent and not lines[i][1].startswith("- "):
        _, content, number = lines[i]
        m = _KEY.match(content)
        if not m:
            raise ValueError(f"line {number}: expected key: value, got {content!r}")
        key = _scalar(m.group(1), number)
        if m.group(2):
            out[key], i = _scalar(m.group(2), number), i + 1
            continue
        i += 1
        if i < len(lines) and (lines[i][0] > indent or
                               (lines[i][0] == indent and lines[i][1].startswith("- "))):
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise ValueError(f"line {lines[i][2]}: unexpected indent")
    return out, i


def _sequence(lines, i, indent):
    out = []
    while i < len(lines) and lines[i][0] == indent and (lines[i][1].startswith("- ") or lines[i][1] == "-"):
        _, content, number = lines[i]
        item = content[1:].lstrip()
        j = i + 1
        while j < len(lines) and lines[j][0] > indent:
            j += 1
        if not item:
            if j == i + 1:
                raise ValueError(f"line {number}: an empty sequence item")
            value, k = _block(lines[i + 1:j], 0, lines[i + 1][0])
            if k != j - i - 1:
                raise ValueError(f"line {lines[i + 1 + k][2]}: unexpected indent")
        elif _KEY.match(item):
            # a mapping: its first key on the dash's line, the others below, in its column
            sub = [(indent + len(content) - len(item), item, number)] + lines[i + 1:j]
            value, k = _mapping(sub, 0, sub[0][0])
            if k != len(sub):
                raise ValueError(f"line {sub[k][2]}: unexpected indent in a sequence's mapping")
        else:
            if j != i + 1:
                raise ValueError(f"line {lines[i + 1][2]}: unexpected indent after a scalar item")
            value = _scalar(item, number)
        out.append(value)
        i = j
    return out, i


def load(text):
    """The document text (a mapping at the top) as dicts, lists and scalars; raises ValueError."""
    lines = _logical_lines(text)
    if not lines:
        return {}
    value, i = _block(lines, 0, lines[0][0])
    if i != len(lines):
        raise ValueError(f"line {lines[i][2]}: unexpected indent")
    return value
