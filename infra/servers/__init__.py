"""Broker servers on a free port of this machine, optionally with TLS: `make local`, the bench and the tests start
them (`redis`, `rabbitmq`); nothing here is deployed.
"""
