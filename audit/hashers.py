"""The password hasher: PBKDF2-HMAC-SHA256 at OWASP's 600,000 iterations.

Django 5.2's default is 1,000,000; at 0.24 s of CPU per hash here, 60 students logging in
at the start of a class would queue for 7+ s on two cores before anything else runs.
600,000 is OWASP's recommendation for PBKDF2-HMAC-SHA256 (Password Storage Cheat Sheet,
2023). Same algorithm name, so every existing hash still verifies; Django re-hashes a
password at its next login when the iteration count differs.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class CampusPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 600_000
