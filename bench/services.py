"""The common SaaS under load (issue #12), each part against real servers on this machine:

  forms     200 concurrent residents submitting a 20-field form (p99 of the submit < 200 ms on
            PostgreSQL, nothing acknowledged lost, a double submit stored once): _services_forms.py;
            each resident comes within --forms-fill-seconds and takes about that long to fill it in
            (default 30 s, brisker than people are; 0: the closed loop, the server's saturation)
  bookings  10,000 booking attempts from 200 concurrent clients on 100 slots (exactly 100
            bookings): _services_bookings.py
  notify    the notification worker delivering to a local SMTP server (at least 3,000 e-mails a
            minute, each received once): _services_notify.py

Runs the parts one after another (each builds its own fresh database and servers, so one part's
load never touches another's figures), shows what each printed, and ends with a line per part
and the command to rerun. Exits 1 if any part failed its checks.

    .venv/bin/python bench/services.py [--only forms,bookings,notify] [--notify-backend postgresql] [--forms-fill-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {
    "forms": ("_services_forms.py", []),
    "bookings": ("_services_bookings.py", []),
    "notify": ("_services_notify.py", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--notify-backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--forms-fill-seconds", type=float, default=30.0,
                        help="seconds a resident takes to fill in the form (0: closed loop)")
    args = parser.parse_args()
    chosen = [p for p in PARTS if p in args.only.split(",")]
    results = []
    print(f"bench/services.py: {', '.join(chosen)}; cores={os.cpu_count()}; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    for part in chosen:
        script, extra = PARTS[part]
        extra = list(extra) + (["--backend", args.notify_backend] if part == "notify" else [])
        extra += ["--fill-seconds", f"{args.forms_fill_seconds:g}"] if part == "forms" and args.forms_fill_seconds else []
        print(f"\n===== {part}: {script} {' '.join(extra)} =====", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *extra])
        results.append((part, code, time.monotonic() - started))
    print("\n== summary ==")
    for part, code, seconds in results:
        print(f"  {part:9s} {'PASS' if code == 0 else 'FAIL'} (exit {code}, {seconds:.0f} s)")
    print(f"\nrerun: .venv/bin/python bench/services.py --only {','.join(chosen)} --notify-backend {args.notify_backend} "
          f"--forms-fill-seconds {args.forms_fill_seconds:g}")
    sys.exit(0 if all(code == 0 for _, code, _ in results) else 1)


if __name__ == "__main__":
    main()
