"""A serving process compiles every template at start-up (``templating.compile_all``), so the
first person to open a page does not wait for its template, and a template that does not
compile stops the start rather than one page."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import TemplateSyntaxError

from kiban.kit import templating


def test_every_page_template_is_compiled_at_start_up() -> None:
    on_disk = {p.name for d in templating._template_dirs() for p in Path(d).rglob("*.html")}
    assert templating.compile_all() == len(templating.templates.env.list_templates(extensions=["html"]))
    assert {Path(name).name for name in templating.templates.env.list_templates(extensions=["html"])} == on_disk


def test_a_template_that_does_not_compile_stops_the_start(tmp_path, monkeypatch) -> None:
    from jinja2 import ChoiceLoader, FileSystemLoader

    (tmp_path / "broken.html").write_text("{% if %}", encoding="utf-8")
    loader = templating.templates.env.loader
    monkeypatch.setattr(templating.templates.env, "loader", ChoiceLoader([loader, FileSystemLoader(str(tmp_path))]))
    with pytest.raises(TemplateSyntaxError):
        templating.compile_all()
