"""Volume data: datasets of zarr pyramids, bricks, their cache and wire format."""
