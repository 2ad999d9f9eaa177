"""A slow, offline "news" source: one running instance is one source."""
