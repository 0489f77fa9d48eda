"""collab: simultaneous annotation of 3D electron-microscopy volumes."""

__version__ = "0.1.0"
