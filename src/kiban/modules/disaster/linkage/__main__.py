"""``python -m kiban.modules.disaster.linkage train ...`` (see ``training.py``)."""

from kiban.modules.disaster.linkage.training import main

main()
