"""Tests of the Metamath kernel (core/metamath)."""
