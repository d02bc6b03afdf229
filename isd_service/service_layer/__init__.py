"""The service layer: one function per use case, each taking a unit of work and plain values.

This is the only place that commits. The API, the CLI, the pages and the scheduler call the
same functions, so a use case behaves the same whichever way it is asked for.
"""
