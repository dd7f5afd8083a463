"""Test kit shipped with the package: real Envoy processes (`osm.testing.envoy`) and network namespaces
with iptables interception (`osm.testing.netns`).

Nothing here runs at import time; every helper that starts a process or creates a namespace hands back an
object whose `stop()` / `delete()` cleans it up.
"""
