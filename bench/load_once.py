"""One load of a folder of MDD CSV files, in a process of its own; prints its figures as JSON.

    python bench/load_once.py DATABASE_URL FOLDER

Prints the load's seconds and this process's peak RSS before and after it. bench/run.py
runs it as a child so that the peak is the load's own (run.py's process has held whole
snapshots by then); the files are read from their paths, as `isd load` reads them.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from isd_service.domain.formats import InputFile
from isd_service.entrypoints.app import create_app
from isd_service.entrypoints.flask_db import uow
from isd_service.service_layer.drafts import load


def high_water_mib() -> float:
    """This program's peak RSS. Linux's VmHWM belongs to the program's own memory, made at
    exec; ru_maxrss would also count the parent's pages the child held between fork and
    exec (hundreds of MiB when run.py has held snapshots)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    url, folder = sys.argv[1], Path(sys.argv[2])
    files = [InputFile(p.name, path=p) for p in sorted(folder.glob("*.csv"))]
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        before = high_water_mib()
        started = time.perf_counter()
        load(uow(), files=files, fmt="mdd-csv", mode="replace", actor="bench",
             organisation=None)
        seconds = time.perf_counter() - started
    print(json.dumps({"load_s": seconds, "peak_before": before, "load_peak": high_water_mib()}))


if __name__ == "__main__":
    main()
