"""The metrics publisher Lambda (`handler`, and `python -m worker.publisher` for one sample): queue
inspection, measured service, and the datums it publishes.
"""
