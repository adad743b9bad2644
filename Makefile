# The two commands of README.md. Each does its own set-up (scripts/setup.sh).
.PHONY: run test native-tests tsan bench

run:
	scripts/run.sh

test:
	scripts/test.sh

native-tests:
	scripts/native_tests.sh

tsan:
	scripts/native_tests.sh thread

bench:
	.venv/bin/python -m pytest benchmarks -q -s -p no:cacheprovider
