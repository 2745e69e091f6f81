"""The kernel side: load the BPF programs (compiled ahead by bcc), attach them (pyroute2 tc clsact),
keep the pinned maps equal to the compiler's Desired state, read drops.

Only this package needs root; only its compile.py imports bcc (in a short-lived process).
"""
