"""Small building blocks shared by every app (errors). Imports nothing of the project's."""
