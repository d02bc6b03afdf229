"""The service's versions as a DCAT-AP style catalogue in JSON-LD (pure).

ISD is a dcat:DatasetSeries; each published version a dcat:Dataset in it, with its issued
date and a dcat:Distribution per listed download (media type, byte size, SHA-256 checksum
in the SPDX vocabulary), licence and publisher. The context is inline, so that a JSON-LD
processor needs no network to read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"


@dataclass(frozen=True)
class Published:
    """One version and its listed downloads (url, format, entity, name, size, sha256)."""

    number: int
    published_at: datetime
    go_live_date: date | None
    downloads: list[dict[str, Any]]


def catalog(versions: list[Published], *, base: str, publisher: str, licence: str,
            mimetypes: dict[str, str]) -> dict[str, Any]:
    """The JSON-LD document; ``base``: the service's URL without a trailing slash."""
    series = f"{base}/api/v1/versions"
    agent = {"@id": f"{base}/#publisher", "@type": "foaf:Agent", "foaf:name": publisher}
    terms = {"@id": f"{base}/catalogue#licence", "@type": "dct:LicenseDocument",
             "rdfs:label": licence}
    graph: list[dict[str, Any]] = [
        {"@id": f"{base}/api/v1/catalog.jsonld", "@type": "dcat:Catalog",
         "dct:title": "Industry Standing Data", "dct:publisher": {"@id": agent["@id"]},
         "dct:license": {"@id": terms["@id"]}, "foaf:homepage": {"@id": f"{base}/"},
         "dcat:dataset": [{"@id": series}, *[{"@id": _dataset(base, v)} for v in versions]]},
        agent, terms,
        {"@id": series, "@type": "dcat:DatasetSeries", "dct:title": "Industry Standing Data",
         "dct:description": ("Reference data of the GB electricity market (the successor of "
                             "Market Domain Data), one immutable numbered version a release."),
         "dct:publisher": {"@id": agent["@id"]}, "dct:license": {"@id": terms["@id"]}},
    ]
    for v in versions:
        dataset: dict[str, Any] = {
            "@id": _dataset(base, v), "@type": "dcat:Dataset",
            "dct:title": f"Industry Standing Data, version {v.number}",
            "dcat:inSeries": {"@id": series},
            "dcat:version": str(v.number),
            "dct:issued": {"@value": v.published_at.isoformat(timespec="seconds"),
                           "@type": "xsd:dateTime"},
            "dct:publisher": {"@id": agent["@id"]},
            "dct:license": {"@id": terms["@id"]},
            "dcat:landingPage": {"@id": f"{base}/versions/{v.number}"},
            "dcat:distribution": [_distribution(base, d, mimetypes, terms["@id"])
                                  for d in v.downloads],
        }
        if v.go_live_date is not None:
            dataset["dct:temporal"] = {"@type": "dct:PeriodOfTime", "dcat:startDate": {
                "@value": v.go_live_date.isoformat(), "@type": "xsd:date"}}
        graph.append(dataset)
    return {"@context": CONTEXT, "@graph": graph}


def _dataset(base: str, version: Published) -> str:
    return f"{base}/api/v1/versions/{version.number}"


def _distribution(base: str, download: dict[str, Any], mimetypes: dict[str, str],
                  licence: str) -> dict[str, Any]:
    url = base + download["url"]
    what = f"{download['format']} of {download['entity'] or 'every entity'}"
    return {
        "@id": url, "@type": "dcat:Distribution",
        "dct:title": f"{download['name']} ({what})",
        "dcat:accessURL": {"@id": url}, "dcat:downloadURL": {"@id": url},
        "dcat:mediaType": {"@id": MEDIA_TYPES + mimetypes[download["format"]]},
        "dcat:byteSize": {"@value": str(download["size"]), "@type": "xsd:nonNegativeInteger"},
        "dct:license": {"@id": licence},
        "spdx:checksum": {
            "@type": "spdx:Checksum",
            "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
            "spdx:checksumValue": {"@value": download["sha256"], "@type": "xsd:hexBinary"}},
    }
