"""The bookstore demo apps (bookbuyer, bookthief, bookstore, bookwarehouse) and the `osm demo` dashboard.

The apps use only the standard library: each is a plain process (`python -m osm.demo.<app>`) speaking HTTP/TCP
to service DNS names, with its traffic transparently intercepted by an Envoy sidecar.
"""
