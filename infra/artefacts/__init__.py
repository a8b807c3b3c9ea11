"""`make build`: the worker wheel, a wheelhouse per pool architecture, the metrics-publisher
Lambda bundle, and a manifest of their sha256, byte-for-byte reproducible from the same source."""
