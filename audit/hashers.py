"""The password hasher: Argon2id at OWASP's minimum memory-hard configuration.

60 students log in within the same minute at the start of a class, on two cores. PBKDF2
at Django 5.2's 1,000,000 iterations costs 0.4 s of CPU per hash here (0.24 s at OWASP's
600,000), so the class would queue for 8-12 s before anything else runs. Argon2id with
19 MiB of memory, 2 passes and 1 lane (OWASP Password Storage Cheat Sheet) costs a few
tens of milliseconds while being memory-hard, which PBKDF2 is not: a stronger hash
against offline guessing at a fraction of the CPU.

Existing PBKDF2 hashes keep verifying through the hashers listed after this one in
PASSWORD_HASHERS, and Django re-hashes a password with this one at its next login.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class CampusArgon2PasswordHasher(Argon2PasswordHasher):
    # argon2-cffi's parameters: memory in KiB; Django's Argon2 hasher uses the argon2id type.
    time_cost = 2
    memory_cost = 19 * 1024
    parallelism = 1
