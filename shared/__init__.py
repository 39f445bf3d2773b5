"""Code used by both the supervisor and the tenant runtimes. Depends on nothing of ours."""
