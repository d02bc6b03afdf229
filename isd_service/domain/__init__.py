"""The domain: pure rules of Industry Standing Data (no Flask, no SQLAlchemy).

Catalogue and records, validation, the net change a load makes (staging), deltas, the release
lifecycle and the calendar's rules. Everything here works on plain values, so it is tested
without a database and shared by every entry point.
"""
