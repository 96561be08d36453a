"""Postline audit service."""
