"""The fray language runtime for Python: ``python -m frayhq.runtime``.

A fray worker started with ``--python`` runs this module in persistent
processes and talks to each over two pipes (fd 3: frames from the worker,
fd 4: frames to it) with length-prefixed CBOR frames (PROTOCOL.md,
"Language runtimes"). The worker does every JetStream concern; a process
here only imports the modules it is told to, says what they registered,
and runs task functions and actor methods.
"""
