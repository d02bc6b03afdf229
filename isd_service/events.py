"""Signals the data's path sends, so that other parts (audit, downloads, notifications) can
act on them without the core knowing about them.

``*_ing`` signals are sent inside the writer's transaction, before it commits, with the
session: a receiver that adds rows there commits or rolls back with the change itself.
``*_ed`` signals are sent after the commit: for work that must only follow a done change.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# sender: the list of Validated (one per entity); kwargs: session, organisation, mode.
# A receiver returns a list of validation.Problem (or None); any problem refuses the load.
load_validated = _signals.signal("load-validated")
# sender: the Load row; kwargs: session
load_accepting = _signals.signal("load-accepting")
# sender: the Version row; kwargs: session
version_publishing = _signals.signal("version-publishing")
# sender: the Release row; kwargs: session, action ("release.create", "release.change",
# "release.cancel"), actor, organisation
release_changing = _signals.signal("release-changing")
# sender: the Version row (committed)
version_published = _signals.signal("version-published")
