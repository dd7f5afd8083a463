"""A short fuzzing run of every input the control plane reads from outside (osm.testing.fuzz).

bench/fuzz.py runs the same targets over a million inputs and more; here hypothesis drives each for
a few hundred, and every finding it shrinks is a failing test.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osm.testing import fuzz

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
k8s_keys = st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status", "name", "namespace"])
documents = st.dictionaries(k8s_keys, json_values, max_size=5) | json_values


@FAST
@given(documents)
def test_any_document_is_decoded_or_rejected_clearly(doc: Any) -> None:
    fuzz.check_document(doc)


@FAST
@given(st.randoms(use_true_random=False))
def test_mutated_real_documents_are_decoded_or_rejected_clearly(rnd: random.Random) -> None:
    fuzz.TARGETS["document"](rnd)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["traffic", "sidecar", "certificate", "observability", "featureFlags"]), json_values
    )
    | json_values
)
def test_any_mesh_config_spec_is_accepted_or_rejected_clearly(spec: Any) -> None:
    fuzz.check_meshconfig(spec)


@FAST
@given(st.randoms(use_true_random=False))
def test_mutated_mesh_configs_are_accepted_or_rejected_clearly(rnd: random.Random) -> None:
    fuzz.TARGETS["meshconfig"](rnd)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_manifest_bytes_are_parsed_or_rejected_clearly(data: bytes) -> None:
    fuzz.check_manifest(data)


@FAST
@given(st.randoms(use_true_random=False), st.booleans())
def test_any_sequence_of_xds_requests_and_changes_keeps_the_state_machines_sound(
    rnd: random.Random, delta: bool
) -> None:
    fuzz.check_xds(fuzz.random_requests(rnd, rnd.randint(1, 25), delta), delta)


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_any_request_bytes_end_the_stream_or_are_handled(data: bytes, delta: bool) -> None:
    fuzz.check_request_bytes(data, delta)
