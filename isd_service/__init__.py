"""isd_service: versioned Industry Standing Data for the GB electricity market.

The package is laid out by layer: ``domain`` (pure rules), ``service_layer`` (one function
per use case, the only place that commits), ``adapters`` (database, files, HTTP out) and
``entrypoints`` (the Flask app, the `isd` command line, the scheduler process). The app is
built by ``isd_service.entrypoints.app.create_app``; ``isd_service.sync`` is the participants'
client and imports none of the rest.
"""

from isd_service.config import PROJECT_ROOT

__all__ = ["PROJECT_ROOT"]
