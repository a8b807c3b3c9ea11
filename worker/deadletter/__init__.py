"""The operator's dead-letter command, `python -m worker.deadletter`: list, show, replay and purge.

What a dead letter is and how the workers write one is `worker.runtime.dead_letters`.
"""
