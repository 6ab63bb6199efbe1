"""Pulumi components for machine-learning infrastructure on Amazon EKS."""
