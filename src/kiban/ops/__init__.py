"""Operating Kiban: building, backing up and restoring its databases (used by the CLI, the tests and
the benchmarks). ops may import kit, core and modules; kit never imports ops."""
