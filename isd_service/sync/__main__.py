"""`python -m isd_service.sync` is the same as the `isd-sync` command."""

from isd_service.sync.cli import main

raise SystemExit(main())
