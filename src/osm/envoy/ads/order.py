"""Push order and NACK handling shared by the SotW and delta state machines (pure).

Order: a push goes out as CDS -> EDS -> LDS -> RDS -> SDS, each type only when its content changed
for the proxy, and an updated cluster gets its ClusterLoadAssignment again (Envoy warms an updated
cluster until it receives one).

Make before break: after a CDS push that adds EDS clusters whose endpoints the proxy has not asked
for yet, listeners and routes are held back, so that no route points at a cluster that is still
warming. The hold ends when any of these holds:
- the endpoints of every held cluster have been sent;
- none of the held clusters exists any more (a later change removed them);
- the proxy ACKed the CDS push without watching endpoints at all;
- the proxy NACKed CDS: the clusters it rejected never warm, so holding back their listeners and
  routes would only keep every later listener and route change from it.

NACK rule (both protocols): a request with error_detail is counted and logged (once per type and
version, its text bounded). Nothing is sent in reply to it, and the rejected version is never sent
again; but what the rejected response carried no longer counts as held by the proxy, so each of those
resources is sent again as soon as its version changes (a SotW response of a wildcard type, or of a
by-name type after a NACK, carries the type's whole requested state). Names that the NACK subscribes
to anew are answered as any subscription is. A NACK of CDS also ends the hold above.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from osm.envoy.types import TYPE_CLUSTER, TYPE_LISTENER, TYPE_ROUTE

HELD_TYPES = (TYPE_LISTENER, TYPE_ROUTE)


@dataclass
class MakeBeforeBreak:
    """One stream's hold on listeners and routes (see the module docstring)."""

    hold: frozenset[str] = frozenset()

    def blocks(self, type_url: str) -> bool:
        return bool(self.hold) and type_url in HELD_TYPES

    def clusters_pushed(self, new_eds_clusters: AbstractSet[str], watched: AbstractSet[str] | None) -> None:
        """A CDS push went out adding these EDS clusters; `watched` is the set of endpoint names the
        proxy asks for, or None when it does not ask by name (it watches none yet, or all)."""
        if watched is None:
            return
        unasked = frozenset(new_eds_clusters) - watched
        if unasked:
            self.hold |= unasked

    def release(
        self,
        *,
        sent: AbstractSet[str] | None,
        available: AbstractSet[str],
        cds_acked_unwatched: bool = False,
    ) -> bool:
        """End the hold if its condition holds; True when it ended (the held types go out now).
        `sent`: the endpoint names sent to the proxy (None if it never asked for endpoints)."""
        if not self.hold:
            return False
        covered = sent is not None and self.hold <= sent
        gone = not (self.hold & available)
        if covered or gone or cds_acked_unwatched:
            self.hold = frozenset()
            return True
        return False

    def nacked(self, type_url: str) -> bool:
        """A NACK of `type_url`; True when it ended the hold."""
        if type_url == TYPE_CLUSTER and self.hold:
            self.hold = frozenset()
            return True
        return False
