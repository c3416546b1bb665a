"""The admin: the reviewers' interface to every registry model."""

from . import clinical, patients  # noqa: F401  (registers the ModelAdmins)
