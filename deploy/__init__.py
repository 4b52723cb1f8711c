"""Deployment example for leasepool: a web app, its image, and a load generator."""
