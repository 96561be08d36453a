"""Postline: a distributed outbound mail relay on RabbitMQ."""

__version__ = "0.1.0"
