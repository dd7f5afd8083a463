"""A config part that cannot be built names the objects it was built from."""

from __future__ import annotations

import pytest
from tests.golden.scenarios import FAKE_CERT, load_state

from osm.catalog import MeshCatalog
from osm.envoy import generator as generator_mod
from osm.envoy.generator import ConfigGenerator, GenerationError, objects_named


def test_a_failing_cluster_build_names_the_service_it_was_for(monkeypatch: pytest.MonkeyPatch) -> None:
    state = load_state("split")
    catalog = MeshCatalog(state)
    real = generator_mod.clusters.upstream_cluster_parts

    def parts(c, tls, td):  # type: ignore[no-untyped-def]
        if c.service.name == "reviews-v2":
            raise ValueError("a value Envoy cannot take")
        return real(c, tls, td)

    monkeypatch.setattr(generator_mod.clusters, "upstream_cluster_parts", parts)
    pod = state.pods[("web", "web-0")]
    with pytest.raises(GenerationError) as e:
        ConfigGenerator().resources(catalog.proxy_policy(catalog.group_for_pod(pod)), FAKE_CERT)
    assert "building cds-parts from Service reviews/reviews-v2 port 9080" in str(e.value)
    assert "ValueError: a value Envoy cannot take" in str(e.value)


def test_objects_named_lists_services_accounts_and_splits() -> None:
    state = load_state("split")
    catalog = MeshCatalog(state)
    pod = state.pods[("web", "web-0")]
    outbound = catalog.outbound_policy(catalog.group_for_pod(pod).identity)
    named = objects_named(outbound.upstreams, limit=10)
    assert "Service reviews/reviews port 9080" in named
    assert any(n.startswith("the TrafficSplit of reviews/reviews (backends ") for n in named)
    assert objects_named(outbound, limit=2) == objects_named(outbound)[:2]
