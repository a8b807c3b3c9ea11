"""The Pulumi program, the scaling model and simulator, and the local cluster."""
