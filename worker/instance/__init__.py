"""What runs on a VM around the worker: its environment from SSM and Secrets Manager (`fetchenv`),
IMDSv2, and the instance's lifecycle state.
"""
