"""Stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py).

ansible-test makes each sanity virtualenv without pip and then runs its bootstrap script,
which it downloads from a host that is unreachable here. tests/sanity saves this file where
ansible-test looks for that script (~/.ansible/test/cache/get_pip_<version>.py), beside
the pip wheel of that version from PyPI (pip-<version>-py3-none-any.whl). It does what the
real script does with ansible-test's arguments: runs pip from the wheel to install the
requested packages (pip==<version>) into the running interpreter, where the get-pip options
--no-setuptools / --no-wheel simply mean "do not add those".
"""

import os
import runpy
import sys

here = os.path.dirname(os.path.abspath(__file__))
version = os.path.splitext(os.path.basename(__file__))[0].removeprefix("get_pip_").replace("_", ".")
wheel = os.path.join(here, f"pip-{version}-py3-none-any.whl")
if not os.path.isfile(wheel):
    sys.exit(f"get_pip stand-in: {wheel} is missing (tests/sanity downloads it)")

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if not any(a.split("==")[0] == "pip" for a in args if not a.startswith("-")):
    args.append(f"pip=={version}")
sys.path.insert(0, wheel)  # pip runs from its own wheel (a zip on sys.path)
sys.argv = ["pip", "install", "--find-links", here, *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
