"""Shim state: persisted pod/container records, the name registrar, List filters, events."""
