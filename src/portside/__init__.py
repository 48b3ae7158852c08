"""Portside: a container registry implementing OCI Distribution v1.1 and the Docker Registry HTTP API V2."""

__version__ = "0.1.0"
