"""podwire-ctl: a crictl-compatible CRI client (same verbs, flags, config files, outputs)."""
