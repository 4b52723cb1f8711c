"""The Redis coordinator, in layers.

Each module depends only on the ones listed before it:

* ``url``, ``errors``, ``keys``: connection targets, error translation, the key layout;
* ``protocol``: every script's ARGV encoding and typed reply decoding;
* ``scripts``: the Lua loader; ``deadlines``: server times to local deadlines;
* ``lane``, ``subscriber``, ``calls``: connections, pub/sub, batched calls;
* ``waiting``: the waiting state machine (no I/O);
* ``coordinator``: lifecycle and I/O; ``admin``: the operators' read-only functions.
"""
