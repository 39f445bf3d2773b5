"""The KIE.ai HTTP client: requests, errors, rate limits and the circuit breaker."""
