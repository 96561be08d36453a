"""Postline delivery service."""
