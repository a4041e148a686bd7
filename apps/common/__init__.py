"""Plumbing shared by every app: training, export, errors, recurrent cells."""
