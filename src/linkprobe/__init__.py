"""linkprobe: probe many URLs concurrently and get one typed result per URL."""

__version__ = "0.1.0"
