"""Per-tenant bot runtime: handlers, job pipeline and the shared KIE client."""
