"""The DCAT catalogue of every version, read by rdflib (a JSON-LD parser nobody here wrote)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, XSD

API = "/api/v1"
SPDX = Namespace("http://spdx.org/rdf/terms#")
DCAT = Namespace("http://www.w3.org/ns/dcat#")  # DCAT 3 (rdflib's closed DCAT lacks the series)

# rdflib's own JSON-LD parser still builds a ConjunctiveGraph, which rdflib 7 deprecates.
pytestmark = [pytest.mark.relations,
              pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated")]


def test_catalog_jsonld_has_a_dataset_per_version_and_a_distribution_per_download(
        app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed", "--version", "30"]).exit_code == 0
    assert runner.invoke(args=["publish", "--force", "--go-live", "2026-06-01"]).exit_code == 0

    response = client.get(f"{API}/catalog.jsonld")
    assert response.status_code == 200 and response.mimetype == "application/ld+json"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    again = client.get(f"{API}/catalog.jsonld",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304

    graph = Graph().parse(data=response.get_data(as_text=True), format="json-ld",
                          base="http://localhost/")
    series = list(graph.subjects(RDF.type, DCAT.DatasetSeries))
    assert series == [URIRef("http://localhost/api/v1/versions")]
    datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
    assert datasets == {URIRef(f"http://localhost/api/v1/versions/{n}") for n in (30, 31)}
    for number in (30, 31):
        dataset = URIRef(f"http://localhost/api/v1/versions/{number}")
        assert (dataset, DCAT.inSeries, series[0]) in graph
        issued = graph.value(dataset, DCTERMS.issued)
        assert issued is not None and issued.datatype == XSD.dateTime
        assert graph.value(dataset, DCTERMS.license) is not None
        assert graph.value(dataset, DCTERMS.publisher) is not None
        manifest = client.get(f"{API}/versions/{number}").get_json()
        distributions = set(graph.objects(dataset, DCAT.distribution))
        assert distributions == {URIRef("http://localhost" + d["url"])
                                 for d in manifest["downloads"]}
        for d in manifest["downloads"]:
            node = URIRef("http://localhost" + d["url"])
            checksum = graph.value(node, SPDX.checksum)
            assert graph.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
            assert str(graph.value(checksum, SPDX.checksumValue)) == d["sha256"]
            assert graph.value(node, DCAT.byteSize) == Literal(
                d["size"], datatype=XSD.nonNegativeInteger)
            assert graph.value(node, DCAT.mediaType) is not None
    go_live = graph.value(graph.value(URIRef("http://localhost/api/v1/versions/31"),
                                      DCTERMS.temporal), DCAT.startDate)
    assert str(go_live) == "2026-06-01"
