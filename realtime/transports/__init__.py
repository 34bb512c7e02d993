"""aiohttp handlers: the only code that knows a wire format."""
