"""The `podwire` CNI plugin: bridge and routed modes (one module per verb)."""
