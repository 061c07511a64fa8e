"""Queue instructions: Markdown written by researchers, rendered to HTML that cannot script."""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Raw HTML in the source is shown as text; nh3 then strips anything the renderer let through
# that a browser could run (javascript: links, event handlers).
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_html(text: str) -> SafeString:
    html = nh3.clean(_markdown.render(text), link_rel="noopener noreferrer nofollow")
    return mark_safe(html)  # noqa: S308  (sanitised by nh3 just above)
