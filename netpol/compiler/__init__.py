"""Policy -> BPF map entries, as pure functions over the model (no kernel needed).

The output (`Desired`) is exactly what the datapath maps must hold; the agent
diffs it against what they hold now and writes the difference.  See
entries.py for the map layout and compile.py for how rules become entries.
"""
from .compile import Compiler, compile_world
from .entries import (ANY_IDENTITY, DIR_EGRESS, DIR_INGRESS, FIRST_IDENTITY, ISOLATE_EGRESS, ISOLATE_INGRESS,
                      WORLD_IDENTITY, Attachment, Desired, EndpointEntry, IpcacheEntry, PolicyKey)
from .identities import ClassKey, IdentityAllocator, SubjectKey

__all__ = ["Compiler", "compile_world", "ANY_IDENTITY", "DIR_EGRESS", "DIR_INGRESS", "FIRST_IDENTITY",
           "ISOLATE_EGRESS", "ISOLATE_INGRESS", "WORLD_IDENTITY", "Attachment", "Desired", "EndpointEntry",
           "IpcacheEntry", "PolicyKey", "IdentityAllocator", "ClassKey", "SubjectKey"]
