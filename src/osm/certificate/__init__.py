"""Certificates: the Certificate model, the built-in "tresor" CA and the rotating certificate manager."""
