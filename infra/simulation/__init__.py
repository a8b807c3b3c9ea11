"""The simulator run on a stack: pool specs read from its config (`stack`) and the side-by-side report (`report`).

Above `infra.config` and `infra.scaling` (it reads the one and runs the other); the commands and the bench use it.
"""
