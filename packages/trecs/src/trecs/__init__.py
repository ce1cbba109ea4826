"""trecs: playlist continuation with a causal transformer over track tokens."""

from importlib.metadata import version

__version__ = version("trecs")
