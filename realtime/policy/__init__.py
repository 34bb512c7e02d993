"""Who may do what: Origin checks, rate limits and connection caps, signed tokens."""
