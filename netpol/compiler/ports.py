"""Port ranges as bit prefixes, so an LPM trie matches endPort ranges in one lookup."""
from __future__ import annotations

PORT_BITS = 16


def range_prefixes(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] with aligned blocks: (first port, number of significant bits).

    At most 2*16-2 blocks for any range; e.g. 80..81 -> [(80, 15)], 0..65535 -> [(0, 0)]."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << PORT_BITS  # largest block aligned at lo ...
        while size > hi - lo + 1:                    # ... that does not pass hi
            size >>= 1
        out.append((lo, PORT_BITS - (size.bit_length() - 1)))
        lo += size
    return out
