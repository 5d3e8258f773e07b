"""Small building blocks shared by every app: errors, row locks, starting tasks. Imports nothing of the project's."""
