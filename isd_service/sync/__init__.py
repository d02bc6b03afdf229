"""isd-sync: keep a local copy of the published ISD versions, verified by their hashes.

Standard library only (urllib, json, csv, sqlite3), so that it installs and runs anywhere
without the service's own dependencies: nothing here imports Flask or SQLAlchemy.
"""
