"""A report as one structured document, rendered to HTML and to Markdown by jinja2 templates.

The document is a title and a flat list of blocks: headings, paragraphs (runs of plain, bold, italic and
code text), bullet lists, key-value lists, tables, figures, findings and a table of contents. Nothing in it
is HTML or Markdown: ``reports/templates/document.html.j2`` and ``document.md.j2`` each turn every block
into their format, so the two files a report writes hold the same text by construction.

Example::

    doc = Document("Title", [Heading(2, "Setup", anchor="setup"), Paragraph(("Seed ", code("1"), "."))])
    render(doc, "md")   # '# Title\\n\\n## Setup\\n\\nSeed `1`.\\n'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import jinja2
import markupsafe

__all__ = [
    "TEMPLATES", "FORMATS", "b", "i", "code", "Heading", "Paragraph", "Bullets", "KeyValues", "Column", "Cell",
    "Table", "Figure", "Finding", "Contents", "Document", "render",
]

# The templates ship with the workflow, next to the package's folder (rules pass --templates explicitly,
# so a run from another --directory or an installed package finds them too).
TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"
FORMATS = {"html": "document.html.j2", "md": "document.md.j2"}

Span = tuple[str, str]  # (style, text); style: "" plain, "b" bold, "i" italic, "code"


def b(text) -> Span:
    return ("b", str(text))


def i(text) -> Span:
    return ("i", str(text))


def code(text) -> Span:
    return ("code", str(text))


def _spans(parts) -> tuple[Span, ...]:
    parts = (parts,) if isinstance(parts, str) else parts
    return tuple(("", p) if isinstance(p, str) else p for p in parts)


@dataclass(frozen=True)
class Heading:
    """A section heading; level 2 headings with ``nav`` set are listed by :class:`Contents`."""

    kind: ClassVar[str] = "heading"
    level: int
    text: str
    anchor: str = ""
    nav: str = ""


@dataclass(frozen=True)
class Paragraph:
    """Text runs; ``style`` ``"sub"`` (a subtitle line) or ``"warn"`` (a caution) where not plain."""

    kind: ClassVar[str] = "paragraph"
    spans: tuple[Span, ...]
    style: str = ""

    def __post_init__(self):
        object.__setattr__(self, "spans", _spans(self.spans))


@dataclass(frozen=True)
class Bullets:
    kind: ClassVar[str] = "bullets"
    items: tuple[str, ...]


@dataclass(frozen=True)
class KeyValues:
    kind: ClassVar[str] = "keyvalues"
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Column:
    """A table column. ``kind``: ``""`` numbers, ``"t"`` text, ``"wrap"`` long text, ``"pub"`` a published
    value, ``"note"``. Consecutive columns with the same ``group`` share a header cell above their ``sub``
    labels (HTML); ``label`` is the column's full name (Markdown, CSV-like formats)."""

    label: str
    kind: str = ""
    group: str = ""
    sub: str = ""


@dataclass(frozen=True)
class Cell:
    """A formatted value; ``flag`` ``"out"`` marks a published value outside our interval, ``title`` says why."""

    text: str
    flag: str = ""
    title: str = ""


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]

    @property
    def grouped(self) -> bool:
        return any(c.group for c in self.columns)

    @property
    def groups(self) -> list[tuple[str, list[Column]]]:
        """Runs of consecutive columns with the same group ("" for ungrouped columns, one run each)."""
        runs: list[tuple[str, list[Column]]] = []
        for c in self.columns:
            if c.group and runs and runs[-1][0] == c.group:
                runs[-1][1].append(c)
            else:
                runs.append((c.group, [c]))
        return runs


@dataclass(frozen=True)
class Figure:
    """``src``: what the HTML embeds (a ``data:`` URI); ``link``: what the Markdown links (a relative path)."""

    kind: ClassVar[str] = "figure"
    number: str
    title: str
    caption: str
    src: str
    link: str


@dataclass(frozen=True)
class Finding:
    """A finding of the study and our verdict; ``tone`` (ok / part / no / na) colours it in HTML."""

    kind: ClassVar[str] = "finding"
    number: int
    rq: str
    verdict: str
    claim: str
    sentence: str
    tone: str = "na"


@dataclass(frozen=True)
class Contents:
    """Links to the document's level-2 headings that have a ``nav`` label (rendered where the format can)."""

    kind: ClassVar[str] = "contents"


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    @property
    def sections(self) -> list[Heading]:
        return [h for h in self.blocks if h.kind == "heading" and h.level == 2 and h.nav]


def _md_escape(text) -> str:
    return str(text).replace("|", "\\|")


def _md_widths(table: Table) -> list[int]:
    """Column widths of a padded pipe table, so that Markdown diffs between runs stay readable."""
    return [max([3, len(_md_escape(c.label)), *(len(_md_escape(r[k].text)) for r in table.rows)])
            for k, c in enumerate(table.columns)]


def _ljust(text, width: int) -> str:
    return str(text).ljust(width)


def _html_escape(value):
    """HTML output escapes as :func:`html.escape` does (``&#x27;``, ``&quot;``), like the rest of dfstudy."""
    return value if hasattr(value, "__html__") else markupsafe.Markup(html.escape(str(value), quote=True))


def _environment(templates: Path, fmt: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), autoescape=fmt == "html",
                             finalize=_html_escape if fmt == "html" else None, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md_escape=_md_escape, md_widths=_md_widths, ljust=_ljust)
    return env


def render(doc: Document, fmt: str, templates: str | Path = TEMPLATES) -> str:
    """The document in ``fmt`` (``"html"`` or ``"md"``) from ``{templates}/document.{fmt}.j2``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return _environment(Path(templates), fmt).get_template(FORMATS[fmt]).render(doc=doc)
