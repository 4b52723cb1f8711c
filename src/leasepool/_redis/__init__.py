"""The Redis coordinator, in layers.

Each module depends only on the ones listed before it:

* ``url``, ``errors``, ``keys``: connection targets, error translation, the key layout;
* ``protocol``: every script's ARGV encoding and typed reply decoding;
* ``scripts``: the Lua loader; ``deadlines``: server times to local deadlines;
* ``snapshot``: reading a pool's state (status), for the coordinator and the operators;
* ``lane``, ``subscriber``: connections, pub/sub;
* ``waiting_events``, ``waiting_clock``, ``waiting``: the waiting state machine (no I/O);
* ``calls``, ``options``, ``runner``: batched calls, checked options, script calls;
* ``engine``: feeds the machine replies, events and timers, and carries out its actions;
* ``coordinator``: lifecycle and I/O; ``admin``: the operators' read-only functions.
"""
