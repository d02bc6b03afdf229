"""The domain layer stays pure: importing all of it brings in neither Flask nor SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import isd_service.domain as domain
for module in pkgutil.walk_packages(domain.__path__, "isd_service.domain."):
    importlib.import_module(module.name)
print(sorted({m.split(".")[0] for m in sys.modules} & {"flask", "sqlalchemy", "werkzeug"}))
"""


def test_the_domain_imports_neither_flask_nor_sqlalchemy() -> None:
    # A fresh interpreter: this one has imported the whole service for other tests.
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
