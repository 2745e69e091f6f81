"""The kernel side: load the BPF programs (bcc), attach them (pyroute2 tc clsact),
keep the pinned maps equal to the compiler's Desired state, read drops.

Only this package needs root and imports bcc.
"""
