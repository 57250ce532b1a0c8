"""Reports layer: renderings of engine results (HTML, plots)."""
