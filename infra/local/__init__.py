"""The local cluster: the stack's pools run as processes on this machine, no cloud account."""
