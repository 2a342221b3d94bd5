"""Scale-out across machines through Redis (``redis_url``): the session registry,
cross-node fan-out of redacted output, cluster-wide limits.

:mod:`.codec` is the signed wire format (no I/O); :mod:`.writer` everything a node
writes, :mod:`.feed` what a node reads for its listeners, :mod:`.node` what the
server calls. Without ``redis_url`` none of this is imported.
"""
