"""``python -m kiban.modules.disaster.linkage train ...`` (``training.py``) or ``... link ...``
(a batch from a parquet file, ``engine.main``)."""

import sys

if sys.argv[1:2] == ["link"]:
    from kiban.modules.disaster.linkage.engine import main as link

    link(sys.argv[2:])
else:
    from kiban.modules.disaster.linkage.training import main

    main()
