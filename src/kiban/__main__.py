"""``python -m kiban``: the same commands as ``kiban`` (``kiban serve`` starts its jobs process so)."""

from kiban.cli import app

app(prog_name="kiban")
