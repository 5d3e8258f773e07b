"""Campus sign-in: CAS, LDAP/AD and local backends, identity matching by student/staff number, provisioning."""
