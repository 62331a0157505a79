"""Stands in for get-pip.py, which ansible-test downloads from ci-files.testing.ansible.com to put
pip into each of its virtualenvs: pip from Python's own ensurepip, then the versions ansible-test
asks for from the package index (scripts/sanity puts this file where ansible-test caches get-pip)."""

import ensurepip
import os
import subprocess
import sys

# ensurepip points PIP_CONFIG_FILE at /dev/null for the rest of the process: keep the index settings.
ENVIRONMENT = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
ARGUMENTS = [argument for argument in sys.argv[1:] if argument not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *ARGUMENTS], env=ENVIRONMENT))
