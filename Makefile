# CampusCloud. The logic lives in scripts/; see README.md.
#   make run        install what is missing, migrate, load demo data, serve on 127.0.0.1:PORT (8000)
#   make test       install what is missing, start MariaDB/Redis/libvirtd/vcsim, run every test
#                   (make test PYTEST_ARGS="-k billing -x")
#   make test-fast  the tests that need no real component (libvirtd, vcsim, Chromium, a worker):
#                   MariaDB and Redis only, the test database kept between runs
#   make lint       ruff and import-linter
#   make testbed       bring up the multi-host testbed (root); its last line is JSON naming the hosts
#   make testbed-down  remove it (scripts/testbed.sh status|exec|kill for the rest)
#   make sso-demo      a test CAS server and slapd beside `make run` (README: Campus sign-in)
.PHONY: run test test-fast setup lint bench clean-run testbed testbed-down sso-demo

PYTEST_ARGS ?=
BENCH ?=
PROFILE ?= test

run:
	scripts/setup.sh run
	scripts/run.sh

test:
	scripts/setup.sh test
	scripts/test.sh $(PYTEST_ARGS)

test-fast:
	scripts/setup.sh test
	scripts/test.sh --fast $(PYTEST_ARGS)

setup:
	scripts/setup.sh $(PROFILE)

sso-demo:
	scripts/setup.sh sso
	.venv/bin/python -m tests.sso.demo

lint:
	scripts/setup.sh run
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache --no-logo

# every bench/*.py that is a script, or only some: make bench BENCH="api billing"
bench:
	scripts/setup.sh test
	CC_STATE=.run/started-by-bench scripts/services.sh start mariadb redis libvirt vcsim
	@trap 'CC_STATE=.run/started-by-bench scripts/services.sh stop' EXIT; set -e; for f in $(if $(BENCH),$(patsubst %,bench/%.py,$(BENCH)),$$(grep -l '^if __name__ == "__main__"' bench/*.py)); do \
	  echo "==> $$f"; .venv/bin/python "$$f"; done

testbed:
	scripts/setup.sh test
	scripts/testbed.sh up

testbed-down:
	scripts/testbed.sh down

clean-run:
	rm -rf .run db.sqlite3
