"""A CAS server of our own for the tests: django-cas-server (PyPI) in its own Django project and process."""
