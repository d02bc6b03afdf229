"""The Atom feed (RFC 4287) of publications and planned releases (pure: plain values in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

ATOM = "http://www.w3.org/2005/Atom"
FEED_ID = "urn:isd-service:feed"


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    updated: datetime
    link: str
    summary: str
    category: str  # "publication" or "planned-release"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def render(entries: list[Entry], *, self_url: str, site_url: str) -> bytes:
    """Write the feed, newest entry first; ``updated`` is that of the newest entry."""
    ET.register_namespace("", ATOM)
    entries = sorted(entries, key=lambda e: (stamp(e.updated), e.id), reverse=True)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "id", FEED_ID)
    _text(feed, "title", "Industry Standing Data: publications and planned releases")
    _text(feed, "updated", stamp(entries[0].updated) if entries else "1970-01-01T00:00:00Z")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "ISD service")
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=self_url,
                  type="application/atom+xml")
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", href=site_url, type="text/html")
    for e in entries:
        item = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(item, "id", e.id)
        _text(item, "title", e.title)
        _text(item, "updated", stamp(e.updated))
        ET.SubElement(item, f"{{{ATOM}}}link", rel="alternate", href=e.link)
        ET.SubElement(item, f"{{{ATOM}}}category", term=e.category)
        _text(item, "summary", e.summary)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = text
