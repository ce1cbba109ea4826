"""pressedplay: from a picture to music, through eight Spotify audio features."""

from importlib.metadata import version

__version__ = version("pressedplay")
