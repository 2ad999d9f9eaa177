"""Two gateways, sync and async, over one shared core that fans out to every news source."""
