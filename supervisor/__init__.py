"""The supervisor process: boot, tenant registry, locks, runtime lifecycle, HTTP server, CLI."""

__version__ = "0.1.0"
